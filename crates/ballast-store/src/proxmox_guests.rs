//! Proxmox guests as last seen (`vms`, `lxc_containers`), with what is ballast's own about
//! each: the manifest that owns it (`resource`), whether ballast created or adopted it, the
//! spec last applied, the digest of the config last read, the OS template a container was made
//! from, and where each secret parameter was last set from.
//!
//! An observation ([`Store::record_proxmox_guests`]) replaces what the cluster's resource list
//! says, and never what is ballast's own: a guest ballast owns that is no longer listed stays,
//! as `missing` (so its vmid is still known), one it does not own is removed. A vmid ballast
//! takes before a create is recorded at once ([`Store::claim_proxmox_guest`], status
//! `creating`), so a restart between the create request and the next observation never makes a
//! second guest. Identity is (cluster, vmid); the node is only where the guest is now.
//!
//! The two tables have the same columns but the container's `os_template`, so one
//! implementation serves both ([`GuestEntity`]), naming columns by their SQL names.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{lxc_containers, vms};
use crate::proxmox::{not_empty, to_i64};
use crate::{Area, Store, StoreError, batches, now};

/// Which guest table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxmoxGuestKind {
    /// QEMU virtual machines: `vms`.
    Vm,
    /// LXC containers: `lxc_containers`.
    Container,
}

/// How ballast came to own a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestOwnership {
    Created,
    Adopted,
}

/// What one observation says about a guest: its `/cluster/resources` row, and the digest of
/// its config when the config was read (`None` keeps the one recorded).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestObservation {
    pub vmid: u32,
    pub node: String,
    pub name: Option<String>,
    /// `running`, `stopped`, `paused`, `unknown` (node offline).
    pub status: String,
    pub template: bool,
    /// `maxcpu`.
    pub cores: Option<f64>,
    /// `maxmem`, bytes.
    pub memory: Option<u64>,
    /// `maxdisk`, bytes.
    pub disk: Option<u64>,
    pub net_in: Option<u64>,
    pub net_out: Option<u64>,
    pub uptime: Option<u64>,
    pub ha_managed: bool,
    pub lock_status: Option<String>,
    pub tags: Vec<String>,
    pub pool: Option<String>,
    pub config_digest: Option<String>,
}

/// A recorded guest. Serializes in camelCase (`-o json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestRecord {
    pub cluster: String,
    pub vmid: u32,
    pub node: String,
    pub name: Option<String>,
    /// As observed, or `missing` (ballast's, no longer listed) or `creating` (a vmid ballast
    /// took for a create).
    pub status: String,
    pub template: bool,
    pub cores: Option<f64>,
    pub memory: Option<u64>,
    pub disk: Option<u64>,
    pub net_in: Option<u64>,
    pub net_out: Option<u64>,
    pub uptime: Option<u64>,
    pub ha_managed: bool,
    pub lock_status: Option<String>,
    pub tags: Vec<String>,
    pub pool: Option<String>,
    pub config_digest: Option<String>,
    /// Containers: the OS template it was made from (when ballast made it).
    pub os_template: Option<String>,
    /// The manifest (ProxmoxVm / ProxmoxContainer name) that owns it.
    pub resource: Option<String>,
    pub created_by_ballast: bool,
    pub adopted: bool,
    pub applied_hash: Option<String>,
    /// Secret parameter → where it was last set from (`secret:NAME#VERSION`), never a value.
    pub secret_versions: BTreeMap<String, String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl GuestRecord {
    pub fn ownership(&self) -> Option<GuestOwnership> {
        if self.created_by_ballast {
            Some(GuestOwnership::Created)
        } else if self.adopted {
            Some(GuestOwnership::Adopted)
        } else {
            None
        }
    }
}

/// ballast takes a guest as its own: before creating it (its vmid reserved), or adopting it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestClaim {
    pub cluster: String,
    pub vmid: u32,
    pub node: String,
    pub resource: String,
    pub ownership: GuestOwnership,
}

/// What a successful apply leaves recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestApplied {
    pub applied_hash: String,
    pub config_digest: Option<String>,
    pub secret_versions: BTreeMap<String, String>,
    pub os_template: Option<String>,
}

