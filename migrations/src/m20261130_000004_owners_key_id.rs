//! Who owns a running task or preparation, and which key seals this store's secrets.
//!
//! `tasks.owner` and `server_preparations.owner` name the process that runs them (`ROLE
//! PID@HOST`, the same identity it holds leases under), so recovery after a crash touches only
//! the work of processes that are gone, never that of a concurrent `apply` or daemon. Rows
//! written before this migration have no owner.
//!
//! `store_meta.key_id` is the id of the key that seals this store's secrets and server
//! credentials, recorded on first use, so a command that would create a new key can tell that
//! the store already depends on another one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        for (table, column) in [
            ("tasks", "owner"),
            ("server_preparations", "owner"),
            ("store_meta", "key_id"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(string_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("store_meta", "key_id"),
            ("server_preparations", "owner"),
            ("tasks", "owner"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
