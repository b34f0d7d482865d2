//! A `ProxmoxVm` against a QEMU config: which managed values differ (and when each takes
//! effect), which disks grow, what is refused; and the parameters of a fresh create.

use std::collections::BTreeMap;

use ballast_model::proxmox::values::{format_size, parse_disk_size, parse_mib};
use ballast_model::proxmox::{ProxmoxVmSpec, VmNic};
use ballast_proxmox::{Drive, PropertyString, QemuNet};
use serde_json::{Value, json};

use super::compare::{Apply, Compared, bool_text, flag, number, remove, tag_set};
use super::steps::SecretParam;
use super::{DesiredVm, RecordedGuest};

/// Proxmox's defaults for what the manifest may leave out (PVE 8 and 9).
pub(crate) const DEFAULT_CORES: u64 = 1;
pub(crate) const DEFAULT_SOCKETS: u64 = 1;
pub(crate) const DEFAULT_CPU_TYPE: &str = "x86-64-v2-AES";
pub(crate) const DEFAULT_MEMORY_MIB: u64 = 512;
pub(crate) const DEFAULT_NIC_MODEL: &str = "virtio";
/// Where a cloud-init drive goes, in order of preference.
pub(crate) const CLOUDINIT_SLOTS: [&str; 4] = ["ide2", "ide0", "ide1", "ide3"];

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// A size in GiB as a create request takes it: `32`, or `1.5` for 1536MiB.
pub(crate) fn gib(bytes: u64) -> String {
    if bytes.is_multiple_of(GIB) {
        (bytes / GIB).to_string()
    } else {
        // A whole number of MiB over 1024 is exact in binary and printed exactly.
        ((bytes / MIB) as f64 / 1024.0).to_string()
    }
}

pub(crate) fn mib_text(mib: u64) -> String {
    if mib == 0 {
        "0MiB".to_string()
    } else {
        format_size(mib * MIB)
    }
}

fn memory_mib(value: Option<&str>) -> Option<u64> {
    let props = PropertyString::parse(value?);
    number(props.first.as_deref().or(props.get("current")))
}

/// The bridge a card is on: its own, or the cluster's default.
fn bridge_of(d: &DesiredVm<'_>, nic: &VmNic) -> String {
    nic.bridge
        .as_ref()
        .map(|b| b.value.clone())
        .or_else(|| d.defaults.bridge.clone())
        .unwrap_or_default()
}

fn nic_doc(
    model: &str,
    bridge: &str,
    vlan: Option<i64>,
    mac: Option<&str>,
    firewall: bool,
) -> Value {
    let mut doc = json!({"model": model, "bridge": bridge});
    if let Some(vlan) = vlan {
        doc["vlan"] = json!(vlan);
    }
    if let Some(mac) = mac {
        doc["mac"] = json!(mac);
    }
    if firewall {
        doc["firewall"] = json!(true);
    }
    doc
}

/// The value of a new card: `virtio,bridge=vmbr0,tag=20,firewall=1` (`virtio=MAC,…` with a
/// fixed MAC).
fn new_nic_value(d: &DesiredVm<'_>, nic: &VmNic) -> String {
    let model = nic
        .model
        .as_ref()
        .map_or(DEFAULT_NIC_MODEL, |m| m.value.as_str());
    let mut props = PropertyString::default();
    match &nic.mac {
        Some(mac) => props
            .pairs
            .push((model.to_string(), mac.value.to_uppercase())),
        None => props.first = Some(model.to_string()),
    }
    props.set("bridge", bridge_of(d, nic));
    if let Some(vlan) = &nic.vlan {
        props.set("tag", vlan.value.to_string());
    }
    if nic.firewall {
        props.set("firewall", "1");
    }
    props.to_string()
}

fn disk_value(storage: &str, bytes: u64, discard: bool, ssd: bool) -> String {
    let mut value = format!("{storage}:{}", gib(bytes));
    if discard {
        value.push_str(",discard=on");
    }
    if ssd {
        value.push_str(",ssd=1");
    }
    value
}