/// The columns of a guest row, both tables alike.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    cluster: String,
    vmid: i32,
    node: String,
    name: Option<String>,
    status: String,
    template: bool,
    cores: Option<f64>,
    memory: Option<i64>,
    disk: Option<i64>,
    net_in: Option<i64>,
    net_out: Option<i64>,
    uptime: Option<i64>,
    ha_managed: bool,
    lock_status: Option<String>,
    tags: String,
    pool: Option<String>,
    config_digest: Option<String>,
    os_template: Option<String>,
    resource: Option<String>,
    created_by_ballast: bool,
    adopted: bool,
    applied_hash: Option<String>,
    secret_versions: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// A guest table: its name and how its rows convert.
pub(crate) trait GuestEntity: EntityTrait {
    const TABLE: &'static str;
    fn row(model: Self::Model) -> Row;
    fn active(row: Row) -> Self::ActiveModel;
}

macro_rules! guest_entity {
    ($module:ident, $os_get:expr, $os_set:expr) => {
        impl GuestEntity for $module::Entity {
            const TABLE: &'static str = stringify!($module);
            fn row(m: $module::Model) -> Row {
                let os_template = $os_get(&m);
                Row {
                    cluster: m.cluster,
                    vmid: m.vmid,
                    node: m.node,
                    name: m.name,
                    status: m.status,
                    template: m.template,
                    cores: m.cores,
                    memory: m.memory,
                    disk: m.disk,
                    net_in: m.net_in,
                    net_out: m.net_out,
                    uptime: m.uptime,
                    ha_managed: m.ha_managed,
                    lock_status: m.lock_status,
                    tags: m.tags,
                    pool: m.pool,
                    config_digest: m.config_digest,
                    os_template,
                    resource: m.resource,
                    created_by_ballast: m.created_by_ballast,
                    adopted: m.adopted,
                    applied_hash: m.applied_hash,
                    secret_versions: m.secret_versions,
                    first_seen: m.first_seen,
                    last_seen: m.last_seen,
                }
            }
            // The container table has one more column (set below), the VM table none: the
            // struct update is needed for one expansion only.
            #[allow(clippy::needless_update)]
            fn active(r: Row) -> $module::ActiveModel {
                let mut a = $module::ActiveModel {
                    cluster: Set(r.cluster),
                    vmid: Set(r.vmid),
                    node: Set(r.node),
                    name: Set(r.name),
                    status: Set(r.status),
                    template: Set(r.template),
                    cores: Set(r.cores),
                    memory: Set(r.memory),
                    disk: Set(r.disk),
                    net_in: Set(r.net_in),
                    net_out: Set(r.net_out),
                    uptime: Set(r.uptime),
                    ha_managed: Set(r.ha_managed),
                    lock_status: Set(r.lock_status),
                    tags: Set(r.tags),
                    pool: Set(r.pool),
                    config_digest: Set(r.config_digest),
                    resource: Set(r.resource),
                    created_by_ballast: Set(r.created_by_ballast),
                    adopted: Set(r.adopted),
                    applied_hash: Set(r.applied_hash),
                    secret_versions: Set(r.secret_versions),
                    first_seen: Set(r.first_seen),
                    last_seen: Set(r.last_seen),
                    ..Default::default()
                };
                $os_set(&mut a, r.os_template);
                a
            }
        }
    };
}

guest_entity!(
    vms,
    |_: &vms::Model| None,
    |_: &mut vms::ActiveModel, _: Option<String>| {}
);
guest_entity!(
    lxc_containers,
    |m: &lxc_containers::Model| m.os_template.clone(),
    |a: &mut lxc_containers::ActiveModel, os: Option<String>| a.os_template = Set(os)
);

fn col(name: &'static str) -> Alias {
    Alias::new(name)
}

/// The columns an observation writes (the rest are ballast's own, or first_seen).
const OBSERVED: [&str; 16] = [
    "node",
    "name",
    "status",
    "template",
    "cores",
    "memory",
    "disk",
    "net_in",
    "net_out",
    "uptime",
    "ha_managed",
    "lock_status",
    "tags",
    "pool",
    "last_seen",
    // config_digest is coalesced: an observation that read no config keeps the recorded one.
    "config_digest",
];

/// Statuses an observation leaves alone on a guest it did not list.
const KEPT: [&str; 1] = ["creating"];
const MISSING: &str = "missing";

