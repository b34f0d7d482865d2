//! Semantic checks: per resource (names, ports, volumes, sizes) and across the whole set
//! (duplicate identities, references to things that do not exist, dependency cycles, two apps
//! publishing the same host port).

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use serde_saphyr::Spanned;

use crate::app::{
    AppSpec, LOCAL_SERVER, PortMapping, RestartPolicy, VolumeMount, check_network_name,
    check_stop_signal, parse_duration, parse_memory, parse_stop_grace_period,
};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::manifest::{DesiredResource, DesiredSet, Kind, ResourceKey, ResourceSpec};
use crate::server::{
    CredentialSource, ServerAuth, ServerSpec, host_key_problem, package_name_problem,
};

/// Why a name is not a DNS-1123 label, if it is not.
pub fn dns1123_problem(name: &str) -> Option<String> {
    const RULE: &str = "names are DNS-1123 labels: lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters";
    if name.is_empty() {
        return Some(format!("name is empty; {RULE}"));
    }
    if name.len() > 63 {
        return Some(format!(
            "name `{name}` is {} characters long; {RULE}",
            name.len()
        ));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let valid_ends = !name.starts_with('-') && !name.ends_with('-');
    if valid_chars && valid_ends {
        None
    } else {
        Some(format!("invalid name `{name}`; {RULE}"))
    }
}

/// Checks one resource on its own.
pub(crate) fn check_resource(resource: &DesiredResource) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let name = &resource.metadata.name;
    if let Some(problem) = dns1123_problem(&name.value) {
        out.push(resource.diagnostic(&name.referenced, "metadata.name", problem));
    }
    match &resource.spec {
        ResourceSpec::App(app) => check_app(resource, app, &mut out),
        ResourceSpec::Server(server) => check_server(resource, server, &mut out),
    }
    out
}

fn check_each<F>(
    resource: &DesiredResource,
    items: &[Spanned<String>],
    field: &str,
    out: &mut Vec<Diagnostic>,
    check: F,
) where
    F: Fn(&str) -> Result<(), String>,
{
    for (i, item) in items.iter().enumerate() {
        if let Err(problem) = check(&item.value) {
            out.push(resource.diagnostic(&item.referenced, &format!("{field}[{i}]"), problem));
        }
    }
}

