//! The App fields that carry docker compose's meaning (`hostname`, `expose`, `capAdd`,
//! `networkMode`, `tmpfs`, `ulimits`, `sysctls`, `logging`, `devices`, `gpus`, …): their types
//! and the parsers that read their compact strings. As the other parsers of [`crate::app`], each
//! is shared by validation (which reports its message at the value's place) and by the Docker
//! controller (which builds the container from the parsed form), and each accepts what docker
//! compose accepts for the same key, in the form Docker's engine takes it.

use std::fmt;
use std::net::IpAddr;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

/// Linux capabilities Docker knows, without the `CAP_` prefix.
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// Checks a `capAdd`/`capDrop` entry as Docker reads one: a capability with or without `CAP_`,
/// in any case, or `ALL`.
pub fn check_capability(text: &str) -> Result<(), String> {
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name == "ALL" || CAPABILITIES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a Linux capability; expected a name such as NET_ADMIN, SYS_TIME or CAP_CHOWN (with or without CAP_), or ALL"
        ))
    }
}

/// Why a host name (or domain name) is not one Docker and the kernel accept, if it is not:
/// labels of letters, digits and `-` separated by dots, at most 63 characters each and 253 in
/// all (the kernel keeps at most 64 of a host name).
pub fn hostname_problem(text: &str, max: usize) -> Option<String> {
    let rule = format!(
        "expected letters, digits, `-` and `.` (labels of at most 63 characters, {max} in all)"
    );
    if text.is_empty() {
        return Some(format!("the name is empty; {rule}"));
    }
    if text.len() > max {
        return Some(format!(
            "`{text}` is {} characters long; {rule}",
            text.len()
        ));
    }
    let bad_label = text.split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    bad_label.then(|| format!("`{text}` is not a valid name; {rule}"))
}

