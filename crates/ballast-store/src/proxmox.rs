//! Proxmox VE clusters as last seen: their `nodes` and `storage` (this module) and their guests
//! (`vms`, `lxc_containers`: [`crate::proxmox_guests`]), each keyed by the cluster's name (the
//! ProxmoxCluster resource). An observation of a cluster replaces what was recorded of it in
//! one transaction; [`Store::forget_proxmox_cluster`] removes all of it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{lxc_containers, proxmox_nodes, proxmox_storage, vms};
use crate::{Area, Store, StoreError, batches, now};

pub(crate) const NODES: &str = "nodes";
pub(crate) const STORAGE: &str = "storage";

/// A node as last seen. Serializes in camelCase (`-o json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxNode {
    pub cluster: String,
    pub name: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// CPU use, a fraction of `cpus`.
    pub cpu: Option<f64>,
    pub cpus: Option<f64>,
    pub memory_used: Option<u64>,
    pub memory_total: Option<u64>,
    /// Seconds.
    pub uptime: Option<u64>,
    /// `pve-manager/9.0.10/…` (from the node's status, when read).
    pub pve_version: Option<String>,
    /// Set by the store when it records the node.
    pub last_seen: DateTime<Utc>,
}

/// A storage of a cluster as last seen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxStorage {
    pub cluster: String,
    pub name: String,
    /// `dir`, `lvmthin`, `zfspool`, `rbd`, `nfs`, …
    pub storage_type: Option<String>,
    /// `images`, `rootdir`, `iso`, `vztmpl`, `backup`, …
    pub content: Vec<String>,
    pub enabled: bool,
    pub shared: bool,
    /// Bytes; summed over its nodes for a storage that is not shared.
    pub total: Option<u64>,
    pub used: Option<u64>,
    pub available: Option<u64>,
    /// The nodes that have it.
    pub nodes: Vec<String>,
    pub last_seen: DateTime<Utc>,
}

/// An unsigned value for a signed column, or an error naming it.
pub(crate) fn to_i64(
    op: &'static str,
    what: &str,
    value: Option<u64>,
) -> Result<Option<i64>, StoreError> {
    value
        .map(|v| {
            i64::try_from(v).map_err(|_| StoreError::Invalid {
                op,
                detail: format!("{what} {v} is too large to store"),
            })
        })
        .transpose()
}

pub(crate) fn not_empty(op: &'static str, what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::Invalid {
            op,
            detail: format!("the {what} is empty"),
        });
    }
    Ok(())
}

impl Store {
    /// A signed column read back as unsigned; a negative value is corrupt.
    pub(crate) fn unsigned(
        &self,
        table: &'static str,
        what: &str,
        value: Option<i64>,
    ) -> Result<Option<u64>, StoreError> {
        value
            .map(|v| {
                u64::try_from(v)
                    .map_err(|_| self.corrupt(table, format!("{what} is negative ({v})")))
            })
            .transpose()
    }

