//! The ProxmoxContainer plan rules, from tables: create from an OS template, volumes grown and
//! never shrunk, hot changes versus changes at the next start, privilege fixed at create, what
//! only a create takes (OS template, password) never causing a replace.

mod support;

use ballast_plan::Action;
use ballast_plan::proxmox::{
    Desired, GuestPlan, GuestStep, Observed, ObservedConfig, PlanError, RecordedGuest,
    plan_container,
};
use ballast_proxmox::GuestResource;
use support::*;

const BASE: &str = "vmid: 220\nostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\ntags: [dns]\ncores: 1\nmemory: 512MiB\nrootfs: {size: 8GiB}\nnetwork:\n  - {bridge: vmbr0, ip: 10.0.20.53/24, gateway: 10.0.20.1}\npassword: {secretRef: {name: dns1-root}}\n";

fn base_config(extra: &[(&'static str, &'static str)]) -> ObservedConfig {
    let mut pairs = vec![
        ("hostname", "dns1"),
        ("tags", "dns"),
        ("cores", "1"),
        ("memory", "512"),
        ("swap", "512"),
        ("rootfs", "local-lvm:vm-220-disk-0,size=8G"),
        (
            "net0",
            "name=eth0,bridge=vmbr0,gw=10.0.20.1,hwaddr=BC:24:11:AA:00:01,ip=10.0.20.53/24,type=veth",
        ),
        ("unprivileged", "1"),
        ("ostype", "debian"),
        ("arch", "amd64"),
    ];
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v));
    }
    config(&pairs)
}

fn base_row(status: &str) -> GuestResource {
    let mut row = lxc_row(220, "pve1", "dns1", status);
    row.tags = vec!["dns".into()];
    row
}

fn plan(
    spec_text: &str,
    recorded: Option<&RecordedGuest>,
    rows: &[GuestResource],
    cfg: Option<&ObservedConfig>,
) -> Result<GuestPlan, PlanError> {
    let spec = ct(spec_text);
    let d = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "dns1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &secrets,
    };
    plan_container(
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

fn ok(result: Result<GuestPlan, PlanError>) -> GuestPlan {
    result.unwrap_or_else(|e| panic!("planned: {e}"))
}

#[test]
fn a_container_is_created_from_its_os_template_with_what_only_a_create_takes() {
    let spec = format!(
        "{BASE}sshKeys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6 me@host\nmountPoints:\n  - {{size: 16GiB, path: /srv/data}}\nfeatures: {{nesting: true}}\n"
    );
    let p = ok(plan(&spec, None, &[], None));
    assert_eq!(p.action, Action::Create);
    let GuestStep::Create {
        params,
        secrets,
        ostemplate,
        unprivileged,
        ssh_public_keys,
        ..
    } = &p.steps[0]
    else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(
        ostemplate.as_deref(),
        Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    );
    assert_eq!(*unprivileged, Some(true));
    assert!(
        ssh_public_keys
            .as_deref()
            .is_some_and(|k| k.starts_with("ssh-ed25519"))
    );
    assert_eq!(secrets[0].key, "password");
    assert_eq!(params["rootfs"], "local-lvm:8");
    assert_eq!(params["mp0"], "local-lvm:16,mp=/srv/data");
    assert_eq!(
        params["net0"],
        "name=eth0,bridge=vmbr0,ip=10.0.20.53/24,gw=10.0.20.1"
    );
    assert_eq!(params["features"], "nesting=1");
    assert_eq!(p.steps[0].call(), "ProxmoxClient::lxc_create");
    assert!(matches!(p.steps[1], GuestStep::Power { .. }));
}

#[test]
fn a_container_in_sync_is_a_no_op() {
    let row = base_row("running");
    let rec = recorded(220, Some(&row));
    let cases = [
        ("as read", BASE.to_string(), base_config(&[])),
        (
            "tags in another case and order",
            BASE.replace("[dns]", "[DNS]"),
            base_config(&[("tags", "dns")]),
        ),
        (
            "features spelt 1 in another order",
            format!("{BASE}features: {{nesting: true, keyctl: true}}\n"),
            base_config(&[("features", "nesting=1,keyctl=1")]),
        ),
        (
            "a template changed: used only at create",
            BASE.replace("12.7-1", "12.8-1"),
            base_config(&[]),
        ),
    ];
    for (name, spec, cfg) in cases {
        let p = ok(plan(
            &spec,
            Some(&rec),
            std::slice::from_ref(&row),
            Some(&cfg),
        ));
        assert_eq!(p.action, Action::NoOp, "{name}: {:?}", p.reasons);
    }
    let mut rec = rec.clone();
    rec.os_template = Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into());
    let p = ok(plan(
        &BASE.replace("12.7-1", "12.8-1"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&base_config(&[])),
    ));
    assert_eq!(p.action, Action::NoOp);
    assert!(
        p.notes.iter().any(|n| n.contains("used only at create")),
        "{:?}",
        p.notes
    );
}

