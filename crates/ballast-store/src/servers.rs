//! Servers reached over SSH: what was last seen of each (`servers`), its credentials as
//! ciphertext (`server_credentials`), and the history of preparing it, step by step
//! (`server_preparations`, `preparation_logs`).
//!
//! **Host keys are trust on first use.** [`Store::record_host_key`] sets `host_key` only while
//! it is NULL, in one compare-and-set upsert, and returns the fingerprint that is recorded now:
//! of two processes meeting a new server at once, both get the first one's fingerprint, and a
//! host that later shows another key is caught by the caller comparing. [`Store::upsert_server`]
//! never clears a recorded key (a `None` keeps it), so an observer working from an older read
//! cannot undo trust on first use; only [`Store::forget_host_key`] and
//! [`Store::delete_server`] do.
//!
//! **Credentials are sealed by the caller** (the engine, with the key of `ballast secret`),
//! with the associated data [`ServerCredential::associated_data`]: `server/<server>/<purpose>`.
//! The store never sees a plaintext; `source` records where the value came from
//! (`secret:NAME`, `file:/path`), never the value. Secret names are DNS-1123 labels, so they
//! can never be mistaken for a credential's `server/…/…` name. `ballast secret rotate-key`
//! re-encrypts credentials with the secrets, in the same transaction
//! ([`Store::rewrap_secrets`]).
//!
//! **Preparations** are history: deleting a server keeps them, like tasks. Each has steps
//! numbered 1, 2, 3, … ([`Store::start_preparation_step`] takes the next number while holding
//! the preparation's row). A preparation still `running` after a restart is marked
//! `interrupted` ([`Store::mark_preparations_interrupted`]), never resumed blind.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use ballast_secrets::Sealed;

use crate::entity::{preparation_logs, server_credentials, server_preparations, servers};
use crate::holder::abandoned;
use crate::{Holder, Key, Store, StoreError, StoredSecret, now};

const SERVERS: &str = "servers";
const CREDENTIALS: &str = "server_credentials";
const PREPARATIONS: &str = "server_preparations";
const LOGS: &str = "preparation_logs";

/// The statuses a server may have.
const SERVER_STATUSES: [&str; 5] = ["connected", "error", "preparing", "disconnected", "unknown"];
/// What a server credential is for.
const CREDENTIAL_PURPOSES: [&str; 3] = ["key", "password", "passphrase"];
/// The statuses a finished preparation step may have.
const STEP_END_STATUSES: [&str; 3] = ["succeeded", "skipped", "failed"];

const RUNNING: &str = "running";
const INTERRUPTED_REASON: &str = "ballast stopped while the preparation was running";
const INTERRUPTED_STEP: &str = "interrupted: ballast stopped before this step finished";

/// What was last seen of a server. Serializes in camelCase (`-o json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRecord {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `connected`, `error`, `preparing`, `disconnected` or `unknown`.
    pub status: String,
    pub status_message: Option<String>,
    /// The host key fingerprint (`SHA256:…`) recorded by trust on first use or last verified.
    pub host_key: Option<String>,
    pub docker_installed: bool,
    pub docker_version: Option<String>,
    pub os_id: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// The hash of the prepare spec last completed on this server.
    pub prepared_hash: Option<String>,
    pub last_connected: Option<DateTime<Utc>>,
    /// Set by the store: when the row was first written.
    pub created_at: DateTime<Utc>,
    /// Set by the store: when the row was last written.
    pub updated_at: DateTime<Utc>,
}

impl ServerRecord {
    /// A record of a server that nothing is known about yet but how to reach it: status
    /// `unknown`, no system facts.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        port: u16,
        user: impl Into<String>,
    ) -> ServerRecord {
        let at = now();
        ServerRecord {
            name: name.into(),
            address: address.into(),
            port,
            user: user.into(),
            status: "unknown".to_string(),
            status_message: None,
            host_key: None,
            docker_installed: false,
            docker_version: None,
            os_id: None,
            os_name: None,
            os_version: None,
            kernel: None,
            arch: None,
            cpu_model: None,
            cpu_count: None,
            memory_bytes: None,
            disk_total_bytes: None,
            disk_free_bytes: None,
            labels: BTreeMap::new(),
            prepared_hash: None,
            last_connected: None,
            created_at: at,
            updated_at: at,
        }
    }
}

