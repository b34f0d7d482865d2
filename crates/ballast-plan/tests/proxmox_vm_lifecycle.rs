//! More ProxmoxVm plan rules, from tables: removal (only with prune, never a protected VM),
//! when a config read is needed, cloud-init passwords by secret version, steps as JSON.

mod support;

use ballast_plan::Action;
use ballast_plan::proxmox::{
    Desired, GuestStep, Observed, ObservedConfig, PlanError, Power, RecordedGuest, needs_config_vm,
    plan_vm,
};
use ballast_proxmox::GuestResource;
use support::vm_case::*;
use support::*;

#[test]
fn a_vm_removed_from_the_manifests_is_deleted_only_with_prune_and_never_protected() {
    let row = base_row("running");
    let rec = recorded(120, Some(&row));
    let rows = [row.clone()];
    let run = |recorded: Option<&RecordedGuest>, cfg: Option<&ObservedConfig>, prune: bool| {
        plan_vm(
            None,
            recorded,
            &Observed {
                guests: &rows,
                config: cfg,
                clone_source: None,
            },
            prune,
        )
    };
    let kept = run(Some(&rec), None, false).expect("a plan");
    assert_eq!(kept.action, Action::NoOp);
    assert!(
        kept.reasons[0].contains("use --prune"),
        "{:?}",
        kept.reasons
    );
    assert!(matches!(
        run(Some(&rec), None, true),
        Err(PlanError::ConfigNeeded { .. })
    ));
    let cfg = with(&[]);
    let p = run(Some(&rec), Some(&cfg), true).expect("a plan");
    assert_eq!(p.action, Action::Delete);
    assert_eq!(step_names(&p), ["stop", "delete", "forget"]);
    let protected = with(&[("protection", "1")]);
    let err = run(Some(&rec), Some(&protected), true).expect_err("protected");
    assert!(
        err.to_string().contains("never deletes a protected guest"),
        "{err}"
    );
    // A guest ballast never recorded is never deleted.
    let p = run(None, Some(&cfg), true).expect("a plan");
    assert_eq!((p.action, p.steps.len()), (Action::NoOp, 0));
}

#[test]
fn a_config_read_is_needed_only_when_something_moved() {
    let row = base_row("running");
    let spec = vm(BASE);
    let d = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "web1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &secrets,
    };
    let rec = recorded(120, Some(&row));
    assert_eq!(
        needs_config_vm(&desired, &row, Some(&rec)),
        None,
        "in sync: the resource list is enough"
    );
    let changed = |f: &dyn Fn(&mut GuestResource, &mut RecordedGuest)| {
        let (mut r, mut c) = (row.clone(), rec.clone());
        f(&mut r, &mut c);
        needs_config_vm(&desired, &r, Some(&c))
    };
    type Change = Box<dyn Fn(&mut GuestResource, &mut RecordedGuest)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "stopped by hand",
            Box::new(|r, _| r.status = Some("stopped".into())),
            "it is stopped",
        ),
        (
            "renamed",
            Box::new(|r, _| r.name = Some("other".into())),
            "its name is other",
        ),
        (
            "tags changed",
            Box::new(|r, _| r.tags = vec!["x".into()]),
            "tags",
        ),
        (
            "locked",
            Box::new(|r, _| r.lock = Some("backup".into())),
            "locked (backup)",
        ),
        (
            "memory changed elsewhere",
            Box::new(|r, _| r.maxmem = Some(1 << 30)),
            "maxmem",
        ),
        ("moved", Box::new(|r, _| r.node = "pve2".into()), "node"),
        (
            "made a template",
            Box::new(|r, _| r.template = true),
            "template",
        ),
        (
            "manifest changed",
            Box::new(|_, c| c.applied_hash = Some("old".into())),
            "manifest changed",
        ),
        (
            "never read",
            Box::new(|_, c| c.config_digest = None),
            "never read",
        ),
    ];
    for (name, change, why) in cases {
        let got = changed(change.as_ref());
        assert!(
            got.as_deref().is_some_and(|g| g.contains(why)),
            "{name}: {got:?}"
        );
    }
    assert!(
        needs_config_vm(&desired, &row, None).is_some(),
        "not recorded"
    );
    // Without a config, a guest that needs none plans to nothing; one that does says so.
    let p = ok(plan(BASE, Some(&rec), std::slice::from_ref(&row), None));
    assert_eq!(p.action, Action::NoOp);
    let stopped = base_row("stopped");
    assert!(matches!(
        plan(BASE, Some(&rec), std::slice::from_ref(&stopped), None),
        Err(PlanError::ConfigNeeded { .. })
    ));
}

#[test]
fn cloud_init_passwords_follow_the_secret_version_and_are_never_in_a_step() {
    let row = base_row("running");
    let spec = vm(&format!(
        "{BASE}cloudInit:\n  password: {{secretRef: {{name: web1-pw}}}}\n"
    ));
    let d = defaults();
    let versions = std::collections::BTreeMap::from([("web1-pw".to_string(), "3".to_string())]);
    let desired = Desired {
        name: "web1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &versions,
    };
    let cfg = with(&[
        ("ide2", "local-lvm:vm-120-cloudinit,media=cdrom"),
        ("cipassword", "**********"),
    ]);
    let rows = [row.clone()];
    let observed = Observed {
        guests: &rows,
        config: Some(&cfg),
        clone_source: None,
    };
    let mut rec = recorded(120, Some(&row));
    rec.secret_versions
        .insert("cipassword".into(), "secret:web1-pw#3".into());
    let p = plan_vm(Some(&desired), Some(&rec), &observed, false).expect("a plan");
    assert_eq!(p.action, Action::NoOp, "{:?}", p.reasons);
    rec.secret_versions
        .insert("cipassword".into(), "secret:web1-pw#2".into());
    let p = plan_vm(Some(&desired), Some(&rec), &observed, false).expect("a plan");
    let GuestStep::UpdateConfig { secrets, set, .. } = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(secrets[0].key, "cipassword");
    assert!(!set.contains_key("cipassword"));
    let json = serde_json::to_string(&p.steps).expect("serializes");
    assert!(
        json.contains("web1-pw") && !json.contains("**********"),
        "{json}"
    );
    // Adopted with a password already set: taken as the manifest's.
    let p = plan_vm(Some(&desired), None, &observed, false).expect("a plan");
    assert_eq!(p.action, Action::NoOp, "{:?}", p.reasons);
}

#[test]
fn steps_round_trip_through_json_and_name_their_client_call() {
    let p = ok(plan(BASE, None, &[], None));
    let json = serde_json::to_string(&p.steps).expect("serializes");
    let back: Vec<GuestStep> = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, p.steps);
    assert_eq!(
        p.steps.iter().map(GuestStep::call).collect::<Vec<_>>(),
        ["ProxmoxClient::qemu_create", "ProxmoxClient::power"]
    );
    assert!(matches!(
        p.steps[1],
        GuestStep::Power {
            action: Power::Start,
            ..
        }
    ));
}
