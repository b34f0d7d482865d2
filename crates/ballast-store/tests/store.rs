//! The store's behaviour, run against both backends: every test below runs once on a SQLite
//! file in a temporary directory and once on a fresh PostgreSQL database (see
//! `ballast_test_support::postgres`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_secrets::{Sealed, SecretKey};
use ballast_store::{
    ChangeType, ContainerRecord, DesiredRecord, EventFilter, Holder, Key, LeaseTake, NewEvent,
    OpenMode, Severity, SourceInfo, Store, StoreError, TaskFilter, TaskId, TaskStatus,
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

/// This test process, as the owner of what it starts.
fn me() -> Holder {
    Holder::new("test", std::process::id(), "host-a")
}

/// A process of this host that no longer exists (no pid is this large).
fn dead_here() -> Holder {
    Holder::new("apply", 4_294_967, "host-a")
}

/// A store under test, with what the test needs to reach behind its back.
struct Db {
    store: Store,
    url: String,
    /// The SQLite file, if the backend is SQLite.
    sqlite_file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet: open must create it.
    let file = dir.path().join("state").join("ballast.db");
    let url = format!("sqlite://{}", file.display());
    let store = Store::open(&url).await.expect("open sqlite store");
    Db {
        store,
        url,
        sqlite_file: Some(file),
        _dir: Some(dir),
    }
}

async fn postgres_db() -> Db {
    let url = ballast_test_support::postgres::postgres_url().await;
    let store = Store::open(&url).await.expect("open postgres store");
    Db {
        store,
        url,
        sqlite_file: None,
        _dir: None,
    }
}

/// Runs SQL on the database directly, as an attacker or a bug would.
async fn raw_sql(url: &str, sql: &str) {
    let db = Database::connect(url).await.expect("raw connection");
    db.execute_unprepared(sql).await.expect("raw sql");
    db.close().await.expect("close raw connection");
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
    reopen_keeps_schema_and_instance_id,
    desired_generations_and_tombstones,
    desired_set_is_recorded_atomically,
    observed_snapshots_only_on_change,
    observed_batch_of_ten_thousand,
    containers_are_replaced_per_server,
    task_lifecycle,
    audit_chain_detects_tampering,
    concurrent_writers_queue,
    secrets_are_stored_as_ciphertext,
    rewrap_is_all_or_nothing,
    lease_acquire_renew_release,
    lease_expiry_allows_takeover,
    lease_race_between_two_stores,
    lease_batches,
    system_events_append_and_list,
    system_events_from_two_stores_keep_one_sequence,
    lease_renewal_keeps_another_host_out_until_it_stops,
    stale_leases_are_cleaned,
    recovery_touches_only_abandoned_tasks,
    key_id_is_recorded_once_and_secret_changes_are_audited,
);

fn record(kind: &str, name: &str, hash: &str) -> DesiredRecord {
    DesiredRecord {
        kind: kind.to_string(),
        name: name.to_string(),
        spec: json!({"kind": kind, "metadata": {"name": name}, "spec": {"hash": hash}}),
        spec_hash: hash.to_string(),
        source_file: format!("manifests/{name}.yaml"),
        source_line: 1,
    }
}

fn keys(list: &[Key]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

async fn reopen_keeps_schema_and_instance_id(db: Db) {
    let id = db.store.instance_id().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").to_string(), id);
    assert_eq!(
        db.store.backend_name(),
        if db.sqlite_file.is_some() {
            "sqlite"
        } else {
            "postgres"
        }
    );
    if let Some(file) = &db.sqlite_file {
        assert!(
            file.is_file(),
            "the SQLite file and its directory are created"
        );
    }
    db.store
        .append_audit("alice", "test", "before reopen", None)
        .await
        .expect("write");

    // A second open of the same database (as a daemon next to an apply would) runs no
    // migration twice and sees the same identity and data.
    let again = Store::open(&db.url).await.expect("second open");
    assert_eq!(again.instance_id(), id);
    assert_eq!(again.list_audit(100).await.expect("list").len(), 1);
    drop(again);
    db.store.close().await.expect("close");
    let third = Store::open(&db.url).await.expect("third open");
    assert_eq!(third.instance_id(), id);
}

async fn desired_generations_and_tombstones(db: Db) {
    let s = &db.store;
    let src = SourceInfo {
        git_commit: Some("c1".to_string()),
        git_dirty: false,
    };
    let out = s
        .record_desired(
            &[record("App", "web", "h1"), record("App", "db", "h1")],
            &src,
        )
        .await
        .expect("record");
    assert_eq!(keys(&out.created), ["App/web", "App/db"]);
    assert!(out.changed.is_empty() && out.tombstoned.is_empty() && out.restored.is_empty());
    let web = s
        .get_desired("App", "web")
        .await
        .expect("get")
        .expect("web");
    assert_eq!(web.generation, 1);
    assert_eq!(web.git_commit.as_deref(), Some("c1"));
    assert_eq!(web.spec["spec"]["hash"], "h1");
    assert_eq!(web.source_file, "manifests/web.yaml");

    // The same set again changes nothing, not even with a new commit.
    let src2 = SourceInfo {
        git_commit: Some("c2".to_string()),
        git_dirty: true,
    };
    let out = s
        .record_desired(
            &[record("App", "web", "h1"), record("App", "db", "h1")],
            &src2,
        )
        .await
        .expect("record");
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(out.unchanged, 2);
    let web = s
        .get_desired("App", "web")
        .await
        .expect("get")
        .expect("web");
    assert_eq!(web.generation, 1);
    assert_eq!(web.git_commit.as_deref(), Some("c1"));

    // A changed hash bumps the generation and records the new commit.
    let out = s
        .record_desired(
            &[record("App", "web", "h2"), record("App", "db", "h1")],
            &src2,
        )
        .await
        .expect("record");
    assert_eq!(keys(&out.changed), ["App/web"]);
    let web = s
        .get_desired("App", "web")
        .await
        .expect("get")
        .expect("web");
    assert_eq!(web.generation, 2);
    assert_eq!(web.git_commit.as_deref(), Some("c2"));
    assert!(web.git_dirty);
    assert_eq!(web.spec["spec"]["hash"], "h2");
    let db_row = s.get_desired("App", "db").await.expect("get").expect("db");
    assert_eq!(db_row.generation, 1);

    // Moving a resource in its file is not a change to reconcile, but is recorded.
    let mut moved = record("App", "db", "h1");
    moved.source_line = 40;
    let out = s
        .record_desired(&[record("App", "web", "h2"), moved], &src2)
        .await
        .expect("record");
    assert!(out.is_empty());
    let db_row = s.get_desired("App", "db").await.expect("get").expect("db");
    assert_eq!((db_row.source_line, db_row.generation), (40, 1));

    // Leaving the set tombstones; the row stays until forgotten.
    let out = s
        .record_desired(&[record("App", "web", "h2")], &src2)
        .await
        .expect("record");
    assert_eq!(keys(&out.tombstoned), ["App/db"]);
    let live: Vec<String> = s
        .list_desired(None, false)
        .await
        .expect("list")
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(live, ["App/web"]);
    let all = s.list_desired(Some("App"), true).await.expect("list");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|r| r.name == "db" && r.is_tombstoned()));
    assert!(
        s.list_desired(Some("Server"), true)
            .await
            .expect("list")
            .is_empty()
    );
    // Tombstoning is not repeated.
    let out = s
        .record_desired(&[record("App", "web", "h2")], &src2)
        .await
        .expect("record");
    assert!(out.is_empty(), "{out:?}");

    // Coming back clears the tombstone; same spec, same generation.
    let out = s
        .record_desired(
            &[record("App", "web", "h2"), record("App", "db", "h1")],
            &src2,
        )
        .await
        .expect("record");
    assert_eq!(keys(&out.restored), ["App/db"]);
    let db_row = s.get_desired("App", "db").await.expect("get").expect("db");
    assert!(!db_row.is_tombstoned());
    assert_eq!(db_row.generation, 1);

    // Coming back with a new spec also bumps the generation.
    s.record_desired(&[record("App", "web", "h2")], &src2)
        .await
        .expect("record");
    let out = s
        .record_desired(
            &[record("App", "web", "h2"), record("App", "db", "h9")],
            &src2,
        )
        .await
        .expect("record");
    assert_eq!(keys(&out.restored), ["App/db"]);
    let db_row = s.get_desired("App", "db").await.expect("get").expect("db");
    assert_eq!(db_row.generation, 2);

    // Only a tombstoned row can be forgotten.
    assert!(!s.forget_desired("App", "db").await.expect("forget live"));
    s.record_desired(&[record("App", "web", "h2")], &src2)
        .await
        .expect("record");
    assert!(s.forget_desired("App", "db").await.expect("forget"));
    assert!(s.get_desired("App", "db").await.expect("get").is_none());
    assert!(!s.forget_desired("App", "db").await.expect("forget again"));

    // A forgotten resource that comes back starts over.
    let out = s
        .record_desired(
            &[record("App", "web", "h2"), record("App", "db", "h1")],
            &src2,
        )
        .await
        .expect("record");
    assert_eq!(keys(&out.created), ["App/db"]);
}

