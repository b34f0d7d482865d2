//! `update_plans`, `plan_targets` and `artifacts`: a FirmwarePlan as recorded, its hosts by
//! priority and its packages. A plan's `generation` grows when its spec hash changes; an
//! approval is recorded for one generation, so a changed plan needs a new one.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use super::PlanStatus;
use crate::entity::{artifacts, host_runs, plan_targets, update_plans};
use crate::{Store, StoreError, new_id, now};

const PLANS: &str = "update_plans";
const TARGETS: &str = "plan_targets";
const ARTIFACTS: &str = "artifacts";

/// Who approved which generation of a plan, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub by: String,
    pub at: DateTime<Utc>,
    pub generation: i64,
}

/// A FirmwarePlan as recorded. Serializes in camelCase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlanRecord {
    pub name: String,
    /// 1 for the first spec recorded, +1 each time the spec hash changes.
    pub generation: i64,
    pub spec_hash: String,
    /// The plan's `policy`, as JSON.
    pub policy: serde_json::Value,
    #[serde(serialize_with = "status_name")]
    pub status: PlanStatus,
    pub status_message: Option<String>,
    /// The window texts (empty: any time).
    pub maintenance_window: Vec<String>,
    pub approval_required: bool,
    /// The last approval, whichever generation it was for.
    pub approval: Option<Approval>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn status_name<S: serde::Serializer>(status: &PlanStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

impl UpdatePlanRecord {
    /// Whether the current generation may start hosts as far as approval goes.
    pub fn is_approved(&self) -> bool {
        !self.approval_required
            || self
                .approval
                .as_ref()
                .is_some_and(|a| a.generation == self.generation)
    }
}

/// One host of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanTarget {
    pub host: String,
    /// Lower first.
    pub priority: i64,
}

/// One package of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRecord {
    /// Empty for every host; the host model a catalog package was chosen for.
    pub model: String,
    pub component: String,
    pub version: String,
    pub image_uri: Option<String>,
    pub file: Option<String>,
    /// SHA-256, lower-case hex.
    pub checksum: Option<String>,
    pub size: Option<u64>,
    pub transfer_protocol: Option<String>,
    pub rollback_version: Option<String>,
    pub rollback_image_uri: Option<String>,
    pub reboot_required: bool,
}

