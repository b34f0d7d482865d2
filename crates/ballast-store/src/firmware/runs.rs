//! `host_runs`: one run per (plan, host), a state machine (`pending`, `running`, `completed`,
//! `failed`, `cancelled`, `retrying`) whose every transition is ONE compare-and-set statement,
//! `UPDATE host_runs SET state = to, … WHERE id = ? AND state = from`: of two workers moving
//! the same run, one wins and the other is told `false`, on SQLite and PostgreSQL alike. An
//! illegal transition ([`can_move`]) is refused before any SQL. The transition sets its own
//! bookkeeping: to `running` counts an attempt and stamps `started_at`; to a final state stamps
//! `completed_at`; back to `pending` (a re-opened run) clears both, the attempts, the task
//! monitor and the reason.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{RunState, can_move};
use crate::entity::host_runs;
use crate::{Store, StoreError, json_text, now};

const TABLE: &str = "host_runs";

/// The id of a host run (a UUID v7).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RunId(pub Uuid);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The phase of a host's update, with the seed's names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Download,
    Install,
    Reboot,
    Verify,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Install => "install",
            Phase::Reboot => "reboot",
            Phase::Verify => "verify",
        }
    }
}

/// What a run is doing now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// 0 to 100.
    #[serde(default)]
    pub percentage: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// When a phase started and finished.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
}

/// The seed's `ctx` JSON: `progress {phase, percentage, message}`, `results` (per component:
/// free-form JSON such as `{"from": "1.0", "to": "1.1", "outcome": "updated"}`), `timing` per
/// phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunCtx {
    #[serde(default)]
    pub progress: Progress,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timing: BTreeMap<Phase, Timing>,
}

impl RunCtx {
    /// Enters `phase` at `at`: the progress says so, the previous phase (if another) is
    /// finished, and this one's start is recorded once.
    pub fn enter(&mut self, phase: Phase, at: DateTime<Utc>, message: impl Into<String>) {
        if let Some(previous) = self.progress.phase.filter(|p| *p != phase) {
            self.timing
                .entry(previous)
                .or_default()
                .finished
                .get_or_insert(at);
        }
        self.timing
            .entry(phase)
            .or_default()
            .started
            .get_or_insert(at);
        self.progress = Progress {
            phase: Some(phase),
            percentage: 0,
            message: Some(message.into()),
        };
    }

    /// Finishes the current phase at `at`.
    pub fn finish(&mut self, at: DateTime<Utc>) {
        if let Some(phase) = self.progress.phase {
            self.timing
                .entry(phase)
                .or_default()
                .finished
                .get_or_insert(at);
        }
    }
}

/// A host run as recorded. Serializes in camelCase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRun {
    pub id: RunId,
    pub plan: String,
    pub host: String,
    /// The plan generation the run works for.
    pub generation: i64,
    #[serde(serialize_with = "state_name")]
    pub state: RunState,
    /// Attempts started (moves to `running`) since the run was (re-)opened.
    pub attempts: u32,
    pub ctx: RunCtx,
    /// Component → version before the update, and after it.
    pub versions_before: BTreeMap<String, String>,
    pub versions_after: BTreeMap<String, String>,
    /// The task monitor URI of the update in progress (the external id polled after a restart).
    pub external_id: Option<String>,
    /// Why it failed, was cancelled or is retrying.
    pub reason: Option<String>,
    /// The process driving it (`ROLE PID@HOST`).
    pub owner: Option<String>,
    /// When the current attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a transition (or a progress update) writes besides the state; `None` leaves a column
/// as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunChange {
    pub ctx: Option<RunCtx>,
    pub external_id: Option<Option<String>>,
    pub reason: Option<Option<String>>,
    pub versions_before: Option<BTreeMap<String, String>>,
    pub versions_after: Option<BTreeMap<String, String>>,
    /// Moves the run to another plan generation (a re-opened run works for the current one).
    pub generation: Option<i64>,
    pub owner: Option<Option<String>>,
}

