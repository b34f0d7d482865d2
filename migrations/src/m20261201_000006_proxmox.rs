//! Proxmox VE, in the vocabulary of the tools it replaces: `nodes`, `vms`, LXC containers and
//! `storage` as last seen in each cluster's `/cluster/resources` (and the configs read), plus
//! what is ballast's own about a guest: which manifest owns it, whether ballast created or
//! adopted it, the spec last applied, the digest of the config last read, and where each secret
//! parameter was last set from.
//!
//! The LXC table is `lxc_containers`: `containers` already holds the Docker containers seen
//! on each server (migration 1).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn index(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}

/// The columns of a guest table: what the resource row and config say, then ballast's own.
fn guest_table(table: &'static str, os_template: bool) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(table)
        .col(string("cluster"))
        .col(integer("vmid"))
        .col(string("node"))
        .col(string_null("name"))
        // running, stopped, paused, unknown (node offline), missing (gone, but ballast's),
        // creating (vmid reserved by ballast before its create).
        .col(string("status"))
        .col(boolean("template"))
        // maxcpu: a container's cpulimit may make it fractional.
        .col(double_null("cores"))
        .col(big_integer_null("memory"))
        .col(big_integer_null("disk"))
        .col(big_integer_null("net_in"))
        .col(big_integer_null("net_out"))
        .col(big_integer_null("uptime"))
        .col(boolean("ha_managed"))
        .col(string_null("lock_status"))
        // JSON array of lower-case tags, sorted.
        .col(text("tags"))
        .col(string_null("pool"))
        .col(string_null("config_digest"));
    if os_template {
        t.col(text_null("os_template"));
    }
    t.col(string_null("resource"))
        .col(boolean("created_by_ballast"))
        .col(boolean("adopted"))
        .col(string_null("applied_hash"))
        // JSON object: secret parameter -> `secret:NAME#VERSION` it was last set from.
        .col(text("secret_versions"))
        .col(timestamp_with_time_zone("first_seen"))
        .col(timestamp_with_time_zone("last_seen"))
        .primary_key(Index::create().col("cluster").col("vmid"));
    t.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("nodes")
                    .col(string("cluster"))
                    .col(string("name"))
                    .col(string("status"))
                    // CPU use, a fraction of `cpus`.
                    .col(double_null("cpu"))
                    .col(double_null("cpus"))
                    .col(big_integer_null("memory_used"))
                    .col(big_integer_null("memory_total"))
                    .col(big_integer_null("uptime"))
                    .col(string_null("pve_version"))
                    .col(timestamp_with_time_zone("last_seen"))
                    .primary_key(Index::create().col("cluster").col("name"))
                    .to_owned(),
            )
            .await?;
        manager.create_table(guest_table("vms", false)).await?;
        manager
            .create_table(guest_table("lxc_containers", true))
            .await?;
        for table in ["vms", "lxc_containers"] {
            let name = if table == "vms" {
                "vms_resource"
            } else {
                "lxc_containers_resource"
            };
            manager
                .create_index(index(name, table, &["resource"]))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("storage")
                    .col(string("cluster"))
                    .col(string("name"))
                    .col(string_null("storage_type"))
                    // JSON arrays: content types (images, rootdir, iso, vztmpl, backup, …) and
                    // the nodes that have the storage.
                    .col(text("content"))
                    .col(boolean("enabled"))
                    .col(boolean("shared"))
                    // Bytes; summed over its nodes for a storage that is not shared.
                    .col(big_integer_null("total"))
                    .col(big_integer_null("used"))
                    .col(big_integer_null("available"))
                    .col(text("nodes"))
                    .col(timestamp_with_time_zone("last_seen"))
                    .primary_key(Index::create().col("cluster").col("name"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["storage", "lxc_containers", "vms", "nodes"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