/// Parses an `expose` entry (`80`, `53/udp`, `8000-8010`, `8000-8010/tcp`) into the engine's
/// `PORT/PROTO` keys, one per port of a range.
pub fn parse_expose(text: &str) -> Result<Vec<String>, String> {
    const FORM: &str = "expected a port, `PORT/tcp|udp|sctp` or a range `START-END[/PROTO]`";
    let (ports, proto) = match text.rsplit_once('/') {
        Some((ports, proto @ ("tcp" | "udp" | "sctp"))) => (ports, proto),
        Some((_, other)) => {
            return Err(format!(
                "unknown protocol `{other}` in `{text}`; expected tcp, udp or sctp"
            ));
        }
        None => (text, "tcp"),
    };
    let number = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!(
                "port {n} in `{text}` is out of range; expected 1 to 65535"
            )),
            Err(_) => Err(format!("`{text}`: {FORM}")),
        }
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let p = number(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "the range `{ports}` in `{text}` ends before it starts"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// The engine's `ExposedPorts` key of an `expose` entry, as compose sends it: the entry with
/// its protocol (`80/tcp`, `7000-7001/tcp`); a range stays one key, as compose leaves it.
pub fn expose_key(text: &str) -> Result<String, String> {
    parse_expose(text)?;
    Ok(if text.contains('/') {
        text.to_string()
    } else {
        format!("{text}/tcp")
    })
}

/// A capability as compose sends it to the engine: upper case with `CAP_` (`ALL` as it is).
pub fn capability_key(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Security options Docker's engine understands (`--security-opt KEY[=VALUE]`).
const SECURITY_OPTS: &[&str] = &[
    "label",
    "apparmor",
    "seccomp",
    "no-new-privileges",
    "systempaths",
    "writable-cgroups",
];

/// Checks a `securityOpt` entry: `no-new-privileges[:true|false]`, `label=…`/`label:…`,
/// `apparmor=PROFILE`, `seccomp=unconfined`, `systempaths=unconfined`,
/// `writable-cgroups=true|false`. A seccomp profile file is a path on the engine's machine for
/// compose's CLI and not for the engine, so it is refused with what to do instead.
pub fn check_security_opt(text: &str) -> Result<(), String> {
    let (key, value) = match text.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (text, None),
    };
    if !SECURITY_OPTS.contains(&key) {
        return Err(format!(
            "`{text}` is not a security option; expected one of {} (as KEY=VALUE)",
            SECURITY_OPTS.join(", ")
        ));
    }
    let boolean = |v: Option<&str>| matches!(v, None | Some("true") | Some("false"));
    let ok = match key {
        "no-new-privileges" => boolean(value),
        "writable-cgroups" => value.is_some() && boolean(value),
        "seccomp" => match value {
            Some("unconfined") => true,
            Some(_) => {
                return Err(format!(
                    "`{text}`: only `seccomp=unconfined` is accepted; a seccomp profile is a file the docker CLI reads, which the engine never sees (leave seccomp out for Docker's default profile)"
                ));
            }
            None => false,
        },
        "systempaths" => value == Some("unconfined"),
        _ => value.is_some_and(|v| !v.is_empty()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}`: a value is missing or not accepted for `{key}`"
        ))
    }
}

/// A parsed `networkMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    None,
    /// Another container's network stack, by container name.
    Container(String),
    /// Another App's network stack (compose's `service:NAME`); its container is named after it.
    App(String),
}

impl NetworkMode {
    pub fn parse(text: &str) -> Result<NetworkMode, String> {
        const FORM: &str = "expected bridge, host, none, container:NAME or app:NAME";
        match text {
            "bridge" => Ok(NetworkMode::Bridge),
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            other => {
                let (kind, name) = other
                    .split_once(':')
                    .ok_or_else(|| format!("unknown network mode `{text}`; {FORM}"))?;
                if name.is_empty() {
                    return Err(format!("`{text}` names no {kind}; {FORM}"));
                }
                match kind {
                    "container" => Ok(NetworkMode::Container(name.to_string())),
                    "app" => Ok(NetworkMode::App(name.to_string())),
                    "service" => Err(format!(
                        "`{text}`: compose's service:NAME is app:NAME here (NAME being the App's name)"
                    )),
                    _ => Err(format!("unknown network mode `{text}`; {FORM}")),
                }
            }
        }
    }

    /// The engine's `NetworkMode` value.
    pub fn docker_value(&self) -> String {
        match self {
            NetworkMode::Bridge => "bridge".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Container(name) | NetworkMode::App(name) => format!("container:{name}"),
        }
    }

    /// Whether the container joins another's network stack (and so has no settings of its
    /// own for names, DNS and ports).
    pub fn is_shared(&self) -> bool {
        matches!(self, NetworkMode::Container(_) | NetworkMode::App(_))
    }
}

/// Parses a `tmpfs` entry, `/path[:options]` (`/run`, `/tmp:size=64m,mode=1777`), into the
/// path and Docker's option text.
pub fn parse_tmpfs(text: &str) -> Result<(String, String), String> {
    let (path, options) = text.split_once(':').unwrap_or((text, ""));
    if !path.starts_with('/') {
        return Err(format!(
            "tmpfs path `{path}` must be absolute, e.g. /run or /tmp:size=64m"
        ));
    }
    for option in options.split(',').filter(|o| !o.is_empty()) {
        let name = option.split_once('=').map_or(option, |(k, _)| k);
        const KNOWN: &[&str] = &[
            "size",
            "mode",
            "uid",
            "gid",
            "nr_inodes",
            "nr_blocks",
            "ro",
            "rw",
            "exec",
            "noexec",
            "suid",
            "nosuid",
            "dev",
            "nodev",
            "sync",
            "async",
            "atime",
            "noatime",
            "diratime",
            "nodiratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "mpol",
            "tmpcopyup",
            "notmpcopyup",
        ];
        if !KNOWN.contains(&name) {
            return Err(format!(
                "unknown tmpfs option `{option}` in `{text}`; expected e.g. size=64m, mode=1777, uid=1000, noexec"
            ));
        }
    }
    Ok((path.to_string(), options.to_string()))
}

/// Checks a `dns` entry: an IP address.
pub fn check_dns_server(text: &str) -> Result<(), String> {
    text.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("`{text}` is not an IP address; DNS servers are given by address"))
}

/// Parses an `extraHosts` entry, `NAME:IP` or `NAME=IP` (compose writes both; `host-gateway`
/// is the engine's gateway), into Docker's `NAME:IP`.
pub fn parse_extra_host(text: &str) -> Result<String, String> {
    const FORM: &str = "expected NAME:IP or NAME=IP, e.g. `nas.lan:10.0.0.5` or `host.docker.internal=host-gateway`";
    let (name, ip) = match text.split_once('=') {
        Some(split) => split,
        None => text
            .split_once(':')
            .ok_or_else(|| format!("`{text}`: {FORM}"))?,
    };
    if let Some(problem) = hostname_problem(name, 253) {
        return Err(format!("{problem} (in `{text}`)"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
        return Err(format!("`{ip}` in `{text}` is not an IP address; {FORM}"));
    }
    Ok(format!("{name}:{ip}"))
}

/// The resource limits Docker's `ulimits` accepts.
pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// One `ulimits` entry: a single number (soft and hard alike) or `{soft, hard}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum Ulimit {
    Single(i64),
    Pair(UlimitPair),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UlimitPair {
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// `(soft, hard)`.
    pub fn limits(&self) -> (i64, i64) {
        match self {
            Ulimit::Single(n) => (*n, *n),
            Ulimit::Pair(p) => (p.soft, p.hard),
        }
    }
}

impl Serialize for Ulimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ulimit::Single(n) => serializer.serialize_i64(*n),
            Ulimit::Pair(p) => p.serialize(serializer),
        }
    }
}

