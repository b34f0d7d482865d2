//! The first schema: desired and observed state, docker containers, tasks, state snapshots, the
//! hash-chained audit log, encrypted secrets, and the store's own identity.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// UUIDs are stored as their 36-character text form.
const UUID_LEN: u32 = 36;

fn uuid_text(col: &'static str) -> ColumnDef {
    string_len(col, UUID_LEN)
}

fn unique_index(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).unique();
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}

fn index(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row: which ballast database this is. Its instance id labels the containers this
        // database owns, so two databases sharing one Docker engine never touch each other's.
        manager
            .create_table(
                Table::create()
                    .table("store_meta")
                    .col(integer("id").primary_key())
                    .col(uuid_text("instance_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        // Desired state: one row per (kind, name) ever recorded; removal is a tombstone until
        // the cleanup succeeded and the row is forgotten.
        manager
            .create_table(
                Table::create()
                    .table("resources")
                    .col(uuid_text("id").primary_key())
                    .col(string("kind"))
                    .col(string("name"))
                    .col(text("spec"))
                    .col(string_len("spec_hash", 64))
                    .col(big_integer("generation"))
                    .col(text("source_file"))
                    .col(big_integer("source_line"))
                    .col(string_null("git_commit"))
                    .col(boolean("git_dirty"))
                    .col(timestamp_with_time_zone_null("tombstoned_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "resources_kind_name",
                "resources",
                &["kind", "name"],
            ))
            .await?;

        // Observed state: the last thing seen of each resource.
        manager
            .create_table(
                Table::create()
                    .table("observed")
                    .col(uuid_text("id").primary_key())
                    .col(string("kind"))
                    .col(string("name"))
                    .col(text("state"))
                    .col(timestamp_with_time_zone("observed_at"))
                    .col(timestamp_with_time_zone("changed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "observed_kind_name",
                "observed",
                &["kind", "name"],
            ))
            .await?;

        // Docker containers as last listed per server (the seeds' table shape).
        manager
            .create_table(
                Table::create()
                    .table("containers")
                    .col(string("server"))
                    .col(string("id"))
                    .col(string("name"))
                    .col(text("image"))
                    .col(text("ports"))
                    .col(string("state"))
                    .col(text("status"))
                    .col(text("labels"))
                    .col(string_null("app"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("server").col("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("containers_app", "containers", &["app"]))
            .await?;

        // Every step ballast takes, with its log; external ids let a restart resume waiting.
        manager
            .create_table(
                Table::create()
                    .table("tasks")
                    .col(uuid_text("id").primary_key())
                    .col(string("kind"))
                    .col(string("name"))
                    .col(string("action"))
                    .col(string("status"))
                    .col(integer("attempts"))
                    .col(string_null("external_id"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(text_null("error"))
                    .col(text("log"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("tasks_kind_name", "tasks", &["kind", "name"]))
            .await?;
        manager
            .create_index(index("tasks_status", "tasks", &["status"]))
            .await?;

        // History of observed state: a row only when something changed.
        manager
            .create_table(
                Table::create()
                    .table("state_snapshots")
                    .col(uuid_text("id").primary_key())
                    .col(string("kind"))
                    .col(string("name"))
                    .col(string("change_type"))
                    .col(text("state"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "state_snapshots_kind_name",
                "state_snapshots",
                &["kind", "name", "created_at"],
            ))
            .await?;

        // Who did what, hash-chained so an edited or deleted row is detected.
        manager
            .create_table(
                Table::create()
                    .table("audit_log")
                    .col(uuid_text("id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("actor"))
                    .col(string("action"))
                    .col(text("summary"))
                    .col(string_null("git_commit"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string_len("prev_hash", 64))
                    .col(string_len("hash", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index("audit_log_seq", "audit_log", &["seq"]))
            .await?;

        // Ciphertext only; the key never reaches the database.
        manager
            .create_table(
                Table::create()
                    .table("secrets")
                    .col(string("name").primary_key())
                    .col(string_len("key_id", 64))
                    .col(blob("nonce"))
                    .col(blob("ciphertext"))
                    .col(uuid_text("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "secrets",
            "audit_log",
            "state_snapshots",
            "tasks",
            "containers",
            "observed",
            "resources",
            "store_meta",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