pub(crate) fn ipconfig_value(ip: &str, gateway: Option<&str>) -> String {
    match gateway {
        Some(gw) => format!("ip={ip},gw={gw}"),
        None => format!("ip={ip}"),
    }
}

fn storage_of(d: &DesiredVm<'_>, own: Option<&str>) -> String {
    own.map(str::to_string)
        .or_else(|| d.defaults.storage.clone())
        .unwrap_or_default()
}

/// The parameters of a fresh VM (no clone): every managed value, disks as `storage:GiB`.
pub(crate) fn create_params(d: &DesiredVm<'_>) -> (BTreeMap<String, String>, Vec<SecretParam>) {
    let spec = d.spec;
    let mut p = BTreeMap::new();
    p.insert("name".to_string(), spec.guest_name(d.name).to_string());
    if let Some(text) = spec.description.as_ref().filter(|t| !t.is_empty()) {
        p.insert("description".into(), text.clone());
    }
    if let Some(tags) = &spec.tags {
        let set = tag_set(tags.iter().map(|t| t.value.as_str()));
        if !set.is_empty() {
            p.insert("tags".into(), set.join(";"));
        }
    }
    if spec.on_boot {
        p.insert("onboot".into(), "1".into());
    }
    if spec.protection {
        p.insert("protection".into(), "1".into());
    }
    if let Some(cpu) = &spec.cpu {
        if let Some(cores) = &cpu.cores {
            p.insert("cores".into(), cores.value.to_string());
        }
        if let Some(sockets) = &cpu.sockets {
            p.insert("sockets".into(), sockets.value.to_string());
        }
        if let Some(cpu_type) = &cpu.cpu_type {
            p.insert("cpu".into(), cpu_type.value.clone());
        }
    }
    if let Some(memory) = &spec.memory {
        if let Ok(mib) = parse_mib(&memory.dedicated.value, 0) {
            p.insert("memory".into(), mib.to_string());
        }
        if let Some(Ok(mib)) = memory.floating.as_ref().map(|f| parse_mib(&f.value, 0)) {
            p.insert("balloon".into(), mib.to_string());
        }
    }
    if spec
        .disks
        .iter()
        .any(|disk| disk.interface.value.starts_with("scsi"))
    {
        p.insert("scsihw".into(), "virtio-scsi-single".into());
    }
    for disk in &spec.disks {
        let Ok(bytes) = parse_disk_size(&disk.size.value) else {
            continue;
        };
        let storage = storage_of(d, disk.storage.as_ref().map(|s| s.value.as_str()));
        p.insert(
            disk.interface.value.clone(),
            disk_value(&storage, bytes, disk.discard, disk.ssd),
        );
    }
    for (i, nic) in spec.network.iter().enumerate() {
        p.insert(format!("net{i}"), new_nic_value(d, nic));
    }
    let mut secrets = Vec::new();
    if spec.cloud_init.is_some() {
        let slot = CLOUDINIT_SLOTS
            .iter()
            .find(|s| !p.contains_key(**s))
            .copied()
            .unwrap_or("ide2");
        p.insert(slot.into(), format!("{}:cloudinit", storage_of(d, None)));
        super::cloud_init::write(d, &mut p, &mut secrets);
    }
    (p, secrets)
}