async fn desired_set_is_recorded_atomically(db: Db) {
    let s = &db.store;
    let src = SourceInfo::default();
    s.record_desired(&[record("App", "a", "h1"), record("App", "b", "h1")], &src)
        .await
        .expect("record");

    // `a` changes (an UPDATE runs), 600 new resources (one batch of inserts is flushed), then
    // a duplicate: the error must roll all of it back, and `b` must not be tombstoned.
    let mut items = vec![record("App", "a", "h2")];
    items.extend((0..600).map(|i| record("App", &format!("new-{i}"), "h1")));
    items.push(record("App", "new-7", "h1"));
    let err = s.record_desired(&items, &src).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("App/new-7"), "{err}");

    let rows = s.list_desired(None, true).await.expect("list");
    let summary: Vec<(String, String, i64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.spec_hash.clone(),
                r.generation,
                r.is_tombstoned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a".to_string(), "h1".to_string(), 1, false),
            ("b".to_string(), "h1".to_string(), 1, false)
        ]
    );

    let err = s
        .record_desired(&[record("App", "", "h1")], &src)
        .await
        .expect_err("empty name");
    assert!(matches!(err, StoreError::Invalid { .. }));
}

async fn observed_snapshots_only_on_change(db: Db) {
    let s = &db.store;
    let s1 = json!({"state": "running", "image": "nginx:1", "ports": [80]});
    assert_eq!(
        s.record_observed("App", "web", &s1, ChangeType::Created)
            .await
            .expect("observe"),
        Some(ChangeType::Created)
    );
    assert_eq!(
        s.record_observed("App", "web", &s1, ChangeType::Created)
            .await
            .expect("observe"),
        None
    );
    // Same value, different key order: not a change.
    let reordered = json!({"ports": [80], "image": "nginx:1", "state": "running"});
    assert_eq!(
        s.record_observed("App", "web", &reordered, ChangeType::Created)
            .await
            .expect("observe"),
        None
    );
    let s2 = json!({"state": "exited", "image": "nginx:1", "ports": [80]});
    assert_eq!(
        s.record_observed("App", "web", &s2, ChangeType::Created)
            .await
            .expect("observe"),
        Some(ChangeType::Updated)
    );
    let observed = s
        .get_observed("App", "web")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(observed.state, s2);
    assert!(observed.observed_at >= observed.changed_at);

    assert_eq!(
        s.record_observed("App", "found", &s1, ChangeType::Discovered)
            .await
            .expect("observe"),
        Some(ChangeType::Discovered)
    );
    let err = s
        .record_observed("App", "x", &s1, ChangeType::Updated)
        .await
        .expect_err("first_seen must be created or discovered");
    assert!(matches!(err, StoreError::Invalid { .. }));

    let names: Vec<String> = s
        .list_observed("App")
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["found", "web"]);

    assert!(s.record_gone("App", "web").await.expect("gone"));
    assert!(!s.record_gone("App", "web").await.expect("gone twice"));
    assert!(s.get_observed("App", "web").await.expect("get").is_none());

    let history = s.list_snapshots("App", "web").await.expect("snapshots");
    let changes: Vec<ChangeType> = history.iter().map(|h| h.change_type).collect();
    assert_eq!(
        changes,
        [
            ChangeType::Created,
            ChangeType::Updated,
            ChangeType::Deleted
        ]
    );
    assert_eq!(history[0].state, s1);
    assert_eq!(history[1].state, s2);
    assert_eq!(history[2].state, s2, "a deletion keeps the last state seen");
    assert!(
        history
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );

    // Seen again after it was gone: a first sighting again.
    assert_eq!(
        s.record_observed("App", "web", &s1, ChangeType::Created)
            .await
            .expect("observe"),
        Some(ChangeType::Created)
    );
}

async fn observed_batch_of_ten_thousand(db: Db) {
    let s = &db.store;
    let items: Vec<(String, serde_json::Value)> = (0..10_000)
        .map(|i| {
            (
                format!("vm-{i:05}"),
                json!({"id": i, "status": "running", "node": format!("n{}", i % 7)}),
            )
        })
        .collect();

    let started = Instant::now();
    let changes = s
        .record_observed_many("ProxmoxVm", &items, ChangeType::Discovered)
        .await
        .expect("first batch");
    let first = started.elapsed();
    assert_eq!(changes.len(), 10_000);
    assert!(changes.iter().all(|(_, c)| *c == ChangeType::Discovered));

    let started = Instant::now();
    let listed = s.list_observed("ProxmoxVm").await.expect("list");
    let list_time = started.elapsed();
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed[42].name, "vm-00042");
    assert_eq!(listed[42].state["id"], 42);

    let mut changed = items.clone();
    for i in (0..10_000).step_by(1000) {
        changed[i].1["status"] = json!("stopped");
    }
    let started = Instant::now();
    let changes = s
        .record_observed_many("ProxmoxVm", &changed, ChangeType::Discovered)
        .await
        .expect("second batch");
    let second = started.elapsed();
    assert_eq!(changes.len(), 10);
    assert!(changes.iter().all(|(_, c)| *c == ChangeType::Updated));
    assert_eq!(changes[0].0, "vm-00000");

    let started = Instant::now();
    let changes = s
        .record_observed_many("ProxmoxVm", &changed, ChangeType::Discovered)
        .await
        .expect("unchanged batch");
    let unchanged = started.elapsed();
    assert!(changes.is_empty());

    let history = s
        .list_snapshots("ProxmoxVm", "vm-01000")
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].state["status"], "stopped");
    assert_eq!(
        s.list_snapshots("ProxmoxVm", "vm-01001")
            .await
            .expect("history")
            .len(),
        1
    );
    eprintln!(
        "{}: 10,000 observed rows: insert {first:?}, list {list_time:?}, 10 changed {second:?}, \
         none changed {unchanged:?}",
        s.backend_name()
    );
    // Generous bounds for a debug build on a slow CI machine; the point is "not per-row".
    assert!(first.as_secs() < 60 && second.as_secs() < 30 && list_time.as_secs() < 30);

    let err = s
        .record_observed_many(
            "ProxmoxVm",
            &[("a".to_string(), json!(1)), ("a".to_string(), json!(2))],
            ChangeType::Created,
        )
        .await
        .expect_err("duplicate names");
    assert!(matches!(err, StoreError::Invalid { .. }));
}

