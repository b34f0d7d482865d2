//! Guest configuration: the typed view of a QEMU or LXC config as read ([`QemuConfig`],
//! [`LxcConfig`]), the requests that change one ([`Params`], [`ConfigUpdate`], the create and
//! clone structs), and the pure helpers for Proxmox's value syntax: property strings
//! (`virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1`) and sizes (`32G`).
//!
//! A config is a flat map of keys to values, many of them property strings; the typed fields
//! cover what a reconciler compares, and [`QemuConfig::raw`] keeps every key as text.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::lenient;
use crate::secret::Secret;
use crate::types::split_tags;

// ------------------------------------------------------------------------------------- sizes

const UNITS: [(char, u64); 4] = [
    ('T', 1 << 40),
    ('G', 1 << 30),
    ('M', 1 << 20),
    ('K', 1 << 10),
];

/// Bytes in a Proxmox size: `32G`, `512M`, `1.5T`, `8192K`, `4096` (bytes). Units are binary.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, unit) = match t.chars().last()? {
        c if c.is_ascii_alphabetic() => (&t[..t.len() - 1], Some(c.to_ascii_uppercase())),
        _ => (t, None),
    };
    let factor = match unit {
        None | Some('B') => 1,
        Some(u) => UNITS.iter().find(|(c, _)| *c == u)?.1,
    };
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let bytes = value * factor as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes <= u64::MAX as f64).then_some(bytes.round() as u64)
}

/// A size as Proxmox writes it: the largest unit that divides it (`34359738368` → `32G`);
/// bytes that are not a whole number of KiB stay bytes.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in UNITS {
        if bytes != 0 && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

// ---------------------------------------------------------------------------- property strings

/// A property string: comma-separated `key=value` pairs, the first of which may be a bare value
/// (the volume of a disk, the model and MAC of a QEMU NIC). Order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyString {
    /// The bare first value, if any (`local-lvm:vm-100-disk-0`).
    pub first: Option<String>,
    pub pairs: Vec<(String, String)>,
}

impl PropertyString {
    pub fn parse(text: &str) -> PropertyString {
        let mut out = PropertyString::default();
        for (i, part) in text.split(',').enumerate() {
            match part.split_once('=') {
                Some((k, v)) => out.pairs.push((k.trim().to_string(), v.to_string())),
                None if i == 0 && !part.is_empty() => out.first = Some(part.to_string()),
                // A bare word later on is a flag PVE does not write; keep it as key=``.
                None if !part.is_empty() => {
                    out.pairs.push((part.trim().to_string(), String::new()))
                }
                None => {}
            }
        }
        out
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean option (`firewall=1`, `ssd=true`); `None` when absent or not a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)
            .and_then(|v| lenient::to_bool(&Value::String(v.to_string())).ok())
    }

    /// Sets `key` (replacing it in place, or appending it).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut PropertyString {
        let value = value.into();
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
        self
    }
}

impl fmt::Display for PropertyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(first) = &self.first {
            f.write_str(first)?;
            sep = ",";
        }
        for (k, v) in &self.pairs {
            write!(f, "{sep}{k}={v}")?;
            sep = ",";
        }
        Ok(())
    }
}

/// `true` for the config keys of QEMU disks (`scsi0`, `virtio1`, `sata2`, `ide3`, `efidisk0`,
/// `tpmstate0`).
pub fn is_qemu_disk_key(key: &str) -> bool {
    let prefix = key.trim_end_matches(|c: char| c.is_ascii_digit());
    prefix.len() < key.len()
        && matches!(
            prefix,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
        )
}

fn numbered<'a>(raw: &'a BTreeMap<String, String>, prefix: &str) -> Vec<(&'a str, &'a str)> {
    let mut keys: Vec<(u32, &str, &str)> = raw
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix(prefix)?.parse::<u32>().ok()?;
            Some((n, k.as_str(), v.as_str()))
        })
        .collect();
    keys.sort_by_key(|(n, _, _)| *n);
    keys.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// A QEMU drive (`scsi0: local-lvm:vm-100-disk-0,discard=on,size=32G,ssd=1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Drive {
    /// `scsi0`, `virtio1`, …
    pub key: String,
    /// `local-lvm:vm-100-disk-0`, `none`, `cdrom`, or a path.
    pub volume: String,
    /// The storage part of the volume, if it has one.
    pub storage: Option<String>,
    /// From `size=`.
    pub size_bytes: Option<u64>,
    /// `media=cdrom` (an ISO or a cloud-init drive).
    pub cdrom: bool,
    pub options: PropertyString,
}

impl Drive {
    pub fn parse(key: &str, value: &str) -> Drive {
        let props = PropertyString::parse(value);
        let volume = props
            .first
            .clone()
            .or_else(|| props.get("file").map(str::to_string))
            .unwrap_or_default();
        let storage = volume
            .split_once(':')
            .filter(|_| !volume.starts_with('/'))
            .map(|(s, _)| s.to_string());
        Drive {
            key: key.to_string(),
            size_bytes: props.get("size").and_then(parse_size),
            cdrom: props.get("media") == Some("cdrom") || volume == "cdrom",
            storage,
            volume,
            options: props,
        }
    }

