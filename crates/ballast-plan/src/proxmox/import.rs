//! Import: the manifest `ballast import proxmox` prints for an existing guest, from its
//! resource row and its config, such that planning that manifest against that guest changes
//! nothing (it is adopted as it is). Secrets cannot be read back: a guest that has one gets a
//! `secretRef` to fill in (`ballast secret set NAME`), and so does anything else that cannot be
//! known (the OS template a container was made from), listed in [`Import::to_fill`].

use ballast_model::proxmox::values::{NET_MODELS, format_size, parse_disk_interface};
use ballast_proxmox::{Drive, GuestResource, LxcNet, Mount, PropertyString, QemuNet};
use serde_json::{Map, Value, json};

use super::ObservedConfig;
use super::compare::{flag, number, ssh_key_lines, tag_set, url_decode};
use super::vm::mib_text;

const MIB: u64 = 1 << 20;

/// An imported manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The whole document: apiVersion, kind, metadata, spec.
    pub document: Value,
    /// What the user must fill in before applying (secret names to set, placeholders).
    pub to_fill: Vec<String>,
}

impl Import {
    /// The manifest as YAML, with a comment per value to fill in.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for fill in &self.to_fill {
            out.push_str(&format!("# TODO: {fill}\n"));
        }
        out.push_str(&crate::to_yaml(&self.document));
        out
    }
}

/// A DNS-1123 label for the resource name: the guest's name made safe, else `KIND-VMID`.
pub fn resource_name(guest_name: Option<&str>, prefix: &str, vmid: u32) -> String {
    let mut name: String = guest_name
        .unwrap_or("")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        format!("{prefix}-{vmid}")
    } else {
        name
    }
}

fn document(kind: &str, name: &str, spec: Map<String, Value>) -> Value {
    json!({
        "apiVersion": ballast_model::API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": Value::Object(spec),
    })
}

fn common(spec: &mut Map<String, Value>, cluster: &str, row: &GuestResource, cfg: &ObservedConfig) {
    spec.insert("cluster".into(), json!(cluster));
    spec.insert("node".into(), json!(row.node));
    spec.insert("vmid".into(), json!(row.vmid));
    if let Some(text) = cfg.get("description").filter(|t| !t.trim().is_empty()) {
        spec.insert("description".into(), json!(text.trim_end()));
    }
    let tags = tag_set(
        cfg.get("tags")
            .map(ballast_proxmox::split_tags)
            .unwrap_or_default()
            .iter()
            .map(String::as_str),
    );
    if !tags.is_empty() {
        spec.insert("tags".into(), json!(tags));
    }
    if let Some(pool) = &row.pool {
        spec.insert("pool".into(), json!(pool));
    }
}

fn power(spec: &mut Map<String, Value>, row: &GuestResource, cfg: &ObservedConfig, template: bool) {
    if !template && row.status.as_deref() != Some("running") {
        spec.insert("state".into(), json!("stopped"));
    }
    if flag(cfg.get("onboot"), false) {
        spec.insert("onBoot".into(), json!(true));
    }
    if flag(cfg.get("protection"), false) {
        spec.insert("protection".into(), json!(true));
    }
}

/// The keys `prefix0`, `prefix1`, … from 0 up to the first gap (the spec numbers by position).
fn consecutive<'a>(cfg: &'a ObservedConfig, prefix: &str) -> Vec<(String, &'a str)> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .map_while(|key| cfg.get(&key).map(|v| (key, v)))
        .collect()
}