fn check_app(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    if app.image.value.trim().is_empty() || app.image.value.chars().any(char::is_whitespace) {
        out.push(resource.diagnostic(
            &app.image.referenced,
            "spec.image",
            format!("`{}` is not an image reference; expected e.g. `nginx:1.27` or `registry.example/app:1.0`", app.image.value),
        ));
    }
    check_each(resource, &app.ports, "spec.ports", out, |p| {
        PortMapping::parse(p).map(|_| ())
    });
    check_each(resource, &app.volumes, "spec.volumes", out, |v| {
        VolumeMount::parse(v).map(|_| ())
    });
    check_each(
        resource,
        &app.networks,
        "spec.networks",
        out,
        check_network_name,
    );
    check_combinations(resource, app, out);
    if let Some(restart) = &app.restart
        && let Err(problem) = RestartPolicy::parse(&restart.value)
    {
        out.push(resource.diagnostic(&restart.referenced, "spec.restart", problem));
    }
    for (key, value) in &app.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            out.push(resource.diagnostic(
                &value.referenced,
                &format!("spec.env.{key}"),
                format!("invalid environment variable name `{key}`; it must be non-empty and contain no `=`"),
            ));
        }
    }
    for key in app.labels.keys() {
        if key.starts_with("ballast.") {
            out.push(resource.diagnostic_at_path(
                &["spec", "labels", key],
                format!("label `{key}` uses the reserved prefix `ballast.`; ballast sets those labels itself"),
            ));
        }
    }
    if let Some(resources) = &app.resources {
        if let Some(memory) = &resources.memory
            && let Err(problem) = parse_memory(&memory.value)
        {
            out.push(resource.diagnostic(&memory.referenced, "spec.resources.memory", problem));
        }
        if let Some(cpus) = &resources.cpus
            && !(cpus.value > 0.0 && cpus.value <= 1024.0)
        {
            out.push(resource.diagnostic(
                &cpus.referenced,
                "spec.resources.cpus",
                format!(
                    "cpus must be a positive number such as 0.5 or 2, not {}",
                    cpus.value
                ),
            ));
        }
    }
    if let Some(hc) = &app.healthcheck {
        for (field, value) in [
            ("interval", &hc.interval),
            ("timeout", &hc.timeout),
            ("startPeriod", &hc.start_period),
        ] {
            let Some(value) = value else { continue };
            let problem = match parse_duration(&value.value) {
                Err(problem) => problem,
                // Docker refuses a healthcheck duration under 1ms; 0 means "the image's".
                Ok(d) if !d.is_zero() && d < std::time::Duration::from_millis(1) => format!(
                    "`{}` is shorter than Docker's minimum of 1ms (0s means the image's setting)",
                    value.value
                ),
                Ok(_) => continue,
            };
            out.push(resource.diagnostic(
                &value.referenced,
                &format!("spec.healthcheck.{field}"),
                problem,
            ));
        }
        if let Err(problem) = hc.test.to_argv() {
            out.push(resource.diagnostic_at_path(&["spec", "healthcheck", "test"], problem));
        }
    }
    if let Some(signal) = &app.stop_signal
        && let Err(problem) = check_stop_signal(&signal.value)
    {
        out.push(resource.diagnostic(&signal.referenced, "spec.stopSignal", problem));
    }
    if let Some(period) = &app.stop_grace_period
        && let Err(problem) = parse_stop_grace_period(&period.value)
    {
        out.push(resource.diagnostic(&period.referenced, "spec.stopGracePeriod", problem));
    }
    for (field, command) in [("command", &app.command), ("entrypoint", &app.entrypoint)] {
        if let Some(command) = command
            && let Err(problem) = command.to_argv()
        {
            out.push(resource.diagnostic_at_path(&["spec", field], problem));
        }
    }
    crate::app::checks::check_compose_fields(resource, app, out);
}

/// Settings each valid alone that Docker refuses together (or silently drops), refused here at
/// their place as docker compose refuses them, instead of failing at create or start.
fn check_combinations(resource: &DesiredResource, app: &AppSpec, out: &mut Vec<Diagnostic>) {
    // `host` and `none` are network modes, not networks: a container has that one alone.
    let mode = app
        .networks
        .iter()
        .find(|n| n.value == "host" || n.value == "none");
    if let Some(mode) = mode
        && app.networks.len() > 1
    {
        let i = app
            .networks
            .iter()
            .position(|n| std::ptr::eq(n, mode))
            .unwrap_or(0);
        out.push(resource.diagnostic(
            &mode.referenced,
            &format!("spec.networks[{i}]"),
            format!(
                "the `{}` network cannot be combined with other networks; a container on it has no other network (list it alone)",
                mode.value
            ),
        ));
    }
    if let Some(mode) = mode
        && let Some(first) = app.ports.first()
    {
        let why = if mode.value == "host" {
            "on the `host` network the container uses the host's ports directly and Docker discards published ports"
        } else {
            "on the `none` network the container has no network to publish ports on"
        };
        out.push(resource.diagnostic(
            &first.referenced,
            "spec.ports[0]",
            format!("ports cannot be published: {why}; remove `ports` or use another network"),
        ));
    }
    for (i, network) in app.networks.iter().enumerate() {
        if let Some(first) = app.networks[..i]
            .iter()
            .position(|n| n.value == network.value)
        {
            out.push(resource.diagnostic(
                &network.referenced,
                &format!("spec.networks[{i}]"),
                format!(
                    "network `{}` is listed twice (also spec.networks[{first}]); a container joins a network once",
                    network.value
                ),
            ));
        }
    }
    let mut targets: Vec<(String, usize)> = Vec::new();
    for (i, volume) in app.volumes.iter().enumerate() {
        let Ok(mount) = VolumeMount::parse(&volume.value) else {
            continue;
        };
        let target = mount.target.trim_end_matches('/').to_string();
        if let Some((_, first)) = targets.iter().find(|(t, _)| *t == target) {
            out.push(resource.diagnostic(
                &volume.referenced,
                &format!("spec.volumes[{i}]"),
                format!(
                    "`{}` is mounted twice (also spec.volumes[{first}]); Docker refuses a duplicate mount point",
                    mount.target
                ),
            ));
        } else {
            targets.push((target, i));
        }
    }
    if let Some(dir) = &app.working_dir
        && !dir.starts_with('/')
    {
        out.push(resource.diagnostic_at_path(
            &["spec", "workingDir"],
            format!(
                "`{dir}` is not an absolute path; Docker requires the working directory to be absolute, e.g. /app"
            ),
        ));
    }
}