/// Hand-written so a wrong shape says which two forms are accepted.
impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UlimitVisitor;
        impl<'de> Visitor<'de> for UlimitVisitor {
            type Value = Ulimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or {soft: N, hard: N}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ulimit, E> {
                Ok(Ulimit::Single(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ulimit, E> {
                i64::try_from(v)
                    .map(Ulimit::Single)
                    .map_err(|_| E::custom(format!("{v} is too large for a limit")))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Ulimit, A::Error> {
                UlimitPair::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Ulimit::Pair)
            }
        }
        deserializer.deserialize_any(UlimitVisitor)
    }
}

/// Checks one `ulimits` entry: a name Docker knows, limits of -1 (unlimited) or more, soft not
/// above hard.
pub fn check_ulimit(name: &str, limit: &Ulimit) -> Result<(), String> {
    if !ULIMITS.contains(&name) {
        return Err(format!(
            "`{name}` is not a resource limit; expected one of {}",
            ULIMITS.join(", ")
        ));
    }
    let (soft, hard) = limit.limits();
    if soft < -1 || hard < -1 {
        return Err(format!(
            "limits are -1 (unlimited) or more, not {}",
            soft.min(hard)
        ));
    }
    let above = |s: i64, h: i64| h != -1 && (s == -1 || s > h);
    if above(soft, hard) {
        return Err(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        ));
    }
    Ok(())
}

/// Checks a `sysctls` key as Docker's engine does: only namespaced settings a container may
/// set (`net.*`, `fs.mqueue.*`, the IPC `kernel.*` ones), and no `net.*` on the host's network.
pub fn check_sysctl(name: &str, host_network: bool) -> Result<(), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if name.starts_with("net.") {
        return if host_network {
            Err(format!(
                "`{name}` cannot be set on the host's network: it would change the host itself (Docker refuses it)"
            ))
        } else {
            Ok(())
        };
    }
    if name.starts_with("fs.mqueue.") || IPC.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "`{name}` is not a sysctl a container may set; Docker allows net.*, fs.mqueue.* and kernel.msg*, kernel.sem, kernel.shm*"
    ))
}

/// `logging`: the log driver and its options (`docker run --log-driver --log-opt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Logging {
    /// `json-file`, `local`, `journald`, `syslog`, `none`, … Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub driver: Option<Spanned<String>>,
    /// Driver options as text, e.g. `max-size: 10m`, `max-file: "3"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub options: IndexMap<String, String>,
}

/// A parsed `devices` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

