//! The ProxmoxVm plan rules, from tables: identity and adoption, create (fresh and by clone),
//! updates in place with the digest, disks grown and never shrunk, reboots, power, replace,
//! delete, when a config read is needed, and the complaints of Terraform's and Ansible's
//! users (a VM HA moved re-created, a disk or NIC added by replace, perpetual diffs).

mod support;

use ballast_plan::Action;
use ballast_plan::proxmox::{
    Desired, GuestStep, Observed, PlanError, assign_vmid, needs_vmid, plan_vm,
};
use support::vm_case::*;
use support::*;

#[test]
fn a_vm_in_sync_is_a_no_op_whatever_the_spelling() {
    let row = base_row("running");
    let rec = recorded(120, Some(&row));
    // Each case spells a value as Proxmox does; none of them is a change.
    type Case = (&'static str, String, Vec<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        ("as read", BASE.into(), vec![]),
        (
            "tags in another order and case",
            BASE.replace("[web, prod]", "[Prod, WEB]"),
            vec![],
        ),
        (
            "memory as a property string",
            BASE.into(),
            vec![("memory", "current=2048")],
        ),
        (
            "size in another unit",
            BASE.replace("32GiB", "32768MiB"),
            vec![],
        ),
        (
            "Proxmox's defaults for what is absent",
            format!("{BASE}onBoot: false\nprotection: false\n").replace(
                "cpu: {cores: 2}",
                "cpu: {cores: 2, sockets: 1, type: x86-64-v2-AES}",
            ),
            vec![],
        ),
        (
            "booleans as 1",
            format!("{BASE}onBoot: true\n"),
            vec![("onboot", "1")],
        ),
        (
            "a firewall flag as 1 and a MAC Proxmox picked",
            BASE.replace("{bridge: vmbr0}", "{bridge: vmbr0, firewall: true}"),
            vec![("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1")],
        ),
        (
            "guest agent settings: not the plan's, and never waited on",
            BASE.into(),
            vec![("agent", "enabled=1,fstrim_cloned_disks=1")],
        ),
        (
            "a MAC in lower case",
            BASE.replace(
                "{bridge: vmbr0}",
                "{bridge: vmbr0, mac: \"bc:24:11:00:00:01\"}",
            ),
            vec![],
        ),
    ];
    for (name, spec, extra) in cases {
        let cfg = with(&extra);
        let p = ok(plan(
            &spec,
            Some(&rec),
            std::slice::from_ref(&row),
            Some(&cfg),
        ));
        assert_eq!(p.action, Action::NoOp, "{name}: {:?}", p.reasons);
        assert!(p.steps.is_empty(), "{name}: {:?}", p.steps);
    }
}

#[test]
fn a_missing_vm_is_created_then_started() {
    let p = ok(plan(BASE, None, &[], None));
    assert_eq!(p.action, Action::Create);
    assert_eq!((p.vmid, p.node.as_str()), (Some(120), "pve1"));
    assert_eq!(step_names(&p), ["create", "start"]);
    let GuestStep::Create { params, guest, .. } = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(guest.vmid, Some(120));
    assert_eq!(params["scsi0"], "local-lvm:32");
    assert_eq!(params["net0"], "virtio,bridge=vmbr0");
    assert_eq!(params["memory"], "2048");
    assert_eq!(params["tags"], "prod;web");
    assert_eq!(params["name"], "web1");
    assert_eq!(p.steps[0].call(), "ProxmoxClient::qemu_create");
    assert!(p.after.contains("kind: ProxmoxVm"), "{}", p.after);

    // A fresh template is created, converted, and not started.
    let p = ok(plan(&format!("{BASE}template: true\n"), None, &[], None));
    assert_eq!(step_names(&p), ["create", "convertToTemplate"]);
}

