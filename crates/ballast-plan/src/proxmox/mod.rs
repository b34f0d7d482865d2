//! Plans for Proxmox guests (`ProxmoxVm`, `ProxmoxContainer`): pure functions from the desired
//! spec, what one `GET /cluster/resources` says about the cluster's guests, the guest's config
//! (with its `digest`) when it was read, and what ballast recorded about the guest (the vmid it
//! created or adopted), to an action, its reasons and its steps.
//!
//! The rules (each tested from a table in `tests/proxmox_*.rs`):
//! - **Identity is cluster + vmid.** `node` is where a guest is created; one that HA moved is
//!   found on its new node and never created again. A guest whose vmid and name match a manifest
//!   is adopted (recorded as ballast's), not created twice.
//! - **A config read only when needed** ([`needs_config_vm`], [`needs_config_container`]): when
//!   the resource row differs from what the manifest wants or from what was last seen, when the
//!   manifest changed since the last apply, or when nothing was read yet. A resync of a cluster
//!   where nothing changed is the one resource request.
//! - **Update in place with the digest read**; adding a disk, a network card or cloud-init
//!   values is an update, never a replace. Disks grow by resize; a shrink is refused at plan
//!   time with the size Proxmox has ([`PlanError::Refused`]).
//! - **Reboots**: a change that takes effect at the next boot is shown as such, and planned as a
//!   reboot only with `restartPolicy: auto`; otherwise the guest is reported as waiting for one.
//! - **Deletes** only with `prune`, only of a guest ballast recorded, never of one with
//!   `protection` on. A replace (vmid changed, a template made a VM again, a container's
//!   privilege changed) is never silent: its reasons say why.
//! - **No perpetual diffs**: tags as a sorted lower-case set, sizes as bytes, absent keys as
//!   Proxmox's defaults, booleans as values; a config is read with pending changes applied.

mod cloud_init;
mod compare;
mod container;
pub mod import;
mod kinds;
mod lifecycle;
mod steps;
mod vm;

use std::collections::BTreeMap;

use ballast_model::proxmox::{GuestDefaults, ProxmoxContainerSpec, ProxmoxVmSpec};
use ballast_proxmox::{GuestResource, LxcConfig, PendingEntry, QemuConfig};
use serde::{Deserialize, Serialize};

use crate::Action;

pub use compare::{Apply, FieldChange, secret_token};
pub use lifecycle::{needs_config_container, needs_config_vm, plan_container, plan_vm};
pub use steps::{
    GuestStep, GuestTarget, Power, SHUTDOWN_TIMEOUT_SECS, SecretParam, assign_vmid, needs_vmid,
};

/// The desired side of a guest's plan.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a, S> {
    /// `metadata.name`: the guest's name (or host name) unless the spec gives one.
    pub name: &'a str,
    pub spec: &'a S,
    /// The defaults of the guest's cluster.
    pub defaults: &'a GuestDefaults,
    /// The spec's effective hash (with the versions of the secrets it uses).
    pub hash: &'a str,
    /// The current version of each secret the spec uses, by secret name.
    pub secret_versions: &'a BTreeMap<String, String>,
}

pub type DesiredVm<'a> = Desired<'a, ProxmoxVmSpec>;
pub type DesiredContainer<'a> = Desired<'a, ProxmoxContainerSpec>;

/// How ballast came to own a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    /// ballast created it.
    Created,
    /// It existed and its vmid and name matched a manifest.
    Adopted,
}

/// What a resource row of `/cluster/resources` said when ballast last recorded the guest: a
/// change of it outside ballast is what makes a config read necessary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowSummary {
    pub node: String,
    pub name: Option<String>,
    pub status: Option<String>,
    /// Sorted, lower case.
    pub tags: Vec<String>,
    pub maxcpu: Option<f64>,
    pub maxmem: Option<u64>,
    pub maxdisk: Option<u64>,
    pub lock: Option<String>,
    pub template: bool,
    pub pool: Option<String>,
}

