//! Validation of the App fields with docker compose's meaning, in the style of
//! `validate.rs`: each problem at its value's file:line:column with its field path, and the
//! settings Docker refuses together refused here, as compose refuses them, instead of failing at
//! create or start.

use indexmap::IndexMap;
use serde_saphyr::Spanned;

use crate::app::fields::{
    DeviceMapping, GpuRequest, NetworkMode, check_capability, check_dns_server, check_security_opt,
    check_sysctl, check_ulimit, hostname_problem, parse_expose, parse_extra_host, parse_file_mode,
    parse_memory_swap, parse_size, parse_tmpfs,
};
use crate::app::{AppSpec, VolumeMount, parse_memory};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::manifest::{DesiredResource, Kind, ResourceKey, ResourceSpec};

fn each(
    resource: &DesiredResource,
    items: &[Spanned<String>],
    field: &str,
    out: &mut Vec<Diagnostic>,
    check: impl Fn(&str) -> Result<(), String>,
) {
    for (i, item) in items.iter().enumerate() {
        if let Err(problem) = check(&item.value) {
            out.push(resource.diagnostic(&item.referenced, &format!("{field}[{i}]"), problem));
        }
    }
}

fn one(
    resource: &DesiredResource,
    item: &Option<Spanned<String>>,
    field: &str,
    out: &mut Vec<Diagnostic>,
    check: impl Fn(&str) -> Result<(), String>,
) {
    if let Some(item) = item
        && let Err(problem) = check(&item.value)
    {
        out.push(resource.diagnostic(&item.referenced, field, problem));
    }
}

