//! The server tables (servers, server_credentials, server_preparations, preparation_logs), run
//! against both backends: every test below runs once on a SQLite file in a temporary directory
//! and once on a fresh PostgreSQL database (see `ballast_test_support::postgres`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ballast_secrets::{Sealed, SecretError, SecretKey};
use ballast_store::{Holder, ServerCredential, ServerRecord, Store, StoreError, StoredSecret};
use chrono::{SubsecRound, Utc};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

/// A store under test, with what the test needs to reach behind its back.
/// This test process, as the owner of what it starts.
fn me() -> Holder {
    Holder::new("test", std::process::id(), "test-host")
}

/// A process of this host that no longer exists (no pid is this large).
fn dead_here() -> Holder {
    Holder::new("apply", 4_294_967, "test-host")
}

struct Db {
    store: Store,
    url: String,
    /// The SQLite file, if the backend is SQLite.
    sqlite_file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
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
    servers_round_trip,
    server_status_and_delete,
    host_key_trust_on_first_use,
    host_key_race_between_two_stores,
    credentials_are_ciphertext_upserted_per_purpose,
    preparations_with_steps_newest_first,
    concurrent_steps_get_distinct_seqs,
    running_preparations_are_marked_interrupted,
    rewrap_covers_server_credentials,
);

fn full_record(name: &str) -> ServerRecord {
    let mut record = ServerRecord::new(name, "192.0.2.10", 2222, "deploy");
    record.status = "connected".to_string();
    record.status_message = Some("ssh ok".to_string());
    record.docker_installed = true;
    record.docker_version = Some("26.1.5".to_string());
    record.os_id = Some("debian".to_string());
    record.os_name = Some("Debian GNU/Linux 12 (bookworm)".to_string());
    record.os_version = Some("12".to_string());
    record.kernel = Some("6.1.0-26-amd64".to_string());
    record.arch = Some("x86_64".to_string());
    record.cpu_model = Some("AMD EPYC 7B13".to_string());
    record.cpu_count = Some(8);
    // Above i32: these columns must be 64-bit.
    record.memory_bytes = Some(34_359_738_368);
    record.disk_total_bytes = Some(1_000_204_886_016);
    record.disk_free_bytes = Some(0);
    record.labels = BTreeMap::from([
        ("rack".to_string(), "r1".to_string()),
        ("team".to_string(), "ops".to_string()),
    ]);
    record.prepared_hash = Some("ab".repeat(32));
    record.last_connected = Some(Utc::now());
    record
}

/// `record` as the store gives it back: its timestamps are the store's.
fn as_stored(record: &ServerRecord, stored: &ServerRecord) -> ServerRecord {
    let mut expected = record.clone();
    expected.last_connected = record.last_connected.map(|t| t.trunc_subsecs(6));
    expected.created_at = stored.created_at;
    expected.updated_at = stored.updated_at;
    expected
}

async fn servers_round_trip(db: Db) {
    let s = &db.store;
    assert!(s.get_server("nas01").await.expect("get").is_none());
    assert!(s.list_servers().await.expect("list").is_empty());

    let record = full_record("nas01");
    s.upsert_server(&record).await.expect("upsert");
    let first = s.get_server("nas01").await.expect("get").expect("row");
    assert_eq!(first, as_stored(&record, &first));

    // An update changes every field but keeps created_at.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut changed = ServerRecord::new("nas01", "nas01.lab.example", 22, "root");
    changed.status = "error".to_string();
    changed.status_message = Some("connection refused".to_string());
    changed.cpu_count = Some(4);
    changed.labels = BTreeMap::from([("team".to_string(), "dev".to_string())]);
    s.upsert_server(&changed).await.expect("update");
    let second = s.get_server("nas01").await.expect("get").expect("row");
    assert_eq!(second.created_at, first.created_at, "created_at is kept");
    assert!(second.updated_at > first.updated_at);
    assert_eq!(second, as_stored(&changed, &second));
    assert_eq!(second.memory_bytes, None, "an update replaces, not merges");
    assert_eq!(second.docker_version, None);

    // Listed by name.
    for name in ["web02", "db01"] {
        s.upsert_server(&full_record(name)).await.expect("upsert");
    }
    let names: Vec<String> = s
        .list_servers()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["db01", "nas01", "web02"]);

    // camelCase JSON for `-o json`.
    let json = serde_json::to_value(&first).expect("json");
    assert_eq!(json["dockerInstalled"], true);
    assert_eq!(json["memoryBytes"], 34_359_738_368u64);
    assert_eq!(json["labels"]["team"], "ops");
    assert!(json.get("docker_installed").is_none());

    // Bad input is refused with the reason, and nothing is written.
    let mut bad = full_record("nas01");
    bad.status = "online".to_string();
    let err = s.upsert_server(&bad).await.expect_err("bad status");
    assert!(
        matches!(err, StoreError::Invalid { .. }) && err.to_string().contains("`online`"),
        "{err}"
    );
    let mut huge = full_record("nas01");
    huge.memory_bytes = Some(u64::MAX);
    let err = s.upsert_server(&huge).await.expect_err("too large");
    assert!(err.to_string().contains("memory_bytes"), "{err}");
    let err = s
        .upsert_server(&ServerRecord::new("", "h", 22, "u"))
        .await
        .expect_err("empty name");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(
        s.get_server("nas01").await.expect("get").expect("row"),
        second
    );
}

