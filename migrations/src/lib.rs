//! Database schema of the ballast store, as sea-orm migrations. `ballast-store` runs them on
//! every open, so a database is always at the schema of the binary using it.
//!
//! Migrations are append-only: once released, a migration is never edited; a change to the
//! schema is a new migration at the end of [`Migrator::migrations`]. Column types are kept to
//! what SQLite and PostgreSQL both handle the same way: ids are UUID text, JSON is TEXT holding
//! serialized JSON, timestamps are `timestamp with time zone` (text in SQLite).

pub use sea_orm_migration::prelude::*;

mod m20250601_000001_initial;
mod m20250602_000002_leases_events;
mod m20251122_000003_servers;
mod m20261130_000004_owners_key_id;
mod m20261201_000006_proxmox;
mod m20261201_000007_firmware;

/// All migrations of the store, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_initial::Migration),
            Box::new(m20250602_000002_leases_events::Migration),
            Box::new(m20251122_000003_servers::Migration),
            Box::new(m20261130_000004_owners_key_id::Migration),
            Box::new(m20261201_000006_proxmox::Migration),
            Box::new(m20261201_000007_firmware::Migration),
        ]
    }
}
