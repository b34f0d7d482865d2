//! `server_preparations`: each attempt to prepare a server (install packages and Docker).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "server_preparations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub server: String,
    /// running, succeeded, failed or interrupted.
    pub status: String,
    /// Why it failed or was interrupted.
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub attempt: i32,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// The process that runs it (`ROLE PID@HOST`); none on rows from before owners were kept.
    pub owner: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