/// A server's credential as stored: sealed, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCredential {
    pub server: String,
    /// `key`, `password` or `passphrase`.
    pub purpose: String,
    /// Where the value came from (`secret:NAME`, `file:/path`), never the value.
    pub source: String,
    /// Sealed with [`ServerCredential::associated_data`] as the name.
    pub sealed: Sealed,
    /// For a key, the fingerprint of its public half (`SHA256:…`).
    pub public_key_fingerprint: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl ServerCredential {
    /// The name a credential is sealed under (the AEAD's associated data):
    /// `server/<server>/<purpose>`. The engine seals with it, `ballast secret rotate-key`
    /// re-encrypts with it, so a ciphertext moved to another server or purpose fails to open.
    pub fn associated_data(server: &str, purpose: &str) -> String {
        format!("server/{server}/{purpose}")
    }

    /// This credential's [`associated_data`](Self::associated_data).
    pub fn sealed_name(&self) -> String {
        Self::associated_data(&self.server, &self.purpose)
    }
}

/// The id of a server preparation (a UUID v7). Serializes as its text form.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PreparationId(pub Uuid);

/// The id of one step of a preparation (a UUID v7). Serializes as its text form.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct StepId(pub Uuid);

macro_rules! uuid_newtype_text {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $ty {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($ty)
            }
        }
    )*};
}
uuid_newtype_text!(PreparationId, StepId);

/// One attempt to prepare a server, with its steps. Serializes in camelCase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preparation {
    pub id: PreparationId,
    pub server: String,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    /// Why it failed or was interrupted.
    pub reason: Option<String>,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// In `seq` order.
    pub steps: Vec<PreparationStep>,
}