fn vmid_db(op: &'static str, vmid: u32) -> Result<i32, StoreError> {
    i32::try_from(vmid).map_err(|_| StoreError::Invalid {
        op,
        detail: format!("vmid {vmid} is out of range"),
    })
}

fn tags_text(tags: &[String]) -> String {
    let mut tags: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
    tags.sort();
    tags.dedup();
    crate::json_text(&serde_json::json!(tags))
}

impl Store {
    fn guest_record(&self, table: &'static str, r: Row) -> Result<GuestRecord, StoreError> {
        let what = |f: &str| format!("{f} of guest {}/{}", r.cluster, r.vmid);
        let secret_versions = serde_json::from_str(&r.secret_versions).map_err(|e| {
            self.corrupt(
                table,
                format!(
                    "{} is not a JSON object of strings: {e}",
                    what("secret_versions")
                ),
            )
        })?;
        Ok(GuestRecord {
            vmid: u32::try_from(r.vmid)
                .map_err(|_| self.corrupt(table, format!("{} is negative", what("vmid"))))?,
            memory: self.unsigned(table, &what("memory"), r.memory)?,
            disk: self.unsigned(table, &what("disk"), r.disk)?,
            net_in: self.unsigned(table, &what("net_in"), r.net_in)?,
            net_out: self.unsigned(table, &what("net_out"), r.net_out)?,
            uptime: self.unsigned(table, &what("uptime"), r.uptime)?,
            tags: self.json_list(table, &what("tags"), &r.tags)?,
            secret_versions,
            cluster: r.cluster,
            node: r.node,
            name: r.name,
            status: r.status,
            template: r.template,
            cores: r.cores,
            ha_managed: r.ha_managed,
            lock_status: r.lock_status,
            pool: r.pool,
            config_digest: r.config_digest,
            os_template: r.os_template,
            resource: r.resource,
            created_by_ballast: r.created_by_ballast,
            adopted: r.adopted,
            applied_hash: r.applied_hash,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        })
    }

    /// Records what one `/cluster/resources` says about the guests of `kind` in `cluster`,
    /// in one transaction (see the module docs for what stays).
    pub async fn record_proxmox_guests(
        &self,
        kind: ProxmoxGuestKind,
        cluster: &str,
        guests: &[GuestObservation],
    ) -> Result<(), StoreError> {
        match kind {
            ProxmoxGuestKind::Vm => self.record_guests::<vms::Entity>(cluster, guests).await,
            ProxmoxGuestKind::Container => {
                self.record_guests::<lxc_containers::Entity>(cluster, guests)
                    .await
            }
        }
    }

