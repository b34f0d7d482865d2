//! The one place that speaks SQL: ballast's record of desired state, observed state, tasks,
//! state snapshots, the audit log, encrypted secrets, leases and system events, in SQLite (the
//! default, one file) or PostgreSQL.
//!
//! [`Store::open`] connects (creating a SQLite file, mode 0600, if missing), brings the schema up
//! to date (the migrations in `migrations/`) and loads the database's instance id;
//! [`Store::open_existing`] does the same but refuses to create a database, for commands that
//! only read. Every method is one statement or one transaction: a
//! failure leaves the database as it was. Values that come from the database are checked and a
//! bad one is an error ([`StoreError::Corrupt`]), never a panic.
//!
//! Portability rules: ids are UUID v7 stored as text (they sort by creation time), timestamps
//! are UTC with microsecond precision (what PostgreSQL keeps), JSON is stored as TEXT.
//!
//! Concurrency: an `apply` and a daemon may share one database. On SQLite, write transactions
//! start with `BEGIN IMMEDIATE` (so a transaction never has to upgrade a read lock, which SQLite
//! refuses under contention instead of waiting) and the busy timeout makes writers queue. On
//! PostgreSQL, read-modify-write transactions take a transaction-scoped advisory lock per area,
//! which gives them the same one-writer-at-a-time behaviour.

mod audit;
mod containers;
mod desired;
pub mod entity;
mod error;
mod events;
pub mod firmware;
mod holder;
mod leases;
mod observed;
mod proxmox;
mod proxmox_guests;
mod secrets;
mod servers;
mod tasks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

pub use audit::AuditRow;
pub use containers::{ContainerRecord, ContainerRow};
pub use desired::{DesiredRecord, DesiredRow, RecordOutcome, SourceInfo};
pub use error::{AuditBreak, StoreError, redact_url};
pub use events::{EventFilter, EventRow, NewEvent, Severity};
pub use holder::{Holder, Liveness};
pub use leases::{LeaseRow, LeaseTake};
pub use observed::{ChangeType, ObservedRow, SnapshotRow};
pub use proxmox::{ProxmoxNode, ProxmoxStorage};
pub use proxmox_guests::{
    GuestApplied, GuestClaim, GuestObservation, GuestOwnership, GuestRecord, ProxmoxGuestKind,
};
pub use secrets::{SealedRef, SecretInfo, StoredSecret};
pub use servers::{
    Preparation, PreparationId, PreparationStep, ServerCredential, ServerRecord, StepId,
};
pub use tasks::{TaskFilter, TaskId, TaskRow, TaskStatus};

use entity::store_meta;

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per multi-row INSERT/UPDATE, well below the bind-parameter limits of both backends.
const BATCH_ROWS: usize = 500;