async fn server_status_and_delete(db: Db) {
    let s = &db.store;
    // No row yet: a minimal one is made.
    s.set_server_status("ghost", "disconnected", Some("no route to host"))
        .await
        .expect("status");
    let ghost = s.get_server("ghost").await.expect("get").expect("row");
    assert_eq!(ghost.status, "disconnected");
    assert_eq!(ghost.status_message.as_deref(), Some("no route to host"));
    assert_eq!((ghost.address.as_str(), ghost.port), ("", 0));
    assert!(ghost.labels.is_empty() && ghost.last_connected.is_none());

    // An existing row keeps everything but status, message and updated_at; `connected` also
    // records the time.
    let record = full_record("web");
    s.upsert_server(&record).await.expect("upsert");
    let before = s.get_server("web").await.expect("get").expect("row");
    s.set_server_status("web", "preparing", None)
        .await
        .expect("status");
    let preparing = s.get_server("web").await.expect("get").expect("row");
    assert_eq!(preparing.status, "preparing");
    assert_eq!(preparing.status_message, None);
    assert_eq!(preparing.last_connected, before.last_connected);
    assert_eq!(preparing.created_at, before.created_at);
    assert_eq!(
        (preparing.address.as_str(), preparing.memory_bytes),
        ("192.0.2.10", before.memory_bytes)
    );
    s.set_server_status("web", "connected", None)
        .await
        .expect("status");
    let connected = s.get_server("web").await.expect("get").expect("row");
    assert!(connected.last_connected > before.last_connected);

    let err = s
        .set_server_status("web", "up", None)
        .await
        .expect_err("bad status");
    assert!(err.to_string().contains("connected, error"), "{err}");

    // Deleting a server takes its credentials along, not its preparation history.
    let key = SecretKey::generate();
    let ad = ServerCredential::associated_data("web", "key");
    s.put_server_credential("web", "key", "file:/k", &key.encrypt(&ad, b"k"), None)
        .await
        .expect("credential");
    s.put_server_credential("other", "key", "file:/k", &key.encrypt("x", b"k"), None)
        .await
        .expect("credential");
    let prep = s.start_preparation("web", 1, &me()).await.expect("prep");
    s.finish_preparation(&prep, Ok(())).await.expect("finish");
    s.delete_server("web").await.expect("delete");
    assert!(s.get_server("web").await.expect("get").is_none());
    assert!(
        s.list_server_credentials(Some("web"))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        s.list_server_credentials(None).await.expect("list").len(),
        1
    );
    assert_eq!(
        s.list_preparations("web", 10).await.expect("preps").len(),
        1
    );
    // Deleting what is not there is not an error.
    s.delete_server("web").await.expect("delete again");
}