impl Store {
    /// Records a plan's spec: created with generation 1, or updated, its generation grown by
    /// one when `spec_hash` differs from the recorded one (one statement, so two processes
    /// recording the same change grow it once). A new plan's status is `pending`; an existing
    /// one keeps its status and approval. Returns the generation now recorded.
    pub async fn record_update_plan(
        &self,
        name: &str,
        spec_hash: &str,
        policy: &serde_json::Value,
        maintenance_window: &[String],
        approval_required: bool,
    ) -> Result<i64, StoreError> {
        const OP: &str = "record_update_plan";
        if name.is_empty() || spec_hash.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "the plan's name and spec hash must not be empty".to_string(),
            });
        }
        let err = self.db_err(OP, PLANS);
        let at = now();
        let windows = (!maintenance_window.is_empty()).then(|| maintenance_window.join("\n"));
        use update_plans::Column as C;
        let current = |col: C| Expr::col((update_plans::Entity, col));
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        update_plans::Entity::insert(update_plans::ActiveModel {
            name: Set(name.to_string()),
            generation: Set(1),
            spec_hash: Set(spec_hash.to_string()),
            policy: Set(crate::json_text(policy)),
            status: Set(PlanStatus::Pending.as_str().to_string()),
            status_message: Set(None),
            maintenance_window: Set(windows.clone()),
            approval_required: Set(approval_required),
            approved_by: Set(None),
            approved_at: Set(None),
            approved_generation: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            OnConflict::column(C::Name)
                // SET expressions see the row as it was.
                .value(
                    C::Generation,
                    Expr::case(
                        current(C::SpecHash).ne(spec_hash),
                        current(C::Generation).add(1),
                    )
                    .finally(current(C::Generation)),
                )
                .value(C::SpecHash, spec_hash)
                .value(C::Policy, crate::json_text(policy))
                .value(C::MaintenanceWindow, windows)
                .value(C::ApprovalRequired, approval_required)
                .value(C::UpdatedAt, at)
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(&err)?;
        let row = update_plans::Entity::find_by_id(name.to_string())
            .one(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        row.map(|r| r.generation).ok_or_else(|| {
            self.corrupt(
                PLANS,
                format!("plan `{name}` has no row right after recording it"),
            )
        })
    }

    pub async fn get_update_plan(
        &self,
        name: &str,
    ) -> Result<Option<UpdatePlanRecord>, StoreError> {
        update_plans::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_update_plan", PLANS))?
            .map(|row| self.plan_record(row))
            .transpose()
    }

    /// Every plan, by name.
    pub async fn list_update_plans(&self) -> Result<Vec<UpdatePlanRecord>, StoreError> {
        update_plans::Entity::find()
            .order_by_asc(update_plans::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_update_plans", PLANS))?
            .into_iter()
            .map(|row| self.plan_record(row))
            .collect()
    }

    /// Sets a plan's status. False when the plan has no row.
    pub async fn set_plan_status(
        &self,
        name: &str,
        status: PlanStatus,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let result = update_plans::Entity::update_many()
            .col_expr(update_plans::Column::Status, Expr::value(status.as_str()))
            .col_expr(update_plans::Column::StatusMessage, Expr::value(message))
            .col_expr(update_plans::Column::UpdatedAt, Expr::value(now()))
            .filter(update_plans::Column::Name.eq(name))
            .exec(&self.db)
            .await
            .map_err(self.db_err("set_plan_status", PLANS))?;
        Ok(result.rows_affected > 0)
    }

    /// Records `by`'s approval of `generation`, only while it is the plan's current one
    /// (compare-and-set: an approval of a plan that changed meanwhile is refused, false).
    pub async fn approve_update_plan(
        &self,
        name: &str,
        generation: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        if by.is_empty() {
            return Err(StoreError::Invalid {
                op: "approve_update_plan",
                detail: "who approves must be named".to_string(),
            });
        }
        let result = update_plans::Entity::update_many()
            .col_expr(update_plans::Column::ApprovedBy, Expr::value(by))
            .col_expr(update_plans::Column::ApprovedAt, Expr::value(now()))
            .col_expr(
                update_plans::Column::ApprovedGeneration,
                Expr::value(generation),
            )
            .col_expr(update_plans::Column::UpdatedAt, Expr::value(now()))
            .filter(update_plans::Column::Name.eq(name))
            .filter(update_plans::Column::Generation.eq(generation))
            .exec(&self.db)
            .await
            .map_err(self.db_err("approve_update_plan", PLANS))?;
        Ok(result.rows_affected > 0)
    }

    /// Replaces a plan's hosts, in one transaction.
    pub async fn set_plan_targets(
        &self,
        plan: &str,
        targets: &[PlanTarget],
    ) -> Result<(), StoreError> {
        let err = self.db_err("set_plan_targets", TARGETS);
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        plan_targets::Entity::delete_many()
            .filter(plan_targets::Column::Plan.eq(plan))
            .exec(&txn)
            .await
            .map_err(&err)?;
        if !targets.is_empty() {
            plan_targets::Entity::insert_many(targets.iter().map(|t| plan_targets::ActiveModel {
                id: Set(new_id()),
                plan: Set(plan.to_string()),
                host: Set(t.host.clone()),
                priority: Set(t.priority),
            }))
            .exec_without_returning(&txn)
            .await
            .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// A plan's hosts by priority, then name.
    pub async fn list_plan_targets(&self, plan: &str) -> Result<Vec<PlanTarget>, StoreError> {
        Ok(plan_targets::Entity::find()
            .filter(plan_targets::Column::Plan.eq(plan))
            .order_by_asc(plan_targets::Column::Priority)
            .order_by_asc(plan_targets::Column::Host)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_plan_targets", TARGETS))?
            .into_iter()
            .map(|row| PlanTarget {
                host: row.host,
                priority: row.priority,
            })
            .collect())
    }

    /// Replaces a plan's packages, in one transaction.
    pub async fn set_plan_artifacts(
        &self,
        plan: &str,
        list: &[ArtifactRecord],
    ) -> Result<(), StoreError> {
        const OP: &str = "set_plan_artifacts";
        let err = self.db_err(OP, ARTIFACTS);
        let mut rows = Vec::with_capacity(list.len());
        for a in list {
            let size = a
                .size
                .map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Invalid {
                    op: OP,
                    detail: format!("artifact `{}`: its size is too large to store", a.component),
                })?;
            rows.push(artifacts::ActiveModel {
                id: Set(new_id()),
                plan: Set(plan.to_string()),
                model: Set(a.model.clone()),
                component: Set(a.component.clone()),
                version: Set(a.version.clone()),
                image_uri: Set(a.image_uri.clone()),
                file: Set(a.file.clone()),
                checksum: Set(a.checksum.clone()),
                size: Set(size),
                transfer_protocol: Set(a.transfer_protocol.clone()),
                rollback_version: Set(a.rollback_version.clone()),
                rollback_image_uri: Set(a.rollback_image_uri.clone()),
                reboot_required: Set(a.reboot_required),
            });
        }
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        artifacts::Entity::delete_many()
            .filter(artifacts::Column::Plan.eq(plan))
            .exec(&txn)
            .await
            .map_err(&err)?;
        if !rows.is_empty() {
            artifacts::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// A plan's packages by model, then component.
    pub async fn list_plan_artifacts(&self, plan: &str) -> Result<Vec<ArtifactRecord>, StoreError> {
        let rows = artifacts::Entity::find()
            .filter(artifacts::Column::Plan.eq(plan))
            .order_by_asc(artifacts::Column::Model)
            .order_by_asc(artifacts::Column::Component)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_plan_artifacts", ARTIFACTS))?;
        rows.into_iter()
            .map(|row| {
                let size = row.size.map(u64::try_from).transpose().map_err(|_| {
                    self.corrupt(
                        ARTIFACTS,
                        format!("artifact `{}`: negative size", row.component),
                    )
                })?;
                Ok(ArtifactRecord {
                    model: row.model,
                    component: row.component,
                    version: row.version,
                    image_uri: row.image_uri,
                    file: row.file,
                    checksum: row.checksum,
                    size,
                    transfer_protocol: row.transfer_protocol,
                    rollback_version: row.rollback_version,
                    rollback_image_uri: row.rollback_image_uri,
                    reboot_required: row.reboot_required,
                })
            })
            .collect()
    }

    /// Forgets a plan (deleted from the manifests and pruned): its row, hosts, packages and
    /// runs, in one transaction. Its events stay. False when there was no plan.
    pub async fn delete_update_plan(&self, name: &str) -> Result<bool, StoreError> {
        let err = self.db_err("delete_update_plan", PLANS);
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        plan_targets::Entity::delete_many()
            .filter(plan_targets::Column::Plan.eq(name))
            .exec(&txn)
            .await
            .map_err(&err)?;
        artifacts::Entity::delete_many()
            .filter(artifacts::Column::Plan.eq(name))
            .exec(&txn)
            .await
            .map_err(&err)?;
        host_runs::Entity::delete_many()
            .filter(host_runs::Column::Plan.eq(name))
            .exec(&txn)
            .await
            .map_err(&err)?;
        let result = update_plans::Entity::delete_by_id(name.to_string())
            .exec(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(result.rows_affected > 0)
    }

    /// A write transaction for the firmware tables: `BEGIN IMMEDIATE` on SQLite (so it never
    /// has to upgrade a read lock under contention). On PostgreSQL each statement guards what
    /// it changes with row locks (and the run transitions are single compare-and-set
    /// statements), so no area lock is needed.
    pub(super) async fn begin_firmware_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    fn plan_record(&self, row: update_plans::Model) -> Result<UpdatePlanRecord, StoreError> {
        let policy = self.parse_json(PLANS, &format!("plan `{}` policy", row.name), &row.policy)?;
        let status: PlanStatus = row
            .status
            .parse()
            .map_err(|e: String| self.corrupt(PLANS, format!("plan `{}`: {e}", row.name)))?;
        let approval = match (row.approved_by, row.approved_at, row.approved_generation) {
            (Some(by), Some(at), Some(generation)) => Some(Approval { by, at, generation }),
            _ => None,
        };
        Ok(UpdatePlanRecord {
            name: row.name,
            generation: row.generation,
            spec_hash: row.spec_hash,
            policy,
            status,
            status_message: row.status_message,
            maintenance_window: row
                .maintenance_window
                .map(|w| w.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            approval_required: row.approval_required,
            approval,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
