//! The firmware tables (hosts, update_plans, plan_targets, artifacts, host_runs,
//! redfish_sessions) and their events, run against both backends: every test below runs once on a
//! SQLite file in a temporary directory and once on a fresh PostgreSQL database (see
//! `ballast_test_support::postgres`).

use std::collections::BTreeMap;
use std::sync::Arc;

use ballast_secrets::SecretKey;
use ballast_store::firmware::{
    ArtifactRecord, FirmwareEvent, HostRecord, HostStatus, InventoryEntry, Phase, PlanStatus,
    PlanTarget, RunChange, RunCtx, RunState, redfish_session_name,
};
use ballast_store::{EventFilter, Store, StoreError};
use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("ballast.db").display());
    let store = Store::open(&url).await.expect("open sqlite store");
    Db {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn postgres_db() -> Db {
    let url = ballast_test_support::postgres::postgres_url().await;
    let store = Store::open(&url).await.expect("open postgres store");
    Db {
        store,
        url,
        _dir: None,
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite_db().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres_db().await).await
                }
            )*
        }
    };
}

on_both_backends!(
    hosts_round_trip_and_report_status_changes,
    plans_grow_generations_and_approve_one,
    targets_and_artifacts_are_replaced_whole,
    run_transitions_are_compare_and_set,
    two_workers_cannot_both_move_one_run,
    redfish_sessions_are_sealed_expire_and_rotate,
    firmware_events_go_to_system_events,
);

fn inventory() -> Vec<InventoryEntry> {
    vec![
        InventoryEntry {
            id: "Installed-159-2.18.1".into(),
            name: Some("BIOS".into()),
            software_id: Some("159".into()),
            version: Some("2.18.1".into()),
            updateable: Some(true),
            manager: false,
        },
        InventoryEntry {
            id: "Installed-25227-6.10.30.00".into(),
            name: Some("Integrated Dell Remote Access Controller".into()),
            software_id: Some("25227".into()),
            version: Some("6.10.30.00".into()),
            updateable: Some(true),
            manager: true,
        },
    ]
}

async fn hosts_round_trip_and_report_status_changes(db: Db) {
    let s = &db.store;
    assert!(s.get_host("r640-01").await.expect("get").is_none());
    let mut host = HostRecord::new("r640-01", "10.0.1.1");
    host.fqdn = Some("r640-01.lab.example".into());
    host.mgmt_kind = "idrac".into();
    host.vendor = Some("Dell".into());
    host.model = Some("PowerEdge R640".into());
    host.service_tag = Some("7XK2QR2".into());
    host.system_id = Some(1814);
    host.bmc_firmware = Some("6.10.30.00".into());
    host.power_state = Some("On".into());
    host.health = Some("OK".into());
    host.tags = BTreeMap::from([("rack".into(), "r1".into())]);
    host.inventory = inventory();
    host.status = HostStatus::Connected;
    host.last_seen = Some(Utc::now());
    assert_eq!(
        s.upsert_host(&host).await.expect("insert"),
        None,
        "new host"
    );
    let stored = s.get_host("r640-01").await.expect("get").expect("row");
    assert_eq!(stored.inventory, host.inventory);
    assert_eq!(stored.tags, host.tags);
    assert_eq!(stored.system_id, Some(1814));
    assert_eq!(stored.status, HostStatus::Connected);
    assert_eq!(
        stored.last_seen.map(|t| t.timestamp_micros()),
        host.last_seen.map(|t| t.timestamp_micros())
    );

    // The BMC stops answering: the status before is returned, so the caller reports
    // host_disconnected once; then it comes back.
    let before = s
        .set_host_status(
            "r640-01",
            HostStatus::Disconnected,
            Some("connection refused"),
        )
        .await
        .expect("status");
    assert_eq!(before, Some(HostStatus::Connected));
    let after = s.get_host("r640-01").await.expect("get").expect("row");
    assert_eq!(after.status, HostStatus::Disconnected);
    assert_eq!(after.status_message.as_deref(), Some("connection refused"));
    assert_eq!(after.inventory, host.inventory, "what was seen is kept");
    assert_eq!(after.created_at, stored.created_at);
    host.status = HostStatus::Connected;
    assert_eq!(
        s.upsert_host(&host).await.expect("update"),
        Some(HostStatus::Disconnected)
    );
    // A host that has no row is not created by a status change.
    assert_eq!(
        s.set_host_status("ghost", HostStatus::Disconnected, None)
            .await
            .expect("status"),
        None
    );
    assert!(s.get_host("ghost").await.expect("get").is_none());
    assert_eq!(s.list_hosts().await.expect("list").len(), 1);
    assert!(s.delete_host("r640-01").await.expect("delete"));
    assert!(s.list_hosts().await.expect("list").is_empty());
}