#[test]
fn without_a_vmid_the_next_free_one_is_taken_at_create() {
    let p = ok(plan(&BASE.replace("vmid: 120\n", ""), None, &[], None));
    assert_eq!(p.vmid, None);
    let mut steps = p.steps.clone();
    assert!(needs_vmid(&steps));
    assert!(
        p.reasons[0].contains("the next free vmid"),
        "{:?}",
        p.reasons
    );
    assign_vmid(&mut steps, 131);
    assert!(!needs_vmid(&steps));
    assert!(
        steps
            .iter()
            .all(|s| s.target().and_then(|t| t.vmid) == Some(131))
    );
}

#[test]
fn a_clone_is_configured_grown_and_started_against_its_source() {
    let template = {
        let mut row = qemu_row(9000, "pve1", "debian-12-template", "stopped");
        row.template = true;
        row
    };
    let source = config(&[
        ("name", "debian-12-template"),
        ("template", "1"),
        ("cores", "1"),
        ("memory", "1024"),
        ("scsi0", "local-lvm:base-9000-disk-0,size=4G"),
        ("ide2", "local-lvm:vm-9000-cloudinit,media=cdrom"),
        ("net0", "virtio=BC:24:11:00:90:00,bridge=vmbr0"),
    ]);
    let spec = vm(&format!("{BASE}clone: {{from: debian-12-template}}\n"));
    let d = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "web1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &secrets,
    };
    let rows = [template.clone()];
    let p = ok(plan_vm(
        Some(&desired),
        None,
        &Observed {
            guests: &rows,
            config: None,
            clone_source: Some(&source),
        },
        false,
    ));
    assert_eq!(p.action, Action::Create);
    assert_eq!(step_names(&p), ["clone", "updateConfig", "resize", "start"]);
    let GuestStep::Clone {
        source_vmid,
        source_node,
        full,
        ..
    } = &p.steps[0]
    else {
        panic!()
    };
    assert_eq!(
        (*source_vmid, source_node.as_str(), *full),
        (9000, "pve1", true)
    );
    let GuestStep::UpdateConfig { set, digest, .. } = &p.steps[1] else {
        panic!()
    };
    assert_eq!(digest, &None, "the clone is this plan's own");
    assert_eq!(
        (set["cores"].as_str(), set["memory"].as_str()),
        ("2", "2048")
    );
    assert!(
        !set.contains_key("net0"),
        "the template's NIC fits and keeps its new MAC: {set:?}"
    );
    assert!(
        !set.contains_key("name"),
        "the clone is named by the clone: {set:?}"
    );
    let GuestStep::Resize {
        disk,
        from_bytes,
        to_bytes,
        ..
    } = &p.steps[2]
    else {
        panic!()
    };
    assert_eq!(
        (disk.as_str(), *from_bytes, *to_bytes),
        ("scsi0", Some(4 << 30), 32 << 30)
    );

    // Without the source's config, only the clone is planned; the rest is planned once it exists.
    let p = ok(plan_vm(
        Some(&desired),
        None,
        &Observed {
            guests: &rows,
            config: None,
            clone_source: None,
        },
        false,
    ));
    assert_eq!(step_names(&p), ["clone"]);
    assert!(p.notes[0].contains("once it exists"), "{:?}", p.notes);

    // A missing source is refused, not guessed.
    let err =
        plan(&format!("{BASE}clone: {{from: 9999}}\n"), None, &[], None).expect_err("no source");
    assert!(err.to_string().contains("clone source `9999`"), "{err}");
}

#[test]
fn a_vm_ha_moved_is_found_on_its_new_node_and_not_created_again() {
    let mut moved = base_row("running");
    moved.node = "pve3".into();
    let mut rec = recorded(120, Some(&base_row("running")));
    rec.last_row = Some(ballast_plan::proxmox::RowSummary::of(&moved));
    let cfg = with(&[]);
    let p = ok(plan(
        BASE,
        Some(&rec),
        std::slice::from_ref(&moved),
        Some(&cfg),
    ));
    assert_eq!(p.action, Action::NoOp, "{:?}", p.reasons);
    assert_eq!(p.node, "pve3");
    // Outside allowedNodes: said, not acted on (ballast does not migrate).
    let spec = format!("{BASE}allowedNodes: [pve1, pve2]\n");
    let p = ok(plan(
        &spec,
        Some(&rec),
        std::slice::from_ref(&moved),
        Some(&cfg),
    ));
    assert_eq!(p.action, Action::NoOp);
    assert!(
        p.notes.iter().any(|n| n.contains("not in allowedNodes")),
        "{:?}",
        p.notes
    );
    // A change is made where it lives.
    let p = ok(plan(
        &BASE.replace("cores: 2", "cores: 4"),
        Some(&rec),
        std::slice::from_ref(&moved),
        Some(&cfg),
    ));
    assert_eq!(p.steps[0].target().map(|t| t.node.as_str()), Some("pve3"));
}

