//! Tasks: every step ballast applies, with its status, attempts, log and owner (the process
//! running it). Status changes are compare-and-set (`UPDATE … WHERE status = …`), so two
//! processes can never both start or finish one task. A task left `running` by an owner that
//! is gone ([`crate::holder`] says how that is told) is marked `interrupted` and its resource
//! re-observed; it is never replayed blind, and a task whose owner still runs is never touched.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{BinOper, Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::entity::tasks;
use crate::holder::abandoned;
use crate::{Holder, Key, Store, StoreError, now};

const TABLE: &str = "tasks";

/// The id of a task (a UUID v7: ids sort by creation time). Serializes as its text form.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(TaskId)
    }
}

/// Where a task is in its life. Serializes as the lower-case word stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Was `running` when ballast stopped; the outcome is unknown until re-observed.
    Interrupted,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the task has ended (succeeded, failed or interrupted).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Interrupted
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment (`{:<11}`) in tables.
        f.pad(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(TaskStatus::Pending),
            "running" => Ok(TaskStatus::Running),
            "succeeded" => Ok(TaskStatus::Succeeded),
            "failed" => Ok(TaskStatus::Failed),
            "interrupted" => Ok(TaskStatus::Interrupted),
            other => Err(format!("unknown task status `{other}`")),
        }
    }
}

/// A recorded task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: TaskId,
    pub kind: String,
    pub name: String,
    pub action: String,
    pub status: TaskStatus,
    pub attempts: i32,
    /// The id of the long operation this task waits on elsewhere (a Proxmox UPID, a Redfish
    /// task monitor), so a restart resumes waiting on it.
    pub external_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Log lines, each ending in a newline.
    pub log: String,
    pub created_at: DateTime<Utc>,
    /// The process that runs or ran it (`ROLE PID@HOST`); none on rows from before owners
    /// were recorded.
    pub owner: Option<String>,
}

/// Which tasks [`Store::list_tasks`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Only tasks that did not succeed: failed and interrupted.
    pub failed_only: bool,
    /// At most this many (the newest).
    pub limit: Option<u64>,
}

