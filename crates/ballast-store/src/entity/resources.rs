//! `resources`: the desired state, one row per (kind, name).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resources")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub name: String,
    /// The whole document as serialized JSON.
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    pub spec_hash: String,
    pub generation: i64,
    #[sea_orm(column_type = "Text")]
    pub source_file: String,
    pub source_line: i64,
    pub git_commit: Option<String>,
    pub git_dirty: bool,
    pub tombstoned_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
