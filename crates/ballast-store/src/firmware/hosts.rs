//! `hosts`: what each firmware target's BMC showed, by Server name, and whether it answers.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::hosts;
use crate::{Store, StoreError, now};

const TABLE: &str = "hosts";

/// Whether the host's BMC answered the last time it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Connected,
    Disconnected,
    Unknown,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Connected => "connected",
            HostStatus::Disconnected => "disconnected",
            HostStatus::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Option<HostStatus> {
        [
            HostStatus::Connected,
            HostStatus::Disconnected,
            HostStatus::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One entry of a host's firmware inventory, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updateable: Option<bool>,
    /// The BMC's own firmware (it restarts itself to apply it, not the system).
    #[serde(default)]
    pub manager: bool,
}

/// What a host's BMC showed. Serializes in camelCase (`get hosts -o json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// The Server's name.
    pub name: String,
    pub fqdn: Option<String>,
    /// The BMC's address.
    pub mgmt_ip: String,
    /// What answers there: `idrac`, `ilo`, `xcc` or `redfish`.
    pub mgmt_kind: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub service_tag: Option<String>,
    /// Dell's system id (decimal), the key of Dell catalogs.
    pub system_id: Option<u32>,
    pub bmc_firmware: Option<String>,
    pub power_state: Option<String>,
    pub health: Option<String>,
    /// The Server's labels.
    pub tags: BTreeMap<String, String>,
    pub inventory: Vec<InventoryEntry>,
    pub status: HostStatus,
    pub status_message: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Set by the store.
    pub created_at: DateTime<Utc>,
    /// Set by the store.
    pub updated_at: DateTime<Utc>,
}

impl HostRecord {
    /// A host nothing is known about yet but where its BMC is.
    pub fn new(name: impl Into<String>, mgmt_ip: impl Into<String>) -> HostRecord {
        let at = now();
        HostRecord {
            name: name.into(),
            fqdn: None,
            mgmt_ip: mgmt_ip.into(),
            mgmt_kind: "redfish".to_string(),
            vendor: None,
            model: None,
            service_tag: None,
            system_id: None,
            bmc_firmware: None,
            power_state: None,
            health: None,
            tags: BTreeMap::new(),
            inventory: Vec::new(),
            status: HostStatus::Unknown,
            status_message: None,
            last_seen: None,
            created_at: at,
            updated_at: at,
        }
    }
}

