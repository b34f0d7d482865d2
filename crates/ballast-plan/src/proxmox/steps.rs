//! The steps of a Proxmox plan: a serde enum (so a pending step survives a restart in its task
//! row), each naming the [`ballast_proxmox::ProxmoxClient`] call it becomes. Secrets are never
//! in a step: a secret parameter names where its value comes from, and the controller resolves
//! it when it sends the request.

use std::collections::BTreeMap;

use ballast_model::server::CredentialSource;
use ballast_proxmox::GuestKind;
use serde::{Deserialize, Serialize};

/// The guest a step acts on. `vmid` is `None` for a guest still to be created whose vmid the
/// controller takes from `/cluster/nextid` (and records) before the first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTarget {
    pub kind: GuestKind,
    pub node: String,
    pub vmid: Option<u32>,
}

impl GuestTarget {
    fn shown(&self) -> String {
        match self.vmid {
            Some(vmid) => format!("{vmid}"),
            None => "(next free vmid)".to_string(),
        }
    }
}

/// A request parameter whose value is a secret: sent, never shown or stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretParam {
    /// `cipassword` (QEMU cloud-init) or `password` (LXC create).
    pub key: String,
    pub source: CredentialSource,
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    Start,
    /// A clean shutdown that turns into a hard stop after [`SHUTDOWN_TIMEOUT_SECS`].
    Shutdown,
    Stop,
    Reboot,
}

/// How long a shutdown waits for the guest before it is stopped hard.
pub const SHUTDOWN_TIMEOUT_SECS: u32 = 120;

/// One step of a guest's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum GuestStep {
    /// `qemu_clone` / `lxc_clone` on the source's node; the clone lands on `target`.
    Clone {
        kind: GuestKind,
        source_node: String,
        source_vmid: u32,
        new: GuestTarget,
        name: String,
        full: bool,
        storage: Option<String>,
        pool: Option<String>,
    },
    /// `qemu_create` / `lxc_create`: `params` are config keys (disks as `storage:GiB`).
    Create {
        guest: GuestTarget,
        params: BTreeMap<String, String>,
        secrets: Vec<SecretParam>,
        pool: Option<String>,
        /// LXC: the OS template volume, and what only a create takes.
        ostemplate: Option<String>,
        unprivileged: Option<bool>,
        ssh_public_keys: Option<String>,
    },
    /// `qemu_update_config` / `lxc_update_config` with the digest of the config it was planned
    /// against (`None` only for a guest this same plan made: nobody else has seen it yet).
    UpdateConfig {
        guest: GuestTarget,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        secrets: Vec<SecretParam>,
        digest: Option<String>,
    },
    /// `resize` to `to_bytes` (`DiskSize::To`); only ever a grow.
    Resize {
        guest: GuestTarget,
        disk: String,
        from_bytes: Option<u64>,
        to_bytes: u64,
    },
    /// `power`.
    Power { guest: GuestTarget, action: Power },
    /// `convert_to_template`.
    ConvertToTemplate { guest: GuestTarget },
    /// `add_to_pool(pool, [vmid], allow_move = true)`.
    AddToPool { guest: GuestTarget, pool: String },
    /// `delete` (with `purge`: out of backup jobs, replication and HA too).
    Delete { guest: GuestTarget, purge: bool },
    /// No client call: the store forgets the guest (it is gone, or was just deleted).
    Forget { vmid: u32 },
}

