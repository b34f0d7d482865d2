//! `update_plans`: one row per FirmwarePlan: its policy, status, window and approval.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "update_plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub generation: i64,
    pub spec_hash: String,
    /// Serialized JSON of the plan's policy.
    #[sea_orm(column_type = "Text")]
    pub policy: String,
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_message: Option<String>,
    /// The windows, one per line.
    #[sea_orm(column_type = "Text", nullable)]
    pub maintenance_window: Option<String>,
    pub approval_required: bool,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTimeUtc>,
    pub approved_generation: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
