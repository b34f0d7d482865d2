//! Firmware plans over Redfish, with the iDRAC update orchestrator's tables and vocabulary:
//! `hosts` (what each BMC showed: model, service tag, inventory), `update_plans` (a
//! FirmwarePlan's policy, status, window and approval), `plan_targets` (its hosts by priority),
//! `artifacts` (its packages), `host_runs` (one per plan and host, a state machine whose every
//! transition is a compare-and-set on `state`) and `redfish_sessions` (one session token per
//! BMC, sealed like server credentials). Events go to the existing `system_events`.

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
        // What each target's BMC showed when last observed, by Server name. `mgmt_ip` is the
        // BMC's address, `mgmt_kind` what answers there (idrac, ilo, xcc, redfish), `inventory`
        // the firmware inventory as JSON, `tags` the Server's labels as JSON.
        manager
            .create_table(
                Table::create()
                    .table("hosts")
                    .col(string("name").primary_key())
                    .col(string_null("fqdn"))
                    .col(string("mgmt_ip"))
                    .col(string("mgmt_kind"))
                    .col(string_null("vendor"))
                    .col(string_null("model"))
                    .col(string_null("service_tag"))
                    .col(integer_null("system_id"))
                    .col(string_null("bmc_firmware"))
                    .col(string_null("power_state"))
                    .col(string_null("health"))
                    .col(text("tags"))
                    .col(text("inventory"))
                    .col(string("status"))
                    .col(text_null("status_message"))
                    .col(timestamp_with_time_zone_null("last_seen"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        // One row per FirmwarePlan. `generation` grows when the spec changes; an approval is for
        // one generation (`approved_generation`), so a changed plan needs a new one.
        manager
            .create_table(
                Table::create()
                    .table("update_plans")
                    .col(string("name").primary_key())
                    .col(big_integer("generation"))
                    .col(string("spec_hash"))
                    .col(text("policy"))
                    .col(string("status"))
                    .col(text_null("status_message"))
                    .col(text_null("maintenance_window"))
                    .col(boolean("approval_required"))
                    .col(string_null("approved_by"))
                    .col(timestamp_with_time_zone_null("approved_at"))
                    .col(big_integer_null("approved_generation"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("plan_targets")
                    .col(uuid_text("id").primary_key())
                    .col(string("plan"))
                    .col(string("host"))
                    .col(big_integer("priority"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "plan_targets_plan_host",
                "plan_targets",
                &["plan", "host"],
                true,
            ))
            .await?;

        // A plan's packages. `model` is empty for the plan's own artifacts (every host); a
        // package chosen from a catalog is recorded per host model.
        manager
            .create_table(
                Table::create()
                    .table("artifacts")
                    .col(uuid_text("id").primary_key())
                    .col(string("plan"))
                    .col(string("model"))
                    .col(string("component"))
                    .col(string("version"))
                    .col(text_null("image_uri"))
                    .col(text_null("file"))
                    .col(string_null("checksum"))
                    .col(big_integer_null("size"))
                    .col(string_null("transfer_protocol"))
                    .col(string_null("rollback_version"))
                    .col(text_null("rollback_image_uri"))
                    .col(boolean("reboot_required"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "artifacts_plan_model_component",
                "artifacts",
                &["plan", "model", "component"],
                true,
            ))
            .await?;

        // One run per (plan, host). `state` moves only by compare-and-set
        // (`UPDATE … WHERE id = ? AND state = from`); `external_id` is the task monitor URI of
        // the update in progress, so a restart resumes polling it; `ctx` is the seed's JSON
        // (progress, results, timing per phase).
        manager
            .create_table(
                Table::create()
                    .table("host_runs")
                    .col(uuid_text("id").primary_key())
                    .col(string("plan"))
                    .col(string("host"))
                    .col(big_integer("generation"))
                    .col(string("state"))
                    .col(integer("attempts"))
                    .col(text("ctx"))
                    .col(text("versions_before"))
                    .col(text("versions_after"))
                    .col(text_null("external_id"))
                    .col(text_null("reason"))
                    .col(string_null("owner"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "host_runs_plan_host",
                "host_runs",
                &["plan", "host"],
                true,
            ))
            .await?;
        manager
            .create_index(index("host_runs_state", "host_runs", &["state"], false))
            .await?;

        // One Redfish session per BMC, shared by every process: the token sealed with the
        // store's key under `redfish-session/<host>` (ciphertext only, like
        // server_credentials), the session's URI to log out, and when it expires.
        manager
            .create_table(
                Table::create()
                    .table("redfish_sessions")
                    .col(uuid_text("id").primary_key())
                    .col(string("host"))
                    .col(string("base_url"))
                    .col(text_null("location"))
                    .col(string_len("key_id", 64))
                    .col(blob("nonce"))
                    .col(blob("ciphertext"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "redfish_sessions_host",
                "redfish_sessions",
                &["host"],
                true,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "redfish_sessions",
            "host_runs",
            "artifacts",
            "plan_targets",
            "update_plans",
            "hosts",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