/// One step of a preparation. Serializes in camelCase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparationStep {
    pub id: StepId,
    /// 1, 2, 3, … within the preparation.
    pub seq: u32,
    /// `detect-os`, `refresh-index`, `install-packages`, `install-docker`, `start-docker`,
    /// `verify`, …
    pub step: String,
    /// `running`, `succeeded`, `skipped` or `failed`.
    pub status: String,
    pub message: String,
    pub stdout: String,
    pub stderr: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records what was seen of a server, by name. `created_at` is kept from the first write
    /// and `updated_at` set to now (the record's own timestamps are not written). A
    /// `host_key` of `None` keeps the recorded one (see the module docs).
    pub async fn upsert_server(&self, record: &ServerRecord) -> Result<(), StoreError> {
        const OP: &str = "upsert_server";
        not_empty(OP, "server name", &record.name)?;
        one_of(OP, "server status", &record.status, &SERVER_STATUSES)?;
        let labels = serde_json::to_string(&record.labels).map_err(|e| StoreError::Invalid {
            op: OP,
            detail: format!(
                "labels of server `{}` cannot be serialized: {e}",
                record.name
            ),
        })?;
        let at = now();
        let field = |what: &str| format!("{what} of server `{}`", record.name);
        let row = servers::ActiveModel {
            name: Set(record.name.clone()),
            address: Set(record.address.clone()),
            port: Set(i32::from(record.port)),
            user: Set(record.user.clone()),
            status: Set(record.status.clone()),
            status_message: Set(record.status_message.clone()),
            host_key: Set(record.host_key.clone()),
            docker_installed: Set(record.docker_installed),
            docker_version: Set(record.docker_version.clone()),
            os_id: Set(record.os_id.clone()),
            os_name: Set(record.os_name.clone()),
            os_version: Set(record.os_version.clone()),
            kernel: Set(record.kernel.clone()),
            arch: Set(record.arch.clone()),
            cpu_model: Set(record.cpu_model.clone()),
            cpu_count: Set(to_db(OP, &field("cpu_count"), record.cpu_count)?),
            memory_bytes: Set(to_db(OP, &field("memory_bytes"), record.memory_bytes)?),
            disk_total_bytes: Set(to_db(
                OP,
                &field("disk_total_bytes"),
                record.disk_total_bytes,
            )?),
            disk_free_bytes: Set(to_db(
                OP,
                &field("disk_free_bytes"),
                record.disk_free_bytes,
            )?),
            labels: Set(labels),
            prepared_hash: Set(record.prepared_hash.clone()),
            last_connected: Set(record.last_connected.map(|t| t.trunc_subsecs(6))),
            created_at: Set(at),
            updated_at: Set(at),
        };
        use servers::Column as C;
        servers::Entity::insert(row)
            .on_conflict(
                // created_at is left out: it keeps the time the server was first recorded.
                OnConflict::column(C::Name)
                    .update_columns([
                        C::Address,
                        C::Port,
                        C::User,
                        C::Status,
                        C::StatusMessage,
                        C::DockerInstalled,
                        C::DockerVersion,
                        C::OsId,
                        C::OsName,
                        C::OsVersion,
                        C::Kernel,
                        C::Arch,
                        C::CpuModel,
                        C::CpuCount,
                        C::MemoryBytes,
                        C::DiskTotalBytes,
                        C::DiskFreeBytes,
                        C::Labels,
                        C::PreparedHash,
                        C::LastConnected,
                        C::UpdatedAt,
                    ])
                    .value(
                        C::HostKey,
                        Func::coalesce([
                            Expr::col((Alias::new("excluded"), C::HostKey)),
                            Expr::col((servers::Entity, C::HostKey)),
                        ]),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(self.db_err(OP, SERVERS))?;
        Ok(())
    }

    /// What was last seen of a server, if anything.
    pub async fn get_server(&self, name: &str) -> Result<Option<ServerRecord>, StoreError> {
        servers::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_server", SERVERS))?
            .map(|row| self.server_record(row))
            .transpose()
    }

    /// Every recorded server, by name.
    pub async fn list_servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        servers::Entity::find()
            .order_by_asc(servers::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_servers", SERVERS))?
            .into_iter()
            .map(|row| self.server_record(row))
            .collect()
    }

    /// Sets a server's status (`connected`, `error`, `preparing`, `disconnected`, `unknown`)
    /// and message; `connected` also sets `last_connected` to now. A server with no row yet
    /// gets a minimal one (empty address and user, port 0) that a later
    /// [`upsert_server`](Self::upsert_server) fills in.
    pub async fn set_server_status(
        &self,
        name: &str,
        status: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_server_status";
        not_empty(OP, "server name", name)?;
        one_of(OP, "server status", status, &SERVER_STATUSES)?;
        let at = now();
        let connected = status == "connected";
        let mut row = minimal_server(name, at);
        row.status = Set(status.to_string());
        row.status_message = Set(message.map(str::to_string));
        row.last_connected = Set(connected.then_some(at));
        use servers::Column as C;
        let mut update = vec![C::Status, C::StatusMessage, C::UpdatedAt];
        if connected {
            update.push(C::LastConnected);
        }
        servers::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::Name)
                    .update_columns(update)
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(self.db_err(OP, SERVERS))?;
        Ok(())
    }

    /// Trust on first use: records `fingerprint` as the server's host key if none is recorded
    /// (creating a minimal row if the server has none), and returns the fingerprint recorded
    /// now: `fingerprint` itself, or the one recorded before, which the caller must compare.
    pub async fn record_host_key(
        &self,
        name: &str,
        fingerprint: &str,
    ) -> Result<String, StoreError> {
        const OP: &str = "record_host_key";
        not_empty(OP, "server name", name)?;
        not_empty(OP, "host key fingerprint", fingerprint)?;
        let err = self.db_err(OP, SERVERS);
        let txn = self.begin_server_write().await.map_err(&err)?;
        let at = now();
        let mut row = minimal_server(name, at);
        row.host_key = Set(Some(fingerprint.to_string()));
        use servers::Column as C;
        // On PostgreSQL, ON CONFLICT DO UPDATE locks the conflicting row even when the WHERE
        // does not hold, so the read below sees what stays recorded until commit.
        servers::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::Name)
                    .value(C::HostKey, fingerprint)
                    .value(C::UpdatedAt, at)
                    .action_and_where(Expr::col((servers::Entity, C::HostKey)).is_null())
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(&err)?;
        let recorded: Option<Option<String>> = servers::Entity::find_by_id(name.to_string())
            .select_only()
            .column(C::HostKey)
            .into_tuple()
            .one(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        recorded.flatten().ok_or_else(|| {
            self.corrupt(
                SERVERS,
                format!("server `{name}` has no host key right after recording one"),
            )
        })
    }

    /// Forgets a server's recorded host key (after the host was re-installed), so the next
    /// connection is trusted on first use again. Returns false if none was recorded.
    pub async fn forget_host_key(&self, name: &str) -> Result<bool, StoreError> {
        let result = servers::Entity::update_many()
            .col_expr(
                servers::Column::HostKey,
                Expr::value(Option::<String>::None),
            )
            .col_expr(servers::Column::UpdatedAt, Expr::value(now()))
            .filter(servers::Column::Name.eq(name))
            .filter(servers::Column::HostKey.is_not_null())
            .exec(&self.db)
            .await
            .map_err(self.db_err("forget_host_key", SERVERS))?;
        Ok(result.rows_affected > 0)
    }

    /// Deletes a server's row and its credentials, in one transaction. Its preparations stay:
    /// they are history.
    pub async fn delete_server(&self, name: &str) -> Result<(), StoreError> {
        const OP: &str = "delete_server";
        let err = self.db_err(OP, SERVERS);
        let txn = self.begin_server_write().await.map_err(&err)?;
        server_credentials::Entity::delete_many()
            .filter(server_credentials::Column::Server.eq(name))
            .exec(&txn)
            .await
            .map_err(self.db_err(OP, CREDENTIALS))?;
        servers::Entity::delete_by_id(name.to_string())
            .exec(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)
    }

    /// Stores (or replaces) a server's sealed credential for `purpose` (`key`, `password` or
    /// `passphrase`). `sealed` must be sealed under
    /// [`ServerCredential::associated_data`]`(server, purpose)`; `source` says where the value
    /// came from (`secret:NAME`, `file:/path`) and must never be the value.
    pub async fn put_server_credential(
        &self,
        server: &str,
        purpose: &str,
        source: &str,
        sealed: &Sealed,
        public_key_fingerprint: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_server_credential";
        not_empty(OP, "server name", server)?;
        one_of(OP, "credential purpose", purpose, &CREDENTIAL_PURPOSES)?;
        not_empty(OP, "credential source", source)?;
        use server_credentials::Column as C;
        server_credentials::Entity::insert(server_credentials::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            server: Set(server.to_string()),
            purpose: Set(purpose.to_string()),
            source: Set(source.to_string()),
            key_id: Set(sealed.key_id.clone()),
            nonce: Set(sealed.nonce.clone()),
            ciphertext: Set(sealed.ciphertext.clone()),
            public_key_fingerprint: Set(public_key_fingerprint.map(str::to_string)),
            updated_at: Set(now()),
        })
        .on_conflict(
            // The id is kept: it stands as the credential's version when keys are rotated.
            OnConflict::columns([C::Server, C::Purpose])
                .update_columns([
                    C::Source,
                    C::KeyId,
                    C::Nonce,
                    C::Ciphertext,
                    C::PublicKeyFingerprint,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(self.db_err(OP, CREDENTIALS))?;
        Ok(())
    }

    /// The credentials of one server, or of all, by server and purpose.
    pub async fn list_server_credentials(
        &self,
        server: Option<&str>,
    ) -> Result<Vec<ServerCredential>, StoreError> {
        let mut query = server_credentials::Entity::find();
        if let Some(server) = server {
            query = query.filter(server_credentials::Column::Server.eq(server));
        }
        Ok(query
            .order_by_asc(server_credentials::Column::Server)
            .order_by_asc(server_credentials::Column::Purpose)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_server_credentials", CREDENTIALS))?
            .into_iter()
            .map(server_credential)
            .collect())
    }

    /// Deletes every credential of a server.
    pub async fn delete_server_credentials(&self, server: &str) -> Result<(), StoreError> {
        server_credentials::Entity::delete_many()
            .filter(server_credentials::Column::Server.eq(server))
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_server_credentials", CREDENTIALS))?;
        Ok(())
    }

    /// Records the start of a preparation of `server` (`running`, started now) by `owner`, the
    /// process running it. `attempt` counts the tries of the same preparation (1 for the
    /// first).
    pub async fn start_preparation(
        &self,
        server: &str,
        attempt: u32,
        owner: &Holder,
    ) -> Result<PreparationId, StoreError> {
        const OP: &str = "start_preparation";
        not_empty(OP, "server name", server)?;
        let attempt = to_db(OP, "attempt", Some(attempt))?.unwrap_or_default();
        let id = Uuid::now_v7();
        server_preparations::Entity::insert(server_preparations::ActiveModel {
            id: Set(id.to_string()),
            server: Set(server.to_string()),
            status: Set(RUNNING.to_string()),
            reason: Set(None),
            attempt: Set(attempt),
            started_at: Set(now()),
            finished_at: Set(None),
            owner: Set(Some(owner.to_string())),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(self.db_err(OP, PREPARATIONS))?;
        Ok(PreparationId(id))
    }

    /// Records the start of a step (`running`) with the next `seq` of the preparation, which
    /// must be running.
    pub async fn start_preparation_step(
        &self,
        id: &PreparationId,
        step: &str,
        message: &str,
    ) -> Result<StepId, StoreError> {
        const OP: &str = "start_preparation_step";
        not_empty(OP, "step name", step)?;
        let err = self.db_err(OP, LOGS);
        let txn = self.begin_server_write().await.map_err(&err)?;
        // The preparation's row lock (FOR UPDATE on PostgreSQL; SQLite has one writer) makes
        // concurrent steps of one preparation take distinct numbers.
        let preparation = server_preparations::Entity::find_by_id(id.to_string())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(self.db_err(OP, PREPARATIONS))?
            .ok_or_else(|| StoreError::NotFound {
                op: OP,
                what: format!("preparation {id}"),
            })?;
        if preparation.status != RUNNING {
            return Err(StoreError::Invalid {
                op: OP,
                detail: format!(
                    "preparation {id} of server `{}` is {}; it must be running to start step \
                     `{step}`",
                    preparation.server, preparation.status
                ),
            });
        }
        let last: Option<Option<i32>> = preparation_logs::Entity::find()
            .select_only()
            .column_as(preparation_logs::Column::Seq.max(), "seq")
            .filter(preparation_logs::Column::PreparationId.eq(id.to_string()))
            .into_tuple()
            .one(&txn)
            .await
            .map_err(&err)?;
        let step_id = Uuid::now_v7();
        preparation_logs::Entity::insert(preparation_logs::ActiveModel {
            id: Set(step_id.to_string()),
            preparation_id: Set(id.to_string()),
            seq: Set(last.flatten().unwrap_or(0) + 1),
            step: Set(step.to_string()),
            status: Set(RUNNING.to_string()),
            message: Set(message.to_string()),
            stdout: Set(String::new()),
            stderr: Set(String::new()),
            started_at: Set(now()),
            finished_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(StepId(step_id))
    }

    /// Ends a running step: `succeeded`, `skipped` or `failed`, with its message and output.
    pub async fn finish_preparation_step(
        &self,
        step: &StepId,
        status: &str,
        message: &str,
        stdout: &str,
        stderr: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_preparation_step";
        one_of(OP, "step status", status, &STEP_END_STATUSES)?;
        use preparation_logs::Column as C;
        let result = preparation_logs::Entity::update_many()
            .col_expr(C::Status, Expr::value(status))
            .col_expr(C::Message, Expr::value(message))
            .col_expr(C::Stdout, Expr::value(stdout))
            .col_expr(C::Stderr, Expr::value(stderr))
            .col_expr(C::FinishedAt, Expr::value(Some(now())))
            .filter(C::Id.eq(step.to_string()))
            .filter(C::Status.eq(RUNNING))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, LOGS))?;
        if result.rows_affected == 0 {
            let current = preparation_logs::Entity::find_by_id(step.to_string())
                .one(&self.db)
                .await
                .map_err(self.db_err(OP, LOGS))?;
            return Err(match current {
                Some(row) => StoreError::Invalid {
                    op: OP,
                    detail: format!(
                        "step {step} (`{}` of preparation {}) is {}; it must be running",
                        row.step, row.preparation_id, row.status
                    ),
                },
                None => StoreError::NotFound {
                    op: OP,
                    what: format!("preparation step {step}"),
                },
            });
        }
        Ok(())
    }

    /// Ends a running preparation: `succeeded`, or `failed` with the reason. Steps still
    /// `running` are closed as `failed`: they did not finish.
    pub async fn finish_preparation(
        &self,
        id: &PreparationId,
        outcome: Result<(), String>,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_preparation";
        let (status, reason) = match outcome {
            Ok(()) => ("succeeded", None),
            Err(reason) => ("failed", Some(reason)),
        };
        let err = self.db_err(OP, PREPARATIONS);
        let txn = self.begin_server_write().await.map_err(&err)?;
        let at = now();
        use server_preparations::Column as C;
        let result = server_preparations::Entity::update_many()
            .col_expr(C::Status, Expr::value(status))
            .col_expr(C::Reason, Expr::value(reason))
            .col_expr(C::FinishedAt, Expr::value(Some(at)))
            .filter(C::Id.eq(id.to_string()))
            .filter(C::Status.eq(RUNNING))
            .exec(&txn)
            .await
            .map_err(&err)?;
        if result.rows_affected == 0 {
            let current = server_preparations::Entity::find_by_id(id.to_string())
                .one(&txn)
                .await
                .map_err(&err)?;
            return Err(match current {
                Some(row) => StoreError::Invalid {
                    op: OP,
                    detail: format!(
                        "preparation {id} of server `{}` is {}; it must be running",
                        row.server, row.status
                    ),
                },
                None => StoreError::NotFound {
                    op: OP,
                    what: format!("preparation {id}"),
                },
            });
        }
        close_running_steps(&txn, &[id.to_string()], None, at)
            .await
            .map_err(self.db_err(OP, LOGS))?;
        txn.commit().await.map_err(&err)
    }

    /// The newest `limit` preparations of a server, newest first, each with its steps in
    /// `seq` order.
    pub async fn list_preparations(
        &self,
        server: &str,
        limit: u64,
    ) -> Result<Vec<Preparation>, StoreError> {
        const OP: &str = "list_preparations";
        let rows = server_preparations::Entity::find()
            .filter(server_preparations::Column::Server.eq(server))
            .order_by_desc(server_preparations::Column::StartedAt)
            .order_by_desc(server_preparations::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(self.db_err(OP, PREPARATIONS))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut steps: HashMap<String, Vec<PreparationStep>> = HashMap::new();
        for row in preparation_logs::Entity::find()
            .filter(preparation_logs::Column::PreparationId.is_in(ids))
            .order_by_asc(preparation_logs::Column::PreparationId)
            .order_by_asc(preparation_logs::Column::Seq)
            .all(&self.db)
            .await
            .map_err(self.db_err(OP, LOGS))?
        {
            let preparation_id = row.preparation_id.clone();
            let step = self.preparation_step(row)?;
            steps.entry(preparation_id).or_default().push(step);
        }
        rows.into_iter()
            .map(|row| {
                let steps = steps.remove(&row.id).unwrap_or_default();
                Ok(Preparation {
                    id: PreparationId(self.parse_uuid(PREPARATIONS, &row.id)?),
                    attempt: u32::try_from(row.attempt).map_err(|_| {
                        self.corrupt(
                            PREPARATIONS,
                            format!(
                                "preparation {}: attempt {} is negative",
                                row.id, row.attempt
                            ),
                        )
                    })?,
                    server: row.server,
                    status: row.status,
                    reason: row.reason,
                    started_at: row.started_at,
                    finished_at: row.finished_at,
                    steps,
                })
            })
            .collect()
    }

    /// Marks `interrupted` (and its running steps `failed`) every `running` preparation whose
    /// owner is gone, as seen from `me` (the rule of
    /// [`interrupt_abandoned_tasks`](Store::interrupt_abandoned_tasks), with the lease
    /// `Server/NAME`): a preparation found running then was cut short by a stop or crash.
    /// Preparations of owners that still run are left alone. Returns how many were marked.
    pub async fn mark_preparations_interrupted(&self, me: &Holder) -> Result<u64, StoreError> {
        const OP: &str = "mark_preparations_interrupted";
        let err = self.db_err(OP, PREPARATIONS);
        let leases: HashMap<String, crate::LeaseRow> = self
            .list_leases()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let txn = self.begin_server_write().await.map_err(&err)?;
        use server_preparations::Column as C;
        // Locked first, so a step cannot start between the two updates.
        let running: Vec<(String, String, Option<String>)> = server_preparations::Entity::find()
            .select_only()
            .column(C::Id)
            .column(C::Server)
            .column(C::Owner)
            .filter(C::Status.eq(RUNNING))
            .lock_exclusive()
            .into_tuple()
            .all(&txn)
            .await
            .map_err(&err)?;
        let at = now();
        let ids: Vec<String> = running
            .into_iter()
            .filter(|(_, server, owner)| {
                let lease = leases.get(&Key::new("Server", server.clone()).to_string());
                abandoned(owner.as_deref(), lease, me, at)
            })
            .map(|(id, _, _)| id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        close_running_steps(&txn, &ids, Some(INTERRUPTED_STEP), at)
            .await
            .map_err(self.db_err(OP, LOGS))?;
        let result = server_preparations::Entity::update_many()
            .col_expr(C::Status, Expr::value("interrupted"))
            .col_expr(C::Reason, Expr::value(Some(INTERRUPTED_REASON)))
            .col_expr(C::FinishedAt, Expr::value(Some(at)))
            .filter(C::Id.is_in(ids))
            .filter(C::Status.eq(RUNNING))
            .exec(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(result.rows_affected)
    }

    /// Re-encrypts every server credential with `f`, inside the transaction of
    /// [`rewrap_secrets`](Store::rewrap_secrets). `f` sees each credential as a
    /// [`StoredSecret`] named by its [`ServerCredential::associated_data`] (the name it was
    /// sealed under), with the row's id as the version. Returns how many were re-encrypted.
    pub(crate) async fn rewrap_server_credentials<F, E>(
        &self,
        txn: &DatabaseTransaction,
        f: &F,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError>
    where
        F: Fn(&StoredSecret) -> Result<Sealed, E> + Send + Sync + ?Sized,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let err = self.db_err("rewrap_secrets", CREDENTIALS);
        let rows = server_credentials::Entity::find()
            .order_by_asc(server_credentials::Column::Server)
            .order_by_asc(server_credentials::Column::Purpose)
            .all(txn)
            .await
            .map_err(&err)?;
        let count = rows.len();
        for row in rows {
            let secret = StoredSecret {
                name: ServerCredential::associated_data(&row.server, &row.purpose),
                version: self.parse_uuid(CREDENTIALS, &row.id)?,
                sealed: Sealed {
                    key_id: row.key_id,
                    nonce: row.nonce,
                    ciphertext: row.ciphertext,
                },
                created_at: row.updated_at,
                updated_at: row.updated_at,
            };
            // An early return drops the transaction, which rolls back what was written.
            let sealed = f(&secret).map_err(|e| StoreError::Rewrap {
                name: secret.name.clone(),
                error: e.into(),
            })?;
            server_credentials::Entity::update(server_credentials::ActiveModel {
                id: Set(row.id),
                key_id: Set(sealed.key_id),
                nonce: Set(sealed.nonce),
                ciphertext: Set(sealed.ciphertext),
                updated_at: Set(at),
                ..Default::default()
            })
            .exec_without_returning(txn)
            .await
            .map_err(&err)?;
        }
        Ok(count)
    }

    /// A write transaction for the server tables: `BEGIN IMMEDIATE` on SQLite. On PostgreSQL
    /// these transactions need no area lock: each guards what it changes with row locks.
    async fn begin_server_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    fn server_record(&self, row: servers::Model) -> Result<ServerRecord, StoreError> {
        let name = row.name.clone();
        let bad = |what: &str, value: &dyn fmt::Display| {
            self.corrupt(
                SERVERS,
                format!("server `{name}`: {what} {value} is out of range"),
            )
        };
        let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels).map_err(|e| {
            self.corrupt(
                SERVERS,
                format!("server `{name}`: labels are not a JSON object of strings: {e}"),
            )
        })?;
        Ok(ServerRecord {
            port: u16::try_from(row.port).map_err(|_| bad("port", &row.port))?,
            cpu_count: from_db(row.cpu_count).map_err(|v| bad("cpu_count", &v))?,
            memory_bytes: from_db(row.memory_bytes).map_err(|v| bad("memory_bytes", &v))?,
            disk_total_bytes: from_db(row.disk_total_bytes)
                .map_err(|v| bad("disk_total_bytes", &v))?,
            disk_free_bytes: from_db(row.disk_free_bytes)
                .map_err(|v| bad("disk_free_bytes", &v))?,
            labels,
            name: row.name,
            address: row.address,
            user: row.user,
            status: row.status,
            status_message: row.status_message,
            host_key: row.host_key,
            docker_installed: row.docker_installed,
            docker_version: row.docker_version,
            os_id: row.os_id,
            os_name: row.os_name,
            os_version: row.os_version,
            kernel: row.kernel,
            arch: row.arch,
            cpu_model: row.cpu_model,
            prepared_hash: row.prepared_hash,
            last_connected: row.last_connected,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn preparation_step(
        &self,
        row: preparation_logs::Model,
    ) -> Result<PreparationStep, StoreError> {
        Ok(PreparationStep {
            id: StepId(self.parse_uuid(LOGS, &row.id)?),
            seq: u32::try_from(row.seq).map_err(|_| {
                self.corrupt(
                    LOGS,
                    format!(
                        "step {} of preparation {}: seq {} is negative",
                        row.id, row.preparation_id, row.seq
                    ),
                )
            })?,
            step: row.step,
            status: row.status,
            message: row.message,
            stdout: row.stdout,
            stderr: row.stderr,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

/// A row for a server known only by name: what `set_server_status` and `record_host_key`
/// insert when the server has no row yet.
fn minimal_server(name: &str, at: DateTime<Utc>) -> servers::ActiveModel {
    servers::ActiveModel {
        name: Set(name.to_string()),
        address: Set(String::new()),
        port: Set(0),
        user: Set(String::new()),
        status: Set("unknown".to_string()),
        status_message: Set(None),
        host_key: Set(None),
        docker_installed: Set(false),
        docker_version: Set(None),
        os_id: Set(None),
        os_name: Set(None),
        os_version: Set(None),
        kernel: Set(None),
        arch: Set(None),
        cpu_model: Set(None),
        cpu_count: Set(None),
        memory_bytes: Set(None),
        disk_total_bytes: Set(None),
        disk_free_bytes: Set(None),
        labels: Set("{}".to_string()),
        prepared_hash: Set(None),
        last_connected: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
}

/// Closes the still-running steps of the given preparations as `failed`; `message` replaces
/// theirs when given.
async fn close_running_steps(
    txn: &DatabaseTransaction,
    preparation_ids: &[String],
    message: Option<&str>,
    at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use preparation_logs::Column as C;
    let mut update = preparation_logs::Entity::update_many()
        .col_expr(C::Status, Expr::value("failed"))
        .col_expr(C::FinishedAt, Expr::value(Some(at)));
    if let Some(message) = message {
        update = update.col_expr(C::Message, Expr::value(message));
    }
    let result = update
        .filter(C::PreparationId.is_in(preparation_ids.iter().cloned()))
        .filter(C::Status.eq(RUNNING))
        .exec(txn)
        .await?;
    Ok(result.rows_affected)
}

fn server_credential(row: server_credentials::Model) -> ServerCredential {
    ServerCredential {
        server: row.server,
        purpose: row.purpose,
        source: row.source,
        sealed: Sealed {
            key_id: row.key_id,
            nonce: row.nonce,
            ciphertext: row.ciphertext,
        },
        public_key_fingerprint: row.public_key_fingerprint,
        updated_at: row.updated_at,
    }
}

/// An unsigned value for a signed column, or an error naming it if it does not fit.
fn to_db<U, S>(op: &'static str, what: &str, value: Option<U>) -> Result<Option<S>, StoreError>
where
    U: Copy + fmt::Display,
    S: TryFrom<U>,
{
    value
        .map(|v| {
            S::try_from(v).map_err(|_| StoreError::Invalid {
                op,
                detail: format!("{what} {v} is too large to store"),
            })
        })
        .transpose()
}

/// A signed column's value as unsigned; the stored value if it does not fit.
fn from_db<S, U>(value: Option<S>) -> Result<Option<U>, S>
where
    S: Copy,
    U: TryFrom<S>,
{
    value.map(|v| U::try_from(v).map_err(|_| v)).transpose()
}

fn not_empty(op: &'static str, what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::Invalid {
            op,
            detail: format!("the {what} is empty"),
        });
    }
    Ok(())
}

fn one_of(op: &'static str, what: &str, value: &str, allowed: &[&str]) -> Result<(), StoreError> {
    if !allowed.contains(&value) {
        return Err(StoreError::Invalid {
            op,
            detail: format!(
                "unknown {what} `{value}` (expected one of: {})",
                allowed.join(", ")
            ),
        });
    }
    Ok(())
}
