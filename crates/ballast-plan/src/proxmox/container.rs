//! A `ProxmoxContainer` against an LXC config: which managed values differ (and when each takes
//! effect), which volumes grow, what is refused; and the parameters of a fresh create.

use std::collections::BTreeMap;

use ballast_model::proxmox::values::{format_size, parse_disk_size, parse_mib};
use ballast_model::proxmox::{CtNic, ProxmoxContainerSpec};
use ballast_proxmox::{LxcNet, Mount, PropertyString};
use serde_json::{Value, json};

use super::compare::{Apply, Compared, bool_text, flag, number, remove, tag_set};
use super::steps::SecretParam;
use super::vm::{gib, mib_text};
use super::{DesiredContainer, RecordedGuest};

pub(crate) const DEFAULT_MEMORY_MIB: u64 = 512;
pub(crate) const DEFAULT_SWAP_MIB: u64 = 512;

fn storage_of(d: &DesiredContainer<'_>, own: Option<&str>) -> String {
    own.map(str::to_string)
        .or_else(|| d.defaults.storage.clone())
        .unwrap_or_default()
}

fn nic_name(i: usize, nic: &CtNic) -> String {
    nic.name
        .as_ref()
        .map_or_else(|| format!("eth{i}"), |n| n.value.clone())
}

fn nic_ip(nic: &CtNic) -> &str {
    nic.ip.as_ref().map_or("dhcp", |ip| ip.value.as_str())
}

fn bridge_of(d: &DesiredContainer<'_>, nic: &CtNic) -> String {
    nic.bridge
        .as_ref()
        .map(|b| b.value.clone())
        .or_else(|| d.defaults.bridge.clone())
        .unwrap_or_default()
}

/// A new interface: `name=eth0,bridge=vmbr0,ip=dhcp[,gw=…][,tag=…][,firewall=1][,hwaddr=…]`.
fn new_nic_value(d: &DesiredContainer<'_>, i: usize, nic: &CtNic) -> String {
    let mut props = PropertyString::default();
    props.set("name", nic_name(i, nic));
    props.set("bridge", bridge_of(d, nic));
    props.set("ip", nic_ip(nic));
    if let Some(gw) = &nic.gateway {
        props.set("gw", gw.value.clone());
    }
    if let Some(vlan) = &nic.vlan {
        props.set("tag", vlan.value.to_string());
    }
    if nic.firewall {
        props.set("firewall", "1");
    }
    if let Some(mac) = &nic.mac {
        props.set("hwaddr", mac.value.to_uppercase());
    }
    props.to_string()
}

fn features_value(props: &PropertyString, nesting: bool, keyctl: bool, fuse: bool) -> String {
    let mut props = props.clone();
    for (key, on) in [("fuse", fuse), ("keyctl", keyctl), ("nesting", nesting)] {
        remove(&mut props, key);
        if on {
            props.set(key, "1");
        }
    }
    props.pairs.sort();
    props.to_string()
}

/// The parameters of a fresh container: config keys (volumes as `storage:GiB`), the secrets
/// (root's password), and the SSH keys a create takes.
pub(crate) fn create_params(
    d: &DesiredContainer<'_>,
) -> (BTreeMap<String, String>, Vec<SecretParam>, Option<String>) {
    let spec = d.spec;
    let mut p = BTreeMap::new();
    p.insert("hostname".to_string(), spec.host_name(d.name).to_string());
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
    if let Some(cores) = &spec.cores {
        p.insert("cores".into(), cores.value.to_string());
    }
    if let Some(Ok(mib)) = spec.memory.as_ref().map(|m| parse_mib(&m.value, 0)) {
        p.insert("memory".into(), mib.to_string());
    }
    if let Some(Ok(mib)) = spec.swap.as_ref().map(|m| parse_mib(&m.value, 0)) {
        p.insert("swap".into(), mib.to_string());
    }
    if let Some(rootfs) = &spec.rootfs
        && let Ok(bytes) = parse_disk_size(&rootfs.size.value)
    {
        let storage = storage_of(d, rootfs.storage.as_ref().map(|s| s.value.as_str()));
        p.insert("rootfs".into(), format!("{storage}:{}", gib(bytes)));
    }
    for (i, mp) in spec.mount_points.iter().enumerate() {
        let Ok(bytes) = parse_disk_size(&mp.size.value) else {
            continue;
        };
        let storage = storage_of(d, mp.storage.as_ref().map(|s| s.value.as_str()));
        p.insert(
            format!("mp{i}"),
            format!("{storage}:{},mp={}", gib(bytes), mp.path.value),
        );
    }
    for (i, nic) in spec.network.iter().enumerate() {
        p.insert(format!("net{i}"), new_nic_value(d, i, nic));
    }
    if let Some(f) = &spec.features
        && (f.nesting || f.keyctl || f.fuse)
    {
        p.insert(
            "features".into(),
            features_value(&PropertyString::default(), f.nesting, f.keyctl, f.fuse),
        );
    }
    let secrets = spec
        .password
        .iter()
        .map(|source| SecretParam {
            key: "password".into(),
            source: source.clone(),
        })
        .collect();
    let keys = (!spec.ssh_keys.is_empty()).then(|| {
        spec.ssh_keys
            .iter()
            .map(|k| k.value.trim())
            .collect::<Vec<_>>()
            .join("\n")
    });
    (p, secrets, keys)
}