async fn host_key_trust_on_first_use(db: Db) {
    let s = &db.store;
    // First use, before the server has a row at all.
    assert_eq!(
        s.record_host_key("nas01", "SHA256:first")
            .await
            .expect("tofu"),
        "SHA256:first"
    );
    // A different key later does not overwrite: the first is returned, for the caller to
    // refuse the connection.
    assert_eq!(
        s.record_host_key("nas01", "SHA256:second")
            .await
            .expect("second"),
        "SHA256:first"
    );
    let row = s.get_server("nas01").await.expect("get").expect("row");
    assert_eq!(row.host_key.as_deref(), Some("SHA256:first"));

    // An observer's upsert without a host key keeps the recorded one.
    s.upsert_server(&full_record("nas01"))
        .await
        .expect("upsert");
    let row = s.get_server("nas01").await.expect("get").expect("row");
    assert_eq!(row.host_key.as_deref(), Some("SHA256:first"));
    assert_eq!(row.address, "192.0.2.10");
    assert_eq!(
        s.record_host_key("nas01", "SHA256:third")
            .await
            .expect("third"),
        "SHA256:first"
    );

    // Forgetting opens trust on first use again.
    assert!(s.forget_host_key("nas01").await.expect("forget"));
    assert!(!s.forget_host_key("nas01").await.expect("forget again"));
    assert_eq!(
        s.record_host_key("nas01", "SHA256:new")
            .await
            .expect("tofu"),
        "SHA256:new"
    );
    let row = s.get_server("nas01").await.expect("get").expect("row");
    assert_eq!(row.host_key.as_deref(), Some("SHA256:new"));
    assert_eq!(row.address, "192.0.2.10", "the rest of the row is kept");

    let err = s.record_host_key("nas01", "").await.expect_err("empty");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
}

async fn host_key_race_between_two_stores(db: Db) {
    // Two processes meet a new server at once, each seeing a different key (one of them is
    // being attacked): both must be told the same recorded key.
    let stores = [
        db.store.clone(),
        Store::open(&db.url).await.expect("second store"),
    ];
    for round in 0..20 {
        let name = format!("race-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let contenders: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier, name) = (store.clone(), barrier.clone(), name.clone());
                tokio::spawn(async move {
                    let seen = format!("SHA256:key-{i}");
                    barrier.wait().await;
                    let recorded = store
                        .record_host_key(&name, &seen)
                        .await
                        .expect("record host key");
                    (seen, recorded)
                })
            })
            .collect();
        let mut results = Vec::new();
        for contender in contenders {
            results.push(contender.await.expect("contender"));
        }
        let recorded = &results[0].1;
        assert_eq!(&results[1].1, recorded, "round {round}: {results:?}");
        let trusted = results.iter().filter(|(seen, r)| seen == r).count();
        assert_eq!(trusted, 1, "round {round}: exactly one key is trusted");
        let row = stores[0]
            .get_server(&name)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(row.host_key.as_ref(), Some(recorded), "round {round}");
    }
}

