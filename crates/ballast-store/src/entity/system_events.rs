//! `system_events`: what the system did (reloads, drift, failed reconciles, daemon start and
//! stop), numbered by `seq`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "system_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub seq: i64,
    /// reload, reload_failed, drift_found, drift_healed, reconcile_failed, …
    #[sea_orm(column_name = "type")]
    pub kind: String,
    /// info, warning or error.
    pub severity: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub resource: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