/// Compares the spec with a config's values. `recorded` gives what secret parameters were last
/// set from.
pub(crate) fn compare(
    d: &DesiredVm<'_>,
    cfg: &BTreeMap<String, String>,
    recorded: Option<&RecordedGuest>,
) -> Compared {
    let spec: &ProxmoxVmSpec = d.spec;
    let get = |k: &str| cfg.get(k).map(String::as_str);
    let mut c = Compared::default();

    let name = spec.guest_name(d.name);
    if get("name") != Some(name) {
        c.change(
            "name",
            "name",
            get("name").map(|n| json!(n)),
            Some(json!(name)),
            Some(name.to_string()),
            Apply::Live,
        );
    }
    if let Some(text) = &spec.description {
        let now = get("description").unwrap_or("");
        if now.trim_end() != text.trim_end() {
            let write = (!text.is_empty()).then(|| text.clone());
            c.change(
                "description",
                "description",
                Some(json!(now)),
                Some(json!(text)),
                write,
                Apply::Live,
            );
        }
    }
    if let Some(tags) = &spec.tags {
        let want = tag_set(tags.iter().map(|t| t.value.as_str()));
        let have = tag_set(
            get("tags")
                .map(ballast_proxmox::split_tags)
                .unwrap_or_default()
                .iter()
                .map(String::as_str),
        );
        if want != have {
            let write = (!want.is_empty()).then(|| want.join(";"));
            c.change(
                "tags",
                "tags",
                Some(json!(have)),
                Some(json!(want)),
                write,
                Apply::Live,
            );
        }
    }
    for (path, key, want) in [
        ("onBoot", "onboot", spec.on_boot),
        ("protection", "protection", spec.protection),
    ] {
        let have = flag(get(key), false);
        if have != want {
            c.change(
                path,
                key,
                Some(json!(have)),
                Some(json!(want)),
                Some(bool_text(want)),
                Apply::Live,
            );
        }
    }
    if let Some(cpu) = &spec.cpu {
        for (path, key, want, default) in [
            ("cpu.cores", "cores", cpu.cores.as_ref(), DEFAULT_CORES),
            (
                "cpu.sockets",
                "sockets",
                cpu.sockets.as_ref(),
                DEFAULT_SOCKETS,
            ),
        ] {
            let Some(want) = want.and_then(|w| u64::try_from(w.value).ok()) else {
                continue;
            };
            let have = number(get(key)).unwrap_or(default);
            if have != want {
                c.change(
                    path,
                    key,
                    Some(json!(have)),
                    Some(json!(want)),
                    Some(want.to_string()),
                    Apply::NextBoot,
                );
            }
        }
        if let Some(want) = &cpu.cpu_type {
            let mut props = PropertyString::parse(get("cpu").unwrap_or(""));
            let have = props
                .first
                .clone()
                .or_else(|| props.get("cputype").map(str::to_string))
                .unwrap_or_else(|| DEFAULT_CPU_TYPE.to_string());
            if have != want.value {
                // Other options of `cpu` (flags, hidden) are kept.
                remove(&mut props, "cputype");
                props.first = Some(want.value.clone());
                c.change(
                    "cpu.type",
                    "cpu",
                    Some(json!(have)),
                    Some(json!(want.value)),
                    Some(props.to_string()),
                    Apply::NextBoot,
                );
            }
        }
    }
    if let Some(memory) = &spec.memory {
        let have = memory_mib(get("memory")).unwrap_or(DEFAULT_MEMORY_MIB);
        let want = parse_mib(&memory.dedicated.value, 0).unwrap_or(have);
        if have != want {
            c.change(
                "memory.dedicated",
                "memory",
                Some(json!(mib_text(have))),
                Some(json!(mib_text(want))),
                Some(want.to_string()),
                Apply::NextBoot,
            );
        }
        if let Some(floating) = &memory.floating {
            // Without `balloon`, the balloon is on and may take the VM down to its memory.
            let have_min = number(get("balloon")).unwrap_or(have);
            let want_min = parse_mib(&floating.value, 0).unwrap_or(have_min);
            if have_min != want_min {
                // Turning the balloon device on or off needs a boot; a new target does not.
                let apply = if (have_min == 0) != (want_min == 0) {
                    Apply::NextBoot
                } else {
                    Apply::Live
                };
                c.change(
                    "memory.floating",
                    "balloon",
                    Some(json!(mib_text(have_min))),
                    Some(json!(mib_text(want_min))),
                    Some(want_min.to_string()),
                    apply,
                );
            }
        }
    }
    compare_disks(d, cfg, &mut c);
    compare_nics(d, cfg, &mut c);
    super::cloud_init::compare(d, cfg, recorded, &mut c);
    c
}