impl Store {
    /// Records what a host's BMC showed, by name (`created_at` kept, `updated_at` now).
    /// Returns the status it had before (`None` for a new host), so the caller can tell a
    /// host that went away or came back (`host_disconnected`, `host_reconnected`).
    pub async fn upsert_host(&self, record: &HostRecord) -> Result<Option<HostStatus>, StoreError> {
        const OP: &str = "upsert_host";
        if record.name.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "the host name is empty".to_string(),
            });
        }
        let json = |what: &str, v: Result<String, serde_json::Error>| {
            v.map_err(|e| StoreError::Invalid {
                op: OP,
                detail: format!("{what}: {e}"),
            })
        };
        let tags = json("tags", serde_json::to_string(&record.tags))?;
        let inventory = json("inventory", serde_json::to_string(&record.inventory))?;
        let system_id = record
            .system_id
            .map(i32::try_from)
            .transpose()
            .map_err(|_| StoreError::Invalid {
                op: OP,
                detail: format!(
                    "host `{}`: its system id is too large to store",
                    record.name
                ),
            })?;
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        let before: Option<String> = hosts::Entity::find_by_id(record.name.clone())
            .select_only()
            .column(hosts::Column::Status)
            .into_tuple()
            .one(&txn)
            .await
            .map_err(&err)?;
        let at = now();
        use hosts::Column as C;
        hosts::Entity::insert(hosts::ActiveModel {
            name: Set(record.name.clone()),
            fqdn: Set(record.fqdn.clone()),
            mgmt_ip: Set(record.mgmt_ip.clone()),
            mgmt_kind: Set(record.mgmt_kind.clone()),
            vendor: Set(record.vendor.clone()),
            model: Set(record.model.clone()),
            service_tag: Set(record.service_tag.clone()),
            system_id: Set(system_id),
            bmc_firmware: Set(record.bmc_firmware.clone()),
            power_state: Set(record.power_state.clone()),
            health: Set(record.health.clone()),
            tags: Set(tags),
            inventory: Set(inventory),
            status: Set(record.status.as_str().to_string()),
            status_message: Set(record.status_message.clone()),
            last_seen: Set(record.last_seen.map(|t| t.trunc_subsecs(6))),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            OnConflict::column(C::Name)
                .update_columns([
                    C::Fqdn,
                    C::MgmtIp,
                    C::MgmtKind,
                    C::Vendor,
                    C::Model,
                    C::ServiceTag,
                    C::SystemId,
                    C::BmcFirmware,
                    C::PowerState,
                    C::Health,
                    C::Tags,
                    C::Inventory,
                    C::Status,
                    C::StatusMessage,
                    C::LastSeen,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(before.as_deref().and_then(HostStatus::parse))
    }

    /// Sets a host's status alone (the BMC stopped answering, or answers again), keeping what
    /// was seen of it. Returns the status before (`None` when the host has no row: nothing is
    /// written then; record it with [`Store::upsert_host`] first).
    pub async fn set_host_status(
        &self,
        name: &str,
        status: HostStatus,
        message: Option<&str>,
    ) -> Result<Option<HostStatus>, StoreError> {
        const OP: &str = "set_host_status";
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_firmware_write().await.map_err(&err)?;
        let before: Option<String> = hosts::Entity::find_by_id(name.to_string())
            .select_only()
            .column(hosts::Column::Status)
            .into_tuple()
            .one(&txn)
            .await
            .map_err(&err)?;
        if before.is_some() {
            let at = now();
            let mut update = hosts::Entity::update_many()
                .col_expr(hosts::Column::Status, Expr::value(status.as_str()))
                .col_expr(hosts::Column::StatusMessage, Expr::value(message))
                .col_expr(hosts::Column::UpdatedAt, Expr::value(at));
            if status == HostStatus::Connected {
                update = update.col_expr(hosts::Column::LastSeen, Expr::value(Some(at)));
            }
            update
                .filter(hosts::Column::Name.eq(name))
                .exec(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)?;
        Ok(before.as_deref().and_then(HostStatus::parse))
    }

    pub async fn get_host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        hosts::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_host", TABLE))?
            .map(|row| self.host_record(row))
            .transpose()
    }

    /// Every host, by name.
    pub async fn list_hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        hosts::Entity::find()
            .order_by_asc(hosts::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_hosts", TABLE))?
            .into_iter()
            .map(|row| self.host_record(row))
            .collect()
    }

    /// Forgets a host (its Server left the manifests). Its runs are the plans' business.
    pub async fn delete_host(&self, name: &str) -> Result<bool, StoreError> {
        let result = hosts::Entity::delete_by_id(name.to_string())
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_host", TABLE))?;
        Ok(result.rows_affected > 0)
    }

    fn host_record(&self, row: hosts::Model) -> Result<HostRecord, StoreError> {
        let name = row.name.clone();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            self.corrupt(TABLE, format!("host `{name}`: {what}: {e}"))
        };
        let tags: BTreeMap<String, String> =
            serde_json::from_str(&row.tags).map_err(|e| bad("tags", &e))?;
        let inventory: Vec<InventoryEntry> =
            serde_json::from_str(&row.inventory).map_err(|e| bad("inventory", &e))?;
        let status = HostStatus::parse(&row.status)
            .ok_or_else(|| bad("status", &format!("`{}` is not a host status", row.status)))?;
        let system_id = row
            .system_id
            .map(u32::try_from)
            .transpose()
            .map_err(|e| bad("system_id", &e))?;
        Ok(HostRecord {
            name: row.name,
            fqdn: row.fqdn,
            mgmt_ip: row.mgmt_ip,
            mgmt_kind: row.mgmt_kind,
            vendor: row.vendor,
            model: row.model,
            service_tag: row.service_tag,
            system_id,
            bmc_firmware: row.bmc_firmware,
            power_state: row.power_state,
            health: row.health,
            tags,
            inventory,
            status,
            status_message: row.status_message,
            last_seen: row.last_seen,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