fn container(id: &str, name: &str, state: &str) -> ContainerRecord {
    ContainerRecord {
        id: id.to_string(),
        name: name.to_string(),
        image: "nginx:1.27".to_string(),
        ports: json!([{"host": 8080, "container": 80, "protocol": "tcp"}]),
        state: state.to_string(),
        status: format!("{state} for a while"),
        labels: [("ballast.app".to_string(), name.to_string())].into(),
        app: Some(name.to_string()),
    }
}

async fn containers_are_replaced_per_server(db: Db) {
    let s = &db.store;
    s.replace_containers(
        "nas01",
        &[
            container("c1", "web", "running"),
            container("c2", "db", "running"),
        ],
    )
    .await
    .expect("replace");
    s.replace_containers("local", &[container("c9", "other", "running")])
        .await
        .expect("replace");

    let nas = s.list_containers(Some("nas01")).await.expect("list");
    assert_eq!(nas.len(), 2);
    assert_eq!(nas[0].name, "db");
    assert_eq!(nas[0].labels["ballast.app"], "db");
    assert_eq!(nas[0].ports[0]["host"], 8080);
    let db_created = nas[0].created_at;

    s.replace_containers("nas01", &[container("c2", "db", "exited")])
        .await
        .expect("replace");
    let nas = s.list_containers(Some("nas01")).await.expect("list");
    assert_eq!(nas.len(), 1);
    assert_eq!(
        (nas[0].id.as_str(), nas[0].state.as_str()),
        ("c2", "exited")
    );
    assert_eq!(nas[0].created_at, db_created, "first-seen time is kept");
    assert!(nas[0].updated_at >= db_created);

    let all = s.list_containers(None).await.expect("list");
    let ids: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.server.as_str(), c.id.as_str()))
        .collect();
    assert_eq!(ids, [("local", "c9"), ("nas01", "c2")]);

    s.replace_containers("nas01", &[]).await.expect("replace");
    assert!(
        s.list_containers(Some("nas01"))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(s.list_containers(None).await.expect("list").len(), 1);
}

async fn task_lifecycle(db: Db) {
    let s = &db.store;
    let t1 = s
        .create_task("App", "web", "create", &me())
        .await
        .expect("create");
    let task = s.get_task(&t1).await.expect("get").expect("task");
    assert_eq!((task.status, task.attempts), (TaskStatus::Pending, 0));
    assert!(task.started_at.is_none());

    s.start_task(&t1).await.expect("start");
    let err = s.start_task(&t1).await.expect_err("already running");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    s.append_task_log(&t1, "pulling image").await.expect("log");
    s.append_task_log(&t1, "starting container\n")
        .await
        .expect("log");
    s.set_task_external_id(&t1, "UPID:pve1:0001")
        .await
        .expect("external id");
    s.finish_task(&t1, Ok(())).await.expect("finish");
    let task = s.get_task(&t1).await.expect("get").expect("task");
    assert_eq!(task.status, TaskStatus::Succeeded);
    assert_eq!(task.attempts, 1);
    assert_eq!(task.log, "pulling image\nstarting container\n");
    assert_eq!(task.external_id.as_deref(), Some("UPID:pve1:0001"));
    assert!(task.started_at.is_some() && task.finished_at.is_some());
    assert!(task.error.is_none());
    let err = s.finish_task(&t1, Ok(())).await.expect_err("not running");
    assert!(matches!(err, StoreError::Invalid { .. }));

    let t2 = s
        .create_task("App", "db", "update", &me())
        .await
        .expect("create");
    s.start_task(&t2).await.expect("start");
    s.finish_task(&t2, Err("image not found".to_string()))
        .await
        .expect("finish");
    // A retry counts a second attempt and clears the old outcome.
    s.start_task(&t2).await.expect("restart");
    let task = s.get_task(&t2).await.expect("get").expect("task");
    assert_eq!((task.status, task.attempts), (TaskStatus::Running, 2));
    assert!(task.error.is_none() && task.finished_at.is_none());
    s.finish_task(&t2, Err("image not found".to_string()))
        .await
        .expect("finish");
    let task = s.get_task(&t2).await.expect("get").expect("task");
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.error.as_deref(), Some("image not found"));

    let t3 = s
        .create_task("App", "web", "update", &me())
        .await
        .expect("create");
    s.start_task(&t3).await.expect("start");
    s.append_task_log(&t3, "stopping old container")
        .await
        .expect("log");
    let running: Vec<TaskId> = s
        .running_tasks()
        .await
        .expect("running")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(running, [t3]);

    // After a crash: what was running is marked interrupted, never replayed.
    s.mark_interrupted(&t3, "ballast stopped while this task was running")
        .await
        .expect("interrupt");
    let task = s.get_task(&t3).await.expect("get").expect("task");
    assert_eq!(task.status, TaskStatus::Interrupted);
    assert!(task.finished_at.is_some());
    assert_eq!(
        task.log,
        "stopping old container\nballast stopped while this task was running\n"
    );
    assert!(s.running_tasks().await.expect("running").is_empty());
    assert!(s.mark_interrupted(&t3, "again").await.is_err());

    let ids = |tasks: Vec<ballast_store::TaskRow>| tasks.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_tasks(TaskFilter::default()).await.expect("list")),
        [t3, t2, t1]
    );
    let failed = TaskFilter {
        failed_only: true,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_tasks(failed.clone()).await.expect("list")),
        [t3, t2]
    );
    let web = TaskFilter {
        kind: Some("App".to_string()),
        name: Some("web".to_string()),
        ..Default::default()
    };
    assert_eq!(ids(s.list_tasks(web).await.expect("list")), [t3, t1]);
    let newest = TaskFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(ids(s.list_tasks(newest).await.expect("list")), [t3]);

    let unknown = TaskId(uuid::Uuid::now_v7());
    assert!(matches!(
        s.start_task(&unknown).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.append_task_log(&unknown, "x").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.get_task(&unknown).await.expect("get").is_none());
    assert_eq!(t1.to_string().parse::<TaskId>().expect("parse"), t1);
}