fn compare_disks(d: &DesiredVm<'_>, cfg: &BTreeMap<String, String>, c: &mut Compared) {
    for (i, disk) in d.spec.disks.iter().enumerate() {
        let key = disk.interface.value.as_str();
        let Ok(want) = parse_disk_size(&disk.size.value) else {
            continue;
        };
        let path = format!("disks[{i}]");
        let Some(value) = cfg.get(key) else {
            let storage = storage_of(d, disk.storage.as_ref().map(|s| s.value.as_str()));
            if storage.is_empty() {
                // Validation asks for one only when the VM is not cloned: the clone's own
                // disks need none, a disk it lacks does.
                c.refusals.push(format!(
                    "{path}: {key} is not on the VM, and there is no storage to make it on (set its `storage`, or the cluster's defaults.storage)"
                ));
                continue;
            }
            // IDE is not hot-pluggable; the other buses are (Proxmox's default `hotplug`).
            let apply = if key.starts_with("ide") {
                Apply::NextBoot
            } else {
                Apply::Live
            };
            let mut doc = json!({"interface": key, "storage": storage, "size": format_size(want)});
            if disk.discard {
                doc["discard"] = json!(true);
            }
            if disk.ssd {
                doc["ssd"] = json!(true);
            }
            c.change(
                path,
                key,
                None,
                Some(doc),
                Some(disk_value(&storage, want, disk.discard, disk.ssd)),
                apply,
            );
            continue;
        };
        let drive = Drive::parse(key, value);
        if drive.cdrom {
            c.refusals.push(format!(
                "{path}: {key} is a CD-ROM drive ({}), not a disk; use another interface",
                drive.volume
            ));
            continue;
        }
        match drive.size_bytes {
            Some(have) if want < have => c.refusals.push(format!(
                "{path}: {key} is {} in Proxmox; the manifest's {} would shrink it, and ballast never shrinks a disk (set size: {} or more)",
                format_size(have),
                disk.size.value,
                format_size(have)
            )),
            Some(have) if want > have => {
                c.resizes.push((key.to_string(), Some(have), want));
                c.shown_change(
                    format!("{path}.size"),
                    key,
                    Some(json!(format_size(have))),
                    Some(json!(format_size(want))),
                    Apply::Live,
                );
            }
            _ => {}
        }
        if let (Some(want_storage), Some(have_storage)) = (&disk.storage, &drive.storage)
            && want_storage.value != *have_storage
        {
            c.notes.push(format!(
                "{path}: {key} is on {have_storage}, the manifest says {}; ballast does not move disks (`qm disk move` does)",
                want_storage.value
            ));
        }
        let have_discard = drive.options.get("discard") == Some("on");
        let have_ssd = drive.options.get_bool("ssd").unwrap_or(false);
        if have_discard != disk.discard || have_ssd != disk.ssd {
            let mut props = drive.options.clone();
            remove(&mut props, "discard");
            remove(&mut props, "ssd");
            if disk.discard {
                props.set("discard", "on");
            }
            if disk.ssd {
                props.set("ssd", "1");
            }
            c.set.insert(key.to_string(), props.to_string());
            for (field, have, want) in [
                ("discard", have_discard, disk.discard),
                ("ssd", have_ssd, disk.ssd),
            ] {
                if have != want {
                    c.shown_change(
                        format!("{path}.{field}"),
                        key,
                        Some(json!(have)),
                        Some(json!(want)),
                        Apply::NextBoot,
                    );
                }
            }
        }
    }
}

