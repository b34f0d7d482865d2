//! `servers`: the last state seen of each Server (connection, host key, system facts).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "servers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub address: String,
    pub port: i32,
    pub user: String,
    /// connected, error, preparing, disconnected or unknown.
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_message: Option<String>,
    /// The host key fingerprint (`SHA256:…`) recorded by trust on first use or last verified.
    pub host_key: Option<String>,
    pub docker_installed: bool,
    pub docker_version: Option<String>,
    pub os_id: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub cpu_model: Option<String>,
    pub cpu_count: Option<i32>,
    pub memory_bytes: Option<i64>,
    pub disk_total_bytes: Option<i64>,
    pub disk_free_bytes: Option<i64>,
    /// Serialized JSON object of label name to value.
    #[sea_orm(column_type = "Text")]
    pub labels: String,
    /// The hash of the prepare spec last completed on this server.
    pub prepared_hash: Option<String>,
    pub last_connected: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