    async fn record_guests<E: GuestEntity>(
        &self,
        cluster: &str,
        guests: &[GuestObservation],
    ) -> Result<(), StoreError> {
        const OP: &str = "record_proxmox_guests";
        not_empty(OP, "cluster name", cluster)?;
        let at = now();
        let mut rows = Vec::with_capacity(guests.len());
        let mut listed = Vec::with_capacity(guests.len());
        for g in guests {
            let what = |f: &str| format!("{f} of guest {}", g.vmid);
            let vmid = vmid_db(OP, g.vmid)?;
            listed.push(vmid);
            rows.push(E::active(Row {
                cluster: cluster.to_string(),
                vmid,
                node: g.node.clone(),
                name: g.name.clone(),
                status: g.status.clone(),
                template: g.template,
                cores: g.cores,
                memory: to_i64(OP, &what("memory"), g.memory)?,
                disk: to_i64(OP, &what("disk"), g.disk)?,
                net_in: to_i64(OP, &what("net_in"), g.net_in)?,
                net_out: to_i64(OP, &what("net_out"), g.net_out)?,
                uptime: to_i64(OP, &what("uptime"), g.uptime)?,
                ha_managed: g.ha_managed,
                lock_status: g.lock_status.clone(),
                tags: tags_text(&g.tags),
                pool: g.pool.clone(),
                config_digest: g.config_digest.clone(),
                os_template: None,
                resource: None,
                created_by_ballast: false,
                adopted: false,
                applied_hash: None,
                secret_versions: "{}".into(),
                first_seen: at,
                last_seen: at,
            }));
        }
        let err = self.db_err(OP, E::TABLE);
        let txn = self.begin_write(Area::Proxmox).await.map_err(&err)?;
        let in_cluster = Expr::col(col("cluster")).eq(cluster);
        let unlisted = Expr::col(col("vmid")).is_not_in(listed.iter().copied());
        let owned = Expr::col(col("created_by_ballast"))
            .eq(true)
            .or(Expr::col(col("adopted")).eq(true));
        E::delete_many()
            .filter(in_cluster.clone())
            .filter(unlisted.clone())
            .filter(owned.clone().not())
            .exec(&txn)
            .await
            .map_err(&err)?;
        E::update_many()
            .col_expr(col("status"), Expr::value(MISSING))
            .filter(in_cluster)
            .filter(unlisted)
            .filter(owned)
            .filter(Expr::col(col("status")).is_not_in(KEPT))
            .exec(&txn)
            .await
            .map_err(&err)?;
        for chunk in batches(rows) {
            let mut conflict = OnConflict::columns([col("cluster"), col("vmid")]);
            conflict.update_columns(OBSERVED[..OBSERVED.len() - 1].iter().map(|c| col(c)));
            conflict.value(
                col("config_digest"),
                Func::coalesce([
                    Expr::col((col("excluded"), col("config_digest"))),
                    Expr::col((col(E::TABLE), col("config_digest"))),
                ]),
            );
            E::insert_many(chunk)
                .on_conflict(conflict)
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// The recorded guest of `kind` with this vmid in `cluster`.
    pub async fn get_proxmox_guest(
        &self,
        kind: ProxmoxGuestKind,
        cluster: &str,
        vmid: u32,
    ) -> Result<Option<GuestRecord>, StoreError> {
        let filter = Expr::col(col("cluster"))
            .eq(cluster)
            .and(Expr::col(col("vmid")).eq(vmid_db("get_proxmox_guest", vmid)?));
        Ok(self.guests(kind, filter).await?.into_iter().next())
    }

    /// The guest a manifest owns, by the resource's name.
    pub async fn find_proxmox_guest(
        &self,
        kind: ProxmoxGuestKind,
        resource: &str,
    ) -> Result<Option<GuestRecord>, StoreError> {
        let filter = Expr::col(col("resource")).eq(resource);
        Ok(self.guests(kind, filter).await?.into_iter().next())
    }

    /// Recorded guests of one cluster, or of all, by cluster and vmid.
    pub async fn list_proxmox_guests(
        &self,
        kind: ProxmoxGuestKind,
        cluster: Option<&str>,
    ) -> Result<Vec<GuestRecord>, StoreError> {
        let filter = match cluster {
            Some(cluster) => Expr::col(col("cluster")).eq(cluster),
            None => Expr::value(true),
        };
        self.guests(kind, filter).await
    }

    async fn guests(
        &self,
        kind: ProxmoxGuestKind,
        filter: Expr,
    ) -> Result<Vec<GuestRecord>, StoreError> {
        match kind {
            ProxmoxGuestKind::Vm => self.guests_of::<vms::Entity>(filter).await,
            ProxmoxGuestKind::Container => self.guests_of::<lxc_containers::Entity>(filter).await,
        }
    }

    async fn guests_of<E: GuestEntity>(
        &self,
        filter: Expr,
    ) -> Result<Vec<GuestRecord>, StoreError> {
        E::find()
            .filter(filter)
            .order_by_asc(Expr::col(col("cluster")))
            .order_by_asc(Expr::col(col("vmid")))
            .all(&self.db)
            .await
            .map_err(self.db_err("list_proxmox_guests", E::TABLE))?
            .into_iter()
            .map(|m| self.guest_record(E::TABLE, E::row(m)))
            .collect()
    }

    /// Takes a guest as ballast's: before creating it (a row `creating` with the vmid taken,
    /// so a restart finds it) or when adopting it. Keeps what was observed of a row that exists.
    pub async fn claim_proxmox_guest(
        &self,
        kind: ProxmoxGuestKind,
        claim: &GuestClaim,
    ) -> Result<(), StoreError> {
        match kind {
            ProxmoxGuestKind::Vm => self.claim::<vms::Entity>(claim).await,
            ProxmoxGuestKind::Container => self.claim::<lxc_containers::Entity>(claim).await,
        }
    }

    async fn claim<E: GuestEntity>(&self, claim: &GuestClaim) -> Result<(), StoreError> {
        const OP: &str = "claim_proxmox_guest";
        not_empty(OP, "cluster name", &claim.cluster)?;
        not_empty(OP, "resource name", &claim.resource)?;
        let at = now();
        let created = claim.ownership == GuestOwnership::Created;
        let row = E::active(Row {
            cluster: claim.cluster.clone(),
            vmid: vmid_db(OP, claim.vmid)?,
            node: claim.node.clone(),
            name: None,
            status: "creating".into(),
            template: false,
            cores: None,
            memory: None,
            disk: None,
            net_in: None,
            net_out: None,
            uptime: None,
            ha_managed: false,
            lock_status: None,
            tags: "[]".into(),
            pool: None,
            config_digest: None,
            os_template: None,
            resource: Some(claim.resource.clone()),
            created_by_ballast: created,
            adopted: !created,
            applied_hash: None,
            secret_versions: "{}".into(),
            first_seen: at,
            last_seen: at,
        });
        E::insert(row)
            .on_conflict(
                OnConflict::columns([col("cluster"), col("vmid")])
                    .update_columns([col("resource"), col("created_by_ballast"), col("adopted")])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(self.db_err(OP, E::TABLE))?;
        Ok(())
    }

    /// Records a successful apply: the spec's hash, the digest of the config read after it,
    /// the secret parameters' sources, and (containers) the OS template it was made from.
    pub async fn set_proxmox_guest_applied(
        &self,
        kind: ProxmoxGuestKind,
        cluster: &str,
        vmid: u32,
        applied: &GuestApplied,
    ) -> Result<(), StoreError> {
        match kind {
            ProxmoxGuestKind::Vm => {
                self.applied::<vms::Entity>(cluster, vmid, applied, false)
                    .await
            }
            ProxmoxGuestKind::Container => {
                self.applied::<lxc_containers::Entity>(cluster, vmid, applied, true)
                    .await
            }
        }
    }

    async fn applied<E: GuestEntity>(
        &self,
        cluster: &str,
        vmid: u32,
        applied: &GuestApplied,
        has_os_template: bool,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_proxmox_guest_applied";
        let mut update = E::update_many()
            .col_expr(
                col("applied_hash"),
                Expr::value(applied.applied_hash.clone()),
            )
            .col_expr(
                col("secret_versions"),
                Expr::value(crate::json_text(&serde_json::json!(
                    applied.secret_versions
                ))),
            );
        if let Some(digest) = &applied.config_digest {
            update = update.col_expr(col("config_digest"), Expr::value(digest.clone()));
        }
        if has_os_template && let Some(template) = &applied.os_template {
            update = update.col_expr(col("os_template"), Expr::value(template.clone()));
        }
        let done = update
            .filter(Expr::col(col("cluster")).eq(cluster))
            .filter(Expr::col(col("vmid")).eq(vmid_db(OP, vmid)?))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, E::TABLE))?;
        if done.rows_affected == 0 {
            return Err(StoreError::NotFound {
                op: OP,
                what: format!("guest {vmid} of cluster {cluster}"),
            });
        }
        Ok(())
    }

    /// Forgets a guest (deleted, or pruned from the manifests); `false` if none was recorded.
    pub async fn forget_proxmox_guest(
        &self,
        kind: ProxmoxGuestKind,
        cluster: &str,
        vmid: u32,
    ) -> Result<bool, StoreError> {
        let filter = Expr::col(col("cluster"))
            .eq(cluster)
            .and(Expr::col(col("vmid")).eq(vmid_db("forget_proxmox_guest", vmid)?));
        let (table, done) = match kind {
            ProxmoxGuestKind::Vm => (
                vms::Entity::TABLE,
                vms::Entity::delete_many()
                    .filter(filter)
                    .exec(&self.db)
                    .await,
            ),
            ProxmoxGuestKind::Container => (
                lxc_containers::Entity::TABLE,
                lxc_containers::Entity::delete_many()
                    .filter(filter)
                    .exec(&self.db)
                    .await,
            ),
        };
        let done = done.map_err(self.db_err("forget_proxmox_guest", table))?;
        Ok(done.rows_affected > 0)
    }
}
