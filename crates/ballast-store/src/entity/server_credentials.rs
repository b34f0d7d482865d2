//! `server_credentials`: sealed SSH credentials of servers, one per (server, purpose).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "server_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub server: String,
    /// key, password or passphrase.
    pub purpose: String,
    /// Where the value came from (`secret:NAME`, `file:/path`), never the value.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub public_key_fingerprint: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