async fn credentials_are_ciphertext_upserted_per_purpose(db: Db) {
    let s = &db.store;
    let key = SecretKey::generate();
    let password = "tr0ub4dor-and-3-server-password";
    let ad = ServerCredential::associated_data("nas01", "password");
    assert_eq!(ad, "server/nas01/password");
    s.put_server_credential(
        "nas01",
        "password",
        "secret:nas01-password",
        &key.encrypt(&ad, b"an older password"),
        None,
    )
    .await
    .expect("put");
    let key_ad = ServerCredential::associated_data("nas01", "key");
    s.put_server_credential(
        "nas01",
        "key",
        "file:/etc/ballast/nas01_ed25519",
        &key.encrypt(&key_ad, b"-----BEGIN OPENSSH PRIVATE KEY-----"),
        Some("SHA256:pubkeyfingerprint"),
    )
    .await
    .expect("put key");
    s.put_server_credential(
        "web",
        "passphrase",
        "secret:web-passphrase",
        &key.encrypt(
            &ServerCredential::associated_data("web", "passphrase"),
            b"x",
        ),
        None,
    )
    .await
    .expect("put web");
    let ids_before = credential_ids(&db.url).await;

    // Setting the same (server, purpose) again replaces the value in place.
    let sealed = key.encrypt(&ad, password.as_bytes());
    s.put_server_credential("nas01", "password", "secret:nas01-pw2", &sealed, None)
        .await
        .expect("replace");
    assert_eq!(
        credential_ids(&db.url).await,
        ids_before,
        "one row per (server, purpose), its id kept"
    );

    let all = s.list_server_credentials(None).await.expect("list");
    let listed: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.server.as_str(), c.purpose.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("nas01", "key"),
            ("nas01", "password"),
            ("web", "passphrase")
        ]
    );
    let nas = s
        .list_server_credentials(Some("nas01"))
        .await
        .expect("list");
    assert_eq!(nas.len(), 2);
    let pw = &nas[1];
    assert_eq!(pw.sealed, sealed);
    assert_eq!(pw.source, "secret:nas01-pw2");
    assert_eq!(pw.sealed_name(), ad);
    assert_eq!(
        key.decrypt(&pw.sealed_name(), &pw.sealed)
            .expect("opens")
            .as_slice(),
        password.as_bytes()
    );
    assert_eq!(
        nas[0].public_key_fingerprint.as_deref(),
        Some("SHA256:pubkeyfingerprint")
    );
    // A ciphertext moved to another server's or purpose's row fails to open.
    assert!(key.decrypt("server/web/password", &pw.sealed).is_err());
    assert!(key.decrypt(&key_ad, &pw.sealed).is_err());
    // Debug shows no ciphertext bytes.
    let debug = format!("{pw:?}");
    assert!(debug.contains("ciphertext_len"), "{debug}");

    let err = s
        .put_server_credential("nas01", "token", "secret:t", &sealed, None)
        .await
        .expect_err("bad purpose");
    assert!(
        err.to_string().contains("key, password, passphrase"),
        "{err}"
    );
    let err = s
        .put_server_credential("nas01", "key", "", &sealed, None)
        .await
        .expect_err("no source");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");

    // The table has no column that could hold a plaintext.
    let backend = if db.sqlite_file.is_some() {
        DbBackend::Sqlite
    } else {
        DbBackend::Postgres
    };
    let sql = match backend {
        DbBackend::Sqlite => "SELECT name FROM pragma_table_info('server_credentials')",
        _ => {
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_name = 'server_credentials' AND table_schema = current_schema()"
        }
    };
    let raw = Database::connect(db.url.as_str()).await.expect("raw");
    let mut columns: Vec<String> = raw
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .expect("columns")
        .iter()
        .map(|row| row.try_get("", "name").expect("name"))
        .collect();
    columns.sort();
    assert_eq!(
        columns,
        [
            "ciphertext",
            "id",
            "key_id",
            "nonce",
            "public_key_fingerprint",
            "purpose",
            "server",
            "source",
            "updated_at"
        ]
    );
    // Every stored ciphertext is exactly the sealed bytes, never the plaintext.
    let rows = raw
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT server, purpose, ciphertext FROM server_credentials",
        ))
        .await
        .expect("query");
    assert_eq!(rows.len(), 3);
    for row in rows {
        let ciphertext: Vec<u8> = row.try_get("", "ciphertext").expect("ciphertext");
        assert!(
            !ciphertext
                .windows(password.len())
                .any(|w| w == password.as_bytes())
        );
    }
    raw.close().await.expect("close");
    if let Some(file) = &db.sqlite_file {
        let dir = file.parent().expect("dir");
        for entry in std::fs::read_dir(dir).expect("readdir").flatten() {
            let bytes = std::fs::read(entry.path()).expect("read db file");
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "plaintext found in {}",
                entry.path().display()
            );
        }
    }

    s.delete_server_credentials("nas01").await.expect("delete");
    let left = s.list_server_credentials(None).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].server, "web");
}

/// The ids of all credential rows, sorted.
async fn credential_ids(url: &str) -> Vec<String> {
    let raw = Database::connect(url).await.expect("raw");
    let backend = raw.get_database_backend();
    let mut ids: Vec<String> = raw
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM server_credentials",
        ))
        .await
        .expect("ids")
        .iter()
        .map(|row| row.try_get("", "id").expect("id"))
        .collect();
    raw.close().await.expect("close");
    ids.sort();
    ids
}

