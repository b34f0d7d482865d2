//! `artifacts`: the packages of a plan (per host model when chosen from a catalog).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "artifacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub plan: String,
    /// Empty for every host; a model name for a package chosen from a catalog.
    pub model: String,
    pub component: String,
    pub version: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub image_uri: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub file: Option<String>,
    /// SHA-256, lower-case hex.
    pub checksum: Option<String>,
    pub size: Option<i64>,
    pub transfer_protocol: Option<String>,
    pub rollback_version: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rollback_image_uri: Option<String>,
    pub reboot_required: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
