//! Shared by the Proxmox plan tests: specs from YAML (checked as the loader will check them),
//! resource rows and configs as Proxmox answers them, records.

#![allow(dead_code)]

pub mod vm_case;

use std::collections::BTreeMap;
use std::path::Path;

use ballast_model::proxmox::{
    GuestDefaults, ProxmoxContainerSpec, ProxmoxSpec, ProxmoxVmSpec, check_proxmox_set,
    parse_proxmox_source,
};
use ballast_plan::proxmox::{ObservedConfig, Ownership, RecordedGuest, RowSummary};
use ballast_proxmox::{GuestResource, PendingEntry};
use serde_json::json;

pub const CLUSTER: &str = "apiVersion: ballast/v1\nkind: ProxmoxCluster\nmetadata:\n  name: lab\nspec:\n  endpoint: https://pve1:8006\n  auth: {tokenId: root@pam!ballast, tokenSecret: {secretRef: {name: t}}}\n  defaults: {node: pve1, storage: local-lvm, bridge: vmbr0}\n---\n";

fn parse(kind: &str, name: &str, spec: &str) -> ProxmoxSpec {
    let mut text = format!(
        "{CLUSTER}apiVersion: ballast/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  cluster: lab\n"
    );
    for line in spec.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    let (resources, mut problems) = parse_proxmox_source(Path::new("test.yaml"), &text);
    problems.extend(check_proxmox_set(&resources));
    assert!(problems.is_empty(), "{text}\n{problems:#?}");
    resources
        .into_iter()
        .nth(1)
        .map(|r| r.spec)
        .expect("the guest")
}

/// A ProxmoxVm spec from the lines under `spec:` (after `cluster: lab`).
pub fn vm(spec: &str) -> ProxmoxVmSpec {
    match parse("ProxmoxVm", "web1", spec) {
        ProxmoxSpec::Vm(spec) => spec,
        other => panic!("not a VM: {other:?}"),
    }
}

pub fn ct(spec: &str) -> ProxmoxContainerSpec {
    match parse("ProxmoxContainer", "dns1", spec) {
        ProxmoxSpec::Container(spec) => spec,
        other => panic!("not a container: {other:?}"),
    }
}

pub fn defaults() -> GuestDefaults {
    GuestDefaults {
        node: Some("pve1".into()),
        storage: Some("local-lvm".into()),
        bridge: Some("vmbr0".into()),
    }
}

pub fn no_secrets() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// A resource row as `/cluster/resources` gives it.
pub fn row(kind: &str, vmid: u32, node: &str, name: &str, status: &str) -> GuestResource {
    serde_json::from_value(json!({
        "type": kind, "vmid": vmid, "node": node, "name": name, "status": status,
        "maxcpu": 2, "maxmem": 2147483648u64, "maxdisk": 34359738368u64,
    }))
    .expect("a row")
}

pub fn qemu_row(vmid: u32, node: &str, name: &str, status: &str) -> GuestResource {
    row("qemu", vmid, node, name, status)
}

pub fn lxc_row(vmid: u32, node: &str, name: &str, status: &str) -> GuestResource {
    row("lxc", vmid, node, name, status)
}

pub fn config(pairs: &[(&str, &str)]) -> ObservedConfig {
    config_pending(pairs, &[])
}

pub fn config_pending(pairs: &[(&str, &str)], pending: &[(&str, &str)]) -> ObservedConfig {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let pending: Vec<PendingEntry> = pending
        .iter()
        .map(|(k, v)| PendingEntry {
            key: k.to_string(),
            value: raw.get(*k).cloned(),
            pending: Some(v.to_string()),
            delete: false,
        })
        .collect();
    ObservedConfig::from_raw("digest-1", &raw, &pending)
}

/// A record of a guest ballast created, last applied with hash `h`, its row as `row`.
pub fn recorded(vmid: u32, row: Option<&GuestResource>) -> RecordedGuest {
    RecordedGuest {
        vmid,
        ownership: Ownership::Created,
        applied_hash: Some("h".into()),
        config_digest: Some("digest-1".into()),
        last_row: row.map(RowSummary::of),
        os_template: None,
        secret_versions: BTreeMap::new(),
    }
}