async fn audit_chain_detects_tampering(db: Db) {
    let s = &db.store;
    assert_eq!(s.verify_audit_chain().await.expect("verify"), 0);
    for i in 1..=5 {
        let row = s
            .append_audit("alice", "apply", &format!("change {i}"), Some("abc123"))
            .await
            .expect("append");
        assert_eq!(row.seq, i);
        if i == 1 {
            assert_eq!(row.prev_hash, "0".repeat(64));
        }
        assert_eq!(row.hash.len(), 64);
    }
    s.append_audit("bob", "secret set", "db-password", None)
        .await
        .expect("append");
    assert_eq!(s.verify_audit_chain().await.expect("verify"), 6);

    let newest = s.list_audit(2).await.expect("list");
    assert_eq!(newest.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 5]);
    assert_eq!(newest[0].prev_hash, newest[1].hash);
    assert_eq!(newest[0].git_commit, None);
    assert_eq!(s.list_audit(100).await.expect("list").len(), 6);

    // Editing a row breaks the chain at that row.
    raw_sql(
        &db.url,
        "UPDATE audit_log SET summary = 'nothing to see' WHERE seq = 3",
    )
    .await;
    let err = s.verify_audit_chain().await.expect_err("tampered");
    let broken = err.audit_break().expect("an audit break").clone();
    assert_eq!(broken.seq, 3, "{broken}");
    assert!(broken.to_string().contains("edited"), "{broken}");

    // Put it back: the chain verifies again (the hash covers content, nothing else).
    raw_sql(
        &db.url,
        "UPDATE audit_log SET summary = 'change 3' WHERE seq = 3",
    )
    .await;
    assert_eq!(s.verify_audit_chain().await.expect("verify"), 6);

    // Recomputing an edited row's own hash still breaks the link from the next row.
    raw_sql(
        &db.url,
        "UPDATE audit_log SET hash = '1111111111111111111111111111111111111111111111111111111111111111' WHERE seq = 4",
    )
    .await;
    let err = s.verify_audit_chain().await.expect_err("tampered");
    let broken = err.audit_break().expect("an audit break").clone();
    assert_eq!(broken.seq, 4);

    // Deleting a row is a gap.
    raw_sql(&db.url, "DELETE FROM audit_log WHERE seq IN (4)").await;
    let err = s.verify_audit_chain().await.expect_err("gap");
    let broken = err.audit_break().expect("an audit break").clone();
    assert_eq!(broken.seq, 4);
    assert!(broken.reason.contains("missing"), "{broken}");
}

async fn concurrent_writers_queue(db: Db) {
    // Two stores on one database, as `apply` and the daemon: their writes interleave without
    // "database is locked" errors and the audit chain stays one chain.
    let other = Store::open(&db.url).await.expect("second store");
    let write = |store: Store, who: &'static str| async move {
        for i in 0..25 {
            store
                .append_audit(who, "apply", &format!("{who} {i}"), None)
                .await
                .expect("append");
            store
                .record_observed("App", who, &json!({"i": i}), ChangeType::Created)
                .await
                .expect("observe");
        }
    };
    let a = tokio::spawn(write(db.store.clone(), "a"));
    let b = tokio::spawn(write(other.clone(), "b"));
    a.await.expect("writer a");
    b.await.expect("writer b");
    assert_eq!(db.store.verify_audit_chain().await.expect("verify"), 50);
    assert_eq!(
        db.store
            .list_snapshots("App", "a")
            .await
            .expect("snapshots")
            .len(),
        25
    );
}

async fn secrets_are_stored_as_ciphertext(db: Db) {
    let s = &db.store;
    let key = SecretKey::generate();
    let plaintext = "correct-horse-battery-staple-4711";
    let sealed = key.encrypt("db-password", plaintext.as_bytes());
    let v1 = s
        .put_secret("db-password", &sealed, "alice")
        .await
        .expect("put");

    let stored = s
        .get_secret("db-password")
        .await
        .expect("get")
        .expect("secret");
    assert_eq!(stored.sealed, sealed);
    assert_eq!(stored.version, v1);
    let opened = key.decrypt("db-password", &stored.sealed).expect("open");
    assert_eq!(opened.as_slice(), plaintext.as_bytes());

    let sealed2 = key.encrypt("db-password", b"another value");
    let v2 = s
        .put_secret("db-password", &sealed2, "alice")
        .await
        .expect("put again");
    assert_ne!(v1, v2);
    let stored2 = s
        .get_secret("db-password")
        .await
        .expect("get")
        .expect("secret");
    assert_eq!(stored2.version, v2);
    assert_eq!(stored2.created_at, stored.created_at);
    assert_eq!(stored2.sealed, sealed2);
    s.put_secret(
        "api-token",
        &key.encrypt("api-token", plaintext.as_bytes()),
        "alice",
    )
    .await
    .expect("put");

    let listed = s.list_secrets().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["api-token", "db-password"]);
    assert!(listed.iter().all(|i| i.key_id == key.key_id()));

    // Nothing in the database holds the plaintext: for SQLite scan the files themselves
    // (database, WAL and shared memory), for both read every column back raw.
    if let Some(file) = &db.sqlite_file {
        let dir = file.parent().expect("dir");
        let mut scanned = 0;
        for entry in std::fs::read_dir(dir).expect("readdir").flatten() {
            let bytes = std::fs::read(entry.path()).expect("read db file");
            scanned += bytes.len();
            assert!(
                !bytes
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes()),
                "plaintext found in {}",
                entry.path().display()
            );
        }
        assert!(scanned > 0);
    }
    let raw = Database::connect(db.url.as_str()).await.expect("raw");
    let rows = raw
        .query_all_raw(sea_orm::Statement::from_string(
            raw.get_database_backend(),
            "SELECT name, key_id, nonce, ciphertext, version FROM secrets",
        ))
        .await
        .expect("query");
    assert_eq!(rows.len(), 2);
    for row in rows {
        let name: String = row.try_get("", "name").expect("name");
        let ciphertext: Vec<u8> = row.try_get("", "ciphertext").expect("ciphertext");
        assert!(
            !ciphertext
                .windows(plaintext.len())
                .any(|w| w == plaintext.as_bytes())
        );
        // The stored bytes are exactly what was sealed: plaintext length plus the 16-byte tag.
        let expected = if name == "api-token" {
            plaintext.len()
        } else {
            "another value".len()
        };
        assert_eq!(ciphertext.len(), expected + 16, "{name}");
    }
    raw.close().await.expect("close");

    assert!(s.delete_secret("api-token", "alice").await.expect("delete"));
    assert!(
        !s.delete_secret("api-token", "alice")
            .await
            .expect("delete again")
    );
    assert!(s.get_secret("api-token").await.expect("get").is_none());
}

#[derive(Debug, thiserror::Error)]
#[error("cannot re-encrypt {0}")]
struct RewrapFailed(String);

