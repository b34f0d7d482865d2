//! The `App` kind: one Docker container, and the parsers for the compact strings its spec accepts
//! (ports, volumes, restart policies, sizes, durations). The parsers are shared by validation (to
//! report errors with a location) and by the Docker controller (to build the container).

pub(crate) mod checks;
pub mod dotenv;
pub mod fields;
pub mod sources;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::{Location, Spanned};

pub use fields::{Logging, Ulimit};
pub use sources::{EnvFile, FileMount};

/// The server name meaning "this machine's Docker engine".
pub const LOCAL_SERVER: &str = "local";

fn local_server() -> Spanned<String> {
    Spanned::new(
        LOCAL_SERVER.to_string(),
        Location::UNKNOWN,
        Location::UNKNOWN,
    )
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A Docker container, reconciled on a server's engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// `local` for this machine's engine, or the name of a Server.
    #[serde(default = "local_server")]
    #[schemars(with = "String", default = "default_server_schema")]
    pub server: Spanned<String>,
    /// Image reference, e.g. `grafana/grafana:11.2.0`.
    #[schemars(with = "String")]
    pub image: Spanned<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pull_policy: PullPolicy,
    /// Replaces the image's CMD: a list, or a string split like a shell would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandLine>,
    /// Replaces the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<CommandLine>,
    /// `KEY: value`, or `KEY: {secretRef: {name: NAME}}` for a value from `ballast secret set`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<String, EnvValue>")]
    pub env: IndexMap<String, Spanned<EnvValue>>,
    /// `[ip:]host:container[/tcp|udp]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub ports: Vec<Spanned<String>>,
    /// `volume-name:/path[:ro]` or `/absolute/host/path:/path[:ro]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub volumes: Vec<Spanned<String>>,
    /// Docker networks to attach; created (bridge) when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub networks: Vec<Spanned<String>>,
    /// `no` (default), `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub restart: Option<Spanned<String>>,
    /// Container labels. Keys starting with `ballast.` are reserved.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `user`, `user:group`, `uid` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// An absolute path inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Run an init process (Docker's `--init`, tini) as PID 1 that forwards signals and reaps
    /// zombies, so a process that ignores SIGTERM as PID 1 still stops at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// The signal that stops the container: a name (`SIGTERM`, `SIGINT`, `SIGQUIT`, `TERM`) or
    /// a number (`15`). Default: the image's, else SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub stop_signal: Option<Spanned<String>>,
    /// How long a stop waits after the stop signal before it kills the container: whole
    /// seconds as a duration (`10s`, `1m30s`). Default: Docker's 10 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub stop_grace_period: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// `running` (default) or `stopped`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub state: AppState,
    /// Apps that must be started before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Spanned<String>>,
    // Fields with docker compose's meaning (`ballast import compose` writes them).
    /// The container's host name (compose `hostname`). Default: the start of its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub hostname: Option<Spanned<String>>,
    /// The container's NIS domain name (compose `domainname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub domainname: Option<Spanned<String>>,
    /// Ports the app listens on, not published (`80`, `53/udp`, `8000-8010`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub expose: Vec<Spanned<String>>,
    /// `KEY=value` files relative to this manifest (compose `env_file`), read when the
    /// manifests are loaded: editing one recreates the app. `env` wins over them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<sources::EnvFileSchema>")]
    pub env_file: Vec<EnvFile>,
    /// Linux capabilities to add (`NET_ADMIN`, `SYS_TIME`, `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub cap_add: Vec<Spanned<String>>,
    /// Linux capabilities to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub cap_drop: Vec<Spanned<String>>,
    /// `no-new-privileges:true`, `label=disable`, `apparmor=PROFILE`, `seccomp=unconfined`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub security_opt: Vec<Spanned<String>>,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "is_default")]
    pub read_only: bool,
    /// `bridge`, `host`, `none`, `container:NAME`, or `app:NAME` to share another App's
    /// network stack (compose `service:NAME`). Not combined with `networks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub network_mode: Option<Spanned<String>>,
    /// Extra DNS names of the container on each of its `networks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub aliases: Vec<Spanned<String>>,
    /// tmpfs mounts: `/run`, `/tmp:size=64m,mode=1777`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub tmpfs: Vec<Spanned<String>>,
    /// DNS servers (IP addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub dns: Vec<Spanned<String>>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub dns_search: Vec<Spanned<String>>,
    /// `/etc/hosts` entries: `NAME:IP` or `NAME=IP` (`host-gateway` for the engine's host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub extra_hosts: Vec<Spanned<String>>,
    /// Resource limits: `nofile: {soft: 1024, hard: 4096}`, `nproc: 512`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub ulimits: IndexMap<String, Ulimit>,
    /// Most processes the container may run (-1 or 0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i64>")]
    pub pids_limit: Option<Spanned<i64>>,
    /// Kernel parameters of the container's namespaces: `net.core.somaxconn: "1024"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub sysctls: IndexMap<String, String>,
    /// Log driver and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Host devices: `/dev/dri`, `/dev/ttyUSB0:/dev/ttyUSB0:rwm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub devices: Vec<Spanned<String>>,
    /// GPUs, as `docker run --gpus`: `all`, a count, or `device=0,1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub gpus: Option<Spanned<String>>,
    /// Run with every capability and device of the host.
    #[serde(default, skip_serializing_if = "is_default")]
    pub privileged: bool,
    /// Size of /dev/shm: `64m`, `1g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub shm_size: Option<Spanned<String>>,
    /// Keep standard input open (compose `stdin_open`, `docker run -i`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub stdin_open: bool,
    /// Allocate a terminal (`docker run -t`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tty: bool,
    /// Files of the repository written into the container before it starts (compose
    /// `configs`); their content is part of the spec: editing one recreates the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMount>,
}