/// Identity of a resource in the store: (kind, name). Kinds are plain strings here so rows of a
/// kind this build does not know (a newer ballast wrote them) can still be read and listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Key {
        Key {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl From<&ballast_model::ResourceKey> for Key {
    fn from(key: &ballast_model::ResourceKey) -> Key {
        Key::new(key.kind.as_str(), key.name.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Areas whose read-modify-write transactions must not interleave (PostgreSQL advisory lock
/// keys; on SQLite `BEGIN IMMEDIATE` already serializes all writers).
#[derive(Debug, Clone, Copy)]
enum Area {
    Migrate = 0x6261_0001,
    Meta = 0x6261_0002,
    Desired = 0x6261_0003,
    Observed = 0x6261_0004,
    Containers = 0x6261_0005,
    Audit = 0x6261_0006,
    Secrets = 0x6261_0007,
    Leases = 0x6261_0008,
    Events = 0x6261_0009,
    Proxmox = 0x6261_000A,
}

/// A connection to the ballast database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    /// The URL with any password redacted, for messages.
    url: String,
    instance_id: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

/// Whether [`Store::open_with`] may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a SQLite file (mode 0600) and its directory if missing: `init`, `apply`,
    /// `secret set`, the daemon.
    CreateIfMissing,
    /// The database must exist: commands that only read. (A PostgreSQL database is never
    /// created by ballast, so this changes nothing there.)
    MustExist,
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://…`),
    /// creating a SQLite file (mode 0600) and its directory if missing, runs pending migrations
    /// and loads (or on first open creates) the instance id.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, OpenMode::CreateIfMissing).await
    }

    /// Opens an existing database: a SQLite file that does not exist is an error naming the
    /// path (and saying that `ballast init` creates it), and nothing is created.
    pub async fn open_existing(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, OpenMode::MustExist).await
    }

    /// [`Store::open`] or [`Store::open_existing`], by `mode`.
    pub async fn open_with(url: &str, mode: OpenMode) -> Result<Store, StoreError> {
        let shown = redact_url(url);
        let mut sqlite_file = None;
        let (backend, options) = if url.starts_with("sqlite:") {
            let (options, file) = sqlite_options(url, &shown, mode)?;
            sqlite_file = file;
            (Backend::Sqlite, options)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(8)
                // Also bounds how long `open` retries an unreachable server.
                .acquire_timeout(Duration::from_secs(15))
                .sqlx_logging(false);
            (Backend::Postgres, options)
        } else {
            return Err(StoreError::UnsupportedUrl { url: shown });
        };

        let db = Database::connect(options)
            .await
            .map_err(|error| StoreError::Connect {
                url: shown.clone(),
                error,
            })?;
        let mut store = Store {
            db,
            backend,
            url: shown,
            instance_id: String::new(),
        };
        store.migrate().await?;
        if let Some(file) = &sqlite_file {
            make_sidecars_private(file);
        }
        store.instance_id = store.load_instance_id().await?;
        tracing::debug!(url = %store.url, instance_id = %store.instance_id, "store opened");
        Ok(store)
    }

    /// The id of this ballast database: a UUID created on first open and never changed. Used
    /// as a Docker label so two ballast databases on one engine never touch each other's
    /// containers.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The URL the store was opened with, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the connection pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<(), StoreError> {
        let url = self.url.clone();
        self.db.close().await.map_err(|error| StoreError::Db {
            op: "close",
            table: "-",
            url,
            error,
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrate_err = |error| StoreError::Migrate {
            url: self.url.clone(),
            error,
        };
        // In one transaction (DDL is transactional on both backends) under the migration lock:
        // two processes opening a fresh database at once must not both run a migration.
        let txn = self.begin_write(Area::Migrate).await.map_err(migrate_err)?;
        Migrator::up(&txn, None).await.map_err(migrate_err)?;
        txn.commit().await.map_err(migrate_err)
    }

    async fn load_instance_id(&self) -> Result<String, StoreError> {
        let op = "load instance id";
        let err = self.db_err(op, "store_meta");
        let txn = self.begin_write(Area::Meta).await.map_err(&err)?;
        let existing = store_meta::Entity::find_by_id(1)
            .one(&txn)
            .await
            .map_err(&err)?;
        let id = match existing {
            Some(row) => {
                let parsed = Uuid::parse_str(&row.instance_id).map_err(|e| {
                    self.corrupt(
                        "store_meta",
                        format!("instance_id `{}` is not a UUID: {e}", row.instance_id),
                    )
                })?;
                parsed.to_string()
            }
            None => {
                let id = Uuid::new_v4().to_string();
                store_meta::Entity::insert(store_meta::ActiveModel {
                    id: Set(1),
                    instance_id: Set(id.clone()),
                    created_at: Set(now()),
                    key_id: Set(None),
                })
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
                id
            }
        };
        txn.commit().await.map_err(&err)?;
        Ok(id)
    }

    /// Starts a transaction that will write: `BEGIN IMMEDIATE` on SQLite, plus the area's
    /// advisory lock on PostgreSQL.
    async fn begin_write(&self, area: Area) -> Result<DatabaseTransaction, DbErr> {
        self.begin_write_areas(&[area]).await
    }

    /// [`begin_write`](Store::begin_write) for a transaction that spans several areas (a
    /// secret and its audit row). Locks are taken in the order of `Area`'s values, so two
    /// such transactions never deadlock.
    async fn begin_write_areas(&self, areas: &[Area]) -> Result<DatabaseTransaction, DbErr> {
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        if self.backend == Backend::Postgres {
            let mut keys: Vec<i64> = areas.iter().map(|a| *a as i64).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [key.into()],
                ))
                .await?;
            }
        }
        Ok(txn)
    }

    /// Maps a database error to a [`StoreError::Db`] naming the operation and table.
    fn db_err(&self, op: &'static str, table: &'static str) -> impl Fn(DbErr) -> StoreError + '_ {
        move |error| StoreError::Db {
            op,
            table,
            url: self.url.clone(),
            error,
        }
    }

    fn corrupt(&self, table: &'static str, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            table,
            url: self.url.clone(),
            detail: detail.into(),
        }
    }

    /// Parses a JSON text column.
    fn parse_json(
        &self,
        table: &'static str,
        what: &str,
        text: &str,
    ) -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| self.corrupt(table, format!("{what} is not valid JSON: {e}")))
    }

    /// Parses a UUID text column.
    fn parse_uuid(&self, table: &'static str, text: &str) -> Result<Uuid, StoreError> {
        Uuid::parse_str(text)
            .map_err(|e| self.corrupt(table, format!("`{text}` is not a UUID: {e}")))
    }
}

