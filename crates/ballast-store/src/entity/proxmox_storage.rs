//! `storage`: the storages of each Proxmox cluster as last seen.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cluster: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub storage_type: Option<String>,
    /// Serialized JSON array of content types.
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub enabled: bool,
    pub shared: bool,
    pub total: Option<i64>,
    pub used: Option<i64>,
    pub available: Option<i64>,
    /// Serialized JSON array of node names.
    #[sea_orm(column_type = "Text")]
    pub nodes: String,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
