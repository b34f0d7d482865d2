//! `host_runs`: one run per (plan, host), moved only by compare-and-set on `state`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "host_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub plan: String,
    pub host: String,
    pub generation: i64,
    /// pending, running, completed, failed, cancelled or retrying.
    pub state: String,
    pub attempts: i32,
    /// Serialized JSON: progress, results, timing per phase.
    #[sea_orm(column_type = "Text")]
    pub ctx: String,
    /// Serialized JSON object of component to version.
    #[sea_orm(column_type = "Text")]
    pub versions_before: String,
    #[sea_orm(column_type = "Text")]
    pub versions_after: String,
    /// The task monitor URI of the update in progress.
    #[sea_orm(column_type = "Text", nullable)]
    pub external_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// The process driving the run (`ROLE PID@HOST`).
    pub owner: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