/// Checks the set as a whole and builds it. `diagnostics` carries the problems already found
/// while parsing, so the caller gets every error in one report.
pub fn validate_set(
    resources: Vec<DesiredResource>,
    mut diagnostics: Diagnostics,
) -> Result<DesiredSet, Diagnostics> {
    let mut set: IndexMap<ResourceKey, DesiredResource> = IndexMap::new();
    for resource in resources {
        if let Some(first) = set.get(&resource.key) {
            let name = &resource.metadata.name;
            let mut d = resource.diagnostic(
                &name.referenced,
                "metadata.name",
                format!(
                    "duplicate {}: `{}` is already defined at {}",
                    resource.key.kind, name.value, first.source
                ),
            );
            d.related = Some(first.source.clone());
            diagnostics.push(d);
            continue;
        }
        set.insert(resource.key.clone(), resource);
    }
    check_references(&set, &mut diagnostics);
    crate::app::checks::check_set(&set, &mut diagnostics);
    check_cycles(&set, &mut diagnostics);
    check_port_conflicts(&set, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok(DesiredSet { resources: set })
    } else {
        diagnostics.sort();
        Err(diagnostics)
    }
}

fn check_references(set: &IndexMap<ResourceKey, DesiredResource>, out: &mut Diagnostics) {
    for resource in set.values() {
        let ResourceSpec::App(app) = &resource.spec else {
            continue;
        };
        if app.server.value != LOCAL_SERVER
            && !set.contains_key(&ResourceKey::new(Kind::Server, app.server.value.clone()))
        {
            out.push(resource.diagnostic(
                &app.server.referenced,
                "spec.server",
                format!(
                    "unknown server `{}`: no Server by that name in the manifests; use `{LOCAL_SERVER}` for this machine's Docker engine",
                    app.server.value
                ),
            ));
        }
        for (i, dep) in app.depends_on.iter().enumerate() {
            let field = format!("spec.dependsOn[{i}]");
            if dep.value == resource.key.name {
                out.push(resource.diagnostic(
                    &dep.referenced,
                    &field,
                    "an app cannot depend on itself",
                ));
            } else if !set.contains_key(&ResourceKey::new(Kind::App, dep.value.clone())) {
                out.push(resource.diagnostic(
                    &dep.referenced,
                    &field,
                    format!(
                        "unknown app `{}`: dependsOn names an App that is not in the manifests",
                        dep.value
                    ),
                ));
            }
        }
    }
}