fn compare_nics(d: &DesiredVm<'_>, cfg: &BTreeMap<String, String>, c: &mut Compared) {
    for (i, nic) in d.spec.network.iter().enumerate() {
        let key = format!("net{i}");
        let path = format!("network[{i}]");
        let model = nic
            .model
            .as_ref()
            .map_or(DEFAULT_NIC_MODEL, |m| m.value.as_str());
        let bridge = bridge_of(d, nic);
        let vlan = nic.vlan.as_ref().map(|v| v.value);
        let want_mac = nic.mac.as_ref().map(|m| m.value.to_uppercase());
        let Some(value) = cfg.get(&key) else {
            let doc = nic_doc(model, &bridge, vlan, want_mac.as_deref(), nic.firewall);
            c.change(
                path,
                &key,
                None,
                Some(doc),
                Some(new_nic_value(d, nic)),
                Apply::Live,
            );
            continue;
        };
        let have = QemuNet::parse(&key, value);
        let have_mac = have.mac.as_ref().map(|m| m.to_uppercase());
        let mut differs = false;
        let fields: [(&str, Option<Value>, Option<Value>, bool); 5] = [
            (
                "model",
                have.model.as_ref().map(|m| json!(m)),
                Some(json!(model)),
                true,
            ),
            (
                "bridge",
                have.bridge.as_ref().map(|b| json!(b)),
                Some(json!(bridge)),
                false,
            ),
            (
                "vlan",
                have.tag.map(|t| json!(t)),
                vlan.map(|v| json!(v)),
                false,
            ),
            (
                "firewall",
                Some(json!(have.firewall)),
                Some(json!(nic.firewall)),
                false,
            ),
            (
                "mac",
                have_mac.as_ref().map(|m| json!(m)),
                // Without a MAC in the manifest, the one Proxmox picked is kept.
                want_mac
                    .as_ref()
                    .map(|m| json!(m))
                    .or_else(|| have_mac.as_ref().map(|m| json!(m))),
                true,
            ),
        ];
        for (field, from, to, needs_boot) in fields {
            if from != to {
                differs = true;
                let apply = if needs_boot {
                    Apply::NextBoot
                } else {
                    Apply::Live
                };
                c.shown_change(format!("{path}.{field}"), &key, from, to, apply);
            }
        }
        if differs {
            let mut props = have.options.clone();
            let models: Vec<String> = ballast_model::proxmox::values::NET_MODELS
                .iter()
                .map(|m| m.to_string())
                .collect();
            props
                .pairs
                .retain(|(k, _)| !models.contains(k) && k != "model" && k != "macaddr");
            if props
                .first
                .as_deref()
                .is_some_and(|f| models.iter().any(|m| m == f))
            {
                props.first = None;
            }
            let mut rebuilt = PropertyString::default();
            match want_mac.or(have_mac) {
                Some(mac) => rebuilt.pairs.push((model.to_string(), mac)),
                None => rebuilt.first = Some(model.to_string()),
            }
            rebuilt.pairs.extend(props.pairs);
            rebuilt.set("bridge", bridge);
            remove(&mut rebuilt, "tag");
            if let Some(vlan) = vlan {
                rebuilt.set("tag", vlan.to_string());
            }
            remove(&mut rebuilt, "firewall");
            if nic.firewall {
                rebuilt.set("firewall", "1");
            }
            c.set.insert(key.clone(), rebuilt.to_string());
        }
    }
}

/// The view of a clone source's config that a new clone will start from: its MACs are not
/// copied (Proxmox gives a clone new ones), nor its name and template flag.
pub(crate) fn as_clone_of(
    source: &BTreeMap<String, String>,
    name: &str,
) -> BTreeMap<String, String> {
    let mut values = source.clone();
    values.remove("template");
    values.insert("name".into(), name.to_string());
    for (key, value) in values.iter_mut() {
        if key.starts_with("net") && key[3..].parse::<u32>().is_ok() {
            let mut props = PropertyString::parse(value);
            if let Some(pos) = props
                .pairs
                .iter()
                .position(|(k, _)| ballast_model::proxmox::values::NET_MODELS.contains(&k.as_str()))
            {
                let (model, _) = props.pairs.remove(pos);
                let mut rebuilt = PropertyString {
                    first: Some(model),
                    pairs: Vec::new(),
                };
                rebuilt.pairs.extend(props.pairs);
                props = rebuilt;
            }
            remove(&mut props, "macaddr");
            *value = props.to_string();
        }
    }
    values
}
