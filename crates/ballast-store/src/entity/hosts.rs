//! `hosts`: what each firmware target's BMC showed when last observed, by Server name.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hosts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub fqdn: Option<String>,
    /// The BMC's address.
    pub mgmt_ip: String,
    /// What answers there: idrac, ilo, xcc, redfish.
    pub mgmt_kind: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub service_tag: Option<String>,
    /// Dell's system id (decimal), the key of Dell catalogs.
    pub system_id: Option<i32>,
    pub bmc_firmware: Option<String>,
    pub power_state: Option<String>,
    pub health: Option<String>,
    /// Serialized JSON object of label name to value.
    #[sea_orm(column_type = "Text")]
    pub tags: String,
    /// Serialized JSON array of firmware components.
    #[sea_orm(column_type = "Text")]
    pub inventory: String,
    /// connected, disconnected or unknown.
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_message: Option<String>,
    pub last_seen: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
