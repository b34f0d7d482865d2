//! `observed`: the last state seen of each (kind, name).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "observed")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub name: String,
    /// Serialized JSON.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// When the resource was last observed.
    pub observed_at: DateTimeUtc,
    /// When the observed state last changed.
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