async fn rewrap_is_all_or_nothing(db: Db) {
    let s = &db.store;
    let old = SecretKey::generate();
    let new = SecretKey::generate();
    for name in ["a", "b", "c"] {
        let sealed = old.encrypt(name, format!("value of {name}").as_bytes());
        s.put_secret(name, &sealed, "alice").await.expect("put");
    }
    let before: Vec<_> = secrets_snapshot(s).await;

    // Fails on the second secret: nothing may change, not even the first.
    let err = s
        .rewrap_secrets("k-new", "alice", |secret| {
            if secret.name == "b" {
                return Err(RewrapFailed(secret.name.clone()));
            }
            let plain = old
                .decrypt(&secret.name, &secret.sealed)
                .map_err(|e| RewrapFailed(e.to_string()))?;
            Ok(new.encrypt(&secret.name, &plain))
        })
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, StoreError::Rewrap { ref name, .. } if name == "b"),
        "{err:?}"
    );
    assert_eq!(secrets_snapshot(s).await, before);

    // A decrypt error from ballast-secrets is accepted as the callback's error type as well.
    let wrong = SecretKey::generate();
    let err = s
        .rewrap_secrets("k-new", "alice", |secret| {
            // The form `ballast secret rotate-key` uses: the error is a `SecretError`.
            wrong
                .decrypt(&secret.name, &secret.sealed)
                .map(|plain| new.encrypt(&secret.name, &plain))
        })
        .await
        .expect_err("wrong key");
    assert!(err.to_string().contains("was encrypted with key"), "{err}");
    assert_eq!(secrets_snapshot(s).await, before);

    let count = s
        .rewrap_secrets("k-new", "alice", |secret| {
            old.decrypt(&secret.name, &secret.sealed)
                .map(|plain| new.encrypt(&secret.name, &plain))
        })
        .await
        .expect("rewrap");
    assert_eq!(count, 3);
    for (name, version) in before.iter().map(|s| (&s.0, s.1)) {
        let stored = s.get_secret(name).await.expect("get").expect("secret");
        assert_eq!(stored.sealed.key_id, new.key_id());
        assert_eq!(stored.version, version, "re-encryption keeps the version");
        let plain = new.decrypt(name, &stored.sealed).expect("new key opens it");
        assert_eq!(plain.as_slice(), format!("value of {name}").as_bytes());
        assert!(old.decrypt(name, &stored.sealed).is_err());
    }
}

/// Every secret's name, version and sealed value, to compare before and after.
async fn secrets_snapshot(s: &Store) -> Vec<(String, uuid::Uuid, Sealed)> {
    let mut out = Vec::new();
    for info in s.list_secrets().await.expect("list") {
        let stored = s
            .get_secret(&info.name)
            .await
            .expect("get")
            .expect("secret");
        out.push((stored.name, stored.version, stored.sealed));
    }
    out
}

#[tokio::test]
async fn bad_urls_are_clear_errors_without_passwords() {
    let err = Store::open("mysql://root:hunter2@localhost/ballast")
        .await
        .expect_err("unsupported");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("sqlite://"), "{err}");

    // Port 1 on localhost: connection refused, quickly.
    let err = Store::open("postgres://ballast:hunter2@127.0.0.1:1/ballast")
        .await
        .expect_err("no server");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(
        msg.contains("postgres://ballast:***@127.0.0.1:1/ballast"),
        "{msg}"
    );
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::open("sqlite::memory:").await.expect("open");
    store
        .create_task("App", "x", "create", &me())
        .await
        .expect("write");
    assert_eq!(
        store
            .list_tasks(TaskFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );
}

const LONG: Duration = Duration::from_secs(60);