impl Store {
    /// Records a new `pending` task of `owner`, the process that will run it.
    pub async fn create_task(
        &self,
        kind: &str,
        name: &str,
        action: &str,
        owner: &Holder,
    ) -> Result<TaskId, StoreError> {
        let id = Uuid::now_v7();
        tasks::Entity::insert(tasks::ActiveModel {
            id: Set(id.to_string()),
            kind: Set(kind.to_string()),
            name: Set(name.to_string()),
            action: Set(action.to_string()),
            status: Set(TaskStatus::Pending.as_str().to_string()),
            attempts: Set(0),
            external_id: Set(None),
            started_at: Set(None),
            finished_at: Set(None),
            error: Set(None),
            log: Set(String::new()),
            created_at: Set(now()),
            owner: Set(Some(owner.to_string())),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(self.db_err("create_task", TABLE))?;
        Ok(TaskId(id))
    }

    /// Marks a task `running` and counts the attempt. Fails if it is already running; a
    /// finished task may be started again (a retry), which clears its previous outcome.
    pub async fn start_task(&self, id: &TaskId) -> Result<(), StoreError> {
        const OP: &str = "start_task";
        let result = tasks::Entity::update_many()
            .col_expr(
                tasks::Column::Status,
                Expr::value(TaskStatus::Running.as_str()),
            )
            .col_expr(
                tasks::Column::Attempts,
                Expr::col(tasks::Column::Attempts).add(1),
            )
            .col_expr(tasks::Column::StartedAt, Expr::value(Some(now())))
            .col_expr(
                tasks::Column::FinishedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(tasks::Column::Error, Expr::value(Option::<String>::None))
            .filter(tasks::Column::Id.eq(id.to_string()))
            .filter(tasks::Column::Status.ne(TaskStatus::Running.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        if result.rows_affected == 0 {
            return Err(self.task_not_in_state(OP, id, "not running").await);
        }
        Ok(())
    }

    /// Appends one line to a task's log.
    pub async fn append_task_log(&self, id: &TaskId, line: &str) -> Result<(), StoreError> {
        const OP: &str = "append_task_log";
        let mut text = line.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let result = tasks::Entity::update_many()
            .col_expr(tasks::Column::Log, append(text))
            .filter(tasks::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        task_found(result.rows_affected, OP, id)
    }

    /// Records the id of the external operation a task waits on.
    pub async fn set_task_external_id(
        &self,
        id: &TaskId,
        external_id: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_task_external_id";
        let result = tasks::Entity::update_many()
            .col_expr(tasks::Column::ExternalId, Expr::value(Some(external_id)))
            .filter(tasks::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        task_found(result.rows_affected, OP, id)
    }

    /// Ends a running task: `succeeded`, or `failed` with the error.
    pub async fn finish_task(
        &self,
        id: &TaskId,
        result: Result<(), String>,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_task";
        let (status, error) = match result {
            Ok(()) => (TaskStatus::Succeeded, None),
            Err(error) => (TaskStatus::Failed, Some(error)),
        };
        let updated = tasks::Entity::update_many()
            .col_expr(tasks::Column::Status, Expr::value(status.as_str()))
            .col_expr(tasks::Column::FinishedAt, Expr::value(Some(now())))
            .col_expr(tasks::Column::Error, Expr::value(error))
            .filter(tasks::Column::Id.eq(id.to_string()))
            .filter(tasks::Column::Status.eq(TaskStatus::Running.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        if updated.rows_affected == 0 {
            return Err(self.task_not_in_state(OP, id, "running").await);
        }
        Ok(())
    }

    /// Marks a task that was found `running` after a restart as `interrupted`, appending
    /// `note` to its log (and recording it as the error).
    pub async fn mark_interrupted(&self, id: &TaskId, note: &str) -> Result<(), StoreError> {
        const OP: &str = "mark_interrupted";
        let mut line = note.to_string();
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let updated = tasks::Entity::update_many()
            .col_expr(
                tasks::Column::Status,
                Expr::value(TaskStatus::Interrupted.as_str()),
            )
            .col_expr(tasks::Column::FinishedAt, Expr::value(Some(now())))
            .col_expr(tasks::Column::Error, Expr::value(Some(note)))
            .col_expr(tasks::Column::Log, append(line))
            .filter(tasks::Column::Id.eq(id.to_string()))
            .filter(tasks::Column::Status.eq(TaskStatus::Running.as_str()))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        if updated.rows_affected == 0 {
            return Err(self.task_not_in_state(OP, id, "running").await);
        }
        Ok(())
    }

    /// One task.
    pub async fn get_task(&self, id: &TaskId) -> Result<Option<TaskRow>, StoreError> {
        tasks::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_task", TABLE))?
            .map(|row| self.task_row(row))
            .transpose()
    }

    /// Tasks matching `filter`, newest first.
    pub async fn list_tasks(&self, filter: TaskFilter) -> Result<Vec<TaskRow>, StoreError> {
        let mut query = tasks::Entity::find();
        if let Some(kind) = filter.kind {
            query = query.filter(tasks::Column::Kind.eq(kind));
        }
        if let Some(name) = filter.name {
            query = query.filter(tasks::Column::Name.eq(name));
        }
        if filter.failed_only {
            query = query.filter(tasks::Column::Status.is_in([
                TaskStatus::Failed.as_str(),
                TaskStatus::Interrupted.as_str(),
            ]));
        }
        if let Some(limit) = filter.limit {
            query = query.limit(limit);
        }
        query
            .order_by_desc(tasks::Column::CreatedAt)
            .order_by_desc(tasks::Column::Id)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_tasks", TABLE))?
            .into_iter()
            .map(|row| self.task_row(row))
            .collect()
    }

    /// Tasks currently marked `running`, oldest first. After a restart these are the tasks a
    /// crash interrupted.
    pub async fn running_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        tasks::Entity::find()
            .filter(tasks::Column::Status.eq(TaskStatus::Running.as_str()))
            .order_by_asc(tasks::Column::CreatedAt)
            .order_by_asc(tasks::Column::Id)
            .all(&self.db)
            .await
            .map_err(self.db_err("running_tasks", TABLE))?
            .into_iter()
            .map(|row| self.task_row(row))
            .collect()
    }

    /// Marks `interrupted` every `running` task whose owner is gone, as seen from `me`: a
    /// process of this host that no longer exists, or one elsewhere (or unrecorded) that no
    /// longer holds a live lease on the task's resource (`KIND/NAME`). Tasks of owners that
    /// still run, `me` included, are left alone. `note` says what was found of each task's
    /// resource; it is appended to the log and recorded as the error. Returns the tasks
    /// marked. A task that finished between the look and the mark is skipped.
    pub async fn interrupt_abandoned_tasks(
        &self,
        me: &Holder,
        note: impl Fn(&TaskRow) -> String,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let running = self.running_tasks().await?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let leases: std::collections::HashMap<String, crate::LeaseRow> = self
            .list_leases()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let at = now();
        let mut marked = Vec::new();
        for task in running {
            let lease = leases.get(&Key::new(task.kind.clone(), task.name.clone()).to_string());
            if !abandoned(task.owner.as_deref(), lease, me, at) {
                continue;
            }
            match self.mark_interrupted(&task.id, &note(&task)).await {
                Ok(()) => marked.push(task),
                // It finished (or someone else marked it) since the look: nothing to do.
                Err(StoreError::Invalid { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(marked)
    }

    /// The error for a compare-and-set that matched no row: the task is missing, or it is not
    /// in the state the operation needs.
    async fn task_not_in_state(&self, op: &'static str, id: &TaskId, needed: &str) -> StoreError {
        match self.get_task(id).await {
            Ok(Some(task)) => StoreError::Invalid {
                op,
                detail: format!("task {id} is {}; it must be {needed}", task.status),
            },
            Ok(None) => StoreError::NotFound {
                op,
                what: format!("task {id}"),
            },
            Err(e) => e,
        }
    }

    fn task_row(&self, row: tasks::Model) -> Result<TaskRow, StoreError> {
        Ok(TaskRow {
            id: TaskId(self.parse_uuid(TABLE, &row.id)?),
            status: row
                .status
                .parse()
                .map_err(|e: String| self.corrupt(TABLE, format!("task {}: {e}", row.id)))?,
            kind: row.kind,
            name: row.name,
            action: row.action,
            attempts: row.attempts,
            external_id: row.external_id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error,
            log: row.log,
            created_at: row.created_at,
            owner: row.owner,
        })
    }
}

/// `log || text`: appends in the database, so concurrent appends never lose lines.
fn append(text: String) -> Expr {
    Expr::col(tasks::Column::Log).binary(BinOper::Custom("||"), Expr::value(text))
}

/// An update of one task by id that touched no row means there is no such task.
fn task_found(rows_affected: u64, op: &'static str, id: &TaskId) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound {
            op,
            what: format!("task {id}"),
        });
    }
    Ok(())
}