impl GuestStep {
    /// The client call the step becomes.
    pub fn call(&self) -> &'static str {
        let qemu = |kind: &GuestKind| *kind == GuestKind::Qemu;
        match self {
            GuestStep::Clone { kind, .. } if qemu(kind) => "ProxmoxClient::qemu_clone",
            GuestStep::Clone { .. } => "ProxmoxClient::lxc_clone",
            GuestStep::Create { guest, .. } if qemu(&guest.kind) => "ProxmoxClient::qemu_create",
            GuestStep::Create { .. } => "ProxmoxClient::lxc_create",
            GuestStep::UpdateConfig { guest, .. } if qemu(&guest.kind) => {
                "ProxmoxClient::qemu_update_config"
            }
            GuestStep::UpdateConfig { .. } => "ProxmoxClient::lxc_update_config",
            GuestStep::Resize { .. } => "ProxmoxClient::resize",
            GuestStep::Power { .. } => "ProxmoxClient::power",
            GuestStep::ConvertToTemplate { .. } => "ProxmoxClient::convert_to_template",
            GuestStep::AddToPool { .. } => "ProxmoxClient::add_to_pool",
            GuestStep::Delete { .. } => "ProxmoxClient::delete",
            GuestStep::Forget { .. } => "Store (no Proxmox call)",
        }
    }

    /// One line for people: what the step does.
    pub fn describe(&self) -> String {
        match self {
            GuestStep::Clone {
                source_node,
                source_vmid,
                new,
                full,
                ..
            } => format!(
                "{} clone of {source_vmid} ({source_node}) as {} on {}",
                if *full { "full" } else { "linked" },
                new.shown(),
                new.node
            ),
            GuestStep::Create { guest, .. } => {
                format!("create {} on {}", guest.shown(), guest.node)
            }
            GuestStep::UpdateConfig {
                set,
                delete,
                secrets,
                digest,
                ..
            } => {
                let mut keys: Vec<String> = set.keys().cloned().collect();
                keys.extend(secrets.iter().map(|s| s.key.clone()));
                keys.extend(delete.iter().map(|k| format!("-{k}")));
                format!(
                    "update config ({}){}",
                    keys.join(", "),
                    if digest.is_some() {
                        " against the digest read"
                    } else {
                        ""
                    }
                )
            }
            GuestStep::Resize {
                disk,
                from_bytes,
                to_bytes,
                ..
            } => format!(
                "grow {disk} from {} to {}",
                from_bytes.map_or("?".to_string(), ballast_model::proxmox::values::format_size),
                ballast_model::proxmox::values::format_size(*to_bytes)
            ),
            GuestStep::Power { action, .. } => format!("{action:?}").to_lowercase(),
            GuestStep::ConvertToTemplate { .. } => "convert to a template".to_string(),
            GuestStep::AddToPool { pool, .. } => format!("move into pool {pool}"),
            GuestStep::Delete { guest, .. } => format!("delete {}", guest.shown()),
            GuestStep::Forget { vmid } => format!("forget {vmid}"),
        }
    }

    fn target_mut(&mut self) -> Option<&mut GuestTarget> {
        match self {
            GuestStep::Clone { new, .. } => Some(new),
            GuestStep::Create { guest, .. }
            | GuestStep::UpdateConfig { guest, .. }
            | GuestStep::Resize { guest, .. }
            | GuestStep::Power { guest, .. }
            | GuestStep::ConvertToTemplate { guest }
            | GuestStep::AddToPool { guest, .. }
            | GuestStep::Delete { guest, .. } => Some(guest),
            GuestStep::Forget { .. } => None,
        }
    }

    /// The guest the step acts on (the new one, for a clone).
    pub fn target(&self) -> Option<&GuestTarget> {
        match self {
            GuestStep::Clone { new, .. } => Some(new),
            GuestStep::Create { guest, .. }
            | GuestStep::UpdateConfig { guest, .. }
            | GuestStep::Resize { guest, .. }
            | GuestStep::Power { guest, .. }
            | GuestStep::ConvertToTemplate { guest }
            | GuestStep::AddToPool { guest, .. }
            | GuestStep::Delete { guest, .. } => Some(guest),
            GuestStep::Forget { .. } => None,
        }
    }
}

/// Whether any step still waits for a vmid from `/cluster/nextid`.
pub fn needs_vmid(steps: &[GuestStep]) -> bool {
    steps
        .iter()
        .any(|s| s.target().is_some_and(|t| t.vmid.is_none()))
}

/// Gives every step that waits for one the vmid the controller took (and recorded).
pub fn assign_vmid(steps: &mut [GuestStep], vmid: u32) {
    for step in steps {
        if let Some(target) = step.target_mut()
            && target.vmid.is_none()
        {
            target.vmid = Some(vmid);
        }
    }
}