    /// A cloud-init drive (`…:vm-100-cloudinit,media=cdrom`).
    pub fn is_cloudinit(&self) -> bool {
        self.volume.contains("cloudinit")
    }
}

/// A QEMU network device (`net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20,firewall=1`).
#[derive(Debug, Clone, PartialEq)]
pub struct QemuNet {
    pub key: String,
    /// `virtio`, `e1000`, `vmxnet3`, …
    pub model: Option<String>,
    pub mac: Option<String>,
    pub bridge: Option<String>,
    /// The VLAN tag.
    pub tag: Option<u16>,
    pub firewall: bool,
    pub options: PropertyString,
}

const NET_MODELS: [&str; 14] = [
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

impl QemuNet {
    pub fn parse(key: &str, value: &str) -> QemuNet {
        let props = PropertyString::parse(value);
        let mut model = props.get("model").map(str::to_string);
        let mut mac = props.get("macaddr").map(str::to_string);
        // PVE writes `model=MAC` as the first pair.
        if let Some((m, addr)) = props
            .pairs
            .iter()
            .find(|(k, _)| NET_MODELS.contains(&k.as_str()))
        {
            model = Some(m.clone());
            if !addr.is_empty() {
                mac = Some(addr.clone());
            }
        }
        if model.is_none() {
            model = props
                .first
                .clone()
                .filter(|f| NET_MODELS.contains(&f.as_str()));
        }
        QemuNet {
            key: key.to_string(),
            model,
            mac,
            bridge: props.get("bridge").map(str::to_string),
            tag: props.get("tag").and_then(|t| t.parse().ok()),
            firewall: props.get_bool("firewall").unwrap_or(false),
            options: props,
        }
    }
}

/// An LXC network device (`net0: name=eth0,bridge=vmbr0,hwaddr=…,ip=dhcp,type=veth`).
#[derive(Debug, Clone, PartialEq)]
pub struct LxcNet {
    pub key: String,
    pub name: Option<String>,
    pub bridge: Option<String>,
    pub hwaddr: Option<String>,
    /// `dhcp`, `manual` or an address in CIDR form.
    pub ip: Option<String>,
    pub gw: Option<String>,
    pub ip6: Option<String>,
    pub gw6: Option<String>,
    pub tag: Option<u16>,
    pub firewall: bool,
    pub options: PropertyString,
}

impl LxcNet {
    pub fn parse(key: &str, value: &str) -> LxcNet {
        let props = PropertyString::parse(value);
        let get = |k: &str| props.get(k).map(str::to_string);
        LxcNet {
            key: key.to_string(),
            name: get("name"),
            bridge: get("bridge"),
            hwaddr: get("hwaddr"),
            ip: get("ip"),
            gw: get("gw"),
            ip6: get("ip6"),
            gw6: get("gw6"),
            tag: props.get("tag").and_then(|t| t.parse().ok()),
            firewall: props.get_bool("firewall").unwrap_or(false),
            options: props,
        }
    }
}

/// An LXC root filesystem or mount point (`mp0: local-lvm:vm-200-disk-1,mp=/data,size=8G`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// `rootfs`, `mp0`, …
    pub key: String,
    pub volume: String,
    pub storage: Option<String>,
    pub size_bytes: Option<u64>,
    /// Where it is mounted in the container (`mp=`; `/` for the root filesystem).
    pub path: Option<String>,
    pub options: PropertyString,
}

impl Mount {
    pub fn parse(key: &str, value: &str) -> Mount {
        let props = PropertyString::parse(value);
        let volume = props
            .first
            .clone()
            .or_else(|| props.get("volume").map(str::to_string))
            .unwrap_or_default();
        let storage = volume
            .split_once(':')
            .filter(|_| !volume.starts_with('/'))
            .map(|(s, _)| s.to_string());
        let path = if key == "rootfs" {
            Some("/".to_string())
        } else {
            props.get("mp").map(str::to_string)
        };
        Mount {
            key: key.to_string(),
            size_bytes: props.get("size").and_then(parse_size),
            storage,
            volume,
            path,
            options: props,
        }
    }
}

/// LXC feature flags (`features: nesting=1,keyctl=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LxcFeatures {
    pub nesting: bool,
    pub keyctl: bool,
    pub fuse: bool,
}

// -------------------------------------------------------------------------------- configs

fn text_map(map: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, String> {
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            lenient::to_string(&v)
                .map(|s| (k.clone(), s))
                .map_err(|e| format!("config key {k}: {e}"))
        })
        .collect()
}

fn opt<T>(
    raw: &BTreeMap<String, String>,
    key: &str,
    read: fn(&Value) -> Result<T, String>,
) -> Result<Option<T>, String> {
    raw.get(key)
        .map(|v| read(&Value::String(v.clone())).map_err(|e| format!("config key {key}: {e}")))
        .transpose()
}