async fn plans_grow_generations_and_approve_one(db: Db) {
    let s = &db.store;
    let policy = serde_json::json!({"maxConcurrent": 2, "approvalRequired": true});
    let windows = vec![
        "sat 01:00-05:00 Europe/Berlin".to_string(),
        "sun 01:00-03:00 UTC".into(),
    ];
    assert_eq!(
        s.record_update_plan("bios", "h1", &policy, &windows, true)
            .await
            .expect("record"),
        1
    );
    // The same spec again: the same generation.
    assert_eq!(
        s.record_update_plan("bios", "h1", &policy, &windows, true)
            .await
            .expect("record"),
        1
    );
    let plan = s.get_update_plan("bios").await.expect("get").expect("row");
    assert_eq!(plan.status, PlanStatus::Pending);
    assert_eq!(plan.maintenance_window, windows);
    assert_eq!(plan.policy, policy);
    assert!(!plan.is_approved());

    assert!(
        s.approve_update_plan("bios", 1, "alice")
            .await
            .expect("approve")
    );
    let plan = s.get_update_plan("bios").await.expect("get").expect("row");
    assert!(plan.is_approved());
    let approval = plan.approval.expect("approval");
    assert_eq!((approval.by.as_str(), approval.generation), ("alice", 1));

    // A changed spec is a new generation, which the old approval does not cover; approving a
    // generation that is no longer current is refused.
    assert_eq!(
        s.record_update_plan("bios", "h2", &policy, &[], true)
            .await
            .expect("record"),
        2
    );
    let plan = s.get_update_plan("bios").await.expect("get").expect("row");
    assert!(!plan.is_approved());
    assert!(plan.maintenance_window.is_empty());
    assert!(
        !s.approve_update_plan("bios", 1, "bob")
            .await
            .expect("stale")
    );
    assert!(
        s.approve_update_plan("bios", 2, "bob")
            .await
            .expect("approve")
    );

    assert!(
        s.set_plan_status("bios", PlanStatus::WaitingWindow, Some("opens sat 01:00"))
            .await
            .expect("status")
    );
    let plan = s.get_update_plan("bios").await.expect("get").expect("row");
    assert_eq!(plan.status, PlanStatus::WaitingWindow);
    assert_eq!(plan.status_message.as_deref(), Some("opens sat 01:00"));
    assert!(
        !s.set_plan_status("nope", PlanStatus::Running, None)
            .await
            .expect("none")
    );
    assert_eq!(s.list_update_plans().await.expect("list").len(), 1);
}