/// Reports each dependency cycle once, at the `dependsOn` entry that closes it.
fn check_cycles(set: &IndexMap<ResourceKey, DesiredResource>, out: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        set: &IndexMap<ResourceKey, DesiredResource>,
        marks: &mut HashMap<String, Mark>,
        trail: &mut Vec<String>,
        out: &mut Diagnostics,
    ) {
        marks.insert(name.to_string(), Mark::Visiting);
        trail.push(name.to_string());
        if let Some(resource) = set.get(&ResourceKey::new(Kind::App, name))
            && let ResourceSpec::App(app) = &resource.spec
        {
            for (i, dep) in app.depends_on.iter().enumerate() {
                if dep.value == name
                    || !set.contains_key(&ResourceKey::new(Kind::App, dep.value.clone()))
                {
                    continue;
                }
                match marks.get(&dep.value) {
                    Some(Mark::Visiting) => {
                        let start = trail.iter().position(|n| *n == dep.value).unwrap_or(0);
                        let mut cycle: Vec<&str> =
                            trail[start..].iter().map(String::as_str).collect();
                        cycle.push(&dep.value);
                        out.push(resource.diagnostic(
                            &dep.referenced,
                            &format!("spec.dependsOn[{i}]"),
                            format!("dependency cycle: {}", cycle.join(" -> ")),
                        ));
                    }
                    Some(Mark::Done) => {}
                    None => visit(&dep.value, set, marks, trail, out),
                }
            }
        }
        trail.pop();
        marks.insert(name.to_string(), Mark::Done);
    }
    let mut marks = HashMap::new();
    for key in set.keys() {
        if key.kind == Kind::App && !marks.contains_key(&key.name) {
            visit(&key.name, set, &mut marks, &mut Vec::new(), out);
        }
    }
}

fn check_port_conflicts(set: &IndexMap<ResourceKey, DesiredResource>, out: &mut Diagnostics) {
    // (server, protocol, host port) -> first user; an unspecified IP binds every address, so it
    // clashes with any other binding of the port.
    let mut seen: BTreeMap<(String, String, u16), (&DesiredResource, usize)> = BTreeMap::new();
    for resource in set.values() {
        let ResourceSpec::App(app) = &resource.spec else {
            continue;
        };
        for (i, port) in app.ports.iter().enumerate() {
            let Ok(mapping) = PortMapping::parse(&port.value) else {
                continue;
            };
            let slot = (
                app.server.value.clone(),
                mapping.protocol.to_string(),
                mapping.host_port,
            );
            if let Some((first, first_index)) = seen.get(&slot) {
                let ResourceSpec::App(first_app) = &first.spec else {
                    continue;
                };
                let first_mapping = PortMapping::parse(&first_app.ports[*first_index].value).ok();
                let clash = match (mapping.host_ip, first_mapping.and_then(|m| m.host_ip)) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if clash {
                    let first_pos = first.pos_of(&first_app.ports[*first_index].referenced);
                    let mut d = resource.diagnostic(
                        &port.referenced,
                        &format!("spec.ports[{i}]"),
                        format!(
                            "host port {}/{} is already published by {} at {}",
                            mapping.host_port, mapping.protocol, first.key, first_pos
                        ),
                    );
                    d.related = Some(first_pos);
                    out.push(d);
                }
            } else {
                seen.insert(slot, (resource, i));
            }
        }
    }
}

fn check_server(resource: &DesiredResource, server: &ServerSpec, out: &mut Vec<Diagnostic>) {
    let address = &server.address;
    // The address key written at all (a blank one is a mistake, not a BMC-only server).
    let address_written = address.referenced.line() != 0 || !address.value.is_empty();
    let auth_given = server.auth != ServerAuth::default();
    if !address_written && server.bmc.is_some() && !auth_given {
        // A machine reached only through its BMC: nothing to check for SSH.
    } else {
        check_server_ssh(resource, server, address_written, out);
    }
    if let Some(bmc) = &server.bmc {
        let source = |path: &[&str], source: &CredentialSource, out: &mut Vec<Diagnostic>| {
            check_credential_source(resource, path, source, out)
        };
        crate::bmc::check_bmc(&resource.doc, bmc, &source, out);
    }
    if let Some(prepare) = &server.prepare {
        for (i, package) in prepare.packages.iter().enumerate() {
            if let Some(problem) = package_name_problem(&package.value) {
                out.push(resource.diagnostic(
                    &package.referenced,
                    &format!("spec.prepare.packages[{i}]"),
                    problem,
                ));
            }
        }
    }
}

