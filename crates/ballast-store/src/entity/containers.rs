//! `containers`: Docker containers as last listed on each server.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "containers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub server: String,
    /// The Docker container id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub image: String,
    /// Serialized JSON.
    #[sea_orm(column_type = "Text")]
    pub ports: String,
    pub state: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    /// Serialized JSON object of label name to value.
    #[sea_orm(column_type = "Text")]
    pub labels: String,
    pub app: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