async fn targets_and_artifacts_are_replaced_whole(db: Db) {
    let s = &db.store;
    s.record_update_plan("bios", "h1", &serde_json::json!({}), &[], false)
        .await
        .expect("plan");
    let target = |host: &str, priority| PlanTarget {
        host: host.into(),
        priority,
    };
    s.set_plan_targets(
        "bios",
        &[target("b", 1), target("a", 1), target("canary", 0)],
    )
    .await
    .expect("targets");
    let listed = s.list_plan_targets("bios").await.expect("list");
    assert_eq!(
        listed,
        [target("canary", 0), target("a", 1), target("b", 1)]
    );
    s.set_plan_targets("bios", &[target("a", 0)])
        .await
        .expect("targets");
    assert_eq!(
        s.list_plan_targets("bios").await.expect("list"),
        [target("a", 0)]
    );

    let bios = ArtifactRecord {
        model: String::new(),
        component: "159".into(),
        version: "2.19.1".into(),
        image_uri: Some("https://repo.example/BIOS_2.19.1.BIN".into()),
        file: None,
        checksum: Some("ab".repeat(32)),
        // Above i32: the column is 64-bit.
        size: Some(5_000_000_000),
        transfer_protocol: Some("HTTPS".into()),
        rollback_version: Some("2.18.1".into()),
        rollback_image_uri: Some("https://repo.example/BIOS_2.18.1.BIN".into()),
        reboot_required: true,
    };
    let per_model = ArtifactRecord {
        model: "PowerEdge R640".into(),
        component: "25227".into(),
        version: "7.00.00.171".into(),
        image_uri: None,
        file: Some("/srv/idrac.bin".into()),
        checksum: None,
        size: None,
        transfer_protocol: None,
        rollback_version: None,
        rollback_image_uri: None,
        reboot_required: false,
    };
    s.set_plan_artifacts("bios", &[per_model.clone(), bios.clone()])
        .await
        .expect("artifacts");
    assert_eq!(
        s.list_plan_artifacts("bios").await.expect("list"),
        [bios.clone(), per_model]
    );
    s.set_plan_artifacts("bios", std::slice::from_ref(&bios))
        .await
        .expect("artifacts");
    assert_eq!(s.list_plan_artifacts("bios").await.expect("list"), [bios]);

    // Forgetting the plan forgets its hosts, packages and runs.
    s.ensure_host_runs("bios", 1, &["a"]).await.expect("runs");
    assert!(s.delete_update_plan("bios").await.expect("delete"));
    assert!(s.get_update_plan("bios").await.expect("get").is_none());
    assert!(
        s.list_plan_targets("bios")
            .await
            .expect("targets")
            .is_empty()
    );
    assert!(
        s.list_plan_artifacts("bios")
            .await
            .expect("artifacts")
            .is_empty()
    );
    assert!(s.list_host_runs("bios").await.expect("runs").is_empty());
    assert!(!s.delete_update_plan("bios").await.expect("again"));
}