fn opt_u32(raw: &BTreeMap<String, String>, key: &str) -> Result<Option<u32>, String> {
    opt(raw, key, |v| {
        lenient::to_u64(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is too large")))
    })
}

/// Memory in MiB: `2048`, or PVE 8.2+'s property string `current=2048`.
fn memory_mib(raw: &BTreeMap<String, String>) -> Result<Option<u64>, String> {
    let Some(value) = raw.get("memory") else {
        return Ok(None);
    };
    let props = PropertyString::parse(value);
    let number = props
        .first
        .as_deref()
        .or(props.get("current"))
        .unwrap_or("");
    lenient::to_u64(&Value::String(number.to_string()))
        .map(Some)
        .map_err(|e| format!("config key memory: {e}"))
}

/// `GET /nodes/{node}/qemu/{vmid}/config`. PVE answers it with pending changes applied (what
/// the next start runs); [`crate::ProxmoxClient::qemu_pending`] says which keys are still
/// pending. (fakepve answers the current values only.)
#[derive(Debug, Clone, PartialEq)]
pub struct QemuConfig {
    /// Pass it back with a change: a change made elsewhere in between is refused as stale.
    pub digest: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub cores: Option<u32>,
    pub sockets: Option<u32>,
    /// The CPU type (first value of `cpu:`, e.g. `host`, `x86-64-v2-AES`).
    pub cpu_type: Option<String>,
    /// MiB.
    pub memory_mib: Option<u64>,
    /// The balloon target in MiB (`0` turns ballooning off).
    pub balloon_mib: Option<u64>,
    pub onboot: Option<bool>,
    pub protection: bool,
    pub template: bool,
    pub lock: Option<String>,
    pub agent: Option<bool>,
    pub ciuser: Option<String>,
    /// URL-encoded SSH keys, as PVE stores them.
    pub sshkeys: Option<String>,
    pub nameserver: Option<String>,
    pub searchdomain: Option<String>,
    /// Every key, as text (`scsi0`, `net0`, `ipconfig0`, …), `digest` excluded.
    pub raw: BTreeMap<String, String>,
}

impl QemuConfig {
    pub fn from_map(map: BTreeMap<String, Value>) -> Result<QemuConfig, String> {
        let mut raw = text_map(map)?;
        let digest = raw.remove("digest").ok_or("the config has no digest")?;
        let cpu_type = raw
            .get("cpu")
            .map(|c| PropertyString::parse(c))
            .and_then(|p| {
                p.first
                    .clone()
                    .or_else(|| p.get("cputype").map(str::to_string))
            });
        let agent = raw
            .get("agent")
            .map(|a| PropertyString::parse(a))
            .and_then(|p| {
                p.first
                    .as_deref()
                    .or(p.get("enabled"))
                    .and_then(|v| lenient::to_bool(&Value::String(v.to_string())).ok())
            });
        Ok(QemuConfig {
            digest,
            name: raw.get("name").cloned(),
            description: raw.get("description").cloned(),
            tags: raw.get("tags").map(|t| split_tags(t)).unwrap_or_default(),
            cores: opt_u32(&raw, "cores")?,
            sockets: opt_u32(&raw, "sockets")?,
            cpu_type,
            memory_mib: memory_mib(&raw)?,
            balloon_mib: opt(&raw, "balloon", lenient::to_u64)?,
            onboot: opt(&raw, "onboot", lenient::to_bool)?,
            protection: opt(&raw, "protection", lenient::to_bool)?.unwrap_or(false),
            template: opt(&raw, "template", lenient::to_bool)?.unwrap_or(false),
            lock: raw.get("lock").cloned(),
            agent,
            ciuser: raw.get("ciuser").cloned(),
            sshkeys: raw.get("sshkeys").cloned(),
            nameserver: raw.get("nameserver").cloned(),
            searchdomain: raw.get("searchdomain").cloned(),
            raw,
        })
    }

    /// The drives, in key order (`ide2` before `scsi0`, `scsi2` before `scsi10`).
    pub fn drives(&self) -> Vec<Drive> {
        let mut keys: Vec<&String> = self.raw.keys().filter(|k| is_qemu_disk_key(k)).collect();
        keys.sort_by_key(|k| {
            let prefix = k.trim_end_matches(|c: char| c.is_ascii_digit());
            let n: u32 = k[prefix.len()..].parse().unwrap_or(0);
            (prefix.to_string(), n)
        });
        keys.into_iter()
            .map(|k| Drive::parse(k, &self.raw[k]))
            .collect()
    }

    pub fn drive(&self, key: &str) -> Option<Drive> {
        self.raw.get(key).map(|v| Drive::parse(key, v))
    }

    /// `net0`, `net1`, … in order.
    pub fn networks(&self) -> Vec<QemuNet> {
        numbered(&self.raw, "net")
            .into_iter()
            .map(|(k, v)| QemuNet::parse(k, v))
            .collect()
    }

    /// `ipconfig0`, `ipconfig1`, … (cloud-init) as property strings.
    pub fn ip_configs(&self) -> Vec<(String, PropertyString)> {
        numbered(&self.raw, "ipconfig")
            .into_iter()
            .map(|(k, v)| (k.to_string(), PropertyString::parse(v)))
            .collect()
    }
}

/// `GET /nodes/{node}/lxc/{vmid}/config`.
#[derive(Debug, Clone, PartialEq)]
pub struct LxcConfig {
    pub digest: String,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub cores: Option<u32>,
    /// MiB.
    pub memory_mib: Option<u64>,
    /// MiB.
    pub swap_mib: Option<u64>,
    pub rootfs: Option<Mount>,
    /// `mp0`, `mp1`, … in order.
    pub mount_points: Vec<Mount>,
    pub networks: Vec<LxcNet>,
    pub unprivileged: bool,
    pub features: LxcFeatures,
    pub onboot: Option<bool>,
    pub protection: bool,
    pub template: bool,
    pub lock: Option<String>,
    pub ostype: Option<String>,
    pub arch: Option<String>,
    pub nameserver: Option<String>,
    pub searchdomain: Option<String>,
    /// Every key, as text, `digest` excluded.
    pub raw: BTreeMap<String, String>,
}

impl LxcConfig {
    pub fn from_map(map: BTreeMap<String, Value>) -> Result<LxcConfig, String> {
        let mut raw = text_map(map)?;
        let digest = raw.remove("digest").ok_or("the config has no digest")?;
        let features = raw
            .get("features")
            .map(|f| PropertyString::parse(f))
            .map(|p| LxcFeatures {
                nesting: p.get_bool("nesting").unwrap_or(false),
                keyctl: p.get_bool("keyctl").unwrap_or(false),
                fuse: p.get_bool("fuse").unwrap_or(false),
            })
            .unwrap_or_default();
        Ok(LxcConfig {
            digest,
            hostname: raw.get("hostname").cloned(),
            description: raw.get("description").cloned(),
            tags: raw.get("tags").map(|t| split_tags(t)).unwrap_or_default(),
            cores: opt_u32(&raw, "cores")?,
            memory_mib: opt(&raw, "memory", lenient::to_u64)?,
            swap_mib: opt(&raw, "swap", lenient::to_u64)?,
            rootfs: raw.get("rootfs").map(|v| Mount::parse("rootfs", v)),
            mount_points: numbered(&raw, "mp")
                .into_iter()
                .map(|(k, v)| Mount::parse(k, v))
                .collect(),
            networks: numbered(&raw, "net")
                .into_iter()
                .map(|(k, v)| LxcNet::parse(k, v))
                .collect(),
            unprivileged: opt(&raw, "unprivileged", lenient::to_bool)?.unwrap_or(false),
            features,
            onboot: opt(&raw, "onboot", lenient::to_bool)?,
            protection: opt(&raw, "protection", lenient::to_bool)?.unwrap_or(false),
            template: opt(&raw, "template", lenient::to_bool)?.unwrap_or(false),
            lock: raw.get("lock").cloned(),
            ostype: raw.get("ostype").cloned(),
            arch: raw.get("arch").cloned(),
            nameserver: raw.get("nameserver").cloned(),
            searchdomain: raw.get("searchdomain").cloned(),
            raw,
        })
    }
}

/// One key of `GET …/pending`: its current value and what the next start (or reboot) will
/// change it to.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub key: String,
    pub value: Option<String>,
    pub pending: Option<String>,
    /// The key will be removed.
    pub delete: bool,
}

