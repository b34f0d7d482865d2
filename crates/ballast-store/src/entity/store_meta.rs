//! `store_meta`: one row holding the identity of this ballast database.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "store_meta")]
pub struct Model {
    /// Always 1: the table has exactly one row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub instance_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