async fn run_transitions_are_compare_and_set(db: Db) {
    let s = &db.store;
    let runs = s
        .ensure_host_runs("bios", 1, &["b", "a"])
        .await
        .expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| r.state == RunState::Pending && r.attempts == 0)
    );
    // Ensuring again creates nothing and keeps the ids.
    let again = s
        .ensure_host_runs("bios", 1, &["a", "b", "c"])
        .await
        .expect("runs");
    assert_eq!(again.len(), 3);
    assert_eq!(
        again[0].id,
        runs.iter().find(|r| r.host == "a").expect("a").id
    );
    let a = again[0].clone();
    assert!(a.started_at.is_none() && a.completed_at.is_none());

    // An illegal transition is refused before any SQL.
    let err = s
        .move_host_run(
            a.id,
            RunState::Pending,
            RunState::Failed,
            &RunChange::default(),
        )
        .await
        .expect_err("illegal");
    assert!(
        matches!(err, StoreError::Invalid { ref detail, .. } if detail.contains("from pending to failed")),
        "{err}"
    );

    // Start: one attempt, started_at set.
    let mut ctx = RunCtx::default();
    ctx.enter(Phase::Download, Utc::now(), "downloading BIOS_2.19.1.BIN");
    ctx.progress.percentage = 10;
    let change = RunChange {
        ctx: Some(ctx.clone()),
        versions_before: Some(BTreeMap::from([("159".into(), "2.18.1".into())])),
        owner: Some(Some("apply 42@host".into())),
        ..Default::default()
    };
    assert!(
        s.move_host_run(a.id, RunState::Pending, RunState::Running, &change)
            .await
            .expect("start")
    );
    // A second worker holding the old view loses.
    assert!(
        !s.move_host_run(a.id, RunState::Pending, RunState::Running, &change)
            .await
            .expect("lost")
    );
    let running = s.get_host_run(a.id).await.expect("get").expect("row");
    assert_eq!((running.state, running.attempts), (RunState::Running, 1));
    assert!(running.started_at.is_some() && running.completed_at.is_none());
    assert_eq!(running.ctx, ctx);
    assert_eq!(running.owner.as_deref(), Some("apply 42@host"));

    // Progress while running, with the task monitor as external id; refused once it moved on.
    let progress = RunChange {
        external_id: Some(Some("/redfish/v1/TaskService/Tasks/JID_1".into())),
        ..Default::default()
    };
    assert!(
        s.update_host_run(a.id, RunState::Running, &progress)
            .await
            .expect("progress")
    );
    assert!(
        !s.update_host_run(a.id, RunState::Pending, &progress)
            .await
            .expect("not pending")
    );

    // Fails once (retrying keeps its slot), runs again (second attempt), completes.
    let failed_once = RunChange {
        reason: Some(Some("task failed: image is corrupt".into())),
        external_id: Some(None),
        ..Default::default()
    };
    assert!(
        s.move_host_run(a.id, RunState::Running, RunState::Retrying, &failed_once)
            .await
            .expect("retry")
    );
    let retrying = s.get_host_run(a.id).await.expect("get").expect("row");
    assert_eq!(
        retrying.reason.as_deref(),
        Some("task failed: image is corrupt")
    );
    assert!(retrying.external_id.is_none() && retrying.completed_at.is_none());
    assert!(
        s.move_host_run(
            a.id,
            RunState::Retrying,
            RunState::Running,
            &RunChange::default()
        )
        .await
        .expect("again")
    );
    let done = RunChange {
        versions_after: Some(BTreeMap::from([("159".into(), "2.19.1".into())])),
        reason: Some(None),
        ..Default::default()
    };
    assert!(
        s.move_host_run(a.id, RunState::Running, RunState::Completed, &done)
            .await
            .expect("done")
    );
    let completed = s.get_host_run(a.id).await.expect("get").expect("row");
    assert_eq!(
        (completed.state, completed.attempts),
        (RunState::Completed, 2)
    );
    assert!(completed.completed_at.is_some());
    assert!(completed.completed_at >= completed.started_at);
    assert_eq!(
        completed.versions_after.get("159").map(String::as_str),
        Some("2.19.1")
    );
    assert_eq!(
        completed.versions_before.get("159").map(String::as_str),
        Some("2.18.1")
    );

    // Re-opened (drift, or a new generation): back to pending with the bookkeeping cleared.
    let reopen = RunChange {
        generation: Some(2),
        ..Default::default()
    };
    assert!(
        s.move_host_run(a.id, RunState::Completed, RunState::Pending, &reopen)
            .await
            .expect("reopen")
    );
    let reopened = s.get_host_run(a.id).await.expect("get").expect("row");
    assert_eq!(
        (reopened.state, reopened.attempts, reopened.generation),
        (RunState::Pending, 0, 2)
    );
    assert!(reopened.started_at.is_none() && reopened.completed_at.is_none());
    assert!(reopened.reason.is_none() && reopened.external_id.is_none());

    // A host already at the version: pending → completed without running.
    let b = again.iter().find(|r| r.host == "b").expect("b");
    assert!(
        s.move_host_run(
            b.id,
            RunState::Pending,
            RunState::Completed,
            &RunChange::default()
        )
        .await
        .expect("no-op")
    );
    let b_row = s.get_host_run(b.id).await.expect("get").expect("row");
    assert_eq!((b_row.attempts, b_row.started_at), (0, None));

    // A run is deleted only in the state the caller saw.
    let c = again.iter().find(|r| r.host == "c").expect("c");
    assert!(
        !s.delete_host_run(c.id, RunState::Running)
            .await
            .expect("not running")
    );
    assert!(
        s.delete_host_run(c.id, RunState::Pending)
            .await
            .expect("delete")
    );
    assert_eq!(s.list_host_runs("bios").await.expect("list").len(), 2);
}