impl PendingEntry {
    pub fn from_value(row: &Value) -> Result<PendingEntry, String> {
        let text = |k: &str| -> Result<Option<String>, String> {
            match row.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => lenient::to_string(v).map(Some),
            }
        };
        Ok(PendingEntry {
            key: text("key")?.ok_or("a pending entry has no key")?,
            value: text("value")?,
            pending: text("pending")?,
            delete: row
                .get("delete")
                .map(lenient::to_bool)
                .transpose()?
                .unwrap_or(false),
        })
    }

    /// True when the next start changes this key.
    pub fn is_pending(&self) -> bool {
        self.delete || self.pending.is_some()
    }
}

// ------------------------------------------------------------------------------- requests

/// A parameter value: clear text, or a secret that `Debug` never shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Text(String),
    Secret(Secret),
}

/// Form parameters of a request, in order. Booleans are sent as `1`/`0`, as PVE writes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(Vec<(String, ParamValue)>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Params {
        self.insert(key.into(), ParamValue::Text(value.to_string()));
        self
    }

    pub fn set_bool(self, key: impl Into<String>, value: bool) -> Params {
        self.set(key, if value { "1" } else { "0" })
    }

    /// A secret value (`password`, `cipassword`): sent, never printed.
    pub fn set_secret(mut self, key: impl Into<String>, value: Secret) -> Params {
        self.insert(key.into(), ParamValue::Secret(value));
        self
    }

    /// Sets `key` when `value` is `Some`.
    pub fn set_opt(self, key: impl Into<String>, value: Option<impl ToString>) -> Params {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    fn insert(&mut self, key: String, value: ParamValue) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the other parameters (theirs win on a clash).
    pub fn extend(mut self, other: &Params) -> Params {
        for (k, v) in &other.0 {
            self.insert(k.clone(), v.clone());
        }
        self
    }

    /// The pairs as sent (secrets exposed): for the request body only.
    pub(crate) fn to_form(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    ParamValue::Text(t) => t.clone(),
                    ParamValue::Secret(s) => s.expose().to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// A config change: keys to set, keys to delete, and the digest of the config it was planned
/// against.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigUpdate {
    pub set: Params,
    pub delete: Vec<String>,
    /// From the config that was read; a change made elsewhere since then is refused as stale.
    pub digest: Option<String>,
}

impl ConfigUpdate {
    pub(crate) fn to_params(&self) -> Params {
        let mut params = self.set.clone();
        if !self.delete.is_empty() {
            params = params.set("delete", self.delete.join(","));
        }
        params.set_opt("digest", self.digest.as_ref())
    }
}

/// `POST /nodes/{node}/qemu`: a new VM. Disks in `config` as `storage:size-in-GiB`
/// (`scsi0 = local-lvm:32`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QemuCreate {
    pub vmid: u32,
    pub config: Params,
    pub pool: Option<String>,
    /// The default storage for disks that name none.
    pub storage: Option<String>,
    pub start: bool,
}

