//! Typed answers of the read calls: version, cluster status, `/cluster/resources`, nodes,
//! storage, pools. Every numeric and boolean field is read leniently ([`crate::lenient`]), and
//! fields Proxmox may leave out are `Option`s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient::{
    de_bool, de_opt_bool, de_opt_f64, de_opt_string, de_opt_u32, de_opt_u64, de_string, de_u32,
};

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Version {
    #[serde(deserialize_with = "de_string")]
    pub version: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub release: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub repoid: Option<String>,
}

/// QEMU virtual machine or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    /// The path segment: `qemu` or `lxc`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

/// Which guest a call is about: identity is the vmid; the node is where it lives now (a guest
/// HA moved is found on its new node in `/cluster/resources`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GuestRef {
    pub kind: GuestKind,
    pub node: String,
    pub vmid: u32,
}

impl GuestRef {
    pub fn qemu(node: impl Into<String>, vmid: u32) -> GuestRef {
        GuestRef {
            kind: GuestKind::Qemu,
            node: node.into(),
            vmid,
        }
    }

    pub fn lxc(node: impl Into<String>, vmid: u32) -> GuestRef {
        GuestRef {
            kind: GuestKind::Lxc,
            node: node.into(),
            vmid,
        }
    }
}

/// Splits a tag list as PVE stores it (`;`, `,` or spaces between tags).
pub fn split_tags(text: &str) -> Vec<String> {
    text.split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn de_tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(de_opt_string(d)?
        .map(|t| split_tags(&t))
        .unwrap_or_default())
}

