//! `tasks`: every step ballast runs, with its status and log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub name: String,
    pub action: String,
    /// pending, running, succeeded, failed or interrupted.
    pub status: String,
    pub attempts: i32,
    pub external_id: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Lines, each ending in a newline.
    #[sea_orm(column_type = "Text")]
    pub log: String,
    pub created_at: DateTimeUtc,
    /// The process that runs it (`ROLE PID@HOST`); none on rows from before owners were kept.
    pub owner: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
