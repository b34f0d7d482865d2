//! The ProxmoxVm cases the VM plan tests share: a spec, the config and row of a VM in sync
//! with it, and a plan of it.

use ballast_plan::proxmox::{
    Desired, GuestPlan, GuestStep, Observed, ObservedConfig, PlanError, RecordedGuest, plan_vm,
};
use ballast_proxmox::GuestResource;

use super::*;

pub const BASE: &str = "vmid: 120\nnode: pve1\ntags: [web, prod]\ncpu: {cores: 2}\nmemory: {dedicated: 2GiB}\ndisks:\n  - {interface: scsi0, size: 32GiB}\nnetwork:\n  - {bridge: vmbr0}\n";

pub fn base_config() -> Vec<(&'static str, &'static str)> {
    vec![
        ("name", "web1"),
        ("tags", "prod;web"),
        ("cores", "2"),
        ("memory", "2048"),
        ("scsihw", "virtio-scsi-single"),
        ("scsi0", "local-lvm:vm-120-disk-0,size=32G"),
        ("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0"),
        ("boot", "order=scsi0"),
    ]
}

pub fn with(extra: &[(&'static str, &'static str)]) -> ObservedConfig {
    let mut pairs = base_config();
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v));
    }
    config(&pairs)
}

pub fn base_row(status: &str) -> GuestResource {
    let mut row = qemu_row(120, "pve1", "web1", status);
    row.tags = vec!["prod".into(), "web".into()];
    row
}

pub fn plan(
    spec_text: &str,
    recorded: Option<&RecordedGuest>,
    rows: &[GuestResource],
    cfg: Option<&ObservedConfig>,
) -> Result<GuestPlan, PlanError> {
    let spec = vm(spec_text);
    let defaults = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "web1",
        spec: &spec,
        defaults: &defaults,
        hash: "h",
        secret_versions: &secrets,
    };
    plan_vm(
        Some(&desired),
        recorded,
        &Observed {
            guests: rows,
            config: cfg,
            clone_source: None,
        },
        false,
    )
}

pub fn ok(result: Result<GuestPlan, PlanError>) -> GuestPlan {
    result.unwrap_or_else(|e| panic!("planned: {e}"))
}

pub fn step_names(plan: &GuestPlan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            GuestStep::Power { action, .. } => format!("{action:?}").to_lowercase(),
            other => serde_json::to_value(other).expect("serializes")["step"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}
