//! What a server is: OS, resources, privileges, Docker and the requested packages, learnt with
//! one read-only shell script over SSH ([`gather`]) and turned into a [`SystemInfo`] by a pure
//! parser ([`parse`]).
//!
//! The script prints sections, each introduced by a line `@@ballast:NAME@@`, and ends with an
//! `end` section so a cut-off output is told apart from a server that lacks something. It needs
//! only POSIX `sh` and tools that Debian's minbase, Fedora and Alpine (busybox) all have; what a
//! server lacks shows as an empty section, which the parser treats as "unknown" where it can.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ballast_ssh::SshConnection;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::prepare::PrepareSpec;

/// How long the system-info script may run: it reads files and asks `docker version`, which the
/// script itself bounds to 20 s when `timeout` exists.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(120);

/// The Docker socket the script looks for (the distributions' default).
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What ballast knows about a server; stored as the Server's observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    pub hostname: String,
    /// The user ballast logs in as (`id -un`).
    pub user: String,
    /// os-release `ID` (`debian`, `ubuntu`, `fedora`, `alpine`, …).
    pub os_id: String,
    /// os-release `ID_LIKE`, split on spaces.
    pub os_id_like: Vec<String>,
    /// os-release `PRETTY_NAME` (falls back to `NAME`, then `ID`).
    pub os_name: String,
    /// os-release `VERSION_ID`; rolling releases have none.
    pub os_version: Option<String>,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`.
    pub arch: String,
    /// The first model line of `/proc/cpuinfo`; some ARM kernels print none.
    pub cpu_model: Option<String>,
    pub cpu_count: u32,
    /// `MemTotal` of `/proc/meminfo`.
    pub memory_bytes: u64,
    /// Size of the file system holding `/` (`df -P -k /`).
    pub disk_total_bytes: u64,
    /// Space available to unprivileged users on `/`.
    pub disk_free_bytes: u64,
    /// `id -u` is 0.
    pub is_root: bool,
    /// `sudo -n true` succeeds (always true for root, who needs no sudo).
    pub sudo_ok: bool,
    pub docker: DockerStatus,
    /// The first of apt-get, dnf, apk found.
    pub package_manager: Option<PackageManager>,
    /// What can start services.
    pub init_system: InitSystem,
    /// The requested packages that are not installed, in the order they were requested.
    pub missing_packages: Vec<String>,
}

/// Docker on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerStatus {
    /// The engine (`dockerd`) is installed, or a daemon answers. A client alone does not count:
    /// Apps need an engine.
    pub installed: bool,
    /// The server version, when the daemon answers (asked as root or through `sudo -n` when the
    /// user may; a user in the `docker` group is asked directly).
    pub version: Option<String>,
    /// The daemon answers, or a `dockerd` process exists (seen in `/proc`, so even a user who may
    /// not talk to the daemon sees it).
    pub running: bool,
    /// `/var/run/docker.sock` exists.
    pub socket_present: bool,
}

impl DockerStatus {
    /// The daemon answered `docker version`.
    pub fn answers(&self) -> bool {
        self.version.is_some()
    }
}

/// The package managers preparation knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PackageManager {
    Apt,
    Dnf,
    Apk,
}

impl PackageManager {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Dnf => "dnf",
            PackageManager::Apk => "apk",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What starts services on a server, in the order preparation prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InitSystem {
    /// systemd is PID 1 (`/run/systemd/system` exists, as `sd_booted()` checks).
    Systemd,
    /// OpenRC is running (`/run/openrc/softlevel` exists) and `rc-service` is installed.
    OpenRc,
    /// Neither, but a `service` command exists (SysV init scripts, e.g. in a container).
    Service,
    /// Nothing that starts services: Docker is started as a background `dockerd`.
    None,
}

/// The system-info output could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "the system-info output has no `{0}` section (the output was cut off, or the remote \
         shell is not a POSIX sh)"
    )]
    MissingSection(&'static str),
    #[error("the system-info section `{section}` is not what was expected: {value:?}")]
    BadValue {
        section: &'static str,
        value: String,
    },
    #[error("the server has no /etc/os-release (or os-release has no ID): cannot tell its OS")]
    NoOsRelease,
}

/// Whether `name` can be a package name of apt, dnf or apk. Version pins (`jq=1.6`) and globs
/// are refused: a pinned name never shows as installed, so preparation would never settle.
pub fn valid_package_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'))
        && name.len() <= 128
}

/// The script [`gather`] runs, for `packages` (which must pass [`valid_package_name`]; they are
/// quoted all the same). Read-only: it changes nothing on the server.
pub fn script(packages: &[String]) -> String {
    let package_words = packages
        .iter()
        .map(|p| shell_quote(p))
        .collect::<Vec<_>>()
        .join(" ");
    // Non-root users' PATH often lacks the sbin directories where dockerd and service live.
    format!(
        r#"PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH
LC_ALL=C; export LC_ALL
s() {{ printf '\n@@ballast:%s@@\n' "$1"; }}
has() {{ command -v "$1" >/dev/null 2>&1; }}
uid=$(id -u)
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s user; id -un
s uid; echo "$uid"
s os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s kernel; uname -r
s arch; uname -m
s cpu-model; grep -m1 -E '^(model name|Hardware|Model|cpu model|Processor)[[:space:]]*:' /proc/cpuinfo 2>/dev/null
s cpu-count; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' /proc/cpuinfo
s meminfo; grep '^MemTotal:' /proc/meminfo
s df; df -P -k /
sudo_ok=no
if [ "$uid" = 0 ]; then sudo_ok=yes; elif has sudo && sudo -n true >/dev/null 2>&1; then sudo_ok=yes; fi
s sudo; echo "$sudo_ok"
s commands; for c in apt-get dnf apk dpkg-query rpm systemctl rc-service service docker dockerd timeout; do has "$c" && echo "$c"; done
s init; [ -d /run/systemd/system ] && echo systemd; [ -e /run/openrc/softlevel ] && echo openrc; true
s docker-socket; [ -S {socket} ] && echo yes || echo no
s dockerd-process; grep -qsx dockerd /proc/[0-9]*/comm && echo yes || echo no
s docker-version
if has docker; then
  t=; has timeout && t='timeout 20'
  v=$($t docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) || v=
  if [ -z "$v" ] && [ "$uid" != 0 ] && [ "$sudo_ok" = yes ]; then
    v=$(sudo -n $t docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) || v=
  fi
  echo "$v"
fi
s packages
for p in {package_words}; do
  if has dpkg-query; then
    case "$(dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null)" in *" installed") st=present;; *) st=missing;; esac
  elif has rpm; then
    if rpm -q "$p" >/dev/null 2>&1; then st=present; else st=missing; fi
  elif has apk; then
    if apk info -e "$p" >/dev/null 2>&1; then st=present; else st=missing; fi
  else
    st=unknown
  fi
  echo "$p $st"
done
s end
exit 0
"#,
        socket = DOCKER_SOCKET,
    )
}

/// Runs [`script`] on the server (one exec) and parses what it prints. `prepare` says which
/// packages to look for.
pub async fn gather(
    conn: &SshConnection,
    prepare: &PrepareSpec,
) -> Result<SystemInfo, ServerError> {
    let server = conn.server();
    if let Some(bad) = prepare.packages.iter().find(|p| !valid_package_name(p)) {
        return Err(ServerError::InvalidPackageName {
            server: server.to_string(),
            name: bad.clone(),
        });
    }
    let command = format!("sh -c {}", shell_quote(&script(&prepare.packages)));
    let output = conn
        .exec(&command, Some(GATHER_TIMEOUT))
        .await
        .map_err(|source| ServerError::Ssh {
            server: server.to_string(),
            during: "gathering system info".to_string(),
            source,
        })?;
    if !output.success() {
        return Err(ServerError::SystemInfoFailed {
            server: server.to_string(),
            exit: output.exit_status,
            stderr: last_lines(&output.stderr, 3),
        });
    }
    parse(&output.stdout).map_err(|source| ServerError::SystemInfo {
        server: server.to_string(),
        source,
    })
}

/// Turns the output of [`script`] into a [`SystemInfo`].
pub fn parse(output: &str) -> Result<SystemInfo, ParseError> {
    let sections = split_sections(output);
    let section = |name: &'static str| -> Result<&str, ParseError> {
        sections
            .get(name)
            .map(|s| s.trim())
            .ok_or(ParseError::MissingSection(name))
    };
    section("end")?;

    let os = parse_os_release(section("os-release")?);
    let os_id = os
        .get("ID")
        .filter(|id| !id.is_empty())
        .cloned()
        .ok_or(ParseError::NoOsRelease)?;
    let os_name = os
        .get("PRETTY_NAME")
        .or_else(|| os.get("NAME"))
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| os_id.clone());
    let os_id_like = os
        .get("ID_LIKE")
        .map(|like| like.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let os_version = os.get("VERSION_ID").filter(|v| !v.is_empty()).cloned();

    let uid = section("uid")?;
    let uid: u32 = uid.parse().map_err(|_| ParseError::BadValue {
        section: "uid",
        value: uid.to_string(),
    })?;
    let is_root = uid == 0;

    let commands: Vec<&str> = section("commands")?.lines().map(str::trim).collect();
    let has = |c: &str| commands.contains(&c);

    let cpu_count = section("cpu-count")?;
    let cpu_count: u32 = first_line(cpu_count)
        .parse()
        .map_err(|_| ParseError::BadValue {
            section: "cpu-count",
            value: cpu_count.to_string(),
        })?;

    let meminfo = section("meminfo")?;
    let memory_bytes = parse_meminfo(meminfo).ok_or_else(|| ParseError::BadValue {
        section: "meminfo",
        value: meminfo.to_string(),
    })?;

    let df = section("df")?;
    let (disk_total_bytes, disk_free_bytes) = parse_df(df).ok_or_else(|| ParseError::BadValue {
        section: "df",
        value: df.to_string(),
    })?;

    let cpu_model = section("cpu-model")
        .ok()
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
        .filter(|m| !m.is_empty());

    let version = section("docker-version")?;
    let version = Some(first_line(version).to_string()).filter(|v| !v.is_empty());
    let dockerd_process = section("dockerd-process")? == "yes";
    let docker = DockerStatus {
        installed: has("dockerd") || version.is_some(),
        running: version.is_some() || dockerd_process,
        socket_present: section("docker-socket")? == "yes",
        version,
    };

    let package_manager = if has("apt-get") {
        Some(PackageManager::Apt)
    } else if has("dnf") {
        Some(PackageManager::Dnf)
    } else if has("apk") {
        Some(PackageManager::Apk)
    } else {
        None
    };

    let init: Vec<&str> = section("init")?.lines().map(str::trim).collect();
    let init_system = if init.contains(&"systemd") && has("systemctl") {
        InitSystem::Systemd
    } else if init.contains(&"openrc") && has("rc-service") {
        InitSystem::OpenRc
    } else if has("service") {
        InitSystem::Service
    } else {
        InitSystem::None
    };

    let mut missing_packages = Vec::new();
    for line in section("packages")?.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        match line.rsplit_once(' ') {
            Some((name, "present")) if !name.is_empty() => {}
            Some((name, "missing" | "unknown")) if !name.is_empty() => {
                missing_packages.push(name.to_string())
            }
            _ => {
                return Err(ParseError::BadValue {
                    section: "packages",
                    value: line.to_string(),
                });
            }
        }
    }

    Ok(SystemInfo {
        hostname: first_line(section("hostname")?).to_string(),
        user: first_line(section("user")?).to_string(),
        os_id,
        os_id_like,
        os_name,
        os_version,
        kernel: first_line(section("kernel")?).to_string(),
        arch: first_line(section("arch")?).to_string(),
        cpu_model,
        cpu_count,
        memory_bytes,
        disk_total_bytes,
        disk_free_bytes,
        is_root,
        sudo_ok: is_root || section("sudo")? == "yes",
        docker,
        package_manager,
        init_system,
        missing_packages,
    })
}

fn split_sections(output: &str) -> HashMap<&str, String> {
    let mut sections = HashMap::new();
    let mut current: Option<(&str, String)> = None;
    for line in output.lines() {
        let header = line
            .trim_end()
            .strip_prefix("@@ballast:")
            .and_then(|rest| rest.strip_suffix("@@"));
        match header {
            Some(name) => {
                if let Some((done, body)) = current.take() {
                    sections.insert(done, body);
                }
                current = Some((name, String::new()));
            }
            None => {
                if let Some((_, body)) = current.as_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    if let Some((done, body)) = current {
        sections.insert(done, body);
    }
    sections
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// os-release as the spec describes it: `KEY=value`, values optionally in double quotes (with
/// backslash escapes) or single quotes; `#` comments and blank lines ignored.
fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_string()
        } else {
            raw.to_string()
        };
        fields.insert(key.trim().to_string(), value);
    }
    fields
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let rest = text.lines().next()?.strip_prefix("MemTotal:")?;
    let mut words = rest.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// `df -P -k /`: a header, then `filesystem 1024-blocks used available capacity mountpoint`.
/// The file-system name may hold spaces, so the numbers are counted from the end.
fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().nth(1)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 6 {
        return None;
    }
    let n = words.len();
    let total: u64 = words[n - 5].parse().ok()?;
    let available: u64 = words[n - 3].parse().ok()?;
    Some((total.checked_mul(1024)?, available.checked_mul(1024)?))
}

/// `text` in single quotes for a POSIX shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The last `n` non-empty lines of `text`, joined with " | ".
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests;