fn default_server_schema() -> String {
    LOCAL_SERVER.to_string()
}

impl AppSpec {
    /// The names of the secrets this app's environment refers to, in order.
    pub fn secret_refs(&self) -> impl Iterator<Item = &str> {
        self.env.values().filter_map(|v| match &v.value {
            EnvValue::Secret(r) => Some(r.name.as_str()),
            EnvValue::Text(_) => None,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull only when the image is not on the engine.
    #[default]
    IfNotPresent,
    /// Pull before every create or replace.
    Always,
    /// Never pull; a missing image is an error.
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    #[default]
    Running,
    Stopped,
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppState::Running => "running",
            AppState::Stopped => "stopped",
        })
    }
}

/// A command as an exec list, or a string split like a shell would (`npm start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

impl CommandLine {
    /// The argument vector Docker receives.
    pub fn to_argv(&self) -> Result<Vec<String>, String> {
        match self {
            CommandLine::Exec(argv) => Ok(argv.clone()),
            CommandLine::Shell(line) => shell_words::split(line)
                .map_err(|e| format!("cannot split `{line}` into words: {e}")),
        }
    }
}

/// A reference to a secret stored with `ballast secret set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
}

/// An environment value: literal text, or a secret reference resolved at apply time.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum EnvValue {
    Text(String),
    Secret(#[schemars(with = "SecretSource")] SecretRef),
}

#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretSource {
    secret_ref: SecretRef,
}

impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            EnvValue::Text(text) => serializer.serialize_str(text),
            EnvValue::Secret(secret) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("secretRef", secret)?;
                map.end()
            }
        }
    }
}