fn state_name<S: serde::Serializer>(state: &RunState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

impl Store {
    /// Creates a `pending` run for each of `hosts` that has none in `plan` (a run that exists is
    /// left as it is, whoever created it first), and returns every run of the plan.
    pub async fn ensure_host_runs(
        &self,
        plan: &str,
        generation: i64,
        hosts: &[&str],
    ) -> Result<Vec<HostRun>, StoreError> {
        const OP: &str = "ensure_host_runs";
        if plan.is_empty() || hosts.iter().any(|h| h.is_empty()) {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "a plan or host name is empty".to_string(),
            });
        }
        let at = now();
        let empty = json_text(&serde_json::json!({}));
        let ctx = serde_json::to_string(&RunCtx::default()).unwrap_or_else(|_| empty.clone());
        for batch in crate::batches(hosts.to_vec()) {
            let rows = batch.into_iter().map(|host| host_runs::ActiveModel {
                id: Set(crate::new_id()),
                plan: Set(plan.to_string()),
                host: Set(host.to_string()),
                generation: Set(generation),
                state: Set(RunState::Pending.as_str().to_string()),
                attempts: Set(0),
                ctx: Set(ctx.clone()),
                versions_before: Set(empty.clone()),
                versions_after: Set(empty.clone()),
                external_id: Set(None),
                reason: Set(None),
                owner: Set(None),
                started_at: Set(None),
                completed_at: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
            });
            host_runs::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([host_runs::Column::Plan, host_runs::Column::Host])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await
                .map_err(self.db_err(OP, TABLE))?;
        }
        self.list_host_runs(plan).await
    }

    /// A plan's runs, by host.
    pub async fn list_host_runs(&self, plan: &str) -> Result<Vec<HostRun>, StoreError> {
        host_runs::Entity::find()
            .filter(host_runs::Column::Plan.eq(plan))
            .order_by_asc(host_runs::Column::Host)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_host_runs", TABLE))?
            .into_iter()
            .map(|row| self.host_run(row))
            .collect()
    }

    pub async fn get_host_run(&self, id: RunId) -> Result<Option<HostRun>, StoreError> {
        host_runs::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_host_run", TABLE))?
            .map(|row| self.host_run(row))
            .transpose()
    }

    /// Moves a run from `from` to `to` if it is still in `from` (compare-and-set), writing
    /// `change` with it. `Ok(false)`: another actor moved it first (or the run is gone); an
    /// illegal transition is an error and touches nothing.
    pub async fn move_host_run(
        &self,
        id: RunId,
        from: RunState,
        to: RunState,
        change: &RunChange,
    ) -> Result<bool, StoreError> {
        const OP: &str = "move_host_run";
        if !can_move(from, to) {
            return Err(StoreError::Invalid {
                op: OP,
                detail: format!("a host run cannot move from {from} to {to}"),
            });
        }
        let at = now();
        use host_runs::Column as C;
        let none_time = Expr::value(Option::<DateTime<Utc>>::None);
        let mut update = host_runs::Entity::update_many()
            .col_expr(C::State, Expr::value(to.as_str()))
            .col_expr(C::UpdatedAt, Expr::value(at));
        update = match to {
            RunState::Running => update
                .col_expr(
                    C::Attempts,
                    Expr::col((host_runs::Entity, C::Attempts)).add(1),
                )
                .col_expr(C::StartedAt, Expr::value(Some(at)))
                .col_expr(C::CompletedAt, none_time),
            RunState::Pending => update
                .col_expr(C::Attempts, Expr::value(0))
                .col_expr(C::StartedAt, none_time.clone())
                .col_expr(C::CompletedAt, none_time)
                .col_expr(C::ExternalId, Expr::value(Option::<String>::None))
                .col_expr(C::Reason, Expr::value(Option::<String>::None)),
            RunState::Completed | RunState::Failed | RunState::Cancelled => {
                update.col_expr(C::CompletedAt, Expr::value(Some(at)))
            }
            RunState::Retrying => update,
        };
        let result = self
            .apply_change(OP, update, change)?
            .filter(C::Id.eq(id.to_string()))
            .filter(C::State.eq(from.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        Ok(result.rows_affected == 1)
    }

    /// Writes `change` to a run that is still in `state` (progress, a new task monitor) without
    /// moving it: false when it is no longer in `state`.
    pub async fn update_host_run(
        &self,
        id: RunId,
        state: RunState,
        change: &RunChange,
    ) -> Result<bool, StoreError> {
        const OP: &str = "update_host_run";
        use host_runs::Column as C;
        let update = host_runs::Entity::update_many().col_expr(C::UpdatedAt, Expr::value(now()));
        let result = self
            .apply_change(OP, update, change)?
            .filter(C::Id.eq(id.to_string()))
            .filter(C::State.eq(state.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        Ok(result.rows_affected == 1)
    }

    /// Deletes a run whose host left the plan, if it is still in `state` (a run in the middle
    /// of an update is not forgotten under its worker). False when it was not.
    pub async fn delete_host_run(&self, id: RunId, state: RunState) -> Result<bool, StoreError> {
        let result = host_runs::Entity::delete_many()
            .filter(host_runs::Column::Id.eq(id.to_string()))
            .filter(host_runs::Column::State.eq(state.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_host_run", TABLE))?;
        Ok(result.rows_affected == 1)
    }

    fn apply_change(
        &self,
        op: &'static str,
        mut update: sea_orm::UpdateMany<host_runs::Entity>,
        change: &RunChange,
    ) -> Result<sea_orm::UpdateMany<host_runs::Entity>, StoreError> {
        use host_runs::Column as C;
        let text = |what: &str, v: Result<String, serde_json::Error>| {
            v.map_err(|e| StoreError::Invalid {
                op,
                detail: format!("{what}: {e}"),
            })
        };
        if let Some(ctx) = &change.ctx {
            update = update.col_expr(
                C::Ctx,
                Expr::value(text("ctx", serde_json::to_string(ctx))?),
            );
        }
        if let Some(before) = &change.versions_before {
            let value = text("versions_before", serde_json::to_string(before))?;
            update = update.col_expr(C::VersionsBefore, Expr::value(value));
        }
        if let Some(after) = &change.versions_after {
            let value = text("versions_after", serde_json::to_string(after))?;
            update = update.col_expr(C::VersionsAfter, Expr::value(value));
        }
        if let Some(external_id) = &change.external_id {
            update = update.col_expr(C::ExternalId, Expr::value(external_id.clone()));
        }
        if let Some(reason) = &change.reason {
            update = update.col_expr(C::Reason, Expr::value(reason.clone()));
        }
        if let Some(generation) = change.generation {
            update = update.col_expr(C::Generation, Expr::value(generation));
        }
        if let Some(owner) = &change.owner {
            update = update.col_expr(C::Owner, Expr::value(owner.clone()));
        }
        Ok(update)
    }

    fn host_run(&self, row: host_runs::Model) -> Result<HostRun, StoreError> {
        let id = row.id.clone();
        let bad = |what: &str, e: &dyn fmt::Display| {
            self.corrupt(TABLE, format!("run {id}: {what}: {e}"))
        };
        let state: RunState = row.state.parse().map_err(|e: String| bad("state", &e))?;
        let attempts = u32::try_from(row.attempts).map_err(|e| bad("attempts", &e))?;
        let ctx: RunCtx = serde_json::from_str(&row.ctx).map_err(|e| bad("ctx", &e))?;
        let versions_before: BTreeMap<String, String> =
            serde_json::from_str(&row.versions_before).map_err(|e| bad("versions_before", &e))?;
        let versions_after: BTreeMap<String, String> =
            serde_json::from_str(&row.versions_after).map_err(|e| bad("versions_after", &e))?;
        Ok(HostRun {
            id: RunId(self.parse_uuid(TABLE, &row.id)?),
            plan: row.plan,
            host: row.host,
            generation: row.generation,
            state,
            attempts,
            ctx,
            versions_before,
            versions_after,
            external_id: row.external_id,
            reason: row.reason,
            owner: row.owner,
            started_at: row.started_at,
            completed_at: row.completed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
