//! `lxc_containers`: the LXC guests of each Proxmox cluster as last seen, and what is ballast's own about them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lxc_containers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cluster: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub vmid: i32,
    pub node: String,
    pub name: Option<String>,
    pub status: String,
    pub template: bool,
    pub cores: Option<f64>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
    pub net_in: Option<i64>,
    pub net_out: Option<i64>,
    pub uptime: Option<i64>,
    pub ha_managed: bool,
    pub lock_status: Option<String>,
    /// Serialized JSON array of tags.
    #[sea_orm(column_type = "Text")]
    pub tags: String,
    pub pool: Option<String>,
    pub config_digest: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub os_template: Option<String>,
    pub resource: Option<String>,
    pub created_by_ballast: bool,
    pub adopted: bool,
    pub applied_hash: Option<String>,
    /// Serialized JSON object of secret parameter to where it was last set from.
    #[sea_orm(column_type = "Text")]
    pub secret_versions: String,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