/// The ProxmoxVm manifest for a QEMU guest.
pub fn import_vm(cluster: &str, row: &GuestResource, cfg: &ObservedConfig) -> Import {
    let mut to_fill = Vec::new();
    let guest_name = cfg.get("name").or(row.name.as_deref());
    let name = resource_name(guest_name, "vm", row.vmid);
    let mut spec = Map::new();
    common(&mut spec, cluster, row, cfg);
    if let Some(guest_name) = guest_name {
        spec.insert("name".into(), json!(guest_name));
    }
    let mut cpu = Map::new();
    for (field, key) in [("cores", "cores"), ("sockets", "sockets")] {
        if let Some(n) = number(cfg.get(key)) {
            cpu.insert(field.into(), json!(n));
        }
    }
    if let Some(first) = cfg.get("cpu").and_then(|c| PropertyString::parse(c).first) {
        cpu.insert("type".into(), json!(first));
    }
    if !cpu.is_empty() {
        spec.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(mib) = cfg.get("memory").and_then(|m| {
        let p = PropertyString::parse(m);
        number(p.first.as_deref().or(p.get("current")))
    }) {
        let mut memory = json!({"dedicated": mib_text(mib)});
        if let Some(balloon) = number(cfg.get("balloon")) {
            memory["floating"] = json!(mib_text(balloon));
        }
        spec.insert("memory".into(), memory);
    }
    let mut disks = Vec::new();
    for (key, value) in &cfg.values {
        if parse_disk_interface(key).is_err() {
            continue;
        }
        let drive = Drive::parse(key, value);
        let Some(bytes) = drive.size_bytes.filter(|b| b.is_multiple_of(MIB) && *b > 0) else {
            continue;
        };
        if drive.cdrom || drive.is_cloudinit() {
            continue;
        }
        let mut disk = json!({"interface": key, "size": format_size(bytes)});
        if let Some(storage) = &drive.storage {
            disk["storage"] = json!(storage);
        }
        if drive.options.get("discard") == Some("on") {
            disk["discard"] = json!(true);
        }
        if drive.options.get_bool("ssd").unwrap_or(false) {
            disk["ssd"] = json!(true);
        }
        disks.push(disk);
    }
    if !disks.is_empty() {
        spec.insert("disks".into(), Value::Array(disks));
    }
    let nics: Vec<Value> = consecutive(cfg, "net")
        .into_iter()
        .map(|(key, value)| {
            let nic = QemuNet::parse(&key, value);
            let mut doc = json!({"model": nic.model.as_deref().unwrap_or("virtio")});
            if let Some(bridge) = &nic.bridge {
                doc["bridge"] = json!(bridge);
            }
            if let Some(tag) = nic.tag {
                doc["vlan"] = json!(tag);
            }
            if let Some(mac) = &nic.mac {
                doc["mac"] = json!(mac.to_uppercase());
            }
            if nic.firewall {
                doc["firewall"] = json!(true);
            }
            doc
        })
        .filter(|nic| {
            nic["model"]
                .as_str()
                .is_some_and(|m| NET_MODELS.contains(&m))
        })
        .collect();
    if !nics.is_empty() {
        spec.insert("network".into(), Value::Array(nics));
    }
    let mut ci = Map::new();
    if let Some(user) = cfg.get("ciuser") {
        ci.insert("user".into(), json!(user));
    }
    if cfg.get("cipassword").is_some() {
        let secret = format!("{name}-cloudinit-password");
        to_fill.push(format!(
            "store the cloud-init password: `ballast secret set {secret}`"
        ));
        ci.insert("password".into(), json!({"secretRef": {"name": secret}}));
    }
    if let Some(keys) = cfg.get("sshkeys") {
        ci.insert("sshKeys".into(), json!(ssh_key_lines(&url_decode(keys))));
    }
    let ips: Vec<Value> = consecutive(cfg, "ipconfig")
        .into_iter()
        .map(|(_, v)| PropertyString::parse(v))
        .map_while(|p| {
            let ip = p.get("ip")?;
            let mut doc = json!({"ip": ip});
            if let Some(gw) = p.get("gw") {
                doc["gateway"] = json!(gw);
            }
            Some(doc)
        })
        .collect();
    if !ips.is_empty() {
        ci.insert("ipConfig".into(), Value::Array(ips));
    }
    let mut dns = Map::new();
    if let Some(servers) = cfg.get("nameserver") {
        dns.insert(
            "servers".into(),
            json!(servers.split_whitespace().collect::<Vec<_>>()),
        );
    }
    if let Some(domain) = cfg.get("searchdomain") {
        dns.insert("domain".into(), json!(domain));
    }
    if !dns.is_empty() {
        ci.insert("dns".into(), Value::Object(dns));
    }
    let has_drive = cfg
        .values
        .iter()
        .any(|(k, v)| parse_disk_interface(k).is_ok() && Drive::parse(k, v).is_cloudinit());
    if !ci.is_empty() && has_drive {
        spec.insert("cloudInit".into(), Value::Object(ci));
    }
    let template = flag(cfg.get("template"), false) || row.template;
    power(&mut spec, row, cfg, template);
    if template {
        spec.insert("template".into(), json!(true));
    }
    Import {
        document: document("ProxmoxVm", &name, spec),
        to_fill,
    }
}

/// The ProxmoxContainer manifest for an LXC guest. `os_template` is the template it was made
/// from, when ballast recorded it; otherwise a placeholder to fill in (it is used only at
/// create, so it changes nothing for the container that exists).
pub fn import_container(
    cluster: &str,
    row: &GuestResource,
    cfg: &ObservedConfig,
    os_template: Option<&str>,
) -> Import {
    let mut to_fill = Vec::new();
    let host = cfg.get("hostname").or(row.name.as_deref());
    let name = resource_name(host, "ct", row.vmid);
    let mut spec = Map::new();
    common(&mut spec, cluster, row, cfg);
    if let Some(host) = host {
        spec.insert("hostname".into(), json!(host));
    }
    let template = match os_template {
        Some(t) => t.to_string(),
        None => {
            let placeholder = format!(
                "local:vztmpl/{}-unknown.tar.zst",
                cfg.get("ostype").unwrap_or("os")
            );
            to_fill.push(format!(
                "ostemplate: the template vmid {} was made from is not known; {placeholder} stands in (it is used only to create the container again)",
                row.vmid
            ));
            placeholder
        }
    };
    spec.insert("ostemplate".into(), json!(template));
    if let Some(cores) = number(cfg.get("cores")) {
        spec.insert("cores".into(), json!(cores));
    }
    for key in ["memory", "swap"] {
        if let Some(mib) = number(cfg.get(key)) {
            spec.insert(key.into(), json!(mib_text(mib)));
        }
    }
    let volume = |m: &Mount| -> Option<Value> {
        let bytes = m.size_bytes.filter(|b| b.is_multiple_of(MIB) && *b > 0)?;
        let mut doc = json!({"size": format_size(bytes)});
        if let Some(storage) = &m.storage {
            doc["storage"] = json!(storage);
        }
        Some(doc)
    };
    if let Some(rootfs) = cfg.get("rootfs").map(|v| Mount::parse("rootfs", v))
        && let Some(doc) = volume(&rootfs)
    {
        spec.insert("rootfs".into(), doc);
    }
    let mounts: Vec<Value> = consecutive(cfg, "mp")
        .into_iter()
        .map(|(key, v)| Mount::parse(&key, v))
        .map_while(|m| {
            let mut doc = volume(&m)?;
            doc["path"] = json!(m.path.clone()?);
            Some(doc)
        })
        .collect();
    if !mounts.is_empty() {
        spec.insert("mountPoints".into(), Value::Array(mounts));
    }
    let nics: Vec<Value> = consecutive(cfg, "net")
        .into_iter()
        .map(|(key, value)| {
            let nic = LxcNet::parse(&key, value);
            let mut doc = json!({});
            for (field, v) in [
                ("name", &nic.name),
                ("bridge", &nic.bridge),
                ("ip", &nic.ip),
                ("gateway", &nic.gw),
            ] {
                if let Some(v) = v {
                    doc[field] = json!(v);
                }
            }
            if let Some(tag) = nic.tag {
                doc["vlan"] = json!(tag);
            }
            if let Some(mac) = &nic.hwaddr {
                doc["mac"] = json!(mac.to_uppercase());
            }
            if nic.firewall {
                doc["firewall"] = json!(true);
            }
            doc
        })
        .collect();
    if !nics.is_empty() {
        spec.insert("network".into(), Value::Array(nics));
    }
    if !flag(cfg.get("unprivileged"), false) {
        spec.insert("unprivileged".into(), json!(false));
    }
    let features = PropertyString::parse(cfg.get("features").unwrap_or(""));
    let mut f = Map::new();
    for key in ["nesting", "keyctl", "fuse"] {
        if features.get_bool(key).unwrap_or(false) {
            f.insert(key.into(), json!(true));
        }
    }
    if !f.is_empty() {
        spec.insert("features".into(), Value::Object(f));
    }
    power(&mut spec, row, cfg, false);
    Import {
        document: document("ProxmoxContainer", &name, spec),
        to_fill,
    }
}