/// A network alias as Docker takes one: compose gives every service its name as an alias,
/// and service names may hold `_` (`bookstack_db`), which the engine's DNS answers.
fn alias_problem(alias: &str) -> Result<(), String> {
    let ok = !alias.is_empty()
        && alias.len() <= 253
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{alias}` is not a network alias; expected letters, digits, `-`, `_` and `.`"
        ))
    }
}

/// Whether `path` is `base` or below it.
fn is_under(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base || path.starts_with(&format!("{base}/")) || base.is_empty()
}

/// Checks the compose-parity fields of one App.
pub(crate) fn check_compose_fields(
    resource: &DesiredResource,
    app: &AppSpec,
    out: &mut Vec<Diagnostic>,
) {
    one(resource, &app.hostname, "spec.hostname", out, |h| {
        hostname_problem(h, 64).map_or(Ok(()), Err)
    });
    one(resource, &app.domainname, "spec.domainname", out, |h| {
        hostname_problem(h, 253).map_or(Ok(()), Err)
    });
    each(resource, &app.expose, "spec.expose", out, |e| {
        parse_expose(e).map(|_| ())
    });
    each(resource, &app.cap_add, "spec.capAdd", out, check_capability);
    each(
        resource,
        &app.cap_drop,
        "spec.capDrop",
        out,
        check_capability,
    );
    each(
        resource,
        &app.security_opt,
        "spec.securityOpt",
        out,
        check_security_opt,
    );
    each(resource, &app.dns, "spec.dns", out, check_dns_server);
    each(resource, &app.dns_search, "spec.dnsSearch", out, |d| {
        hostname_problem(d, 253).map_or(Ok(()), Err)
    });
    each(resource, &app.extra_hosts, "spec.extraHosts", out, |h| {
        parse_extra_host(h).map(|_| ())
    });
    each(resource, &app.aliases, "spec.aliases", out, alias_problem);
    each(resource, &app.devices, "spec.devices", out, |d| {
        DeviceMapping::parse(d).map(|_| ())
    });
    one(resource, &app.gpus, "spec.gpus", out, |g| {
        GpuRequest::parse(g).map(|_| ())
    });
    one(resource, &app.shm_size, "spec.shmSize", out, |s| {
        parse_size(s).map(|_| ())
    });
    if let Some(limit) = &app.pids_limit
        && limit.value < -1
    {
        out.push(resource.diagnostic(
            &limit.referenced,
            "spec.pidsLimit",
            format!(
                "{} is not a process limit; expected a positive number, or 0 or -1 for unlimited",
                limit.value
            ),
        ));
    }
    for (name, limit) in &app.ulimits {
        if let Err(problem) = check_ulimit(name, limit) {
            out.push(resource.diagnostic_at_path(&["spec", "ulimits", name], problem));
        }
    }
    if let Some(logging) = &app.logging
        && let Some(driver) = &logging.driver
        && (driver.value.is_empty() || driver.value.contains(char::is_whitespace))
    {
        out.push(resource.diagnostic(
            &driver.referenced,
            "spec.logging.driver",
            format!(
                "`{}` is not a log driver name; expected e.g. json-file, local, journald or syslog",
                driver.value
            ),
        ));
    }
    check_memory_swap(resource, app, out);
    check_tmpfs(resource, app, out);
    check_network_mode(resource, app, out);
    check_files(resource, app, out);
    for (i, env_file) in app.env_file.iter().enumerate() {
        if env_file.path.trim().is_empty() {
            out.push(resource.diagnostic_at_path(
                &["spec", "envFile", &i.to_string()],
                "the path is empty; expected a file relative to this manifest, e.g. ./app.env",
            ));
        }
    }
}

fn check_memory_swap(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    let Some(resources) = &app.resources else {
        return;
    };
    let Some(swap) = &resources.memory_swap else {
        return;
    };
    let field = "spec.resources.memorySwap";
    let swap_bytes = match parse_memory_swap(&swap.value) {
        Ok(n) => n,
        Err(problem) => {
            out.push(resource.diagnostic(&swap.referenced, field, problem));
            return;
        }
    };
    let Some(memory) = &resources.memory else {
        out.push(resource.diagnostic(
            &swap.referenced,
            field,
            "memorySwap needs a memory limit (`resources.memory`): it is the limit of memory and swap together",
        ));
        return;
    };
    if let Ok(memory_bytes) = parse_memory(&memory.value)
        && swap_bytes != -1
        && (swap_bytes as u64) < memory_bytes
    {
        out.push(resource.diagnostic(
            &swap.referenced,
            field,
            format!(
                "memorySwap `{}` is below memory `{}`; it counts memory and swap together (-1 for unlimited swap)",
                swap.value, memory.value
            ),
        ));
    }
}

fn check_tmpfs(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    let volume_targets: Vec<String> = app
        .volumes
        .iter()
        .filter_map(|v| VolumeMount::parse(&v.value).ok())
        .map(|m| m.target.trim_end_matches('/').to_string())
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for (i, entry) in app.tmpfs.iter().enumerate() {
        let field = format!("spec.tmpfs[{i}]");
        match parse_tmpfs(&entry.value) {
            Err(problem) => out.push(resource.diagnostic(&entry.referenced, &field, problem)),
            Ok((path, _)) => {
                let path = path.trim_end_matches('/').to_string();
                let problem = if seen.contains(&path) {
                    Some(format!("`{path}` is listed twice; a path takes one tmpfs"))
                } else if volume_targets.contains(&path) {
                    Some(format!(
                        "`{path}` is also a volume's mount point; Docker refuses a duplicate mount point"
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    out.push(resource.diagnostic(&entry.referenced, &field, problem));
                }
                seen.push(path);
            }
        }
    }
}

fn check_network_mode(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    let mode = match &app.network_mode {
        Some(text) => match NetworkMode::parse(&text.value) {
            Ok(mode) => Some((mode, text)),
            Err(problem) => {
                out.push(resource.diagnostic(&text.referenced, "spec.networkMode", problem));
                None
            }
        },
        None => None,
    };
    let host_network = matches!(mode, Some((NetworkMode::Host, _)))
        || app.networks.iter().any(|n| n.value == "host");
    for name in app.sysctls.keys() {
        if let Err(problem) = check_sysctl(name, host_network) {
            out.push(resource.diagnostic_at_path(&["spec", "sysctls", name], problem));
        }
    }
    if let Some((mode, text)) = &mode {
        if let Some(first) = app.networks.first() {
            out.push(resource.diagnostic(
                &first.referenced,
                "spec.networks[0]",
                format!(
                    "networkMode `{}` and networks cannot be combined (compose refuses network_mode with networks); remove one of them",
                    text.value
                ),
            ));
        }
        if !matches!(mode, NetworkMode::Bridge)
            && let Some(first) = app.ports.first()
        {
            out.push(resource.diagnostic(
                &first.referenced,
                "spec.ports[0]",
                format!(
                    "ports cannot be published with networkMode `{}`: the container has no network of its own to publish them on (Docker discards them); remove `ports`",
                    text.value
                ),
            ));
        }
        if mode.is_shared() {
            let why = format!(
                "with networkMode `{}` the container uses another container's network stack, whose names, DNS and ports are that container's (Docker refuses it)",
                text.value
            );
            let fields: [(&str, bool); 7] = [
                ("hostname", app.hostname.is_some()),
                ("domainname", app.domainname.is_some()),
                ("dns", !app.dns.is_empty()),
                ("dnsSearch", !app.dns_search.is_empty()),
                ("extraHosts", !app.extra_hosts.is_empty()),
                ("expose", !app.expose.is_empty()),
                ("aliases", !app.aliases.is_empty()),
            ];
            for (field, set) in fields {
                if set {
                    out.push(resource.diagnostic_at_path(
                        &["spec", field],
                        format!("`{field}` cannot be set {why}"),
                    ));
                }
            }
        }
    }
    if !app.aliases.is_empty() && mode.is_none() {
        let user_network = app
            .networks
            .iter()
            .any(|n| !matches!(n.value.as_str(), "host" | "none" | "bridge"));
        if !user_network {
            out.push(resource.diagnostic_at_path(
                &["spec", "aliases"],
                "aliases are names on the app's networks: list a network in `networks` (Docker's default bridge, host and none take no aliases)",
            ));
        }
    }
}

fn check_files(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    let tmpfs: Vec<String> = app
        .tmpfs
        .iter()
        .filter_map(|t| parse_tmpfs(&t.value).ok())
        .map(|(p, _)| p)
        .collect();
    let volumes: Vec<String> = app
        .volumes
        .iter()
        .filter_map(|v| VolumeMount::parse(&v.value).ok())
        .map(|m| m.target)
        .collect();
    let mut targets: Vec<(&str, usize)> = Vec::new();
    for (i, file) in app.files.iter().enumerate() {
        let field = |name: &str| format!("spec.files[{i}].{name}");
        if file.source.value.trim().is_empty() {
            out.push(resource.diagnostic(
                &file.source.referenced,
                &field("source"),
                "the source is empty; expected a file relative to this manifest, e.g. ./conf/app.ini",
            ));
        }
        let target = file.target.value.as_str();
        let problem = if !target.starts_with('/') {
            Some(format!(
                "`{target}` is not an absolute path; expected the file's path in the container, e.g. /etc/app/app.ini"
            ))
        } else if target.ends_with('/') || target.split('/').any(|c| c == ".." || c == ".") {
            Some(format!(
                "`{target}` must name a file: no trailing `/`, no `.` or `..` components"
            ))
        } else if let Some((_, first)) = targets.iter().find(|(t, _)| *t == target) {
            Some(format!(
                "`{target}` is written twice (also spec.files[{first}])"
            ))
        } else if let Some(t) = tmpfs.iter().find(|t| is_under(target, t)) {
            Some(format!(
                "`{target}` is under the tmpfs `{t}`, which is mounted empty when the container starts and would hide the file"
            ))
        } else if app.read_only && !volumes.iter().any(|v| is_under(target, v)) {
            Some(format!(
                "`{target}` cannot be written into a container with `readOnly: true` (Docker refuses to write into a read-only root filesystem); put it under a volume's mount point or drop readOnly"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            out.push(resource.diagnostic(&file.target.referenced, &field("target"), problem));
        }
        targets.push((target, i));
        if let Some(mode) = &file.mode
            && let Err(problem) = parse_file_mode(&mode.value)
        {
            out.push(resource.diagnostic(&mode.referenced, &field("mode"), problem));
        }
    }
}

/// Checks across the set: `networkMode: app:NAME` names an App of the same server that this
/// one depends on (it must run first: its network stack is the one joined).
pub(crate) fn check_set(set: &IndexMap<ResourceKey, DesiredResource>, out: &mut Diagnostics) {
    for resource in set.values() {
        let ResourceSpec::App(app) = &resource.spec else {
            continue;
        };
        let Some(text) = &app.network_mode else {
            continue;
        };
        let Ok(NetworkMode::App(name)) = NetworkMode::parse(&text.value) else {
            continue;
        };
        let problem = if name == resource.key.name {
            Some("an app cannot join its own network stack".to_string())
        } else {
            match set
                .get(&ResourceKey::new(Kind::App, name.clone()))
                .and_then(|r| r.spec.as_app())
            {
                None => Some(format!(
                    "unknown app `{name}`: networkMode app:NAME names an App that is not in the manifests"
                )),
                Some(other) if other.server.value != app.server.value => Some(format!(
                    "app `{name}` runs on server `{}` and this one on `{}`; a container can only join the network stack of one on the same engine",
                    other.server.value, app.server.value
                )),
                Some(_) if !app.depends_on.iter().any(|d| d.value == name) => Some(format!(
                    "add `{name}` to dependsOn: its container must exist before this one can join its network stack"
                )),
                Some(_) => None,
            }
        };
        if let Some(problem) = problem {
            out.push(resource.diagnostic(&text.referenced, "spec.networkMode", problem));
        }
    }
}