    pub(crate) fn json_list(
        &self,
        table: &'static str,
        what: &str,
        text: &str,
    ) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| self.corrupt(table, format!("{what} is not a JSON array of strings: {e}")))
    }

    /// Replaces the recorded nodes of `cluster` with `nodes` (rows not listed are removed).
    pub async fn record_proxmox_nodes(
        &self,
        cluster: &str,
        nodes: &[ProxmoxNode],
    ) -> Result<(), StoreError> {
        const OP: &str = "record_proxmox_nodes";
        not_empty(OP, "cluster name", cluster)?;
        let at = now();
        let mut rows = Vec::with_capacity(nodes.len());
        for node in nodes {
            not_empty(OP, "node name", &node.name)?;
            let what = |f: &str| format!("{f} of node {}", node.name);
            rows.push(proxmox_nodes::ActiveModel {
                cluster: Set(cluster.to_string()),
                name: Set(node.name.clone()),
                status: Set(node.status.clone()),
                cpu: Set(node.cpu),
                cpus: Set(node.cpus),
                memory_used: Set(to_i64(OP, &what("memory_used"), node.memory_used)?),
                memory_total: Set(to_i64(OP, &what("memory_total"), node.memory_total)?),
                uptime: Set(to_i64(OP, &what("uptime"), node.uptime)?),
                pve_version: Set(node.pve_version.clone()),
                last_seen: Set(at),
            });
        }
        let err = self.db_err(OP, NODES);
        let txn = self.begin_write(Area::Proxmox).await.map_err(&err)?;
        use proxmox_nodes::Column as C;
        proxmox_nodes::Entity::delete_many()
            .filter(C::Cluster.eq(cluster))
            .filter(C::Name.is_not_in(nodes.iter().map(|n| n.name.clone())))
            .exec(&txn)
            .await
            .map_err(&err)?;
        for chunk in batches(rows) {
            proxmox_nodes::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([C::Cluster, C::Name])
                        .update_columns([
                            C::Status,
                            C::Cpu,
                            C::Cpus,
                            C::MemoryUsed,
                            C::MemoryTotal,
                            C::Uptime,
                            C::PveVersion,
                            C::LastSeen,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// Recorded nodes of one cluster, or of all, by cluster and name.
    pub async fn list_proxmox_nodes(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<ProxmoxNode>, StoreError> {
        use proxmox_nodes::Column as C;
        let mut query = proxmox_nodes::Entity::find();
        if let Some(cluster) = cluster {
            query = query.filter(C::Cluster.eq(cluster));
        }
        query
            .order_by_asc(C::Cluster)
            .order_by_asc(C::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_proxmox_nodes", NODES))?
            .into_iter()
            .map(|row| {
                let what = |f: &str| format!("{f} of node {}/{}", row.cluster, row.name);
                Ok(ProxmoxNode {
                    memory_used: self.unsigned(NODES, &what("memory_used"), row.memory_used)?,
                    memory_total: self.unsigned(NODES, &what("memory_total"), row.memory_total)?,
                    uptime: self.unsigned(NODES, &what("uptime"), row.uptime)?,
                    cluster: row.cluster,
                    name: row.name,
                    status: row.status,
                    cpu: row.cpu,
                    cpus: row.cpus,
                    pve_version: row.pve_version,
                    last_seen: row.last_seen,
                })
            })
            .collect()
    }

    /// Replaces the recorded storage of `cluster` with `storage`.
    pub async fn record_proxmox_storage(
        &self,
        cluster: &str,
        storage: &[ProxmoxStorage],
    ) -> Result<(), StoreError> {
        const OP: &str = "record_proxmox_storage";
        not_empty(OP, "cluster name", cluster)?;
        let at = now();
        let mut rows = Vec::with_capacity(storage.len());
        for s in storage {
            not_empty(OP, "storage name", &s.name)?;
            let what = |f: &str| format!("{f} of storage {}", s.name);
            rows.push(proxmox_storage::ActiveModel {
                cluster: Set(cluster.to_string()),
                name: Set(s.name.clone()),
                storage_type: Set(s.storage_type.clone()),
                content: Set(crate::json_text(&serde_json::json!(s.content))),
                enabled: Set(s.enabled),
                shared: Set(s.shared),
                total: Set(to_i64(OP, &what("total"), s.total)?),
                used: Set(to_i64(OP, &what("used"), s.used)?),
                available: Set(to_i64(OP, &what("available"), s.available)?),
                nodes: Set(crate::json_text(&serde_json::json!(s.nodes))),
                last_seen: Set(at),
            });
        }
        let err = self.db_err(OP, STORAGE);
        let txn = self.begin_write(Area::Proxmox).await.map_err(&err)?;
        use proxmox_storage::Column as C;
        proxmox_storage::Entity::delete_many()
            .filter(C::Cluster.eq(cluster))
            .filter(C::Name.is_not_in(storage.iter().map(|s| s.name.clone())))
            .exec(&txn)
            .await
            .map_err(&err)?;
        for chunk in batches(rows) {
            proxmox_storage::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([C::Cluster, C::Name])
                        .update_columns([
                            C::StorageType,
                            C::Content,
                            C::Enabled,
                            C::Shared,
                            C::Total,
                            C::Used,
                            C::Available,
                            C::Nodes,
                            C::LastSeen,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// Recorded storage of one cluster, or of all, by cluster and name.
    pub async fn list_proxmox_storage(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<ProxmoxStorage>, StoreError> {
        use proxmox_storage::Column as C;
        let mut query = proxmox_storage::Entity::find();
        if let Some(cluster) = cluster {
            query = query.filter(C::Cluster.eq(cluster));
        }
        query
            .order_by_asc(C::Cluster)
            .order_by_asc(C::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_proxmox_storage", STORAGE))?
            .into_iter()
            .map(|row| {
                let what = |f: &str| format!("{f} of storage {}/{}", row.cluster, row.name);
                Ok(ProxmoxStorage {
                    content: self.json_list(STORAGE, &what("content"), &row.content)?,
                    nodes: self.json_list(STORAGE, &what("nodes"), &row.nodes)?,
                    total: self.unsigned(STORAGE, &what("total"), row.total)?,
                    used: self.unsigned(STORAGE, &what("used"), row.used)?,
                    available: self.unsigned(STORAGE, &what("available"), row.available)?,
                    cluster: row.cluster,
                    name: row.name,
                    storage_type: row.storage_type,
                    enabled: row.enabled,
                    shared: row.shared,
                    last_seen: row.last_seen,
                })
            })
            .collect()
    }

    /// Removes everything recorded of a cluster (its ProxmoxCluster was pruned): nodes,
    /// storage and guests, in one transaction. The guests themselves are not touched.
    pub async fn forget_proxmox_cluster(&self, cluster: &str) -> Result<(), StoreError> {
        const OP: &str = "forget_proxmox_cluster";
        let err = self.db_err(OP, "nodes, storage, vms, lxc_containers");
        let txn = self.begin_write(Area::Proxmox).await.map_err(&err)?;
        proxmox_nodes::Entity::delete_many()
            .filter(proxmox_nodes::Column::Cluster.eq(cluster))
            .exec(&txn)
            .await
            .map_err(&err)?;
        proxmox_storage::Entity::delete_many()
            .filter(proxmox_storage::Column::Cluster.eq(cluster))
            .exec(&txn)
            .await
            .map_err(&err)?;
        vms::Entity::delete_many()
            .filter(vms::Column::Cluster.eq(cluster))
            .exec(&txn)
            .await
            .map_err(&err)?;
        lxc_containers::Entity::delete_many()
            .filter(lxc_containers::Column::Cluster.eq(cluster))
            .exec(&txn)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)
    }
}