impl RowSummary {
    pub fn of(row: &GuestResource) -> RowSummary {
        RowSummary {
            node: row.node.clone(),
            name: row.name.clone(),
            status: row.status.clone(),
            tags: compare::tag_set(row.tags.iter().map(String::as_str)),
            maxcpu: row.maxcpu,
            maxmem: row.maxmem,
            maxdisk: row.maxdisk,
            lock: row.lock.clone(),
            template: row.template,
            pool: row.pool.clone(),
        }
    }
}

/// What ballast recorded about a guest it owns (the store's `vms` / `containers` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedGuest {
    pub vmid: u32,
    pub ownership: Ownership,
    /// The hash of the spec last applied in full.
    pub applied_hash: Option<String>,
    /// The digest of the config last read.
    pub config_digest: Option<String>,
    /// The resource row as last seen.
    pub last_row: Option<RowSummary>,
    /// LXC: the OS template it was created from.
    pub os_template: Option<String>,
    /// What each secret parameter was last set from (`cipassword` →
    /// `secret:web-password#3`), so a new secret version is an update.
    #[serde(default)]
    pub secret_versions: BTreeMap<String, String>,
}

/// A guest's config as read: every key as text, with the changes waiting for the next start
/// applied (what the guest will run), and which keys those are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedConfig {
    pub digest: String,
    pub values: BTreeMap<String, String>,
    /// Keys whose new value (or removal) waits for the next start.
    pub pending: Vec<String>,
}

impl ObservedConfig {
    /// From the raw keys of a config read and its pending entries (`GET …/pending`). Real PVE
    /// answers a config with pending values applied already; applying them again changes
    /// nothing, and a server that answers current values only is read right too.
    pub fn from_raw(
        digest: &str,
        raw: &BTreeMap<String, String>,
        pending: &[PendingEntry],
    ) -> ObservedConfig {
        let mut values = raw.clone();
        let mut keys = Vec::new();
        for entry in pending.iter().filter(|e| e.is_pending()) {
            if entry.delete {
                values.remove(&entry.key);
            } else if let Some(value) = &entry.pending {
                values.insert(entry.key.clone(), value.clone());
            }
            keys.push(entry.key.clone());
        }
        keys.sort();
        ObservedConfig {
            digest: digest.to_string(),
            values,
            pending: keys,
        }
    }

    pub fn qemu(config: &QemuConfig, pending: &[PendingEntry]) -> ObservedConfig {
        ObservedConfig::from_raw(&config.digest, &config.raw, pending)
    }

    pub fn lxc(config: &LxcConfig, pending: &[PendingEntry]) -> ObservedConfig {
        ObservedConfig::from_raw(&config.digest, &config.raw, pending)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// What was observed for a plan.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Every guest row of the cluster (one `GET /cluster/resources`).
    pub guests: &'a [GuestResource],
    /// The guest's config, when it was read.
    pub config: Option<&'a ObservedConfig>,
    /// The clone source's config, when the guest is to be cloned and it was read: the plan
    /// then shows what the clone will need (configure, grow) before it exists.
    pub clone_source: Option<&'a ObservedConfig>,
}

/// The plan for one guest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestPlan {
    pub action: Action,
    /// The guest's vmid; `None` when it is taken from `/cluster/nextid` at create.
    pub vmid: Option<u32>,
    /// Where the guest is (or will be created).
    pub node: String,
    /// The guest exists and its vmid and name match: record it as ballast's.
    pub adopt: bool,
    /// One sentence per difference (`cpu.cores: 2 → 4, at the next boot`); for a replace, why.
    pub reasons: Vec<String>,
    /// What is worth knowing but changes nothing (a disk on another storage, a guest outside
    /// `allowedNodes`, a change waiting for a reboot).
    pub notes: Vec<String>,
    /// Config keys waiting for a reboot once the steps are done.
    pub pending_reboot: Vec<String>,
    pub changes: Vec<FieldChange>,
    pub steps: Vec<GuestStep>,
    /// The live document as YAML (the fields the manifest manages), for the diff.
    pub before: String,
    /// The desired document as YAML.
    pub after: String,
}

/// Why a guest could not be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The guest's config must be read first (then plan again with it).
    #[error("the config of {vmid} on {node} must be read first: {why}")]
    ConfigNeeded {
        vmid: u32,
        node: String,
        why: String,
    },
    /// The manifest asks for something ballast will not do; nothing is planned for the guest.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
}