/// Hand-written so that `PORT: 3000` is text and a wrong shape gets a message naming both
/// accepted forms, rather than serde's "did not match any variant". A number or boolean arrives
/// here already resolved by YAML (`1.50` as 1.5); the loader then puts back the scalar's text
/// as written, so this conversion is only a fallback for other callers.
impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvVisitor;
        impl<'de> Visitor<'de> for EnvVisitor {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean, or {secretRef: {name: NAME}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvValue, A::Error> {
                let mut secret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secretRef" {
                        return Err(de::Error::unknown_field(&key, &["secretRef"]));
                    }
                    if secret.is_some() {
                        return Err(de::Error::duplicate_field("secretRef"));
                    }
                    secret = Some(map.next_value::<SecretRef>()?);
                }
                secret
                    .map(EnvValue::Secret)
                    .ok_or_else(|| de::Error::missing_field("secretRef"))
            }
        }
        deserializer.deserialize_any(EnvVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Healthcheck {
    /// `[CMD, arg...]`, or a string run with the container's shell (`CMD-SHELL`).
    pub test: CommandLine,
    /// Durations such as `30s`, `1m30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start_period: Option<Spanned<String>>,
}

impl Healthcheck {
    /// Docker's `Test` array.
    pub fn docker_test(&self) -> Vec<String> {
        match &self.test {
            CommandLine::Exec(argv) => match argv.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") | Some("NONE") => argv.clone(),
                _ => std::iter::once("CMD".to_string())
                    .chain(argv.iter().cloned())
                    .collect(),
            },
            CommandLine::Shell(line) => vec!["CMD-SHELL".to_string(), line.clone()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// Memory limit: bytes, or with a unit (`512m`, `1g`, `256Mi`, `2Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
    /// CPU limit, e.g. `0.5` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<f64>")]
    pub cpus: Option<Spanned<f64>>,
    /// Memory and swap together (`1g`), or `-1` for unlimited swap; needs `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub memory_swap: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A parsed `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

fn parse_port_number(text: &str, what: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!(
            "{what} port {n} is out of range; expected 1 to 65535"
        )),
        Err(_) => Err(format!(
            "{what} port `{text}` is not a number; expected 1 to 65535"
        )),
    }
}

impl PortMapping {
    /// Parses `[ip:]host:container[/tcp|udp]`; IPv6 addresses go in brackets (`[::1]:80:80`).
    pub fn parse(text: &str) -> Result<PortMapping, String> {
        const FORM: &str = "expected `[ip:]host:container[/tcp|udp]`, e.g. `8080:80`";
        let (rest, protocol) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "unknown protocol `{other}` in `{text}`; expected tcp or udp"
                ));
            }
            None => (text, Protocol::Tcp),
        };
        let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after
                .split_once("]:")
                .ok_or_else(|| format!("`{text}`: unclosed `[` around an IPv6 address; {FORM}"))?;
            (Some(ip), ports)
        } else {
            match rest.matches(':').count() {
                1 => (None, rest),
                2 => {
                    let (ip, ports) = rest.split_once(':').unwrap_or_default();
                    (Some(ip), ports)
                }
                _ => return Err(format!("`{text}`: {FORM}")),
            }
        };
        let host_ip = match host_ip {
            Some(ip) => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| format!("`{ip}` in `{text}` is not an IP address; {FORM}"))?,
            ),
            None => None,
        };
        let (host, container) = ports
            .split_once(':')
            .ok_or_else(|| format!("`{text}`: {FORM}"))?;
        Ok(PortMapping {
            host_ip,
            host_port: parse_port_number(host, "host")?,
            container_port: parse_port_number(container, "container")?,
            protocol,
        })
    }
}

/// A parsed `volumes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    Named(String),
    Bind(String),
}

impl VolumeMount {
    /// Parses `name:/path[:ro|rw]` or `/host/path:/path[:ro|rw]`.
    pub fn parse(text: &str) -> Result<VolumeMount, String> {
        const FORM: &str =
            "expected `volume-name:/container/path[:ro]` or `/host/path:/container/path[:ro]`";
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [source, target] => (*source, *target, false),
            [source, target, "ro"] => (*source, *target, true),
            [source, target, "rw"] => (*source, *target, false),
            [_, _, mode] => {
                return Err(format!(
                    "unknown mode `{mode}` in `{text}`; expected ro or rw"
                ));
            }
            _ => return Err(format!("`{text}`: {FORM}")),
        };
        if !target.starts_with('/') {
            return Err(format!(
                "container path `{target}` in `{text}` must be absolute"
            ));
        }
        let source = if source.starts_with('/') {
            VolumeSource::Bind(source.to_string())
        } else if source.starts_with('.') || source.starts_with('~') {
            return Err(format!(
                "bind mount source `{source}` in `{text}` must be an absolute path (or use a named volume)"
            ));
        } else if is_volume_name(source) {
            VolumeSource::Named(source.to_string())
        } else {
            return Err(format!(
                "`{source}` in `{text}` is not a volume name; names use letters, digits, `_`, `.` and `-`"
            ));
        };
        Ok(VolumeMount {
            source,
            target: target.to_string(),
            read_only,
        })
    }
}

