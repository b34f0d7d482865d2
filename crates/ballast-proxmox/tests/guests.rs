//! Guest lifecycles against a real fakepve: QEMU and LXC create, clone, config updates with
//! the digest they were planned against (and a stale one refused as such), pending changes,
//! disk growth, power, templates, delete; pools.

mod common;

use ballast_proxmox::{
    Action, ConfigUpdate, DeleteOptions, DiskSize, Error, GuestRef, LxcClone, LxcCreate, Params,
    PowerAction, QemuCreate, Secret, TaskState,
};
use ballast_test_support::fakepve::{CT_TEMPLATE, FakePve, POOL};
use common::{finish, paths, succeed, token_client};
use serde_json::json;

#[tokio::test]
async fn a_qemu_vm_is_created_configured_grown_powered_templated_and_deleted() {
    let pve = FakePve::start();
    let client = token_client(&pve);
    let vmid = client.next_id().await.expect("next id");
    let upid = client
        .qemu_create(
            "pve2",
            &QemuCreate {
                vmid,
                config: Params::new()
                    .set("name", "app1")
                    .set("cores", 2)
                    .set("memory", 2048)
                    .set("scsihw", "virtio-scsi-single")
                    .set("scsi0", "local-lvm:8,discard=on,ssd=1")
                    .set("net0", "virtio,bridge=vmbr0,firewall=1")
                    .set("tags", "lab;app"),
                pool: Some(POOL.into()),
                ..QemuCreate::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(upid.node(), "pve2");
    succeed(&client, &upid).await;

    let cfg = client.qemu_config("pve2", vmid).await.expect("config");
    assert_eq!(cfg.name.as_deref(), Some("app1"));
    assert_eq!((cfg.cores, cfg.memory_mib), (Some(2), Some(2048)));
    let disk = cfg.drive("scsi0").expect("scsi0");
    assert_eq!(disk.size_bytes, Some(8 << 30));
    assert_eq!(disk.options.get("discard"), Some("on"));
    let net = &cfg.networks()[0];
    assert!(net.firewall && net.mac.is_some(), "{net:?}");
    let res = client.cluster_resources().await.expect("resources");
    assert_eq!(res.guest(vmid).and_then(|g| g.pool.as_deref()), Some(POOL));

    // An update planned against the config just read: it carries that digest.
    let update = ConfigUpdate {
        set: Params::new()
            .set("cores", 4)
            .set("description", "managed by ballast"),
        delete: vec!["tags".into()],
        digest: Some(cfg.digest.clone()),
    };
    let upid = client
        .qemu_update_config("pve2", vmid, &update)
        .await
        .expect("update")
        .expect("the async form answers a task");
    succeed(&client, &upid).await;
    let cfg = client.qemu_config("pve2", vmid).await.expect("config");
    // The form update leaves `cores` stored as the string "4": it still reads as 4.
    assert_eq!(cfg.cores, Some(4));
    assert_eq!(cfg.description.as_deref(), Some("managed by ballast"));
    assert!(cfg.tags.is_empty());

    // fakepve accepts a QEMU resize and changes nothing: check that the request was made.
    let guest = GuestRef::qemu("pve2", vmid);
    pve.control.clear_requests().await;
    if let Some(upid) = client
        .resize(&guest, "scsi0", DiskSize::GrowBy(4 << 30), None)
        .await
        .expect("resize")
    {
        succeed(&client, &upid).await;
    }
    assert!(
        paths(&pve)
            .await
            .contains(&format!("PUT /nodes/pve2/qemu/{vmid}/resize")),
        "the resize request"
    );

    for (action, want) in [
        (PowerAction::Start, "running"),
        (PowerAction::Reboot { timeout_secs: None }, "running"),
        (
            PowerAction::Shutdown {
                timeout_secs: Some(30),
                force_stop: true,
            },
            "stopped",
        ),
        (PowerAction::Start, "running"),
        (PowerAction::Stop, "stopped"),
    ] {
        let upid = client.power(&guest, action).await.expect("power");
        succeed(&client, &upid).await;
        let res = client.cluster_resources().await.expect("resources");
        assert_eq!(
            res.guest(vmid).and_then(|g| g.status.as_deref()),
            Some(want),
            "{action:?}"
        );
    }

    if let Some(upid) = client.convert_to_template(&guest).await.expect("template") {
        succeed(&client, &upid).await;
    }
    assert!(
        client
            .qemu_config("pve2", vmid)
            .await
            .expect("config")
            .template
    );

    let upid = client
        .delete(
            &guest,
            DeleteOptions {
                purge: true,
                destroy_unreferenced_disks: true,
                force: false,
            },
        )
        .await
        .expect("delete");
    succeed(&client, &upid).await;
    let res = client.cluster_resources().await.expect("resources");
    assert!(res.guest(vmid).is_none());
    let err = client.qemu_config("pve2", vmid).await.expect_err("deleted");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_qemu_update_with_a_stale_digest_is_classified_stale_and_changes_nothing() {
    let pve = FakePve::start();
    pve.control
        .add_vm(140, "shared", "pve1", "stopped", json!({"cores": 1}))
        .await;
    let client = token_client(&pve);
    let read = client.qemu_config("pve1", 140).await.expect("config");
    // Someone else changes the VM between our read and our write.
    pve.control
        .set_guest_config(140, "description", json!("edited in the web UI"))
        .await;
    let update = ConfigUpdate {
        set: Params::new().set("cores", 8),
        digest: Some(read.digest.clone()),
        ..ConfigUpdate::default()
    };
    // Real PVE refuses it on the request; fakepve checks inside the qmconfig task.
    let error = match client.qemu_update_config("pve1", 140, &update).await {
        Err(e) => e,
        Ok(Some(upid)) => match finish(&client, &upid).await {
            TaskState::Failed(failure) => failure.error(),
            other => panic!("a stale update must fail, got {other:?}"),
        },
        Ok(None) => panic!("a stale update must fail"),
    };
    assert!(matches!(error, Error::StaleDigest { .. }), "{error:?}");
    assert_eq!(error.action(), Action::Reread);
    let now = client.qemu_config("pve1", 140).await.expect("config");
    assert_eq!(now.cores, Some(1), "nothing was overwritten");
    assert_ne!(now.digest, read.digest);
}

#[tokio::test]
async fn a_running_vm_keeps_changes_pending_until_its_next_start() {
    let pve = FakePve::start();
    pve.control
        .add_vm(
            141,
            "busy",
            "pve1",
            "running",
            json!({"cores": 1, "memory": 1024}),
        )
        .await;
    let client = token_client(&pve);
    let read = client.qemu_config("pve1", 141).await.expect("config");
    let update = ConfigUpdate {
        set: Params::new().set("cores", 2).set("name", "busy-renamed"),
        digest: Some(read.digest),
        ..ConfigUpdate::default()
    };
    let upid = client
        .qemu_update_config("pve1", 141, &update)
        .await
        .expect("update")
        .expect("a task");
    succeed(&client, &upid).await;
    let pending = client.qemu_pending("pve1", 141).await.expect("pending");
    let cores = pending.iter().find(|p| p.key == "cores").expect("cores");
    assert!(cores.is_pending());
    assert_eq!(cores.value.as_deref(), Some("1"));
    assert_eq!(cores.pending.as_deref(), Some("2"));
    // A name is applied at once.
    let name = pending.iter().find(|p| p.key == "name").expect("name");
    assert!(!name.is_pending());
    assert_eq!(name.value.as_deref(), Some("busy-renamed"));
}

#[tokio::test]
async fn an_lxc_container_is_created_updated_grown_cloned_templated_and_deleted() {
    let pve = FakePve::start();
    let client = token_client(&pve);
    let upid = client
        .lxc_create(
            "pve1",
            &LxcCreate {
                vmid: 210,
                ostemplate: CT_TEMPLATE.into(),
                config: Params::new()
                    .set("hostname", "ct1")
                    .set("cores", 1)
                    .set("memory", 512)
                    .set("rootfs", "local-lvm:4")
                    .set("net0", "name=eth0,bridge=vmbr0,ip=dhcp,firewall=1")
                    .set("features", "nesting=1"),
                password: Some(Secret::new("ct-root-password")),
                unprivileged: Some(true),
                ..LxcCreate::default()
            },
        )
        .await
        .expect("create");
    succeed(&client, &upid).await;
    let cfg = client.lxc_config("pve1", 210).await.expect("config");
    assert_eq!(cfg.hostname.as_deref(), Some("ct1"));
    assert_eq!(
        cfg.rootfs.as_ref().and_then(|r| r.size_bytes),
        Some(4 << 30)
    );
    assert!(cfg.unprivileged && cfg.features.nesting);
    assert_eq!(cfg.networks[0].ip.as_deref(), Some("dhcp"));
    assert!(cfg.networks[0].firewall);

    // The synchronous PUT, with the digest of what was read.
    client
        .lxc_update_config(
            "pve1",
            210,
            &ConfigUpdate {
                set: Params::new().set("cores", 2).set("memory", 1024),
                digest: Some(cfg.digest.clone()),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect("update");
    let updated = client.lxc_config("pve1", 210).await.expect("config");
    assert_eq!((updated.cores, updated.memory_mib), (Some(2), Some(1024)));

    // The digest read before that update is stale now.
    let err = client
        .lxc_update_config(
            "pve1",
            210,
            &ConfigUpdate {
                set: Params::new().set("cores", 4),
                digest: Some(cfg.digest.clone()),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::StaleDigest { .. }), "{err:?}");
    assert_eq!(err.action(), Action::Reread);

    let guest = GuestRef::lxc("pve1", 210);
    let upid = client
        .resize(
            &guest,
            "rootfs",
            DiskSize::GrowBy(2 << 30),
            Some(&updated.digest),
        )
        .await
        .expect("resize")
        .expect("a resize task");
    succeed(&client, &upid).await;
    let grown = client.lxc_config("pve1", 210).await.expect("config");
    assert_eq!(grown.rootfs.and_then(|r| r.size_bytes), Some(6 << 30));

    for action in [
        PowerAction::Start,
        PowerAction::Reboot { timeout_secs: None },
        PowerAction::Shutdown {
            timeout_secs: Some(10),
            force_stop: true,
        },
    ] {
        let upid = client.power(&guest, action).await.expect("power");
        succeed(&client, &upid).await;
    }

    let upid = client
        .lxc_clone(
            "pve1",
            210,
            &LxcClone {
                newid: 211,
                hostname: Some("ct1-copy".into()),
                full: Some(true),
                ..LxcClone::default()
            },
        )
        .await
        .expect("clone");
    succeed(&client, &upid).await;
    let copy = client.lxc_config("pve1", 211).await.expect("the copy");
    assert_eq!(copy.hostname.as_deref(), Some("ct1-copy"));

    // Documented as synchronous; fakepve answers a task: both are handled.
    if let Some(upid) = client.convert_to_template(&guest).await.expect("template") {
        succeed(&client, &upid).await;
    }
    assert!(
        client
            .lxc_config("pve1", 210)
            .await
            .expect("config")
            .template
    );

    for vmid in [210, 211] {
        let upid = client
            .delete(
                &GuestRef::lxc("pve1", vmid),
                DeleteOptions {
                    purge: true,
                    ..DeleteOptions::default()
                },
            )
            .await
            .expect("delete");
        succeed(&client, &upid).await;
    }
    let res = client.cluster_resources().await.expect("resources");
    assert!(res.guest(210).is_none() && res.guest(211).is_none());
}

#[tokio::test]
async fn pools_are_created_filled_read_emptied_and_deleted() {
    let pve = FakePve::start();
    pve.control
        .add_vm(160, "a", "pve1", "stopped", json!({}))
        .await;
    pve.control
        .add_ct(260, "b", "pve2", "stopped", json!({}))
        .await;
    let client = token_client(&pve);
    client
        .create_pool("team", Some("the team's guests"))
        .await
        .expect("create");
    client
        .add_to_pool("team", &[160, 260], false)
        .await
        .expect("add");
    let pool = client.pool("team").await.expect("read");
    assert_eq!(pool.comment.as_deref(), Some("the team's guests"));
    let mut members: Vec<(String, Option<u32>)> = pool
        .members
        .iter()
        .map(|m| (m.member_type.clone(), m.vmid))
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            ("lxc".to_string(), Some(260)),
            ("qemu".to_string(), Some(160))
        ]
    );
    client
        .remove_from_pool("team", &[160, 260])
        .await
        .expect("remove");
    assert!(client.pool("team").await.expect("read").members.is_empty());
    client.delete_pool("team").await.expect("delete");
    let err = client.pool("team").await.expect_err("gone");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