#[test]
fn volumes_grow_and_are_never_shrunk() {
    let row = base_row("running");
    let rec = recorded(220, Some(&row));
    let cfg = base_config(&[]);
    let p = ok(plan(
        &BASE.replace("8GiB", "12GiB"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert_eq!(p.action, Action::Update);
    let GuestStep::Resize { disk, to_bytes, .. } = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!((disk.as_str(), *to_bytes), ("rootfs", 12 << 30));
    let err = plan(
        &BASE.replace("8GiB", "4GiB"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    )
    .expect_err("shrink");
    assert!(
        err.to_string().contains("rootfs is 8GiB in Proxmox"),
        "{err}"
    );
    // A new mount point is added in place.
    let spec = format!("{BASE}mountPoints:\n  - {{size: 4GiB, path: /data}}\n");
    let p = ok(plan(
        &spec,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    let GuestStep::UpdateConfig { set, .. } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(set["mp0"], "local-lvm:4,mp=/data");
}

#[test]
fn hot_changes_apply_at_once_and_the_rest_at_the_next_start() {
    let row = base_row("running");
    let rec = recorded(220, Some(&row));
    let cfg = base_config(&[]);
    let p = ok(plan(
        &BASE.replace("memory: 512MiB", "memory: 1GiB"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert_eq!(p.action, Action::Update);
    assert!(
        p.pending_reboot.is_empty(),
        "memory is hot-plugged: {:?}",
        p.pending_reboot
    );
    let features = format!("{BASE}features: {{nesting: true}}\n");
    let p = ok(plan(
        &features,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert_eq!(p.pending_reboot, ["features"]);
    let p = ok(plan(
        &format!("{features}restartPolicy: auto\n"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert!(
        matches!(p.steps.last(), Some(GuestStep::Power { .. })),
        "{:?}",
        p.steps
    );
    // A changed address keeps the MAC Proxmox picked and the other options.
    let p = ok(plan(
        &BASE.replace("10.0.20.53/24", "10.0.20.54/24"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    let GuestStep::UpdateConfig { set, .. } = &p.steps[0] else {
        panic!()
    };
    assert!(
        set["net0"].contains("hwaddr=BC:24:11:AA:00:01")
            && set["net0"].contains("ip=10.0.20.54/24"),
        "{}",
        set["net0"]
    );
}

#[test]
fn a_change_of_privilege_is_a_replace_that_says_why() {
    let row = base_row("running");
    let rec = recorded(220, Some(&row));
    let privileged = base_config(&[("unprivileged", "0")]);
    let p = ok(plan(
        BASE,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&privileged),
    ));
    assert_eq!(p.action, Action::Replace);
    assert!(
        p.reasons[0].contains("it is privileged and the manifest wants it unprivileged"),
        "{:?}",
        p.reasons
    );
    // Not for a container ballast does not own yet.
    let err = plan(BASE, None, std::slice::from_ref(&row), Some(&privileged)).expect_err("adopt");
    assert!(
        err.to_string().contains("replaces only guests it owns"),
        "{err}"
    );
}
