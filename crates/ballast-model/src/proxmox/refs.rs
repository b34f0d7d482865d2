//! The Proxmox checks that need the whole set: a guest's `cluster` must name a ProxmoxCluster
//! of the set, what a guest leaves to its cluster's `defaults` must be there, and two guests of
//! one cluster cannot claim the same vmid (cluster and vmid are a guest's identity).
//!
//! They take the set's names (and each cluster's defaults), not the set itself, so the loader's
//! whole-set validation can call them once the kinds are registered.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::cluster::GuestDefaults;
use super::container::ProxmoxContainerSpec;
use super::vm::ProxmoxVmSpec;
use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;

/// What the set-wide checks need of one guest.
pub(crate) struct GuestRefs<'a> {
    pub doc: &'a DocContext,
    /// `ProxmoxVm/web`, for messages.
    pub key: String,
    pub cluster: &'a Spanned<String>,
    pub node: Option<&'a Spanned<String>>,
    pub vmid: Option<&'a Spanned<i64>>,
    /// Paths of values that fall back to the cluster's `defaults.storage` (disks, root
    /// filesystem, mount points created without a storage).
    pub needs_storage: Vec<Vec<String>>,
    /// Paths of network cards that fall back to `defaults.bridge`.
    pub needs_bridge: Vec<Vec<String>>,
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

impl<'a> GuestRefs<'a> {
    pub fn of_vm(doc: &'a DocContext, name: &str, spec: &'a ProxmoxVmSpec) -> GuestRefs<'a> {
        // A cloned VM's disks may all be its source's; only a fresh VM must place every disk.
        let needs_storage = if spec.clone.is_none() {
            spec.disks
                .iter()
                .enumerate()
                .filter(|(_, d)| d.storage.is_none())
                .map(|(i, _)| path(&["spec", "disks", &i.to_string()]))
                .collect()
        } else {
            Vec::new()
        };
        GuestRefs {
            doc,
            key: format!("ProxmoxVm/{name}"),
            cluster: &spec.cluster,
            node: spec.node.as_ref(),
            vmid: spec.vmid.as_ref(),
            needs_storage,
            needs_bridge: spec
                .network
                .iter()
                .enumerate()
                .filter(|(_, n)| n.bridge.is_none())
                .map(|(i, _)| path(&["spec", "network", &i.to_string()]))
                .collect(),
        }
    }

    pub fn of_container(
        doc: &'a DocContext,
        name: &str,
        spec: &'a ProxmoxContainerSpec,
    ) -> GuestRefs<'a> {
        let mut needs_storage = Vec::new();
        if spec.clone.is_none() && spec.rootfs.as_ref().is_none_or(|r| r.storage.is_none()) {
            needs_storage.push(path(&["spec", "rootfs"]));
        }
        needs_storage.extend(
            spec.mount_points
                .iter()
                .enumerate()
                .filter(|(_, m)| m.storage.is_none())
                .map(|(i, _)| path(&["spec", "mountPoints", &i.to_string()])),
        );
        GuestRefs {
            doc,
            key: format!("ProxmoxContainer/{name}"),
            cluster: &spec.cluster,
            node: spec.node.as_ref(),
            vmid: spec.vmid.as_ref(),
            needs_storage,
            needs_bridge: spec
                .network
                .iter()
                .enumerate()
                .filter(|(_, n)| n.bridge.is_none())
                .map(|(i, _)| path(&["spec", "network", &i.to_string()]))
                .collect(),
        }
    }
}

/// Checks every guest against the set's clusters (by name, with their defaults), and the
/// guests against each other.
pub(crate) fn check_guest_refs(
    guests: &[GuestRefs<'_>],
    clusters: &BTreeMap<String, GuestDefaults>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // (cluster, vmid) -> the first guest claiming it.
    let mut claimed: BTreeMap<(String, i64), (&GuestRefs<'_>, &Spanned<i64>)> = BTreeMap::new();
    for guest in guests {
        let Some(defaults) = clusters.get(&guest.cluster.value) else {
            let known = if clusters.is_empty() {
                "there is none in the manifests".to_string()
            } else {
                format!(
                    "the manifests have {}",
                    clusters.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            out.push(guest.doc.diag(
                &guest.cluster.referenced,
                "spec.cluster",
                format!(
                    "unknown cluster `{}`: cluster names a ProxmoxCluster, and {known}",
                    guest.cluster.value
                ),
            ));
            continue;
        };
        if guest.node.is_none() && defaults.node.is_none() {
            out.push(guest.doc.diag(
                &guest.cluster.referenced,
                "spec.cluster",
                format!(
                    "no node to create {} on: set `node`, or `defaults.node` in ProxmoxCluster `{}`",
                    guest.key, guest.cluster.value
                ),
            ));
        }
        if defaults.storage.is_none() {
            for at in &guest.needs_storage {
                let segments: Vec<&str> = at.iter().map(String::as_str).collect();
                out.push(guest.doc.diag_at_path(
                    &segments,
                    format!(
                        "no storage: set `storage` here, or `defaults.storage` in ProxmoxCluster `{}`",
                        guest.cluster.value
                    ),
                ));
            }
        }
        if defaults.bridge.is_none() {
            for at in &guest.needs_bridge {
                let segments: Vec<&str> = at.iter().map(String::as_str).collect();
                out.push(guest.doc.diag_at_path(
                    &segments,
                    format!(
                        "no bridge: set `bridge` here, or `defaults.bridge` in ProxmoxCluster `{}`",
                        guest.cluster.value
                    ),
                ));
            }
        }
        if let Some(vmid) = guest.vmid {
            let slot = (guest.cluster.value.clone(), vmid.value);
            if let Some((first, first_vmid)) = claimed.get(&slot) {
                let first_pos = first.doc.pos_of(&first_vmid.referenced);
                let mut d = guest.doc.diag(
                    &vmid.referenced,
                    "spec.vmid",
                    format!(
                        "vmid {} of cluster `{}` is already {} at {first_pos}; a vmid is one guest's identity",
                        vmid.value, guest.cluster.value, first.key
                    ),
                );
                d.related = Some(first_pos);
                out.push(d);
            } else {
                claimed.insert(slot, (guest, vmid));
            }
        }
    }
    out
}