async fn preparations_with_steps_newest_first(db: Db) {
    let s = &db.store;
    assert!(
        s.list_preparations("nas01", 10)
            .await
            .expect("list")
            .is_empty()
    );

    let first = s.start_preparation("nas01", 1, &me()).await.expect("start");
    let detect = s
        .start_preparation_step(&first, "detect-os", "detecting the OS")
        .await
        .expect("step");
    s.finish_preparation_step(&detect, "succeeded", "debian 12", "ID=debian\n", "")
        .await
        .expect("finish step");
    let install = s
        .start_preparation_step(&first, "install-packages", "installing jq")
        .await
        .expect("step");
    s.finish_preparation_step(&install, "failed", "apt-get failed", "", "E: lock held\n")
        .await
        .expect("finish step");
    s.finish_preparation(&first, Err("install-packages failed: E: lock held".into()))
        .await
        .expect("finish");

    let second = s.start_preparation("nas01", 2, &me()).await.expect("start");
    for step in ["detect-os", "refresh-index", "install-packages"] {
        let id = s
            .start_preparation_step(&second, step, step)
            .await
            .expect("step");
        s.finish_preparation_step(&id, "succeeded", "done", "out", "")
            .await
            .expect("finish step");
    }
    let skipped = s
        .start_preparation_step(&second, "install-docker", "checking docker")
        .await
        .expect("step");
    s.finish_preparation_step(&skipped, "skipped", "already satisfied", "", "")
        .await
        .expect("finish step");
    // Left running: closed as failed when the preparation ends.
    s.start_preparation_step(&second, "verify", "verifying")
        .await
        .expect("step");
    s.finish_preparation(&second, Ok(())).await.expect("finish");
    // Another server's history is separate.
    s.start_preparation("web", 1, &me())
        .await
        .expect("start web");

    let list = s.list_preparations("nas01", 10).await.expect("list");
    assert_eq!(
        list.iter().map(|p| p.id).collect::<Vec<_>>(),
        [second, first],
        "newest first"
    );
    let (newest, oldest) = (&list[0], &list[1]);
    assert_eq!(
        (
            newest.status.as_str(),
            newest.attempt,
            newest.reason.as_deref()
        ),
        ("succeeded", 2, None)
    );
    assert!(newest.finished_at.is_some());
    let steps: Vec<(u32, &str, &str)> = newest
        .steps
        .iter()
        .map(|st| (st.seq, st.step.as_str(), st.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (1, "detect-os", "succeeded"),
            (2, "refresh-index", "succeeded"),
            (3, "install-packages", "succeeded"),
            (4, "install-docker", "skipped"),
            (5, "verify", "failed"),
        ]
    );
    assert!(newest.steps.iter().all(|st| st.finished_at.is_some()));
    assert_eq!(newest.steps[3].message, "already satisfied");
    assert_eq!(oldest.status, "failed");
    assert_eq!(
        oldest.reason.as_deref(),
        Some("install-packages failed: E: lock held")
    );
    assert_eq!(oldest.steps.len(), 2);
    assert_eq!(oldest.steps[0].id, detect);
    assert_eq!(oldest.steps[0].stdout, "ID=debian\n");
    assert_eq!(oldest.steps[1].stderr, "E: lock held\n");
    assert!(oldest.started_at <= newest.started_at);

    let limited = s.list_preparations("nas01", 1).await.expect("list");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].id, second);
    assert_eq!(limited[0].steps.len(), 5);
    let web = s.list_preparations("web", 10).await.expect("list");
    assert_eq!((web.len(), web[0].status.as_str()), (1, "running"));
    assert!(web[0].steps.is_empty());

    // JSON for `-o json`.
    let json = serde_json::to_value(&list[0]).expect("json");
    assert_eq!(json["id"], second.to_string());
    assert_eq!(json["steps"][0]["seq"], 1);
    assert!(json["steps"][0]["startedAt"].is_string());
    assert!(json["finishedAt"].is_string());

    // Finished things cannot be finished or extended again; unknown ids are not found.
    let err = s
        .finish_preparation(&first, Ok(()))
        .await
        .expect_err("twice");
    assert!(err.to_string().contains("is failed"), "{err}");
    let err = s
        .start_preparation_step(&first, "verify", "again")
        .await
        .expect_err("finished");
    assert!(err.to_string().contains("must be running"), "{err}");
    let err = s
        .finish_preparation_step(&detect, "failed", "again", "", "")
        .await
        .expect_err("step twice");
    assert!(err.to_string().contains("is succeeded"), "{err}");
    let web_step = s
        .start_preparation_step(&web[0].id, "detect-os", "detecting")
        .await
        .expect("step");
    let err = s
        .finish_preparation_step(&web_step, "running", "", "", "")
        .await
        .expect_err("bad status");
    assert!(
        err.to_string().contains("succeeded, skipped, failed"),
        "{err}"
    );
    let unknown = ballast_store::PreparationId(uuid::Uuid::now_v7());
    let err = s
        .start_preparation_step(&unknown, "detect-os", "")
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = s.finish_preparation(&unknown, Ok(())).await.expect_err("x");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = s
        .finish_preparation_step(
            &ballast_store::StepId(uuid::Uuid::now_v7()),
            "failed",
            "",
            "",
            "",
        )
        .await
        .expect_err("unknown step");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn concurrent_steps_get_distinct_seqs(db: Db) {
    // Steps of one preparation started at once from two processes still number 1..=n.
    let stores = [
        db.store.clone(),
        Store::open(&db.url).await.expect("second store"),
    ];
    let prep = stores[0]
        .start_preparation("nas01", 1, &me())
        .await
        .expect("start");
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (store, barrier) = (stores[i % 2].clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .start_preparation_step(&prep, &format!("step-{i}"), "")
                    .await
                    .expect("start step")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let list = stores[1].list_preparations("nas01", 1).await.expect("list");
    let seqs: Vec<u32> = list[0].steps.iter().map(|st| st.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u32>>());
}

async fn running_preparations_are_marked_interrupted(db: Db) {
    let s = &db.store;
    assert_eq!(
        s.mark_preparations_interrupted(&me()).await.expect("mark"),
        0
    );
    let done = s
        .start_preparation("nas01", 1, &dead_here())
        .await
        .expect("start");
    let done_step = s
        .start_preparation_step(&done, "detect-os", "detecting")
        .await
        .expect("step");
    s.finish_preparation_step(&done_step, "succeeded", "ok", "", "")
        .await
        .expect("finish step");
    s.finish_preparation(&done, Ok(())).await.expect("finish");

    // Cut short: its owner, a process of this host, is gone.
    let cut = s
        .start_preparation("nas01", 2, &dead_here())
        .await
        .expect("start");
    let ok_step = s
        .start_preparation_step(&cut, "detect-os", "detecting")
        .await
        .expect("step");
    s.finish_preparation_step(&ok_step, "succeeded", "ok", "", "")
        .await
        .expect("finish step");
    s.start_preparation_step(&cut, "install-docker", "installing docker.io")
        .await
        .expect("step");
    // Owned by a process on another host whose lease on the server has lapsed: gone too.
    let lapsed = Holder::new("daemon", 7, "host-b");
    let other = s.start_preparation("web", 1, &lapsed).await.expect("start");
    // Still running elsewhere: a process on another host that holds the server's lease, and
    // this process itself.
    let alive = Holder::new("daemon", 8, "host-c");
    assert!(
        s.try_acquire_lease(
            "Server/db",
            &alive.to_string(),
            std::time::Duration::from_secs(60)
        )
        .await
        .expect("lease")
    );
    let remote = s.start_preparation("db", 1, &alive).await.expect("start");
    let mine = s.start_preparation("cache", 1, &me()).await.expect("start");

    // A restart: what was running was cut short.
    assert_eq!(
        s.mark_preparations_interrupted(&me()).await.expect("mark"),
        2
    );
    let list = s.list_preparations("nas01", 10).await.expect("list");
    let (cut_row, done_row) = (&list[0], &list[1]);
    assert_eq!(cut_row.id, cut);
    assert_eq!(cut_row.status, "interrupted");
    assert!(
        cut_row
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("stopped"))
    );
    assert!(cut_row.finished_at.is_some());
    assert_eq!(
        cut_row.steps[0].status, "succeeded",
        "finished steps are kept"
    );
    assert_eq!(cut_row.steps[1].status, "failed");
    assert!(cut_row.steps[1].message.contains("interrupted"));
    assert!(cut_row.steps[1].finished_at.is_some());
    assert_eq!(
        done_row.status, "succeeded",
        "finished preparations are kept"
    );
    assert_eq!(done_row.reason, None);
    let web = s.list_preparations("web", 10).await.expect("list");
    assert_eq!((web[0].id, web[0].status.as_str()), (other, "interrupted"));

    for (server, id) in [("db", remote), ("cache", mine)] {
        let list = s.list_preparations(server, 10).await.expect("list");
        assert_eq!(
            (list[0].id, list[0].status.as_str()),
            (id, "running"),
            "a live owner's preparation is left alone"
        );
    }

    assert_eq!(
        s.mark_preparations_interrupted(&me()).await.expect("again"),
        0
    );
    let err = s.finish_preparation(&cut, Ok(())).await.expect_err("late");
    assert!(err.to_string().contains("is interrupted"), "{err}");
    s.finish_preparation(&remote, Ok(()))
        .await
        .expect("the live owner finishes");
    s.finish_preparation(&mine, Ok(()))
        .await
        .expect("this process finishes");
}

