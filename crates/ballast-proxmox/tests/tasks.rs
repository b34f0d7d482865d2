//! Tasks against a real fakepve with time running (`time_scale > 0`): an asynchronous call
//! answers its UPID at once, polling shows it running and then done, a new client polls it
//! from the UPID string alone, and failures carry `TASK ERROR` and the log's tail.

mod common;

use std::time::{Duration, Instant};

use ballast_proxmox::{Error, GuestRef, LOG_TAIL_LINES, PowerAction, QemuClone, TaskState, Upid};
use ballast_test_support::fakepve::{FakePve, GuestSettings, TEMPLATE_VMID};
use common::{finish, paths, token_client};
use serde_json::json;

#[tokio::test]
async fn a_slow_clone_answers_its_upid_at_once_and_is_polled_to_the_end_by_a_new_client() {
    let pve = FakePve::start();
    // 120 PVE seconds of slow Ceph at 1/20 speed: the clone onto ceph-pool runs about 6 s,
    // long enough to tell "answered at once" from "waited" on a loaded machine.
    pve.control.set_time_scale(0.05).await;
    pve.control.ceph_slow(120.0).await;
    let client = token_client(&pve);

    let started = Instant::now();
    let upid = client
        .qemu_clone(
            "pve1",
            TEMPLATE_VMID,
            &QemuClone {
                newid: 120,
                name: Some("web-clone".into()),
                full: Some(true),
                storage: Some("ceph-pool".into()),
                ..QemuClone::default()
            },
        )
        .await
        .expect("clone started");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the clone call waited for the task: {:?}",
        started.elapsed()
    );
    assert_eq!(upid.node(), "pve1");
    assert_eq!(upid.task_type(), "qmclone");

    match client.poll_task(&upid).await.expect("poll") {
        TaskState::Running { progress, .. } => assert_eq!(
            progress.as_deref(),
            Some("creating a clone of VM 9000 with ID 120")
        ),
        other => panic!("expected the clone to be running, got {other:?}"),
    }
    // While it runs the new guest exists, locked by the clone.
    let res = client.cluster_resources().await.expect("resources");
    assert_eq!(
        res.guest(120).and_then(|g| g.lock.as_deref()),
        Some("clone")
    );

    // A restart: nothing but the recorded UPID string and a fresh client.
    let recorded = upid.to_string();
    drop(client);
    let resumed: Upid = recorded.parse().expect("the recorded UPID");
    let fresh = token_client(&pve);
    pve.control.clear_requests().await;
    let state = fresh
        .wait_task(
            &resumed,
            Duration::from_millis(100),
            Duration::from_secs(30),
        )
        .await
        .expect("the clone ends");
    assert_eq!(
        state,
        TaskState::Succeeded {
            warning_count: 0,
            warnings: vec![]
        }
    );
    let status_path = format!("GET /nodes/pve1/tasks/{recorded}/status");
    assert!(
        paths(&pve).await.contains(&status_path),
        "polled on the UPID's node"
    );

    let cfg = fresh.qemu_config("pve1", 120).await.expect("the clone");
    assert_eq!(cfg.name.as_deref(), Some("web-clone"));
    assert_eq!(cfg.lock, None);
    assert_eq!(
        cfg.drive("scsi0").and_then(|d| d.storage),
        Some("ceph-pool".to_string())
    );
}

#[tokio::test]
async fn a_task_is_polled_on_the_node_named_in_its_upid() {
    let pve = FakePve::start();
    pve.control
        .add_vm(130, "far", "pve3", "stopped", json!({}))
        .await;
    let client = token_client(&pve);
    let upid = client
        .power(&GuestRef::qemu("pve3", 130), PowerAction::Start)
        .await
        .expect("start");
    assert_eq!(upid.node(), "pve3");
    pve.control.clear_requests().await;
    let state = client.poll_task(&upid).await.expect("poll");
    assert!(matches!(state, TaskState::Succeeded { .. }), "{state:?}");
    // An OK task costs one request.
    assert_eq!(
        paths(&pve).await,
        [format!("GET /nodes/pve3/tasks/{upid}/status")]
    );
}

