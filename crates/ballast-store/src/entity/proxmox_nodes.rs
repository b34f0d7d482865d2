//! `nodes`: the nodes of each Proxmox cluster as last seen.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cluster: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub status: String,
    pub cpu: Option<f64>,
    pub cpus: Option<f64>,
    pub memory_used: Option<i64>,
    pub memory_total: Option<i64>,
    pub uptime: Option<i64>,
    pub pve_version: Option<String>,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