#[derive(Debug, thiserror::Error)]
#[error("cannot re-encrypt {0}")]
struct RewrapFailed(String);

async fn rewrap_covers_server_credentials(db: Db) {
    let s = &db.store;
    let old = SecretKey::generate();
    let new = SecretKey::generate();
    s.put_secret(
        "registry-token",
        &old.encrypt("registry-token", b"tok"),
        "alice",
    )
    .await
    .expect("secret");
    for (server, purpose) in [
        ("nas01", "key"),
        ("nas01", "passphrase"),
        ("web", "password"),
    ] {
        let ad = ServerCredential::associated_data(server, purpose);
        let value = format!("{purpose} of {server}");
        s.put_server_credential(
            server,
            purpose,
            "secret:x",
            &old.encrypt(&ad, value.as_bytes()),
            None,
        )
        .await
        .expect("credential");
    }
    let before = (
        s.get_secret("registry-token").await.expect("get"),
        s.list_server_credentials(None).await.expect("list"),
    );

    // Failing on a credential rolls back the secrets re-encrypted before it too.
    let err = s
        .rewrap_secrets("k-new", "alice", |secret| {
            if secret.name == "server/nas01/passphrase" {
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
        matches!(err, StoreError::Rewrap { ref name, .. } if name == "server/nas01/passphrase"),
        "{err:?}"
    );
    let after = (
        s.get_secret("registry-token").await.expect("get"),
        s.list_server_credentials(None).await.expect("list"),
    );
    assert_eq!(after, before, "nothing changed");

    // The form `ballast secret rotate-key` uses: decrypt with the name as associated data.
    let seen = Mutex::new(Vec::new());
    let count = s
        .rewrap_secrets("k-new", "alice", rotate(&seen, &old, &new))
        .await
        .expect("rewrap");
    assert_eq!(count, 4, "one secret and three credentials");
    let first_pass = std::mem::take(&mut *seen.lock().expect("lock"));
    let names: Vec<&str> = first_pass.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "registry-token",
            "server/nas01/key",
            "server/nas01/passphrase",
            "server/web/password"
        ]
    );
    let secret = s
        .get_secret("registry-token")
        .await
        .expect("get")
        .expect("secret");
    assert_eq!(
        new.decrypt("registry-token", &secret.sealed)
            .expect("opens")
            .as_slice(),
        b"tok"
    );
    let credentials = s.list_server_credentials(None).await.expect("list");
    assert_eq!(credentials.len(), 3);
    for credential in &credentials {
        assert_eq!(credential.sealed.key_id, new.key_id());
        let plain = new
            .decrypt(&credential.sealed_name(), &credential.sealed)
            .expect("the new key opens it");
        assert_eq!(
            plain.as_slice(),
            format!("{} of {}", credential.purpose, credential.server).as_bytes()
        );
        assert!(
            old.decrypt(&credential.sealed_name(), &credential.sealed)
                .is_err()
        );
    }

    // Versions are stable: a second rotation sees the same ones.
    let newer = SecretKey::generate();
    s.rewrap_secrets("k-new", "alice", rotate(&seen, &new, &newer))
        .await
        .expect("rewrap again");
    assert_eq!(*seen.lock().expect("lock"), first_pass);
}

/// A rotation from one key to another, as `ballast secret rotate-key` does it, noting the name
/// and version of everything it re-encrypts.
fn rotate<'a>(
    seen: &'a Mutex<Vec<(String, uuid::Uuid)>>,
    from: &'a SecretKey,
    to: &'a SecretKey,
) -> impl Fn(&StoredSecret) -> Result<Sealed, SecretError> + Send + Sync + 'a {
    move |secret| {
        seen.lock()
            .expect("lock")
            .push((secret.name.clone(), secret.version));
        from.decrypt(&secret.name, &secret.sealed)
            .map(|plain| to.encrypt(&secret.name, &plain))
    }
}