impl QemuCreate {
    pub(crate) fn to_params(&self) -> Params {
        Params::new()
            .set("vmid", self.vmid)
            .extend(&self.config)
            .set_opt("pool", self.pool.as_ref())
            .set_opt("storage", self.storage.as_ref())
            .set_opt("start", self.start.then_some(1))
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QemuClone {
    pub newid: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    /// A full copy (`true`) or a linked clone of a template (`false`); PVE's default is full
    /// for a VM and linked for a template.
    pub full: Option<bool>,
    /// The node the clone goes to.
    pub target: Option<String>,
    /// The storage of a full clone's disks.
    pub storage: Option<String>,
    pub pool: Option<String>,
    /// `raw`, `qcow2` or `vmdk` (full clones).
    pub format: Option<String>,
    pub snapname: Option<String>,
}

impl QemuClone {
    pub(crate) fn to_params(&self) -> Params {
        Params::new()
            .set("newid", self.newid)
            .set_opt("name", self.name.as_ref())
            .set_opt("description", self.description.as_ref())
            .set_opt("full", self.full.map(u8::from))
            .set_opt("target", self.target.as_ref())
            .set_opt("storage", self.storage.as_ref())
            .set_opt("pool", self.pool.as_ref())
            .set_opt("format", self.format.as_ref())
            .set_opt("snapname", self.snapname.as_ref())
    }
}

/// `POST /nodes/{node}/lxc`: a new container from an OS template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcCreate {
    pub vmid: u32,
    /// `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    pub ostemplate: String,
    /// Other keys: `hostname`, `cores`, `memory`, `rootfs = local-lvm:8`, `net0`, …
    pub config: Params,
    pub storage: Option<String>,
    pub pool: Option<String>,
    pub password: Option<Secret>,
    pub ssh_public_keys: Option<String>,
    pub unprivileged: Option<bool>,
    pub start: bool,
}

impl LxcCreate {
    pub(crate) fn to_params(&self) -> Params {
        let mut params = Params::new()
            .set("vmid", self.vmid)
            .set("ostemplate", &self.ostemplate)
            .extend(&self.config)
            .set_opt("storage", self.storage.as_ref())
            .set_opt("pool", self.pool.as_ref())
            .set_opt("ssh-public-keys", self.ssh_public_keys.as_ref())
            .set_opt("unprivileged", self.unprivileged.map(u8::from))
            .set_opt("start", self.start.then_some(1));
        if let Some(password) = &self.password {
            params = params.set_secret("password", password.clone());
        }
        params
    }
}

/// `POST /nodes/{node}/lxc/{vmid}/clone`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcClone {
    pub newid: u32,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub full: Option<bool>,
    pub target: Option<String>,
    pub storage: Option<String>,
    pub pool: Option<String>,
    pub snapname: Option<String>,
}

impl LxcClone {
    pub(crate) fn to_params(&self) -> Params {
        Params::new()
            .set("newid", self.newid)
            .set_opt("hostname", self.hostname.as_ref())
            .set_opt("description", self.description.as_ref())
            .set_opt("full", self.full.map(u8::from))
            .set_opt("target", self.target.as_ref())
            .set_opt("storage", self.storage.as_ref())
            .set_opt("pool", self.pool.as_ref())
            .set_opt("snapname", self.snapname.as_ref())
    }
}