fn is_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Docker network names follow the same rule as volume names.
pub fn check_network_name(name: &str) -> Result<(), String> {
    if is_volume_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a network name; names use letters, digits, `_`, `.` and `-`"
        ))
    }
}

/// A parsed `restart` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    OnFailure { max_retries: Option<u32> },
}

impl RestartPolicy {
    pub fn parse(text: &str) -> Result<RestartPolicy, String> {
        const FORM: &str = "expected no, always, unless-stopped, on-failure or on-failure:N";
        match text {
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
            other => match other.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse::<u32>()
                    .map(|n| RestartPolicy::OnFailure {
                        max_retries: Some(n),
                    })
                    .map_err(|_| format!("`{n}` in `{text}` is not a retry count; {FORM}")),
                None => Err(format!("unknown restart policy `{text}`; {FORM}")),
            },
        }
    }
}

/// Parses a memory size: plain bytes, or a number with `k`, `m`, `g` (powers of 1024, as Docker's
/// `--memory`) or `Ki`, `Mi`, `Gi`; an optional trailing `b`/`B` is accepted.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a memory size; expected e.g. `512m`, `1g` or `256Mi`")
    })?;
    let multiplier: u64 = match unit.to_ascii_lowercase().trim_end_matches('b') {
        "" => 1,
        "k" | "ki" => 1 << 10,
        "m" | "mi" => 1 << 20,
        "g" | "gi" => 1 << 30,
        "t" | "ti" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; expected k, m, g, Ki, Mi or Gi"
            ));
        }
    };
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("memory size `{text}` is too large"))?;
    // Docker refuses limits under 6 MiB; saying so here beats a failed create later.
    if bytes < 6 << 20 {
        return Err(format!(
            "memory limit `{text}` is below Docker's minimum of 6m"
        ));
    }
    Ok(bytes)
}

/// Linux signal names Docker accepts for a stop signal, without the `SIG` prefix.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Checks a stop signal as Docker reads one: a name with or without `SIG` (any case), a
/// real-time signal (`RTMIN+3`, `RTMAX-1`), or a number from 1 to 64.
pub fn check_stop_signal(text: &str) -> Result<(), String> {
    let problem = || {
        format!(
            "`{text}` is not a signal; expected a name such as SIGTERM, SIGINT or SIGQUIT, or a number from 1 to 64"
        )
    };
    if let Ok(n) = text.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(problem())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: &str, sign: char| {
        name.strip_prefix(base)
            .and_then(|r| r.strip_prefix(sign))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    if SIGNALS.contains(&name) || realtime("RTMIN", '+') || realtime("RTMAX", '-') {
        Ok(())
    } else {
        Err(problem())
    }
}

/// Parses a stop grace period into Docker's stop timeout, whole seconds.
pub fn parse_stop_grace_period(text: &str) -> Result<i64, String> {
    let d = parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}` is not a whole number of seconds; Docker's stop timeout counts seconds, e.g. `10s` or `1m30s`"
        ));
    }
    i64::try_from(d.as_secs())
        .ok()
        .filter(|s| *s <= i64::from(i32::MAX))
        .ok_or_else(|| format!("stop grace period `{text}` is too long"))
}

/// Parses a duration such as `30s`, `1m30s` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); expected e.g. `30s` or `1m30s`"))
}

#[cfg(test)]
mod tests;