/// The checks of a server ballast logs into over SSH.
fn check_server_ssh(
    resource: &DesiredResource,
    server: &ServerSpec,
    address_written: bool,
    out: &mut Vec<Diagnostic>,
) {
    let address = &server.address;
    if !address_written {
        out.push(resource.diagnostic_at_path(
            &["spec"],
            "missing field `address`; expected the server's host name or IP address (a Server without one needs a `bmc` and no `auth`)",
        ));
    } else if address.value.trim().is_empty() || address.value.chars().any(char::is_whitespace) {
        out.push(resource.diagnostic(
            &address.referenced,
            "spec.address",
            "expected a host name or IP address without spaces",
        ));
    }
    if server.user.trim().is_empty() || server.user.chars().any(char::is_whitespace) {
        out.push(resource.diagnostic_at_path(
            &["spec", "user"],
            "expected a user name without spaces (default root)",
        ));
    }
    if let Some(pin) = &server.host_key {
        if let Some(problem) = host_key_problem(&pin.value) {
            out.push(resource.diagnostic(&pin.referenced, "spec.hostKey", problem));
        } else if server.trust_on_first_use {
            out.push(resource.diagnostic(
                &pin.referenced,
                "spec.hostKey",
                "hostKey pins the key, so trustOnFirstUse would never apply; remove one of them",
            ));
        }
    }
    if !server.docker_socket.starts_with('/') {
        out.push(resource.diagnostic_at_path(
            &["spec", "dockerSocket"],
            format!(
                "`{}` is not an absolute path; expected the socket's path on the server, e.g. /var/run/docker.sock",
                server.docker_socket
            ),
        ));
    }
    let auth = &server.auth;
    match (&auth.key, &auth.password) {
        (Some(_), Some(_)) => out.push(resource.diagnostic_at_path(
            &["spec", "auth"],
            "give either `key` or `password`, not both",
        )),
        (None, None) => out.push(crate::near::diag_near(
            &resource.doc,
            &["spec", "auth"],
            "missing credentials; expected `key: {secretRef: {name: NAME}}` (or `{file: PATH}`) or `password: {secretRef: {name: NAME}}`",
        )),
        _ => {}
    }
    if auth.passphrase.is_some() && auth.key.is_none() {
        out.push(resource.diagnostic_at_path(
            &["spec", "auth", "passphrase"],
            "a passphrase goes with a `key`; there is no key here",
        ));
    }
    for (field, source) in [
        ("key", &auth.key),
        ("passphrase", &auth.passphrase),
        ("password", &auth.password),
    ] {
        if let Some(source) = source {
            check_credential_source(resource, &["spec", "auth", field], source, out);
        }
    }
}

fn check_credential_source(
    resource: &DesiredResource,
    path: &[&str],
    source: &CredentialSource,
    out: &mut Vec<Diagnostic>,
) {
    let given = [
        source.secret_ref.is_some(),
        source.file.is_some(),
        source.env.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given != 1 {
        out.push(resource.diagnostic_at_path(
            path,
            "expected exactly one of `secretRef: {name: NAME}`, `file: PATH` or `env: VAR`",
        ));
        return;
    }
    if let Some(file) = &source.file
        && !(file.starts_with('/') || file.starts_with("~/"))
    {
        out.push(resource.diagnostic_at_path(
            path,
            format!("`{file}` is not an absolute path; expected /path or ~/path"),
        ));
    }
    if let Some(name) = source.secret_ref.as_ref().map(|r| r.name.as_str())
        && name.trim().is_empty()
    {
        out.push(resource.diagnostic_at_path(path, "the secret needs a name"));
    }
}
