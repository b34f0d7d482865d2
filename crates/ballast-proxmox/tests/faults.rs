//! Each fault fakepve can produce maps to its error class and action: no quorum, an offline
//! node, a guest locked by a backup or a snapshot, a held config lock, 5xx and 503, a bad
//! request with PVE's per-parameter messages, permission denied, not found, and a peer that
//! does not answer at all.

mod common;

use std::net::TcpListener;

use ballast_proxmox::{
    Action, ConfigUpdate, Error, GuestRef, Params, PowerAction, ProxmoxClient, QemuClone, TlsTrust,
};
use ballast_test_support::fakepve::{FakePve, TEMPLATE_VMID};
use common::token_client;
use serde_json::json;

fn retry() -> Action {
    Action::Retry { after: None }
}

#[tokio::test]
async fn lost_quorum_refuses_writes_as_retryable_and_reads_still_work() {
    let pve = FakePve::start();
    pve.control
        .add_ct(220, "ct", "pve1", "stopped", json!({}))
        .await;
    pve.control.lose_quorum().await;
    let client = token_client(&pve);

    let err = client
        .lxc_update_config(
            "pve1",
            220,
            &ConfigUpdate {
                set: Params::new().set("cores", 2),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect_err("no quorum");
    assert!(matches!(err, Error::NoQuorum { .. }), "{err:?}");
    assert_eq!(err.action(), retry());
    assert!(err.to_string().contains("no quorum"), "{err}");

    let clone = QemuClone {
        newid: 221,
        ..QemuClone::default()
    };
    let err = client
        .qemu_clone("pve1", TEMPLATE_VMID, &clone)
        .await
        .expect_err("no quorum");
    assert!(matches!(err, Error::NoQuorum { .. }), "{err:?}");

    client.cluster_resources().await.expect("reads work");
    pve.control.regain_quorum().await;
    let upid = client
        .qemu_clone("pve1", TEMPLATE_VMID, &clone)
        .await
        .expect("quorum is back");
    common::succeed(&client, &upid).await;
}

#[tokio::test]
async fn an_offline_node_is_retryable_and_named() {
    let pve = FakePve::start();
    pve.control.set_node_offline("pve2", true).await;
    let client = token_client(&pve);
    let err = client.node_status("pve2").await.expect_err("offline");
    let Error::NodeOffline { node, status, .. } = &err else {
        panic!("expected NodeOffline, got {err:?}");
    };
    assert_eq!((node.as_str(), *status), ("pve2", 595));
    assert_eq!(err.action(), retry());
    client
        .node_status("pve1")
        .await
        .expect("another node answers");
    pve.control.set_node_offline("pve2", false).await;
    client.node_status("pve2").await.expect("back online");
}

#[tokio::test]
async fn a_guest_in_a_backup_is_locked_and_retryable() {
    let pve = FakePve::start();
    pve.control
        .add_vm(170, "backed-up", "pve1", "running", json!({}))
        .await;
    // A vzdump that runs 600 PVE seconds at 1/20 speed: locked for about 30 s, far longer
    // than the test.
    pve.control.set_time_scale(0.05).await;
    pve.control.backup(170, 600.0).await;
    let client = token_client(&pve);
    let res = client.cluster_resources().await.expect("resources");
    assert_eq!(
        res.guest(170).and_then(|g| g.lock.as_deref()),
        Some("backup")
    );
    let err = client
        .power(&GuestRef::qemu("pve1", 170), PowerAction::Stop)
        .await
        .expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("VM is locked (backup)"), "{err}");
    assert_eq!(err.action(), retry());
}

#[tokio::test]
async fn a_container_left_locked_by_a_snapshot_is_locked() {
    let pve = FakePve::start();
    pve.control
        .add_ct(222, "snap", "pve1", "stopped", json!({}))
        .await;
    pve.control.lock_guest(222, "snapshot").await;
    let client = token_client(&pve);
    let err = client
        .lxc_update_config(
            "pve1",
            222,
            &ConfigUpdate {
                set: Params::new().set("cores", 2),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("CT is locked (snapshot)"), "{err}");
}

#[tokio::test]
async fn a_held_config_lock_times_out_as_locked() {
    let pve = FakePve::start();
    pve.control
        .add_ct(223, "held", "pve1", "stopped", json!({}))
        .await;
    pve.control.hold_config_lock(223, None).await;
    let client = token_client(&pve);
    let err = client
        .lxc_update_config(
            "pve1",
            223,
            &ConfigUpdate {
                set: Params::new().set("memory", 1024),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect_err("lock timeout");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("got timeout"), "{err}");
    pve.control.release_config_lock(223).await;
    client
        .lxc_update_config(
            "pve1",
            223,
            &ConfigUpdate {
                set: Params::new().set("memory", 1024),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect("the lock is free");
}

#[tokio::test]
async fn server_errors_are_retryable_and_a_503_is_unavailable() {
    let pve = FakePve::start();
    pve.control
        .fail("GET", "/cluster/resources", 500, "internal error", Some(1))
        .await;
    pve.control
        .fail("GET", "/version", 503, "Service Unavailable", Some(1))
        .await;
    let client = token_client(&pve);
    let err = client.cluster_resources().await.expect_err("a 500");
    assert!(
        matches!(&err, Error::Server { status: 500, message, .. } if message == "internal error"),
        "{err:?}"
    );
    assert_eq!(err.action(), retry());
    client
        .cluster_resources()
        .await
        .expect("the next try works");

    let err = client.version().await.expect_err("a 503");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_bad_request_says_what_each_parameter_got_wrong_and_stops() {
    let pve = FakePve::start();
    let client = token_client(&pve);
    let err = client
        .qemu_update_config(
            "pve1",
            TEMPLATE_VMID,
            &ConfigUpdate {
                set: Params::new().set("cores", "many").set("memory", "lots"),
                ..ConfigUpdate::default()
            },
        )
        .await
        .expect_err("bad parameters");
    let Error::BadRequest { errors, .. } = &err else {
        panic!("expected BadRequest, got {err:?}");
    };
    assert!(
        errors.contains_key("cores") && errors.contains_key("memory"),
        "{errors:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("cores: type check ('integer') failed - got 'many'"),
        "{text}"
    );
    assert!(text.contains("memory:"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(err.action(), Action::Stop);
}

#[tokio::test]
async fn permission_denied_and_not_found_stop() {
    let pve = FakePve::start();
    pve.control
        .fail(
            "GET",
            "/nodes",
            403,
            "Permission check failed (/, Sys.Audit)",
            None,
        )
        .await;
    let client = token_client(&pve);
    let err = client.nodes().await.expect_err("forbidden");
    assert!(matches!(err, Error::Auth { status: 403, .. }), "{err:?}");
    assert!(err.to_string().contains("permission denied"), "{err}");
    assert_eq!(err.action(), Action::Stop);

    let err = client
        .qemu_config("pve1", 555)
        .await
        .expect_err("no such VM");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.action(), Action::Stop);
}

#[tokio::test]
async fn a_peer_that_does_not_answer_is_a_retryable_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let client = ProxmoxClient::builder(format!("https://127.0.0.1:{port}"))
        .api_token("root@pam!ballast", "irrelevant")
        .tls(TlsTrust::InsecureSkipVerify)
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(err.action(), retry());
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