fn de_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(de_opt_string(d)?
        .map(|t| {
            t.split([',', ';', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// A guest row of `/cluster/resources`: what one request says about every VM and container.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct GuestResource {
    #[serde(rename = "type")]
    pub kind: GuestKind,
    #[serde(deserialize_with = "de_u32")]
    pub vmid: u32,
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// `running`, `stopped`, `paused`, or `unknown` when its node is offline.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub template: bool,
    /// As stored (order and case kept); compare them as a set.
    #[serde(default, deserialize_with = "de_tags")]
    pub tags: Vec<String>,
    /// The config lock (`backup`, `clone`, `migrate`, `snapshot`, …).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub pool: Option<String>,
    /// CPUs; a container's `cpulimit` may make it fractional.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub maxcpu: Option<f64>,
    /// Bytes.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub maxmem: Option<u64>,
    /// Bytes.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub maxdisk: Option<u64>,
    /// CPU use, a fraction of `maxcpu`.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub disk: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub netin: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub netout: Option<u64>,
    /// Seconds.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
    /// The HA state when the guest is an HA resource (`started`, `stopped`, `error`, …).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub hastate: Option<String>,
}

impl GuestResource {
    pub fn guest_ref(&self) -> GuestRef {
        GuestRef {
            kind: self.kind,
            node: self.node.clone(),
            vmid: self.vmid,
        }
    }
}

/// A node row of `/cluster/resources` (and of `GET /nodes`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeResource {
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub disk: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
    /// The node's certificate fingerprint (`GET /nodes` only), as PVE shows it.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ssl_fingerprint: Option<String>,
}

impl NodeResource {
    pub fn is_online(&self) -> bool {
        self.status.as_deref() == Some("online")
    }
}

/// A storage row of `/cluster/resources`: one per storage and node that has it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StorageResource {
    #[serde(deserialize_with = "de_string")]
    pub storage: String,
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    /// `available` or `unknown`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub status: Option<String>,
    /// The storage type: `dir`, `lvmthin`, `zfspool`, `rbd`, `nfs`, …
    #[serde(default, deserialize_with = "de_opt_string")]
    pub plugintype: Option<String>,
    #[serde(default, deserialize_with = "de_list")]
    pub content: Vec<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub shared: bool,
    /// Bytes used.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub disk: Option<u64>,
    /// Bytes in all.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub maxdisk: Option<u64>,
}

/// `GET /cluster/resources`, split by type. Rows of other types (pools, SDN zones) are not kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ClusterResources {
    pub guests: Vec<GuestResource>,
    pub nodes: Vec<NodeResource>,
    pub storage: Vec<StorageResource>,
}

impl ClusterResources {
    /// Reads the rows; a row that does not parse is an error naming its `id`.
    pub fn from_rows(rows: Vec<Value>) -> Result<ClusterResources, String> {
        let mut out = ClusterResources::default();
        for row in rows {
            let kind = row.get("type").and_then(Value::as_str).unwrap_or("");
            let id = row
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let fail = |e: serde_json::Error| format!("resource {id}: {e}");
            match kind {
                "qemu" | "lxc" => out.guests.push(serde_json::from_value(row).map_err(fail)?),
                "node" => out.nodes.push(serde_json::from_value(row).map_err(fail)?),
                "storage" => out.storage.push(serde_json::from_value(row).map_err(fail)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The guest with this vmid, wherever it lives.
    pub fn guest(&self, vmid: u32) -> Option<&GuestResource> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// `None` for a single node that is not in a cluster.
    pub name: Option<String>,
    /// A single node is always quorate.
    pub quorate: bool,
    pub nodes: Vec<ClusterNode>,
}

/// A node entry of `/cluster/status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClusterNode {
    #[serde(deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_opt_u32")]
    pub nodeid: Option<u32>,
    #[serde(default, deserialize_with = "de_bool")]
    pub online: bool,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ip: Option<String>,
    /// The node that answered.
    #[serde(default, deserialize_with = "de_bool")]
    pub local: bool,
}

#[derive(Deserialize)]
struct ClusterEntry {
    #[serde(default, deserialize_with = "de_opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    quorate: Option<bool>,
}

impl ClusterStatus {
    pub fn from_rows(rows: Vec<Value>) -> Result<ClusterStatus, String> {
        let mut status = ClusterStatus {
            name: None,
            quorate: true,
            nodes: Vec::new(),
        };
        for row in rows {
            match row.get("type").and_then(Value::as_str) {
                Some("cluster") => {
                    let entry: ClusterEntry =
                        serde_json::from_value(row).map_err(|e| format!("cluster entry: {e}"))?;
                    status.name = entry.name;
                    status.quorate = entry.quorate.unwrap_or(false);
                }
                Some("node") => status
                    .nodes
                    .push(serde_json::from_value(row).map_err(|e| format!("node entry: {e}"))?),
                _ => {}
            }
        }
        Ok(status)
    }
}

/// Memory or disk figures of `GET /nodes/{node}/status`, in bytes.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub free: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub avail: Option<u64>,
}

/// The CPU of a node.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct CpuInfo {
    #[serde(default, deserialize_with = "de_opt_string")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u32")]
    pub cpus: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_u32")]
    pub cores: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_u32")]
    pub sockets: Option<u32>,
}

/// `GET /nodes/{node}/status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeStatus {
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default)]
    pub cpuinfo: CpuInfo,
    #[serde(default)]
    pub memory: Usage,
    #[serde(default)]
    pub swap: Usage,
    #[serde(default)]
    pub rootfs: Usage,
    /// `pve-manager/9.0.10/…`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub pveversion: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub kversion: Option<String>,
    /// The load averages as PVE sends them (strings).
    #[serde(default, deserialize_with = "de_strings")]
    pub loadavg: Vec<String>,
}

fn de_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    values
        .iter()
        .map(|v| crate::lenient::to_string(v).map_err(serde::de::Error::custom))
        .collect()
}

/// A storage of `GET /storage` (the cluster's storage configuration).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StorageConfig {
    #[serde(deserialize_with = "de_string")]
    pub storage: String,
    #[serde(rename = "type", deserialize_with = "de_string")]
    pub storage_type: String,
    #[serde(default, deserialize_with = "de_list")]
    pub content: Vec<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub shared: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub disable: bool,
    /// The nodes that have it; empty means all.
    #[serde(default, deserialize_with = "de_list")]
    pub nodes: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub digest: Option<String>,
}

/// A storage as one node sees it (`GET /nodes/{node}/storage`): usage in bytes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeStorage {
    #[serde(deserialize_with = "de_string")]
    pub storage: String,
    #[serde(rename = "type", default, deserialize_with = "de_opt_string")]
    pub storage_type: Option<String>,
    #[serde(default, deserialize_with = "de_list")]
    pub content: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "de_bool")]
    pub shared: bool,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub avail: Option<u64>,
}

