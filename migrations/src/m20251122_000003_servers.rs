//! Servers reached over SSH: their observed state (connection status, recorded host key, system
//! facts), their credentials (ciphertext only), and the history of preparing them (installing
//! packages and Docker), step by step.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// UUIDs are stored as their 36-character text form.
const UUID_LEN: u32 = 36;

fn uuid_text(col: &'static str) -> ColumnDef {
    string_len(col, UUID_LEN)
}

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
        // What was last seen of each Server, by name. Rows may exist before the manifest's
        // address is known (a status or host key recorded first), so most facts are nullable.
        // `host_key` is written compare-and-set (trust on first use): once set, only an explicit
        // forget or deleting the row clears it.
        manager
            .create_table(
                Table::create()
                    .table("servers")
                    .col(string("name").primary_key())
                    .col(string("address"))
                    .col(integer("port"))
                    .col(string("user"))
                    .col(string("status"))
                    .col(text_null("status_message"))
                    .col(string_null("host_key"))
                    .col(boolean("docker_installed"))
                    .col(string_null("docker_version"))
                    .col(string_null("os_id"))
                    .col(string_null("os_name"))
                    .col(string_null("os_version"))
                    .col(string_null("kernel"))
                    .col(string_null("arch"))
                    .col(text_null("cpu_model"))
                    .col(integer_null("cpu_count"))
                    .col(big_integer_null("memory_bytes"))
                    .col(big_integer_null("disk_total_bytes"))
                    .col(big_integer_null("disk_free_bytes"))
                    .col(text("labels"))
                    .col(string_null("prepared_hash"))
                    .col(timestamp_with_time_zone_null("last_connected"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        // Ciphertext only, like `secrets`: `source` says where the value came from
        // (`secret:NAME`, `file:/path`), never the value itself.
        manager
            .create_table(
                Table::create()
                    .table("server_credentials")
                    .col(uuid_text("id").primary_key())
                    .col(string("server"))
                    .col(string("purpose"))
                    .col(text("source"))
                    .col(string_len("key_id", 64))
                    .col(blob("nonce"))
                    .col(blob("ciphertext"))
                    .col(string_null("public_key_fingerprint"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "server_credentials_server_purpose",
                "server_credentials",
                &["server", "purpose"],
                true,
            ))
            .await?;

        // One row per attempt to prepare a server. Kept when the server is deleted: it is
        // history, like tasks.
        manager
            .create_table(
                Table::create()
                    .table("server_preparations")
                    .col(uuid_text("id").primary_key())
                    .col(string("server"))
                    .col(string("status"))
                    .col(text_null("reason"))
                    .col(integer("attempt"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "server_preparations_server_started",
                "server_preparations",
                &["server", "started_at"],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "server_preparations_status",
                "server_preparations",
                &["status"],
                false,
            ))
            .await?;

        // The steps of a preparation, numbered 1, 2, 3, … within it. The unique index is also
        // the lookup by preparation.
        manager
            .create_table(
                Table::create()
                    .table("preparation_logs")
                    .col(uuid_text("id").primary_key())
                    .col(uuid_text("preparation_id"))
                    .col(integer("seq"))
                    .col(string("step"))
                    .col(string("status"))
                    .col(text("message"))
                    .col(text("stdout"))
                    .col(text("stderr"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "preparation_logs_preparation_seq",
                "preparation_logs",
                &["preparation_id", "seq"],
                true,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "preparation_logs",
            "server_preparations",
            "server_credentials",
            "servers",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