/// Connect options for a SQLite URL: WAL so readers do not block the writer, and a busy
/// timeout so writers from several processes queue instead of failing. With
/// [`OpenMode::CreateIfMissing`] a missing file (and its directory) is created, the file with
/// mode 0600 before SQLite opens it: it holds sealed credentials and the audit trail, and
/// SQLite gives its `-wal` and `-shm` files the database file's mode. With
/// [`OpenMode::MustExist`] a missing file is an error and nothing is created. Returns the
/// file's path too (None in memory).
fn sqlite_options(
    url: &str,
    shown: &str,
    mode: OpenMode,
) -> Result<(ConnectOptions, Option<PathBuf>), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path_part, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path_part.is_empty()
        || path_part == ":memory:"
        || params.split('&').any(|p| p == "mode=memory");

    let mut file = None;
    if !in_memory {
        let parsed: sea_orm::sqlx::sqlite::SqliteConnectOptions =
            url.parse().map_err(|_| StoreError::UnsupportedUrl {
                url: shown.to_string(),
            })?;
        let path = parsed.get_filename().to_path_buf();
        match mode {
            OpenMode::MustExist => {
                if !path.is_file() {
                    return Err(StoreError::NoDatabase {
                        url: shown.to_string(),
                        path,
                    });
                }
            }
            OpenMode::CreateIfMissing => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_dir(dir).map_err(|error| StoreError::CreateDir {
                        url: shown.to_string(),
                        path: dir.to_path_buf(),
                        error,
                    })?;
                }
                create_private_file(&path).map_err(|error| StoreError::CreateFile {
                    url: shown.to_string(),
                    path: path.clone(),
                    error,
                })?;
            }
        }
        file = Some(path);
    }

    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .acquire_timeout(SQLITE_BUSY_TIMEOUT);
    if in_memory {
        // Every connection to `:memory:` would be a different database.
        options.max_connections(1);
        options.map_sqlx_sqlite_opts(|o| o.busy_timeout(SQLITE_BUSY_TIMEOUT).foreign_keys(true));
    } else {
        // Each SQLite connection is a thread with its own page cache: a long-running daemon
        // that is mostly idle should not keep them, so idle ones close after a while.
        options
            .max_connections(4)
            .min_connections(0)
            .idle_timeout(std::time::Duration::from_secs(30));
        let create = mode == OpenMode::CreateIfMissing;
        options.map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable across application crashes in WAL mode; only an OS crash
                // can lose the last transactions, never corrupt the file.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    }
    Ok((options, file))
}

/// Creates `path` empty with mode 0600 unless it exists (SQLite takes an empty file as a new
/// database).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `-wal` and `-shm` files of a database file that only its owner may read get the same
/// mode: SQLite creates them with the database's mode, but ones left by an older ballast (or
/// made under a wider umask) may be readable by others. Failing to change them is logged, not
/// fatal: the database itself is fine.
fn make_sidecars_private(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let private = std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    if !private {
        return;
    }
    for suffix in ["-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let sidecar = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&sidecar) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0
            && let Err(error) =
                std::fs::set_permissions(&sidecar, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %sidecar.display(), %error, "cannot make the database's side file private");
        }
    }
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

/// Now, truncated to microseconds: the precision PostgreSQL keeps, so a timestamp reads back
/// exactly as written on both backends (the audit hash depends on that).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A new time-ordered id.
fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Serializes a JSON value for a TEXT column.
fn json_text(value: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// Splits rows into batches for multi-row statements.
fn batches<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(rows.len().div_ceil(BATCH_ROWS));
    while rows.len() > BATCH_ROWS {
        let rest = rows.split_off(BATCH_ROWS);
        out.push(std::mem::replace(&mut rows, rest));
    }
    if !rows.is_empty() {
        out.push(rows);
    }
    out
}