/// Two workers, each with its own connection pool (as two processes), race to start the same
/// runs: for every run exactly one wins, and the run counts one attempt.
async fn two_workers_cannot_both_move_one_run(db: Db) {
    let stores = [
        db.store.clone(),
        Store::open(&db.url).await.expect("second store"),
    ];
    let hosts: Vec<String> = (0..30).map(|i| format!("h{i:02}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let runs = stores[0]
        .ensure_host_runs("race", 1, &names)
        .await
        .expect("runs");
    let ids: Arc<Vec<_>> = Arc::new(runs.iter().map(|r| r.id).collect());
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let workers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(w, store)| {
            let (store, ids, barrier) = (store.clone(), ids.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut won = Vec::new();
                for id in ids.iter() {
                    barrier.wait().await;
                    let change = RunChange {
                        owner: Some(Some(format!("worker {w}"))),
                        ..Default::default()
                    };
                    if store
                        .move_host_run(*id, RunState::Pending, RunState::Running, &change)
                        .await
                        .expect("move")
                    {
                        won.push(*id);
                    }
                }
                won
            })
        })
        .collect();
    let mut wins = Vec::new();
    for worker in workers {
        wins.push(worker.await.expect("worker"));
    }
    for id in ids.iter() {
        let winners = wins.iter().filter(|w| w.contains(id)).count();
        assert_eq!(winners, 1, "run {id} was moved by {winners} workers");
        let run = stores[0]
            .get_host_run(*id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!((run.state, run.attempts), (RunState::Running, 1), "{id}");
        let owner = run.owner.expect("owner");
        let winner = wins.iter().position(|w| w.contains(id)).expect("winner");
        assert_eq!(owner, format!("worker {winner}"));
    }
}

async fn redfish_sessions_are_sealed_expire_and_rotate(db: Db) {
    let s = &db.store;
    let old = SecretKey::generate();
    let new = SecretKey::generate();
    let token = "b6c0f3a4e2d94d7c8a1e5f209c3b7d11";
    let name = redfish_session_name("r640-01");
    let now = Utc::now();
    s.put_redfish_session(
        "r640-01",
        "https://10.0.1.1",
        Some("/redfish/v1/SessionService/Sessions/7"),
        &old.encrypt(&name, token.as_bytes()),
        now + Duration::minutes(30),
    )
    .await
    .expect("put");
    let stored = s
        .get_redfish_session("r640-01", now)
        .await
        .expect("get")
        .expect("session");
    assert_eq!(
        stored.location.as_deref(),
        Some("/redfish/v1/SessionService/Sessions/7")
    );
    let debug = format!("{stored:?}");
    assert!(
        !debug.contains("ciphertext") && !debug.contains(token),
        "{debug}"
    );
    assert_eq!(
        &**old.decrypt(&name, &stored.sealed).expect("opens"),
        token.as_bytes()
    );
    // Sealed under its host's name: another host's row would not open it.
    assert!(
        old.decrypt(&redfish_session_name("r640-02"), &stored.sealed)
            .is_err()
    );
    // Ciphertext only in the database.
    let conn = Database::connect(&db.url).await.expect("connect");
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT ciphertext FROM redfish_sessions",
        ))
        .await
        .expect("raw");
    for row in rows {
        let bytes: Vec<u8> = row.try_get("", "ciphertext").expect("bytes");
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    if backend == DbBackend::Sqlite {
        drop(conn);
    }

    // Expired sessions are not handed out, and are swept.
    assert!(
        s.get_redfish_session("r640-01", now + Duration::hours(1))
            .await
            .expect("get")
            .is_none()
    );

    // `secret rotate-key` re-encrypts the token with the secrets.
    s.rewrap_secrets("k-new", "alice", |secret| {
        let plain = old.decrypt(&secret.name, &secret.sealed)?;
        new.try_encrypt(&secret.name, &plain)
    })
    .await
    .expect("rotate");
    let rotated = s
        .get_redfish_session("r640-01", now)
        .await
        .expect("get")
        .expect("session");
    assert_eq!(rotated.sealed.key_id, new.key_id());
    assert_eq!(
        &**new.decrypt(&name, &rotated.sealed).expect("opens"),
        token.as_bytes()
    );

    assert_eq!(s.list_redfish_sessions().await.expect("list").len(), 1);
    assert_eq!(
        s.delete_expired_redfish_sessions(now + Duration::hours(1))
            .await
            .expect("sweep"),
        1
    );
    assert!(!s.delete_redfish_session("r640-01").await.expect("gone"));
}

async fn firmware_events_go_to_system_events(db: Db) {
    let s = &db.store;
    for event in FirmwareEvent::ALL {
        let new = match event {
            FirmwareEvent::HostDisconnected | FirmwareEvent::HostReconnected => {
                event.host_event("r640-01", "BMC 10.0.1.1")
            }
            _ => event.event("bios", format!("r640-01: {}", event.as_str())),
        };
        s.append_event(new).await.expect("append");
    }
    let listed = s
        .list_events(EventFilter {
            since_seq: Some(0),
            ..Default::default()
        })
        .await
        .expect("list");
    let kinds: Vec<&str> = listed.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "update_started",
            "update_completed",
            "update_failed",
            "maintenance_window_started",
            "maintenance_window_ended",
            "host_disconnected",
            "host_reconnected"
        ]
    );
    assert_eq!(listed[0].resource.as_deref(), Some("FirmwarePlan/bios"));
    assert_eq!(listed[5].resource.as_deref(), Some("Server/r640-01"));
    assert_eq!(listed[2].severity, ballast_store::Severity::Error);
}