impl DeviceMapping {
    /// Parses `/dev/HOST[:/dev/CONTAINER[:PERMISSIONS]]`, permissions from `rwm` (default all).
    pub fn parse(text: &str) -> Result<DeviceMapping, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
        let (host, container, permissions) = match parts.as_slice() {
            [host] => (*host, *host, "rwm"),
            [host, perms] if perms_ok(perms) => (*host, *host, *perms),
            [host, container] => (*host, *container, "rwm"),
            [host, container, perms] => (*host, *container, *perms),
            _ => {
                return Err(format!(
                    "`{text}`: expected /dev/HOST[:/dev/CONTAINER[:rwm]], e.g. /dev/dri or /dev/ttyUSB0:/dev/ttyACM0"
                ));
            }
        };
        for path in [host, container] {
            if !path.starts_with('/') {
                return Err(format!(
                    "device path `{path}` in `{text}` must be absolute, e.g. /dev/dri"
                ));
            }
        }
        if !perms_ok(permissions) {
            return Err(format!(
                "permissions `{permissions}` in `{text}` are not letters of `rwm`"
            ));
        }
        Ok(DeviceMapping {
            host: host.into(),
            container: container.into(),
            permissions: permissions.into(),
        })
    }
}

/// A parsed `gpus` request (the docker CLI's `--gpus`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GpuRequest {
    pub driver: Option<String>,
    /// -1 for all.
    pub count: Option<i64>,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<String>,
}

impl GpuRequest {
    /// Parses `all`, a count (`2`), or `key=value` pairs: `count=N|all`, `device=ID[,ID…]`
    /// (quoted when there are several), `driver=NAME`, `capabilities=CAP[,CAP…]`.
    pub fn parse(text: &str) -> Result<GpuRequest, String> {
        const FORM: &str = "expected `all`, a count such as `1`, or e.g. `device=0,1` / `count=2,driver=nvidia,capabilities=gpu,utility`";
        let mut request = GpuRequest::default();
        let count = |v: &str| -> Result<i64, String> {
            if v == "all" {
                return Ok(-1);
            }
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(i64::from)
                .ok_or_else(|| format!("`{v}` in `{text}` is not a GPU count; {FORM}"))
        };
        let trimmed = text.trim();
        if !trimmed.contains('=') {
            request.count = Some(count(trimmed)?);
        } else {
            // `device=0,1,driver=nvidia`: a part without `=` continues the previous key's list.
            let mut key = "";
            for part in trimmed.split(',') {
                let value = match part.split_once('=') {
                    Some((k, v)) => {
                        key = k;
                        v
                    }
                    None if key == "device" || key == "capabilities" => part,
                    None => return Err(format!("`{text}`: {FORM}")),
                };
                match key {
                    "count" => request.count = Some(count(value)?),
                    "device" => request.device_ids.push(value.to_string()),
                    "driver" => request.driver = Some(value.to_string()),
                    "capabilities" => request.capabilities.push(value.to_string()),
                    other => {
                        return Err(format!(
                            "unknown key `{other}` in `{text}`; expected count, device, driver or capabilities"
                        ));
                    }
                }
            }
        }
        if request.count.is_some() && !request.device_ids.is_empty() {
            return Err(format!(
                "`{text}` gives both a count and devices; give one of them"
            ));
        }
        if request.capabilities.is_empty() {
            request.capabilities.push("gpu".to_string());
        }
        Ok(request)
    }
}

/// Parses a size such as `64m`, `1g`, `512k` or bytes, in powers of 1024 as Docker reads
/// `--shm-size`; `b` may follow a unit (`64mb`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; expected e.g. `64m`, `1g` or bytes"))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; expected k, m, g or t"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// Parses `resources.memorySwap`: memory plus swap as a size, or `-1` for unlimited swap.
pub fn parse_memory_swap(text: &str) -> Result<i64, String> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    parse_size(text).map(|n| n as i64)
}

/// Parses a file mode written in octal (`"0640"`, `"640"`, `"0o640"`).
pub fn parse_file_mode(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "`{text}` is not a file mode; expected octal digits such as \"0640\" or \"0444\" (quote it)"
        )),
    }
}

#[cfg(test)]
mod tests;