#[tokio::test]
async fn a_failed_task_carries_its_task_error_and_log_tail() {
    let pve = FakePve::start();
    pve.control
        .add_vm(
            131,
            "broken",
            "pve1",
            "stopped",
            json!({"scsi0": "local-lvm:vm-131-disk-0,size=8G"}),
        )
        .await;
    pve.control
        .guest_settings(
            131,
            GuestSettings {
                start_error: Some("start failed: QEMU exited with code 1".to_string()),
                ..GuestSettings::default()
            },
        )
        .await;
    let client = token_client(&pve);
    let upid = client
        .power(&GuestRef::qemu("pve1", 131), PowerAction::Start)
        .await
        .expect("the start task is created");
    let TaskState::Failed(failure) = finish(&client, &upid).await else {
        panic!("the start should fail");
    };
    assert_eq!(failure.message, "start failed: QEMU exited with code 1");
    assert_eq!(
        failure.log_tail.last().map(String::as_str),
        Some("TASK ERROR: start failed: QEMU exited with code 1")
    );
    assert!(failure.log_tail.len() as u64 <= LOG_TAIL_LINES);
    assert!(failure.to_string().contains("TASK ERROR: start failed"));
    // Nothing in PVE's wording says retry: a controller reports it.
    assert!(!failure.error().is_retryable(), "{:?}", failure.error());
    let cfg = client.qemu_config("pve1", 131).await.expect("config");
    assert_eq!(cfg.lock, None);
}

#[tokio::test]
async fn a_task_failing_on_a_held_config_lock_is_classified_as_locked() {
    let pve = FakePve::start();
    pve.control
        .add_vm(132, "busy", "pve1", "stopped", json!({}))
        .await;
    // Another worker holds the VM's config lock; the start task waits for it and times out.
    pve.control.hold_config_lock(132, None).await;
    let client = token_client(&pve);
    let upid = client
        .power(&GuestRef::qemu("pve1", 132), PowerAction::Start)
        .await
        .expect("the start task is created");
    let TaskState::Failed(failure) = finish(&client, &upid).await else {
        panic!("the start should fail on the lock");
    };
    assert!(failure.message.contains("got timeout"), "{failure:?}");
    let error = failure.error();
    assert!(matches!(error, Error::Locked { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_warnings_exit_status_is_a_success_with_warnings() {
    let pve = FakePve::start();
    pve.control
        .add_vm(133, "warns", "pve1", "stopped", json!({}))
        .await;
    // fakepve ends a task with the exit status it is given; PVE writes `WARNINGS: n` for a
    // worker that logged n warnings and otherwise succeeded.
    pve.control
        .guest_settings(
            133,
            GuestSettings {
                start_error: Some("WARNINGS: 2".to_string()),
                ..GuestSettings::default()
            },
        )
        .await;
    let client = token_client(&pve);
    let upid = client
        .power(&GuestRef::qemu("pve1", 133), PowerAction::Start)
        .await
        .expect("start");
    match finish(&client, &upid).await {
        TaskState::Succeeded { warning_count, .. } => assert_eq!(warning_count, 2),
        other => panic!("expected a success with warnings, got {other:?}"),
    }
}

#[tokio::test]
async fn waiting_gives_up_at_its_timeout_with_a_retryable_error() {
    let pve = FakePve::start();
    pve.control.set_time_scale(1.0).await;
    pve.control
        .add_vm(134, "slow", "pve1", "stopped", json!({}))
        .await;
    pve.control
        .guest_settings(
            134,
            GuestSettings {
                start_secs: Some(30.0),
                ..GuestSettings::default()
            },
        )
        .await;
    let client = token_client(&pve);
    let upid = client
        .power(&GuestRef::qemu("pve1", 134), PowerAction::Start)
        .await
        .expect("start");
    let err = client
        .wait_task(
            &upid,
            Duration::from_millis(100),
            Duration::from_millis(500),
        )
        .await
        .expect_err("still running");
    assert!(matches!(err, Error::TaskTimeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}