/// Compares the spec with a config's values.
pub(crate) fn compare(
    d: &DesiredContainer<'_>,
    cfg: &BTreeMap<String, String>,
    recorded: Option<&RecordedGuest>,
) -> Compared {
    let spec: &ProxmoxContainerSpec = d.spec;
    let get = |k: &str| cfg.get(k).map(String::as_str);
    let mut c = Compared::default();

    let hostname = spec.host_name(d.name);
    if get("hostname") != Some(hostname) {
        c.change(
            "hostname",
            "hostname",
            get("hostname").map(|n| json!(n)),
            Some(json!(hostname)),
            Some(hostname.to_string()),
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
    if let Some(cores) = spec
        .cores
        .as_ref()
        .and_then(|c| u64::try_from(c.value).ok())
    {
        let have = number(get("cores"));
        if have != Some(cores) {
            c.change(
                "cores",
                "cores",
                have.map(|h| json!(h)),
                Some(json!(cores)),
                Some(cores.to_string()),
                Apply::Live,
            );
        }
    }
    for (path, key, want, default) in [
        ("memory", "memory", &spec.memory, DEFAULT_MEMORY_MIB),
        ("swap", "swap", &spec.swap, DEFAULT_SWAP_MIB),
    ] {
        let Some(Ok(want)) = want.as_ref().map(|w| parse_mib(&w.value, 0)) else {
            continue;
        };
        let have = number(get(key)).unwrap_or(default);
        if have != want {
            c.change(
                path,
                key,
                Some(json!(mib_text(have))),
                Some(json!(mib_text(want))),
                Some(want.to_string()),
                Apply::Live,
            );
        }
    }
    if let Some(rootfs) = &spec.rootfs
        && let Ok(want) = parse_disk_size(&rootfs.size.value)
    {
        match get("rootfs").map(|v| Mount::parse("rootfs", v)) {
            Some(have) => volume(
                &mut c,
                "rootfs",
                "rootfs",
                &have,
                want,
                rootfs.storage.as_ref().map(|s| s.value.as_str()),
                &rootfs.size.value,
            ),
            None => c
                .refusals
                .push("rootfs: the container has no root filesystem in its config".into()),
        }
    }
    for (i, mp) in spec.mount_points.iter().enumerate() {
        let key = format!("mp{i}");
        let path = format!("mountPoints[{i}]");
        let Ok(want) = parse_disk_size(&mp.size.value) else {
            continue;
        };
        let Some(value) = get(&key) else {
            let storage = storage_of(d, mp.storage.as_ref().map(|s| s.value.as_str()));
            c.change(
                path,
                &key,
                None,
                Some(json!({"storage": storage, "size": format_size(want), "path": mp.path.value})),
                Some(format!("{storage}:{},mp={}", gib(want), mp.path.value)),
                Apply::Live,
            );
            continue;
        };
        let have = Mount::parse(&key, value);
        volume(
            &mut c,
            &path,
            &key,
            &have,
            want,
            mp.storage.as_ref().map(|s| s.value.as_str()),
            &mp.size.value,
        );
        if have.path.as_deref() != Some(mp.path.value.as_str()) {
            let mut props = have.options.clone();
            props.set("mp", mp.path.value.clone());
            c.change(
                format!("{path}.path"),
                &key,
                have.path.as_ref().map(|p| json!(p)),
                Some(json!(mp.path.value)),
                Some(props.to_string()),
                Apply::NextBoot,
            );
        }
    }
    compare_nics(d, cfg, &mut c);
    if let Some(f) = &spec.features {
        let props = PropertyString::parse(get("features").unwrap_or(""));
        let have = (
            props.get_bool("nesting").unwrap_or(false),
            props.get_bool("keyctl").unwrap_or(false),
            props.get_bool("fuse").unwrap_or(false),
        );
        if have != (f.nesting, f.keyctl, f.fuse) {
            let value = features_value(&props, f.nesting, f.keyctl, f.fuse);
            let doc =
                |(n, k, fu): (bool, bool, bool)| json!({"nesting": n, "keyctl": k, "fuse": fu});
            let write = (!value.is_empty()).then_some(value);
            c.change(
                "features",
                "features",
                Some(doc(have)),
                Some(doc((f.nesting, f.keyctl, f.fuse))),
                write,
                Apply::NextBoot,
            );
        }
    }
    if let (Some(recorded), Some(want)) = (
        recorded.and_then(|r| r.os_template.as_deref()),
        spec.ostemplate.as_ref(),
    ) && recorded != want.value
    {
        c.notes.push(format!(
            "ostemplate is now {} (it was created from {recorded}); a template is used only at create, so the container keeps its root filesystem",
            want.value
        ));
    }
    if let (Some(source), Some(last)) = (
        &spec.password,
        recorded.and_then(|r| r.secret_versions.get("password")),
    ) && super::compare::secret_token(source, d.secret_versions) != *last
    {
        c.notes.push(
            "password changed; root's password is set only when the container is created, so it is not changed".into(),
        );
    }
    c
}

/// A volume (root filesystem or mount point) against the size and storage wanted.
fn volume(
    c: &mut Compared,
    path: &str,
    key: &str,
    have: &Mount,
    want: u64,
    want_storage: Option<&str>,
    written: &str,
) {
    match have.size_bytes {
        Some(now) if want < now => c.refusals.push(format!(
            "{path}: {key} is {} in Proxmox; the manifest's {written} would shrink it, and ballast never shrinks a volume (set size: {} or more)",
            format_size(now),
            format_size(now)
        )),
        Some(now) if want > now => {
            c.resizes.push((key.to_string(), Some(now), want));
            c.shown_change(format!("{path}.size"), key, Some(json!(format_size(now))), Some(json!(format_size(want))), Apply::Live);
        }
        _ => {}
    }
    if let (Some(want), Some(now)) = (want_storage, &have.storage)
        && want != now
    {
        c.notes.push(format!(
            "{path}: {key} is on {now}, the manifest says {want}; ballast does not move volumes (`pct move-volume` does)"
        ));
    }
}

fn compare_nics(d: &DesiredContainer<'_>, cfg: &BTreeMap<String, String>, c: &mut Compared) {
    for (i, nic) in d.spec.network.iter().enumerate() {
        let key = format!("net{i}");
        let path = format!("network[{i}]");
        let name = nic_name(i, nic);
        let bridge = bridge_of(d, nic);
        let ip = nic_ip(nic).to_string();
        let gw = nic.gateway.as_ref().map(|g| g.value.clone());
        let vlan = nic.vlan.as_ref().map(|v| v.value);
        let want_mac = nic.mac.as_ref().map(|m| m.value.to_uppercase());
        let Some(value) = cfg.get(&key) else {
            let mut doc = json!({"name": name, "bridge": bridge, "ip": ip});
            if let Some(gw) = &gw {
                doc["gateway"] = json!(gw);
            }
            if let Some(vlan) = vlan {
                doc["vlan"] = json!(vlan);
            }
            c.change(
                path,
                &key,
                None,
                Some(doc),
                Some(new_nic_value(d, i, nic)),
                Apply::Live,
            );
            continue;
        };
        let have = LxcNet::parse(&key, value);
        let have_mac = have.hwaddr.as_ref().map(|m| m.to_uppercase());
        let fields: [(&str, Option<Value>, Option<Value>); 7] = [
            (
                "name",
                have.name.as_ref().map(|v| json!(v)),
                Some(json!(name)),
            ),
            (
                "bridge",
                have.bridge.as_ref().map(|v| json!(v)),
                Some(json!(bridge)),
            ),
            ("ip", have.ip.as_ref().map(|v| json!(v)), Some(json!(ip))),
            (
                "gateway",
                have.gw.as_ref().map(|v| json!(v)),
                gw.as_ref().map(|v| json!(v)),
            ),
            ("vlan", have.tag.map(|v| json!(v)), vlan.map(|v| json!(v))),
            (
                "firewall",
                Some(json!(have.firewall)),
                Some(json!(nic.firewall)),
            ),
            (
                "mac",
                have_mac.as_ref().map(|m| json!(m)),
                want_mac
                    .as_ref()
                    .map(|m| json!(m))
                    .or_else(|| have_mac.as_ref().map(|m| json!(m))),
            ),
        ];
        let mut differs = false;
        for (field, from, to) in fields {
            if from != to {
                differs = true;
                // Proxmox changes a running container's interface at once (hot-plug), but a
                // new name or MAC means a new interface inside it.
                let apply = if field == "name" || field == "mac" {
                    Apply::NextBoot
                } else {
                    Apply::Live
                };
                c.shown_change(format!("{path}.{field}"), &key, from, to, apply);
            }
        }
        if differs {
            let mut props = have.options.clone();
            props.set("name", name);
            props.set("bridge", bridge);
            props.set("ip", ip);
            remove(&mut props, "gw");
            if let Some(gw) = gw {
                props.set("gw", gw);
            }
            remove(&mut props, "tag");
            if let Some(vlan) = vlan {
                props.set("tag", vlan.to_string());
            }
            remove(&mut props, "firewall");
            if nic.firewall {
                props.set("firewall", "1");
            }
            if let Some(mac) = want_mac {
                props.set("hwaddr", mac);
            }
            c.set.insert(key.clone(), props.to_string());
        }
    }
}

/// The view of a clone source's config a new clone starts from: new MACs, its own host name.
pub(crate) fn as_clone_of(
    source: &BTreeMap<String, String>,
    hostname: &str,
) -> BTreeMap<String, String> {
    let mut values = source.clone();
    values.remove("template");
    values.insert("hostname".into(), hostname.to_string());
    for (key, value) in values.iter_mut() {
        if key.starts_with("net") && key[3..].parse::<u32>().is_ok() {
            let mut props = PropertyString::parse(value);
            remove(&mut props, "hwaddr");
            *value = props.to_string();
        }
    }
    values
}
