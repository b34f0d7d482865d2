//! Leases, so `ballast apply` and the daemon never act on one resource at once, and the
//! system event stream (reloads, drift found and healed, failed reconciles, daemon start/stop).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// UUIDs are stored as their 36-character text form.
const UUID_LEN: u32 = 36;

fn index(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    if unique {
        index.unique();
    }
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per held lease ("App/web"). A lease is free when there is no row or its
        // `expires_at` has passed; taking it is one compare-and-set upsert.
        manager
            .create_table(
                Table::create()
                    .table("leases")
                    .col(string("name").primary_key())
                    .col(string("holder"))
                    .col(timestamp_with_time_zone("acquired_at"))
                    .col(timestamp_with_time_zone("renewed_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("leases_holder", "leases", &["holder"], false))
            .await?;

        // What the system did, in order: `seq` is 1, 2, 3, … assigned under a write lock, so
        // rows become visible in `seq` order and a follower reading `seq > last` misses none.
        manager
            .create_table(
                Table::create()
                    .table("system_events")
                    .col(string_len("id", UUID_LEN).primary_key())
                    .col(big_integer("seq"))
                    .col(string("type"))
                    .col(string("severity"))
                    .col(text("message"))
                    .col(string_null("resource"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("system_events_seq", "system_events", &["seq"], true))
            .await?;
        manager
            .create_index(index(
                "system_events_type_seq",
                "system_events",
                &["type", "seq"],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "system_events_resource_seq",
                "system_events",
                &["resource", "seq"],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["system_events", "leases"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
