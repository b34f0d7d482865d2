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
    /// The id of the key that seals this store's secrets, recorded on first use.
    pub key_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