/// Options of `DELETE /nodes/{node}/{qemu|lxc}/{vmid}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Also remove the guest from backup jobs, replication and HA.
    pub purge: bool,
    /// Also remove disks of this vmid that no config references.
    pub destroy_unreferenced_disks: bool,
    /// LXC: stop a running container first.
    pub force: bool,
}

impl DeleteOptions {
    pub(crate) fn to_query(self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if self.purge {
            q.push(("purge", "1".to_string()));
        }
        if self.destroy_unreferenced_disks {
            q.push(("destroy-unreferenced-disks", "1".to_string()));
        }
        if self.force {
            q.push(("force", "1".to_string()));
        }
        q
    }
}

/// A power action on a guest (`POST …/status/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    /// Hard stop.
    Stop,
    /// ACPI shutdown (QEMU) or a clean shutdown (LXC); after `timeout_secs`, `force_stop` stops
    /// it hard instead of failing.
    Shutdown {
        timeout_secs: Option<u32>,
        force_stop: bool,
    },
    Reboot {
        timeout_secs: Option<u32>,
    },
}

impl PowerAction {
    pub(crate) fn path(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Shutdown { .. } => "shutdown",
            PowerAction::Reboot { .. } => "reboot",
        }
    }

    pub(crate) fn to_params(self) -> Params {
        match self {
            PowerAction::Start | PowerAction::Stop => Params::new(),
            PowerAction::Shutdown {
                timeout_secs,
                force_stop,
            } => Params::new()
                .set_opt("timeout", timeout_secs)
                .set_opt("forceStop", force_stop.then_some(1)),
            PowerAction::Reboot { timeout_secs } => Params::new().set_opt("timeout", timeout_secs),
        }
    }
}

/// The new size of a disk (`PUT …/resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSize {
    /// Grow by this many bytes (`+4G`).
    GrowBy(u64),
    /// Grow to this many bytes (`32G`); PVE refuses a shrink.
    To(u64),
}