async fn lease_acquire_renew_release(db: Db) {
    let s = &db.store;
    assert!(s.list_leases().await.expect("list").is_empty());
    assert!(
        s.try_acquire_lease("App/web", "apply-1", LONG)
            .await
            .expect("acquire")
    );
    let first = s.get_lease("App/web").await.expect("get").expect("lease");
    assert_eq!(first.holder, "apply-1");
    assert_eq!(first.acquired_at, first.renewed_at);
    assert_eq!(
        first.expires_at - first.acquired_at,
        chrono::Duration::seconds(60)
    );
    assert!(!first.is_expired_at(chrono::Utc::now()));

    // Someone else is refused and changes nothing.
    assert!(
        !s.try_acquire_lease("App/web", "daemon", LONG)
            .await
            .expect("refused")
    );
    assert!(
        !s.renew_lease("App/web", "daemon", LONG)
            .await
            .expect("renew other")
    );
    assert!(
        !s.release_lease("App/web", "daemon")
            .await
            .expect("release other")
    );
    assert_eq!(
        s.get_lease("App/web").await.expect("get").expect("lease"),
        first
    );

    // The holder renews, by acquiring again or by renew_lease; acquired_at is kept.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        s.try_acquire_lease("App/web", "apply-1", LONG)
            .await
            .expect("re-acquire")
    );
    let renewed = s.get_lease("App/web").await.expect("get").expect("lease");
    assert_eq!(renewed.acquired_at, first.acquired_at);
    assert!(renewed.renewed_at > first.renewed_at && renewed.expires_at > first.expires_at);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        s.renew_lease("App/web", "apply-1", LONG)
            .await
            .expect("renew")
    );
    let again = s.get_lease("App/web").await.expect("get").expect("lease");
    assert_eq!(again.acquired_at, first.acquired_at);
    assert!(again.expires_at > renewed.expires_at);

    assert!(
        s.try_acquire_lease("App/db", "apply-1", LONG)
            .await
            .expect("acquire")
    );
    assert!(
        s.try_acquire_lease("Server/nas01", "daemon", LONG)
            .await
            .expect("acquire")
    );
    let listed: Vec<(String, String)> = s
        .list_leases()
        .await
        .expect("list")
        .into_iter()
        .map(|l| (l.name, l.holder))
        .collect();
    assert_eq!(
        listed,
        [
            ("App/db".to_string(), "apply-1".to_string()),
            ("App/web".to_string(), "apply-1".to_string()),
            ("Server/nas01".to_string(), "daemon".to_string()),
        ]
    );

    // Released, the lease is free for anyone.
    assert!(
        s.release_lease("App/web", "apply-1")
            .await
            .expect("release")
    );
    assert!(
        !s.release_lease("App/web", "apply-1")
            .await
            .expect("release twice")
    );
    assert!(
        !s.renew_lease("App/web", "apply-1", LONG)
            .await
            .expect("renew lost")
    );
    assert!(
        s.try_acquire_lease("App/web", "daemon", LONG)
            .await
            .expect("acquire")
    );
    let taken = s.get_lease("App/web").await.expect("get").expect("lease");
    assert_eq!(taken.holder, "daemon");
    assert!(taken.acquired_at > first.acquired_at);

    assert_eq!(
        s.release_all_leases("daemon").await.expect("release all"),
        2
    );
    assert_eq!(
        s.release_all_leases("daemon").await.expect("release all"),
        0
    );
    assert_eq!(s.list_leases().await.expect("list").len(), 1);
    assert!(s.get_lease("App/web").await.expect("get").is_none());

    assert!(matches!(
        s.try_acquire_lease("App/web", "", LONG).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        s.try_acquire_lease("App/web", "x", Duration::MAX).await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn lease_expiry_allows_takeover(db: Db) {
    let s = &db.store;
    let short = Duration::from_millis(200);
    assert!(
        s.try_acquire_lease("App/web", "a", short)
            .await
            .expect("acquire")
    );
    assert!(
        !s.try_acquire_lease("App/web", "b", short)
            .await
            .expect("held")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = s.get_lease("App/web").await.expect("get").expect("lease");
    assert!(expired.is_expired_at(chrono::Utc::now()));

    // Expired: another holder takes it over, and the old holder has lost it.
    assert!(
        s.try_acquire_lease("App/web", "b", short)
            .await
            .expect("takeover")
    );
    let taken = s.get_lease("App/web").await.expect("get").expect("lease");
    assert_eq!(taken.holder, "b");
    assert!(taken.acquired_at > expired.acquired_at);
    assert!(
        !s.renew_lease("App/web", "a", short)
            .await
            .expect("renew lost")
    );
    assert!(
        !s.try_acquire_lease("App/web", "a", short)
            .await
            .expect("held by b")
    );
    assert!(!s.release_lease("App/web", "a").await.expect("release lost"));

    // An expired lease nobody took over is still its holder's to renew.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.renew_lease("App/web", "b", LONG).await.expect("renew"));
    assert!(
        !s.try_acquire_lease("App/web", "a", short)
            .await
            .expect("renewed")
    );
}

async fn lease_race_between_two_stores(db: Db) {
    // Two processes (two pools on one database) race for one lease, 50 times.
    let stores = [
        db.store.clone(),
        Store::open(&db.url).await.expect("second store"),
    ];
    for round in 0..50 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let contenders: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let holder = format!("holder-{i}");
                    barrier.wait().await;
                    let won = store
                        .try_acquire_lease("App/contended", &holder, LONG)
                        .await
                        .expect("try acquire");
                    (holder, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for contender in contenders {
            let (holder, won) = contender.await.expect("contender");
            if won {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let lease = stores[0]
            .get_lease("App/contended")
            .await
            .expect("get")
            .expect("lease");
        assert_eq!(lease.holder, winners[0], "round {round}");
        assert!(
            stores[1]
                .release_lease("App/contended", &winners[0])
                .await
                .expect("release")
        );
    }
}

async fn lease_batches(db: Db) {
    let s = &db.store;
    let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert!(
        s.try_acquire_leases(&[], "a", LONG)
            .await
            .expect("empty")
            .is_empty()
    );
    assert_eq!(
        s.try_acquire_leases(&names(&["App/b", "App/a"]), "a", LONG)
            .await
            .expect("batch"),
        names(&["App/b", "App/a"])
    );
    // Held names are skipped; the rest are taken, in the order asked, duplicates once.
    assert_eq!(
        s.try_acquire_leases(&names(&["App/c", "App/b", "App/c", "App/d"]), "b", LONG)
            .await
            .expect("batch"),
        names(&["App/c", "App/d"])
    );
    assert_eq!(
        s.try_acquire_leases(&names(&["App/a", "App/c"]), "a", LONG)
            .await
            .expect("batch"),
        names(&["App/a"])
    );
    assert!(matches!(
        s.try_acquire_leases(&names(&["App/e", ""]), "a", LONG)
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(s.get_lease("App/e").await.expect("get").is_none());

    // Two stores taking overlapping batches in opposite orders: no deadlock, and every name
    // goes to exactly one of them.
    let other = Store::open(&db.url).await.expect("second store");
    let set = names(&["Vm/x", "Vm/y", "Vm/z"]);
    let mut reversed = set.clone();
    reversed.reverse();
    for round in 0..20 {
        let a = {
            let (store, set) = (s.clone(), set.clone());
            tokio::spawn(async move { store.try_acquire_leases(&set, "a", LONG).await })
        };
        let b = {
            let (store, set) = (other.clone(), reversed.clone());
            tokio::spawn(async move { store.try_acquire_leases(&set, "b", LONG).await })
        };
        let a = a.await.expect("task a").expect("batch a");
        let b = b.await.expect("task b").expect("batch b");
        let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
        all.sort();
        assert_eq!(all, set, "round {round}: a {a:?} b {b:?}");
        s.release_all_leases("a").await.expect("release");
        other.release_all_leases("b").await.expect("release");
    }
}

fn event<'a>(
    kind: &'a str,
    severity: Severity,
    message: &str,
    resource: Option<&str>,
) -> NewEvent<'a> {
    NewEvent {
        kind,
        severity,
        message: message.to_string(),
        resource: resource.map(str::to_string),
    }
}

async fn system_events_append_and_list(db: Db) {
    let s = &db.store;
    assert!(
        s.list_events(EventFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(s.latest_event("reload").await.expect("latest").is_none());

    let started = s
        .append_event(event(
            "daemon_started",
            Severity::Info,
            "daemon started",
            None,
        ))
        .await
        .expect("append");
    assert_eq!(started.seq, 1);
    assert_eq!(started.kind, "daemon_started");
    s.append_event(event("reload", Severity::Info, "3 resources", None))
        .await
        .expect("append");
    s.append_event(event(
        "drift_found",
        Severity::Warning,
        "image differs",
        Some("App/web"),
    ))
    .await
    .expect("append");
    s.append_event(event(
        "reconcile_failed",
        Severity::Error,
        "image not found",
        Some("App/web"),
    ))
    .await
    .expect("append");
    let last = s
        .append_event(event("reload", Severity::Info, "4 resources", None))
        .await
        .expect("append");
    assert_eq!(last.seq, 5);

    let seqs = |rows: Vec<ballast_store::EventRow>| rows.iter().map(|e| e.seq).collect::<Vec<_>>();
    // Without since_seq: newest first.
    let all = s.list_events(EventFilter::default()).await.expect("list");
    assert_eq!(seqs(all.clone()), [5, 4, 3, 2, 1]);
    assert_eq!(all[4], started, "a row reads back as appended");
    let newest_two = EventFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(seqs(s.list_events(newest_two).await.expect("list")), [5, 4]);

    // With since_seq: the events after it, oldest first (following).
    let after = |since, limit| EventFilter {
        since_seq: Some(since),
        limit,
        ..Default::default()
    };
    assert_eq!(
        seqs(s.list_events(after(2, None)).await.expect("list")),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(s.list_events(after(0, Some(2))).await.expect("list")),
        [1, 2]
    );
    assert!(
        s.list_events(after(5, None))
            .await
            .expect("list")
            .is_empty()
    );

    let web = EventFilter {
        resource: Some("App/web".to_string()),
        ..Default::default()
    };
    assert_eq!(seqs(s.list_events(web).await.expect("list")), [4, 3]);
    let at_least = |min| EventFilter {
        min_severity: Some(min),
        ..Default::default()
    };
    assert_eq!(
        seqs(s.list_events(at_least(Severity::Info)).await.expect("list")),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        seqs(
            s.list_events(at_least(Severity::Warning))
                .await
                .expect("list")
        ),
        [4, 3]
    );
    assert_eq!(
        seqs(
            s.list_events(at_least(Severity::Error))
                .await
                .expect("list")
        ),
        [4]
    );
    let combined = EventFilter {
        since_seq: Some(3),
        resource: Some("App/web".to_string()),
        min_severity: Some(Severity::Warning),
        limit: Some(10),
    };
    let rows = s.list_events(combined).await.expect("list");
    assert_eq!(seqs(rows.clone()), [4]);
    assert_eq!(rows[0].severity, Severity::Error);
    assert_eq!(rows[0].message, "image not found");
    assert_eq!(rows[0].resource.as_deref(), Some("App/web"));

    let latest = s
        .latest_event("reload")
        .await
        .expect("latest")
        .expect("event");
    assert_eq!((latest.seq, latest.message.as_str()), (5, "4 resources"));
    assert_eq!(latest, last);
    assert!(
        s.latest_event("daemon_stopped")
            .await
            .expect("latest")
            .is_none()
    );

    assert!(matches!(
        s.append_event(event("", Severity::Info, "x", None)).await,
        Err(StoreError::Invalid { .. })
    ));

    // Severity: ordered, lower-case in text and JSON.
    assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
    assert_eq!(Severity::Warning.to_string(), "warning");
    assert_eq!(format!("{:<8}|", Severity::Info), "info    |");
    assert_eq!(
        serde_json::to_value(Severity::Error).expect("json"),
        json!("error")
    );
    assert_eq!("error".parse::<Severity>(), Ok(Severity::Error));
    assert!("fatal".parse::<Severity>().is_err());
    let json = serde_json::to_value(&latest).expect("json");
    assert_eq!(json["type"], "reload");
    assert_eq!(json["severity"], "info");

    // A bad severity written behind the store's back is an error, not a panic.
    raw_sql(
        &db.url,
        "UPDATE system_events SET severity = 'fatal' WHERE seq = 1",
    )
    .await;
    assert!(matches!(
        s.list_events(EventFilter::default()).await,
        Err(StoreError::Corrupt { .. })
    ));
}

async fn system_events_from_two_stores_keep_one_sequence(db: Db) {
    // An apply and the daemon appending at once: one sequence without gaps or duplicates, and
    // a follower paging with since_seq sees every event exactly once.
    let other = Store::open(&db.url).await.expect("second store");
    let write = |store: Store, who: &'static str| async move {
        for i in 0..20 {
            store
                .append_event(NewEvent {
                    kind: "reload",
                    severity: Severity::Info,
                    message: format!("{who} {i}"),
                    resource: None,
                })
                .await
                .expect("append");
        }
    };
    let follower = {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < 40 && Instant::now() < deadline {
                let page = store
                    .list_events(EventFilter {
                        since_seq: Some(seen.last().copied().unwrap_or(0)),
                        limit: Some(7),
                        ..Default::default()
                    })
                    .await
                    .expect("follow");
                seen.extend(page.iter().map(|e| e.seq));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        })
    };
    let a = tokio::spawn(write(db.store.clone(), "a"));
    let b = tokio::spawn(write(other.clone(), "b"));
    a.await.expect("writer a");
    b.await.expect("writer b");
    let expected: Vec<i64> = (1..=40).collect();
    assert_eq!(follower.await.expect("follower"), expected);
    let mut all: Vec<i64> = other
        .list_events(EventFilter::default())
        .await
        .expect("list")
        .iter()
        .map(|e| e.seq)
        .collect();
    all.reverse();
    assert_eq!(all, expected);
}

/// Two holders on different hosts: while the first renews its lease the second is refused,
/// however often it asks; once the first stops renewing, the second takes the lease over after
/// the lease's duration, and the first has lost it.
async fn lease_renewal_keeps_another_host_out_until_it_stops(db: Db) {
    let first = Holder::new("apply", 11, "host-b");
    let second = Holder::new("daemon", 22, "host-c");
    let other_store = Store::open(&db.url).await.expect("second store");
    let ttl = Duration::from_millis(600);
    assert_eq!(
        db.store
            .take_lease("App/web", &first, ttl)
            .await
            .expect("take"),
        LeaseTake::Taken
    );

    // The first renews every ttl/3 for three lease durations.
    let renewer = {
        let store = db.store.clone();
        let holder = first.to_string();
        tokio::spawn(async move {
            let until = Instant::now() + ttl * 3;
            while Instant::now() < until {
                tokio::time::sleep(ttl / 3).await;
                assert!(
                    store
                        .renew_lease("App/web", &holder, ttl)
                        .await
                        .expect("renew"),
                    "the holder keeps its lease while it renews"
                );
            }
        })
    };
    let started = Instant::now();
    while !renewer.is_finished() {
        match other_store
            .take_lease("App/web", &second, ttl)
            .await
            .expect("take")
        {
            LeaseTake::Held(row) => assert_eq!(row.holder, first.to_string()),
            LeaseTake::Taken => panic!(
                "taken over after {:?} while its holder renews",
                started.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    renewer.await.expect("renewer");

    // The first stopped (as a holder on a machine that died): taken over after the TTL.
    let stopped = Instant::now();
    let taken_after = loop {
        match other_store
            .take_lease("App/web", &second, ttl)
            .await
            .expect("take")
        {
            LeaseTake::Taken => break stopped.elapsed(),
            LeaseTake::Held(_) => {
                assert!(stopped.elapsed() < ttl * 4, "never taken over");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        taken_after <= ttl + Duration::from_millis(300),
        "taken over {taken_after:?} after the last renewal (ttl {ttl:?})"
    );
    let row = db
        .store
        .get_lease("App/web")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.holder, second.to_string());
    assert!(
        !db.store
            .renew_lease("App/web", &first.to_string(), ttl)
            .await
            .expect("renew"),
        "the first holder has lost it"
    );

    // A holder of this host that no longer exists is taken over at once, whatever its TTL; a
    // live one (this process) is not.
    assert!(
        db.store
            .try_acquire_lease("App/db", &dead_here().to_string(), LONG)
            .await
            .expect("acquire")
    );
    assert_eq!(
        db.store
            .take_lease("App/db", &me(), LONG)
            .await
            .expect("take"),
        LeaseTake::Taken
    );
    let other_here = Holder::new("daemon", 4_294_966, "host-a");
    assert!(matches!(
        db.store.take_lease("App/db", &other_here, LONG).await.expect("take"),
        LeaseTake::Held(row) if row.holder == me().to_string()
    ));
}

async fn stale_leases_are_cleaned(db: Db) {
    let s = &db.store;
    let short = Duration::from_millis(1);
    let remote_live = Holder::new("daemon", 5, "host-b").to_string();
    let remote_lapsed = Holder::new("daemon", 6, "host-c").to_string();
    for (name, holder, ttl) in [
        ("App/mine", me().to_string(), LONG),
        ("App/remote", remote_live.clone(), LONG),
        ("App/lapsed", remote_lapsed, short),
        ("App/dead", dead_here().to_string(), LONG),
        ("App/garbage", "not a holder".to_string(), short),
    ] {
        assert!(
            s.try_acquire_lease(name, &holder, ttl)
                .await
                .expect("acquire")
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.clean_stale_leases(&me()).await.expect("clean"), 3);
    let left: Vec<(String, String)> = s
        .list_leases()
        .await
        .expect("list")
        .into_iter()
        .map(|l| (l.name, l.holder))
        .collect();
    assert_eq!(
        left,
        [
            ("App/mine".to_string(), me().to_string()),
            ("App/remote".to_string(), remote_live),
        ]
    );
    assert_eq!(s.clean_stale_leases(&me()).await.expect("again"), 0);
}

/// Recovery marks `interrupted` only the running tasks whose owner is gone: a process of this
/// host that exited, or a process elsewhere (or unrecorded) without a live lease on the task's
/// resource. Tasks of live owners, local or remote, are left running and finish normally.
async fn recovery_touches_only_abandoned_tasks(db: Db) {
    let s = &db.store;
    let remote_live = Holder::new("daemon", 5, "host-b");
    let remote_lapsed = Holder::new("apply", 6, "host-c");
    let remote_no_lease = Holder::new("apply", 7, "host-d");
    let remote_lost = Holder::new("apply", 8, "host-e");
    assert!(
        s.try_acquire_lease("App/remote", &remote_live.to_string(), LONG)
            .await
            .expect("lease")
    );
    assert!(
        s.try_acquire_lease(
            "App/lapsed",
            &remote_lapsed.to_string(),
            Duration::from_millis(1)
        )
        .await
        .expect("lease")
    );
    assert!(
        s.try_acquire_lease("App/lost", "someone 1@host-f", LONG)
            .await
            .expect("lease")
    );
    assert!(
        s.try_acquire_lease("App/legacy-held", "someone 1@host-f", LONG)
            .await
            .expect("lease")
    );
    let start = |name: &'static str, owner: Holder| async move {
        let id = s
            .create_task("App", name, "create", &owner)
            .await
            .expect("create");
        s.start_task(&id).await.expect("start");
        id
    };
    let mine = start("mine", me()).await;
    let dead = start("dead", dead_here()).await;
    let remote = start("remote", remote_live.clone()).await;
    let lapsed = start("lapsed", remote_lapsed).await;
    let no_lease = start("no-lease", remote_no_lease).await;
    let lost = start("lost", remote_lost).await;
    let legacy = start("legacy", dead_here()).await;
    let legacy_held = start("legacy-held", dead_here()).await;
    let finished = s
        .create_task("App", "done", "create", &dead_here())
        .await
        .expect("create");
    s.start_task(&finished).await.expect("start");
    s.finish_task(&finished, Ok(())).await.expect("finish");
    // Rows from before owners were recorded.
    raw_sql(
        &db.url,
        &format!("UPDATE tasks SET owner = NULL WHERE id IN ('{legacy}', '{legacy_held}')"),
    )
    .await;
    assert_eq!(
        s.get_task(&legacy).await.expect("get").expect("task").owner,
        None
    );
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Another process of this host recovers (a second pool on the same database).
    let other = Store::open(&db.url).await.expect("second store");
    let marked = other
        .interrupt_abandoned_tasks(&me(), |t| format!("interrupted: {} was abandoned", t.name))
        .await
        .expect("recover");
    let mut names: Vec<&str> = marked.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["dead", "lapsed", "legacy", "lost", "no-lease"]);
    for id in [dead, lapsed, no_lease, lost, legacy] {
        let task = s.get_task(&id).await.expect("get").expect("task");
        assert_eq!(task.status, TaskStatus::Interrupted, "{}", task.name);
        assert_eq!(
            task.error.as_deref(),
            Some(format!("interrupted: {} was abandoned", task.name).as_str())
        );
    }
    for id in [mine, remote, legacy_held] {
        let task = s.get_task(&id).await.expect("get").expect("task");
        assert_eq!(
            task.status,
            TaskStatus::Running,
            "{} is left alone",
            task.name
        );
    }
    assert_eq!(
        s.get_task(&finished)
            .await
            .expect("get")
            .expect("task")
            .status,
        TaskStatus::Succeeded
    );
    let task = s.get_task(&remote).await.expect("get").expect("task");
    assert_eq!(task.owner, Some(remote_live.to_string()));

    // The live owners finish their own tasks; recovery again finds nothing.
    s.finish_task(&mine, Ok(())).await.expect("finish mine");
    s.finish_task(&remote, Err("failed for real".to_string()))
        .await
        .expect("finish remote");
    assert!(
        other
            .interrupt_abandoned_tasks(&me(), |_| String::new())
            .await
            .expect("again")
            .is_empty()
    );
}

async fn key_id_is_recorded_once_and_secret_changes_are_audited(db: Db) {
    let s = &db.store;
    assert_eq!(s.recorded_key_id().await.expect("read"), None);
    assert_eq!(s.record_key_id("k1").await.expect("record"), "k1");
    assert_eq!(
        s.record_key_id("k2").await.expect("record"),
        "k1",
        "the first key recorded stays"
    );
    let again = Store::open(&db.url).await.expect("reopen");
    assert_eq!(
        again.recorded_key_id().await.expect("read").as_deref(),
        Some("k1")
    );

    let key = SecretKey::generate();
    let value = "pl41ntext-never-stored";
    let version = s
        .put_secret(
            "db-password",
            &key.encrypt("db-password", value.as_bytes()),
            "alice",
        )
        .await
        .expect("put");
    s.put_secret("api-token", &key.encrypt("api-token", b"tok"), "alice")
        .await
        .expect("put");
    let refs: Vec<(String, String)> = s
        .sealed_refs()
        .await
        .expect("refs")
        .into_iter()
        .map(|r| (r.name, r.key_id))
        .collect();
    assert_eq!(
        refs,
        [
            ("api-token".to_string(), key.key_id().to_string()),
            ("db-password".to_string(), key.key_id().to_string()),
        ]
    );
    assert!(s.delete_secret("api-token", "bob").await.expect("rm"));
    assert!(!s.delete_secret("api-token", "bob").await.expect("rm twice"));
    let new = SecretKey::generate();
    s.rewrap_secrets(new.key_id(), "carol", |secret| {
        key.decrypt(&secret.name, &secret.sealed)
            .map(|plain| new.encrypt(&secret.name, &plain))
    })
    .await
    .expect("rotate");
    assert_eq!(
        s.recorded_key_id().await.expect("read").as_deref(),
        Some(new.key_id())
    );
    s.replace_key_id("k9", "dave").await.expect("new key");
    assert_eq!(
        s.recorded_key_id().await.expect("read").as_deref(),
        Some("k9")
    );

    let audit: Vec<(String, String, String)> = s
        .list_audit(10)
        .await
        .expect("audit")
        .into_iter()
        .rev()
        .map(|r| (r.actor, r.action, r.summary))
        .collect();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|(actor, action, _)| (actor.as_str(), action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("alice", "secret set"),
            ("alice", "secret set"),
            ("bob", "secret rm"),
            ("carol", "secret rotate-key"),
            ("dave", "secret new-key"),
        ]
    );
    assert!(
        audit[0].2.contains("`db-password`") && audit[0].2.contains(&version.to_string()),
        "{audit:?}"
    );
    assert!(audit[0].2.contains(key.key_id()), "{audit:?}");
    assert!(audit[2].2.contains("`api-token`"), "{audit:?}");
    assert!(
        audit[3].2.contains(new.key_id()) && audit[3].2.contains("1 secret"),
        "{audit:?}"
    );
    assert!(
        audit[4].2.contains("db-password"),
        "names what can no longer be read: {audit:?}"
    );
    assert!(audit.iter().all(|(_, _, summary)| !summary.contains(value)));
    assert_eq!(s.verify_audit_chain().await.expect("verify"), 5);
}

#[tokio::test]
async fn open_existing_refuses_a_missing_sqlite_file_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo").join("ballast.db");
    let url = format!("sqlite://{}", file.display());
    let err = Store::open_existing(&url).await.expect_err("must refuse");
    assert!(matches!(err, StoreError::NoDatabase { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("`ballast init` creates it"), "{message}");
    assert!(!dir.path().join("typo").exists(), "nothing created");

    // Once it exists, both modes open it.
    Store::open_with(&url, OpenMode::CreateIfMissing)
        .await
        .expect("create");
    Store::open_existing(&url).await.expect("open existing");
}

#[tokio::test]
async fn new_sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state").join("ballast.db");
    let store = Store::open(&format!("sqlite://{}", file.display()))
        .await
        .expect("open");
    store
        .append_audit("alice", "test", "a write, so the WAL is in use", None)
        .await
        .expect("write");
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", file.display()));
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "{} is mode {:o}",
            path.display(),
            mode & 0o777
        );
    }

    // Side files left readable by an older ballast are made private on open.
    let wal = PathBuf::from(format!("{}-wal", file.display()));
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let _again = Store::open(&format!("sqlite://{}", file.display()))
        .await
        .expect("reopen");
    let mode = std::fs::metadata(&wal).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