#[test]
fn a_vm_whose_vmid_and_name_match_is_adopted_not_created() {
    let row = base_row("running");
    let cfg = with(&[]);
    let p = ok(plan(BASE, None, std::slice::from_ref(&row), Some(&cfg)));
    assert!(p.adopt);
    assert_eq!(p.action, Action::NoOp);
    assert!(p.notes[0].contains("adopting vmid 120"), "{:?}", p.notes);
    // Without a vmid in the manifest: by name, when one guest has it.
    let p = ok(plan(
        &BASE.replace("vmid: 120\n", ""),
        None,
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert!(p.adopt && p.vmid == Some(120));
    // Its config decides whether it is adopted as it is: without it, it must be read first.
    let err = plan(BASE, None, std::slice::from_ref(&row), None).expect_err("config first");
    assert!(
        matches!(err, PlanError::ConfigNeeded { vmid: 120, .. }),
        "{err}"
    );
    // The vmid taken by a guest of another name is refused.
    let other = qemu_row(120, "pve2", "db", "running");
    let err = plan(BASE, None, &[other], None).expect_err("taken");
    assert!(
        err.to_string().contains("vmid 120 is taken by the VM `db`"),
        "{err}"
    );
    // Two guests of that name: refused, not guessed.
    let twins = [
        qemu_row(130, "pve1", "web1", "running"),
        qemu_row(131, "pve2", "web1", "running"),
    ];
    let err = plan(&BASE.replace("vmid: 120\n", ""), None, &twins, None).expect_err("ambiguous");
    assert!(err.to_string().contains("vmids 130, 131"), "{err}");
}

#[test]
fn adding_a_disk_a_nic_or_cloud_init_is_an_update_in_place() {
    let row = base_row("running");
    let rec = recorded(120, Some(&row));
    let cfg = with(&[]);
    let cases = [
        (
            "a disk",
            BASE.replace(
                "disks:\n",
                "disks:\n  - {interface: scsi1, size: 100GiB, discard: true}\n",
            ),
            "scsi1",
            "local-lvm:100,discard=on",
        ),
        (
            "a NIC",
            format!("{BASE}  - {{bridge: vmbr1, vlan: 20}}\n"),
            "net1",
            "virtio,bridge=vmbr1,tag=20",
        ),
        (
            "cloud-init values",
            format!("{BASE}cloudInit:\n  user: debian\n  ipConfig: [{{ip: dhcp}}]\n"),
            "ciuser",
            "debian",
        ),
    ];
    for (name, spec, key, value) in cases {
        let p = ok(plan(
            &spec,
            Some(&rec),
            std::slice::from_ref(&row),
            Some(&cfg),
        ));
        assert_eq!(p.action, Action::Update, "{name}: never a replace");
        let GuestStep::UpdateConfig { set, digest, .. } = &p.steps[0] else {
            panic!("{name}: {:?}", p.steps)
        };
        assert_eq!(
            set.get(key).map(String::as_str),
            Some(value),
            "{name}: {set:?}"
        );
        assert_eq!(
            digest.as_deref(),
            Some("digest-1"),
            "{name}: with the digest read"
        );
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s, GuestStep::Delete { .. })),
            "{name}"
        );
        assert!(p.before != p.after, "{name}: the diff shows it");
    }
    // Cloud-init on a VM without a cloud-init drive gets one.
    let spec = format!("{BASE}cloudInit:\n  user: debian\n");
    let p = ok(plan(
        &spec,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    let GuestStep::UpdateConfig { set, .. } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(
        set.get("ide2").map(String::as_str),
        Some("local-lvm:cloudinit")
    );
}

#[test]
fn a_disk_grows_by_resize_and_a_shrink_is_refused_with_the_recorded_size() {
    let row = base_row("running");
    let rec = recorded(120, Some(&row));
    let cfg = with(&[]);
    let p = ok(plan(
        &BASE.replace("32GiB", "40GiB"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert_eq!(step_names(&p), ["resize"]);
    assert_eq!(p.steps[0].call(), "ProxmoxClient::resize");
    assert!(
        p.reasons[0].contains("disks[0].size: 32GiB → 40GiB"),
        "{:?}",
        p.reasons
    );
    let err = plan(
        &BASE.replace("32GiB", "16GiB"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    )
    .expect_err("a shrink");
    let text = err.to_string();
    assert!(
        text.contains("scsi0 is 32GiB in Proxmox") && text.contains("never shrinks"),
        "{text}"
    );
}

#[test]
fn a_change_needing_a_reboot_reboots_only_with_restart_policy_auto() {
    let running = base_row("running");
    let rec = recorded(120, Some(&running));
    let cfg = with(&[]);
    let spec = BASE.replace("cores: 2", "cores: 4");
    let p = ok(plan(
        &spec,
        Some(&rec),
        std::slice::from_ref(&running),
        Some(&cfg),
    ));
    assert_eq!(step_names(&p), ["updateConfig"]);
    assert_eq!(p.pending_reboot, ["cores"]);
    assert!(
        p.reasons[0].contains("(at the next boot)"),
        "{:?}",
        p.reasons
    );
    assert!(
        p.notes.iter().any(|n| n.contains("restartPolicy: never")),
        "{:?}",
        p.notes
    );
    let p = ok(plan(
        &format!("{spec}restartPolicy: auto\n"),
        Some(&rec),
        std::slice::from_ref(&running),
        Some(&cfg),
    ));
    assert_eq!(step_names(&p), ["updateConfig", "reboot"]);
    assert!(p.pending_reboot.is_empty());
    // A stopped VM takes it at its start: no reboot, nothing pending.
    let stopped = base_row("stopped");
    let p = ok(plan(
        &format!("{spec}state: stopped\n"),
        Some(&rec),
        std::slice::from_ref(&stopped),
        Some(&cfg),
    ));
    assert_eq!(step_names(&p), ["updateConfig"]);
    assert!(p.pending_reboot.is_empty());
    // A change already made and waiting (read from …/pending) is reported, then rebooted for.
    let waiting = config_pending(&base_config(), &[("cores", "4")]);
    let p = ok(plan(
        &spec,
        Some(&rec),
        std::slice::from_ref(&running),
        Some(&waiting),
    ));
    assert_eq!(p.action, Action::NoOp, "{:?}", p.steps);
    assert_eq!(p.pending_reboot, ["cores"]);
    let p = ok(plan(
        &format!("{spec}restartPolicy: auto\n"),
        Some(&rec),
        std::slice::from_ref(&running),
        Some(&waiting),
    ));
    assert_eq!(step_names(&p), ["reboot"]);
}

#[test]
fn power_state_changes() {
    let rec = recorded(120, Some(&base_row("running")));
    let cfg = with(&[]);
    let cases = [
        ("stop", "running", "state: stopped\n", vec!["shutdown"]),
        ("start", "stopped", "", vec!["start"]),
        (
            "to template",
            "running",
            "template: true\n",
            vec!["shutdown", "convertToTemplate"],
        ),
    ];
    for (name, status, extra, want) in cases {
        let row = base_row(status);
        let p = ok(plan(
            &format!("{BASE}{extra}"),
            Some(&rec),
            std::slice::from_ref(&row),
            Some(&cfg),
        ));
        assert_eq!(step_names(&p), want, "{name}");
        assert_eq!(p.action, Action::Update, "{name}");
    }
    // A node that does not answer: nothing is planned.
    let gone = base_row("unknown");
    let p = ok(plan(
        &BASE.replace("cores: 2", "cores: 8"),
        Some(&rec),
        std::slice::from_ref(&gone),
        None,
    ));
    assert_eq!(p.action, Action::NoOp);
    assert!(p.notes[0].contains("does not answer"), "{:?}", p.notes);
}

#[test]
fn a_replace_says_why_and_never_touches_a_protected_vm() {
    let row = base_row("running");
    let rec = recorded(120, Some(&row));
    let template = with(&[("template", "1")]);
    let p = ok(plan(
        BASE,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&template),
    ));
    assert_eq!(p.action, Action::Replace);
    assert!(
        p.reasons[0].contains("cannot turn a template back into a VM"),
        "{:?}",
        p.reasons
    );
    assert_eq!(step_names(&p), ["stop", "delete", "create", "start"]);
    let protected = with(&[("template", "1"), ("protection", "1")]);
    let err = plan(
        BASE,
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&protected),
    )
    .expect_err("protected");
    assert!(err.to_string().contains("protection on"), "{err}");
    // A new vmid is a new guest.
    let p = ok(plan(
        &BASE.replace("vmid: 120", "vmid: 121"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&with(&[])),
    ));
    assert_eq!(p.action, Action::Replace);
    assert!(
        p.reasons[0].contains("vmid changes from 120 to 121"),
        "{:?}",
        p.reasons
    );
    // A new vmid another guest has: refused before anything is deleted.
    let taken = [row.clone(), qemu_row(121, "pve2", "db", "running")];
    let err = plan(
        &BASE.replace("vmid: 120", "vmid: 121"),
        Some(&rec),
        &taken,
        Some(&with(&[])),
    )
    .expect_err("taken");
    assert!(
        err.to_string().contains("vmid 121 is taken by the VM `db`"),
        "{err}"
    );
    // Adopting a guest that would need a replace is refused.
    let err = plan(BASE, None, std::slice::from_ref(&row), Some(&template)).expect_err("adopt");
    assert!(
        err.to_string()
            .contains("ballast replaces only guests it owns"),
        "{err}"
    );
}

#[test]
fn a_locked_vm_is_planned_and_said_to_wait_and_a_clone_disk_needs_a_storage() {
    let mut row = base_row("running");
    let rec = recorded(120, Some(&row));
    row.lock = Some("backup".into());
    let cfg = with(&[]);
    let p = ok(plan(
        &BASE.replace("cores: 2", "cores: 3"),
        Some(&rec),
        std::slice::from_ref(&row),
        Some(&cfg),
    ));
    assert_eq!(p.action, Action::Update);
    assert!(
        p.notes.iter().any(|n| n.contains("locked (backup)")),
        "{:?}",
        p.notes
    );
    // A disk a cloned VM lacks, with no storage anywhere: refused, not sent as `:32`.
    let spec = vm(&format!(
        "{BASE}clone: {{from: 9000}}
"
    )
    .replace(
        "  - {interface: scsi0, size: 32GiB}\n",
        "  - {interface: scsi0, size: 32GiB}\n  - {interface: scsi1, size: 8GiB}\n",
    ));
    let no_storage = ballast_model::proxmox::GuestDefaults {
        storage: None,
        ..defaults()
    };
    let secrets = no_secrets();
    let desired = Desired {
        name: "web1",
        spec: &spec,
        defaults: &no_storage,
        hash: "h",
        secret_versions: &secrets,
    };
    let rows = [base_row("running")];
    let err = plan_vm(
        Some(&desired),
        Some(&rec),
        &Observed {
            guests: &rows,
            config: Some(&cfg),
            clone_source: None,
        },
        false,
    )
    .expect_err("no storage");
    assert!(
        err.to_string().contains("no storage to make it on"),
        "{err}"
    );
}