impl fmt::Display for DiskSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskSize::GrowBy(b) => write!(f, "+{}", format_size(*b)),
            DiskSize::To(b) => f.write_str(&format_size(*b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).expect("an object")
    }

    #[test]
    fn sizes_parse_in_proxmox_units() {
        let cases = [
            ("32G", Some(32u64 << 30)),
            ("32g", Some(32 << 30)),
            ("512M", Some(512 << 20)),
            ("1.5T", Some(3 << 39)),
            ("8192K", Some(8 << 20)),
            ("4096", Some(4096)),
            ("4096B", Some(4096)),
            (" 4G ", Some(4 << 30)),
            ("", None),
            ("G", None),
            ("4X", None),
            ("-4G", None),
            ("4.G.", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), want, "{text:?}");
        }
    }

    #[test]
    fn sizes_format_with_the_largest_exact_unit() {
        let cases = [
            (32u64 << 30, "32G"),
            (1 << 40, "1T"),
            (1536 << 20, "1536M"),
            (4 << 20, "4M"),
            (4096, "4K"),
            (1000, "1000"),
            (0, "0"),
        ];
        for (bytes, want) in cases {
            assert_eq!(format_size(bytes), want, "{bytes}");
            if bytes != 0 {
                assert_eq!(parse_size(want), Some(bytes), "{want} round-trips");
            }
        }
    }

    #[test]
    fn property_strings_keep_order_and_the_bare_first_value() {
        let p = PropertyString::parse("local-lvm:vm-100-disk-0,discard=on,size=32G,ssd=1");
        assert_eq!(p.first.as_deref(), Some("local-lvm:vm-100-disk-0"));
        assert_eq!(p.get("size"), Some("32G"));
        assert_eq!(p.get_bool("ssd"), Some(true));
        assert_eq!(p.get("missing"), None);
        assert_eq!(
            p.to_string(),
            "local-lvm:vm-100-disk-0,discard=on,size=32G,ssd=1"
        );

        let mut n = PropertyString::parse("name=eth0,bridge=vmbr0");
        assert_eq!(n.first, None);
        n.set("bridge", "vmbr1").set("firewall", "1");
        assert_eq!(n.to_string(), "name=eth0,bridge=vmbr1,firewall=1");
    }

    #[test]
    fn qemu_disk_keys() {
        for key in [
            "scsi0",
            "scsi30",
            "virtio15",
            "sata5",
            "ide2",
            "efidisk0",
            "tpmstate0",
        ] {
            assert!(is_qemu_disk_key(key), "{key}");
        }
        for key in ["scsihw", "net0", "scsi", "unused0", "ipconfig0", "boot"] {
            assert!(!is_qemu_disk_key(key), "{key}");
        }
    }

    #[test]
    fn drives_networks_and_mounts_parse() {
        let d = Drive::parse("scsi0", "local-lvm:vm-100-disk-0,discard=on,size=32G");
        assert_eq!(d.storage.as_deref(), Some("local-lvm"));
        assert_eq!(d.size_bytes, Some(32 << 30));
        assert!(!d.cdrom && !d.is_cloudinit());
        let ci = Drive::parse("ide2", "local-lvm:vm-100-cloudinit,media=cdrom");
        assert!(ci.cdrom && ci.is_cloudinit());
        let none = Drive::parse("ide0", "none,media=cdrom");
        assert_eq!(none.storage, None);

        let n = QemuNet::parse(
            "net0",
            "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20,firewall=1",
        );
        assert_eq!(n.model.as_deref(), Some("virtio"));
        assert_eq!(n.mac.as_deref(), Some("BC:24:11:00:00:01"));
        assert_eq!(n.bridge.as_deref(), Some("vmbr0"));
        assert_eq!(n.tag, Some(20));
        assert!(n.firewall);
        // The form a create request takes: no MAC yet.
        let fresh = QemuNet::parse("net1", "virtio,bridge=vmbr1");
        assert_eq!(fresh.model.as_deref(), Some("virtio"));
        assert_eq!(fresh.mac, None);
        let explicit = QemuNet::parse("net2", "model=e1000,macaddr=AA:BB:CC:DD:EE:FF");
        assert_eq!(explicit.model.as_deref(), Some("e1000"));
        assert_eq!(explicit.mac.as_deref(), Some("AA:BB:CC:DD:EE:FF"));

        let l = LxcNet::parse(
            "net0",
            "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:AA:BB:CC,ip=10.0.0.5/24,gw=10.0.0.1,type=veth",
        );
        assert_eq!(l.name.as_deref(), Some("eth0"));
        assert_eq!(l.ip.as_deref(), Some("10.0.0.5/24"));
        assert_eq!(l.gw.as_deref(), Some("10.0.0.1"));
        assert!(l.firewall);

        let m = Mount::parse("mp0", "local-lvm:vm-200-disk-1,mp=/data,size=8G");
        assert_eq!(m.path.as_deref(), Some("/data"));
        assert_eq!(m.size_bytes, Some(8 << 30));
        let r = Mount::parse("rootfs", "local-lvm:vm-200-disk-0,size=4G");
        assert_eq!(r.path.as_deref(), Some("/"));
        assert_eq!(r.storage.as_deref(), Some("local-lvm"));
    }

    #[test]
    fn a_qemu_config_reads_numbers_given_as_strings() {
        let cases = [
            json!({"digest": "d", "cores": 4, "sockets": 1, "memory": 2048, "onboot": 1,
                   "protection": 0, "balloon": 0}),
            json!({"digest": "d", "cores": "4", "sockets": "1", "memory": "2048", "onboot": "1",
                   "protection": "0", "balloon": "0"}),
            json!({"digest": "d", "cores": "4", "sockets": 1, "memory": "current=2048",
                   "onboot": true, "protection": false, "balloon": "0"}),
        ];
        for case in cases {
            let c = QemuConfig::from_map(map(case.clone())).expect("parses");
            assert_eq!(c.cores, Some(4), "{case}");
            assert_eq!(c.sockets, Some(1), "{case}");
            assert_eq!(c.memory_mib, Some(2048), "{case}");
            assert_eq!(c.balloon_mib, Some(0), "{case}");
            assert_eq!(c.onboot, Some(true), "{case}");
            assert!(!c.protection, "{case}");
        }
    }

    #[test]
    fn a_qemu_config_gives_its_drives_networks_and_options() {
        let c = QemuConfig::from_map(map(json!({
            "digest": "abc", "name": "web1", "tags": "prod;Web", "cpu": "host,flags=+aes",
            "agent": "enabled=1,fstrim_cloned_disks=1", "template": 1, "lock": "clone",
            "scsi10": "local-lvm:vm-101-disk-2,size=1G", "scsi2": "local-lvm:vm-101-disk-1,size=2G",
            "scsi0": "local-lvm:vm-101-disk-0,size=32G", "ide2": "local-lvm:vm-101-cloudinit,media=cdrom",
            "net1": "virtio=BC:24:11:00:00:02,bridge=vmbr1", "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
            "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1", "scsihw": "virtio-scsi-single"
        })))
        .expect("parses");
        assert_eq!(c.digest, "abc");
        assert_eq!(c.name.as_deref(), Some("web1"));
        assert_eq!(c.tags, ["prod", "Web"]);
        assert_eq!(c.cpu_type.as_deref(), Some("host"));
        assert_eq!(c.agent, Some(true));
        assert!(c.template);
        assert_eq!(c.lock.as_deref(), Some("clone"));
        let keys: Vec<String> = c.drives().into_iter().map(|d| d.key).collect();
        assert_eq!(keys, ["ide2", "scsi0", "scsi2", "scsi10"]);
        let nets: Vec<String> = c.networks().into_iter().map(|n| n.key).collect();
        assert_eq!(nets, ["net0", "net1"]);
        let ip = &c.ip_configs()[0];
        assert_eq!(ip.1.get("gw"), Some("10.0.0.1"));
        assert!(!c.raw.contains_key("digest"));
        assert_eq!(c.raw["scsihw"], "virtio-scsi-single");
    }

    #[test]
    fn a_config_without_a_digest_is_refused() {
        let err = QemuConfig::from_map(map(json!({"cores": 1}))).expect_err("no digest");
        assert!(err.contains("digest"), "{err}");
    }

    #[test]
    fn a_bad_number_names_its_key() {
        let err = QemuConfig::from_map(map(json!({"digest": "d", "cores": "many"})))
            .expect_err("bad cores");
        assert!(err.contains("cores"), "{err}");
    }

    #[test]
    fn an_lxc_config_reads_mounts_networks_and_features() {
        let c = LxcConfig::from_map(map(json!({
            "digest": "x", "hostname": "ct1", "cores": "2", "memory": "1024", "swap": 512,
            "rootfs": "local-lvm:vm-200-disk-0,size=8G",
            "mp1": "local-lvm:vm-200-disk-2,mp=/srv,size=2G",
            "mp0": "local-lvm:vm-200-disk-1,mp=/data,size=4G",
            "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:03,ip=dhcp,type=veth",
            "unprivileged": 1, "features": "keyctl=1,nesting=1", "onboot": "0",
            "protection": 1, "ostype": "debian", "tags": "a b"
        })))
        .expect("parses");
        assert_eq!(c.cores, Some(2));
        assert_eq!(c.memory_mib, Some(1024));
        assert_eq!(c.swap_mib, Some(512));
        assert_eq!(c.rootfs.as_ref().and_then(|r| r.size_bytes), Some(8 << 30));
        let mps: Vec<_> = c.mount_points.iter().map(|m| m.path.clone()).collect();
        assert_eq!(mps, [Some("/data".to_string()), Some("/srv".to_string())]);
        assert_eq!(c.networks[0].ip.as_deref(), Some("dhcp"));
        assert!(c.unprivileged && c.protection);
        assert_eq!(
            c.features,
            LxcFeatures {
                nesting: true,
                keyctl: true,
                fuse: false
            }
        );
        assert_eq!(c.onboot, Some(false));
        assert_eq!(c.tags, ["a", "b"]);
    }

    #[test]
    fn pending_entries_read_every_shape() {
        let rows = [
            (
                json!({"key": "cores", "value": 1, "pending": "4"}),
                Some("1"),
                Some("4"),
                false,
            ),
            (
                json!({"key": "memory", "value": "2048"}),
                Some("2048"),
                None,
                false,
            ),
            (
                json!({"key": "ide2", "value": "none", "delete": 1}),
                Some("none"),
                None,
                true,
            ),
            (
                json!({"key": "net1", "pending": "virtio,bridge=vmbr1"}),
                None,
                Some("virtio,bridge=vmbr1"),
                false,
            ),
        ];
        for (row, value, pending, delete) in rows {
            let e = PendingEntry::from_value(&row).expect("parses");
            assert_eq!(e.value.as_deref(), value, "{row}");
            assert_eq!(e.pending.as_deref(), pending, "{row}");
            assert_eq!(e.delete, delete, "{row}");
            assert_eq!(e.is_pending(), delete || pending.is_some(), "{row}");
        }
    }

    #[test]
    fn params_hide_secrets_and_send_booleans_as_numbers() {
        let create = LxcCreate {
            vmid: 200,
            ostemplate: "local:vztmpl/debian.tar.zst".into(),
            config: Params::new()
                .set("hostname", "ct1")
                .set_bool("onboot", true),
            password: Some(Secret::new("root-pass-123")),
            unprivileged: Some(true),
            start: false,
            ..LxcCreate::default()
        };
        let params = create.to_params();
        assert!(!format!("{params:?}").contains("root-pass-123"));
        let form = params.to_form();
        assert!(form.contains(&("password".into(), "root-pass-123".into())));
        assert!(form.contains(&("onboot".into(), "1".into())));
        assert!(form.contains(&("unprivileged".into(), "1".into())));
        assert!(!form.iter().any(|(k, _)| k == "start"));
    }

    #[test]
    fn a_config_update_carries_deletes_and_the_digest() {
        let update = ConfigUpdate {
            set: Params::new().set("cores", 4),
            delete: vec!["ide2".into(), "net1".into()],
            digest: Some("abc".into()),
        };
        assert_eq!(
            update.to_params().to_form(),
            [
                ("cores".to_string(), "4".to_string()),
                ("delete".to_string(), "ide2,net1".to_string()),
                ("digest".to_string(), "abc".to_string())
            ]
        );
    }

    #[test]
    fn disk_sizes_render_as_pve_takes_them() {
        assert_eq!(DiskSize::GrowBy(4 << 30).to_string(), "+4G");
        assert_eq!(DiskSize::To(40 << 30).to_string(), "40G");
        assert_eq!(DiskSize::To(1536 << 20).to_string(), "1536M");
    }
}