/// A resource pool (`GET /pools?poolid=…` gives its members).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Pool {
    #[serde(deserialize_with = "de_string")]
    pub poolid: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub comment: Option<String>,
    #[serde(default)]
    pub members: Vec<PoolMember>,
}

/// A pool member: a guest or a storage.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PoolMember {
    #[serde(deserialize_with = "de_string")]
    pub id: String,
    /// `qemu`, `lxc` or `storage`.
    #[serde(rename = "type", deserialize_with = "de_string")]
    pub member_type: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub node: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub storage: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_split_by_type_and_read_both_spellings() {
        let rows = vec![
            json!({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve1", "name": "web",
                   "status": "running", "template": 0, "tags": "prod;web", "maxcpu": 2,
                   "maxmem": 2147483648u64, "maxdisk": "34359738368", "cpu": "0.05",
                   "uptime": 60, "hastate": "started"}),
            json!({"id": "lxc/200", "type": "lxc", "vmid": "200", "node": "pve2", "name": 42,
                   "status": "stopped", "template": "1", "lock": "backup", "pool": "homelab",
                   "maxcpu": 0.5}),
            json!({"id": "node/pve1", "type": "node", "node": "pve1", "status": "online",
                   "maxcpu": 4, "maxmem": 8589934592u64}),
            json!({"id": "storage/pve1/local", "type": "storage", "node": "pve1",
                   "storage": "local", "content": "iso,vztmpl", "shared": 0, "plugintype": "dir"}),
            json!({"id": "pool/homelab", "type": "pool", "pool": "homelab"}),
        ];
        let res = ClusterResources::from_rows(rows).expect("parses");
        assert_eq!(res.guests.len(), 2);
        assert_eq!(res.nodes.len(), 1);
        assert_eq!(res.storage.len(), 1);
        let web = res.guest(100).expect("vm 100");
        assert_eq!(web.kind, GuestKind::Qemu);
        assert_eq!(web.tags, ["prod", "web"]);
        assert_eq!(web.maxdisk, Some(34_359_738_368));
        assert_eq!(web.cpu, Some(0.05));
        assert_eq!(web.hastate.as_deref(), Some("started"));
        let ct = res.guest(200).expect("ct 200");
        assert_eq!(ct.kind, GuestKind::Lxc);
        assert_eq!(ct.name.as_deref(), Some("42"));
        assert!(ct.template);
        assert_eq!(ct.lock.as_deref(), Some("backup"));
        assert_eq!(ct.maxcpu, Some(0.5));
        assert_eq!(ct.guest_ref(), GuestRef::lxc("pve2", 200));
        assert_eq!(res.storage[0].content, ["iso", "vztmpl"]);
    }

    #[test]
    fn a_bad_row_names_its_id() {
        let rows = vec![json!({"id": "qemu/x", "type": "qemu", "vmid": "x", "node": "pve1"})];
        let err = ClusterResources::from_rows(rows).expect_err("bad vmid");
        assert!(err.contains("qemu/x"), "{err}");
    }

    #[test]
    fn cluster_status_reads_quorum_and_a_single_node_is_quorate() {
        let rows = vec![
            json!({"type": "cluster", "id": "cluster", "name": "lab", "quorate": 0, "nodes": 2}),
            json!({"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 1, "online": 1,
                   "local": 1, "ip": "192.0.2.11"}),
            json!({"type": "node", "id": "node/pve2", "name": "pve2", "nodeid": "2", "online": 0}),
        ];
        let status = ClusterStatus::from_rows(rows).expect("parses");
        assert_eq!(status.name.as_deref(), Some("lab"));
        assert!(!status.quorate);
        assert_eq!(status.nodes.len(), 2);
        assert!(status.nodes[0].online && status.nodes[0].local);
        assert!(!status.nodes[1].online);

        let single = vec![json!({"type": "node", "id": "node/pve", "name": "pve", "online": 1})];
        let status = ClusterStatus::from_rows(single).expect("parses");
        assert!(status.quorate && status.name.is_none());
    }

    #[test]
    fn tags_split_on_every_separator() {
        assert_eq!(split_tags("a;b,c d;;"), ["a", "b", "c", "d"]);
        assert!(split_tags("").is_empty());
    }
}
