//! The parts of a service's conversion about its place among others: published ports,
//! volumes (named ones keep compose's `PROJECT_NAME`), networks (`PROJECT_default` when none
//! is named), network modes, aliases, `depends_on` and `links`.

use serde_json::{Map, Value, json};

use crate::Loss;
use crate::convert::Context;
use crate::load::scalar_text as text;

/// Splits `A-B` into a range, or a single port.
fn range(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

/// One `ports` entry (short or long syntax) as ballast's `[ip:]host:container[/proto]`
/// entries (a range becomes one entry per port).
pub(crate) fn convert_port(entry: &Value) -> Result<Vec<String>, String> {
    let (host_ip, published, target, proto) = match entry {
        Value::Object(long) => {
            if let Some(mode) = long.get("mode").and_then(text)
                && mode != "host"
                && mode != "ingress"
            {
                return Err(format!("mode `{mode}` is not supported"));
            }
            (
                long.get("host_ip").and_then(text).unwrap_or_default(),
                long.get("published").and_then(text).unwrap_or_default(),
                long.get("target").and_then(text).unwrap_or_default(),
                long.get("protocol")
                    .and_then(text)
                    .unwrap_or_else(|| "tcp".into()),
            )
        }
        other => {
            let text = text(other).ok_or("not a port")?;
            let (rest, proto) = match text.rsplit_once('/') {
                Some((r, p)) => (r.to_string(), p.to_string()),
                None => (text.clone(), "tcp".to_string()),
            };
            let (ip, rest) = if let Some(after) = rest.strip_prefix('[') {
                let (ip, rest) = after.split_once("]:").ok_or("unclosed `[`")?;
                (ip.to_string(), rest.to_string())
            } else {
                match rest.matches(':').count() {
                    2 => {
                        let (ip, rest) = rest.split_once(':').unwrap_or_default();
                        (ip.to_string(), rest.to_string())
                    }
                    _ => (String::new(), rest),
                }
            };
            let (published, target) = match rest.split_once(':') {
                Some((p, t)) => (p.to_string(), t.to_string()),
                None => (String::new(), rest),
            };
            (ip, published, target, proto)
        }
    };
    if published.is_empty() {
        return Err(format!(
            "container port {target} is published on a random host port, which ballast does not do; choose one (`HOST:{target}`)"
        ));
    }
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(format!("protocol `{proto}` is not supported (tcp, udp)"));
    }
    let (p0, p1) = range(&published).ok_or_else(|| format!("`{published}` is not a port"))?;
    let (t0, t1) = range(&target).ok_or_else(|| format!("`{target}` is not a port"))?;
    if p1 - p0 != t1 - t0 {
        return Err(format!(
            "the host range {published} and the container range {target} differ in length (compose picks one free port of the range; ballast publishes fixed ports)"
        ));
    }
    let ip = if host_ip.is_empty() {
        String::new()
    } else if host_ip.contains(':') {
        format!("[{host_ip}]:")
    } else {
        format!("{host_ip}:")
    };
    Ok((0..=p1 - p0)
        .map(|i| {
            let suffix = if proto == "tcp" {
                String::new()
            } else {
                format!("/{proto}")
            };
            format!("{ip}{}:{}{suffix}", p0 + i, t0 + i)
        })
        .collect())
}

/// `ports`, `volumes` and `networks`.
pub(crate) fn ports_volumes_networks(
    ctx: &Context<'_>,
    service: &str,
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
    notes: &mut Vec<String>,
) {
    if let Some(Value::Array(ports)) = svc.remove("ports") {
        let mut out = Vec::new();
        for port in &ports {
            match convert_port(port) {
                Ok(entries) => {
                    for e in entries {
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                }
                Err(why) => losses.push(Loss::new(
                    &format!("ports ({})", text(port).unwrap_or_else(|| port.to_string())),
                    &why,
                )),
            }
        }
        if !out.is_empty() {
            spec.insert("ports".into(), json!(out));
        }
    }
    if let Some(Value::Array(volumes)) = svc.remove("volumes") {
        let mut out = Vec::new();
        let mut tmpfs = Vec::new();
        for volume in &volumes {
            match convert_volume(ctx, volume, losses) {
                Some(Mount::Volume(v)) => {
                    // Compose ran on this machine; the app will run on the server.
                    if let Some(server) = ctx.server
                        && v.starts_with('/')
                    {
                        let source = v.split(':').next().unwrap_or_default();
                        notes.push(format!(
                            "the bind mount {source} is a path on server {server}, where the app runs"
                        ));
                    }
                    out.push(v)
                }
                Some(Mount::Tmpfs(t)) => tmpfs.push(t),
                None => {}
            }
        }
        if !out.is_empty() {
            spec.insert("volumes".into(), json!(out));
        }
        if !tmpfs.is_empty() {
            spec.insert("#tmpfs".into(), json!(tmpfs));
        }
    }
    let has_mode = svc.contains_key("network_mode");
    let networks = svc.remove("networks");
    if has_mode {
        if networks.is_some() {
            losses.push(Loss::new(
                "networks",
                "compose refuses networks with network_mode",
            ));
        }
        return;
    }
    let networks = match networks {
        Some(Value::Object(map)) if !map.is_empty() => map,
        _ => Map::from_iter([("default".to_string(), Value::Null)]),
    };
    // Compose's order: the first network (the one the container is created on) is the one of
    // highest `priority`, then by name.
    let mut ordered: Vec<(&String, &Value)> = networks.iter().collect();
    let priority = |v: &Value| v.get("priority").and_then(Value::as_i64).unwrap_or(0);
    ordered.sort_by(|a, b| priority(b.1).cmp(&priority(a.1)).then(a.0.cmp(b.0)));
    let mut names = Vec::new();
    let mut aliases: Vec<String> = Vec::new();
    for (key, settings) in ordered {
        names.push(ctx.network_name(key, losses));
        if let Value::Object(settings) = settings {
            for (k, v) in settings {
                match k.as_str() {
                    "priority" => {}
                    "aliases" => {
                        for a in v.as_array().into_iter().flatten().filter_map(text) {
                            if !aliases.contains(&a) {
                                aliases.push(a);
                            }
                        }
                    }
                    _ => losses.push(Loss::new(
                        &format!("networks.{key}.{k}"),
                        "ballast attaches networks without per-network settings (addresses, priority, options)",
                    )),
                }
            }
        }
    }
    if networks.len() > 1 && !aliases.is_empty() {
        // ballast's aliases hold on every network of the app.
        let per_network = networks
            .values()
            .filter(|s| s.get("aliases").is_some())
            .count();
        if per_network != networks.len() {
            losses.push(Loss::new(
                "networks.*.aliases",
                "ballast's aliases apply on every network of the app, compose's on one",
            ));
        }
    }
    spec.insert("networks".into(), json!(names));
    let _ = service;
    spec.insert("#aliases".into(), json!(aliases));
}

enum Mount {
    Volume(String),
    Tmpfs(String),
}

fn convert_volume(ctx: &Context<'_>, volume: &Value, losses: &mut Vec<Loss>) -> Option<Mount> {
    let shown = text(volume).unwrap_or_else(|| volume.to_string());
    let field = format!("volumes ({shown})");
    let (kind, source, target, read_only) = match volume {
        Value::Object(long) => {
            let kind = long
                .get("type")
                .and_then(text)
                .unwrap_or_else(|| "volume".into());
            let target = long.get("target").and_then(text).unwrap_or_default();
            let read_only = long
                .get("read_only")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if kind == "tmpfs" {
                let mut options = Vec::new();
                if let Some(Value::Object(t)) = long.get("tmpfs") {
                    if let Some(size) = t.get("size").and_then(text) {
                        options.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.get("mode") {
                        let mode = match mode {
                            Value::Number(n) => n.as_u64().map(|n| format!("{n:o}")),
                            other => text(other),
                        };
                        if let Some(m) = mode {
                            options.push(format!("mode={m}"));
                        }
                    }
                }
                return Some(Mount::Tmpfs(if options.is_empty() {
                    target
                } else {
                    format!("{target}:{}", options.join(","))
                }));
            }
            for (section, allowed) in [("bind", &["create_host_path"][..]), ("volume", &[][..])] {
                if let Some(Value::Object(opts)) = long.get(section) {
                    for (k, v) in opts {
                        let harmless = allowed.contains(&k.as_str()) && v.as_bool() == Some(true);
                        if !harmless {
                            losses.push(Loss::new(
                                &format!("{field}.{section}.{k}"),
                                "ballast mounts without this option",
                            ));
                        }
                    }
                }
            }
            (
                kind,
                long.get("source").and_then(text).unwrap_or_default(),
                target,
                read_only,
            )
        }
        other => {
            let text = text(other)?;
            let parts: Vec<&str> = text.split(':').collect();
            let (source, target, modes) = match parts.as_slice() {
                [target] => ("", *target, ""),
                [source, target] => (*source, *target, ""),
                [source, target, modes] => (*source, *target, *modes),
                _ => {
                    losses.push(Loss::new(&field, "not a volume"));
                    return None;
                }
            };
            let mut read_only = false;
            for mode in modes.split(',').filter(|m| !m.is_empty()) {
                match mode {
                    "ro" => read_only = true,
                    "rw" | "cached" | "delegated" | "consistent" => {}
                    other => losses.push(Loss::new(
                        &field,
                        &format!("mount option `{other}` is not supported (only ro, rw)"),
                    )),
                }
            }
            let kind = if source.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            (
                kind.to_string(),
                source.to_string(),
                target.to_string(),
                read_only,
            )
        }
    };
    if source.is_empty() {
        losses.push(Loss::new(
            &field,
            "an anonymous volume is new at every recreate; ballast mounts named volumes (give it a name)",
        ));
        return None;
    }
    let source = match kind.as_str() {
        "bind" => source,
        "volume" => ctx.volume_name(&source, losses),
        other => {
            losses.push(Loss::new(
                &field,
                &format!("mount type `{other}` is not supported"),
            ));
            return None;
        }
    };
    let mode = if read_only { ":ro" } else { "" };
    Some(Mount::Volume(format!("{source}:{target}{mode}")))
}

/// `depends_on` and `links` as `dependsOn`.
pub(crate) fn dependencies(
    ctx: &Context<'_>,
    service: &str,
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    let mut out: Vec<String> = Vec::new();
    let mut add = |dep: &str, required: bool, losses: &mut Vec<Loss>, field: &str| match ctx
        .app_names
        .get(dep)
    {
        Some(app) => {
            if !out.contains(app) {
                out.push(app.clone());
            }
        }
        None if !required => {}
        None => losses.push(Loss::new(
            field,
            &format!("`{dep}` is not imported (not defined, or its profile is not enabled)"),
        )),
    };
    if let Some(Value::Object(deps)) = svc.remove("depends_on") {
        for (dep, settings) in deps {
            let required = settings.get("required").and_then(Value::as_bool) != Some(false);
            let field = format!("depends_on.{dep}");
            add(&dep, required, losses, &field);
            match settings.get("condition").and_then(text).as_deref() {
                None | Some("service_started") => {}
                Some("service_healthy") if ctx.wait_supported => {}
                Some("service_healthy") => losses.push(Loss::new(
                    &format!("{field}.condition"),
                    "ballast starts it first but cannot wait for it to be healthy yet (the App's `wait: healthy` arrives with the controller work)",
                )),
                Some(other) => losses.push(Loss::new(
                    &format!("{field}.condition"),
                    &format!("`{other}`: ballast starts dependencies first and waits for nothing else"),
                )),
            }
            if settings.get("restart").and_then(Value::as_bool) == Some(true) {
                losses.push(Loss::new(
                    &format!("{field}.restart"),
                    "ballast does not restart an app when its dependency is replaced",
                ));
            }
        }
    }
    if let Some(Value::Array(links)) = svc.remove("links") {
        for link in links.iter().filter_map(text) {
            let dep = link.split(':').next().unwrap_or_default().to_string();
            add(&dep, true, losses, &format!("links ({link})"));
        }
    }
    if let Some(mode) = svc.get("network_mode").and_then(text)
        && let Some(dep) = mode.strip_prefix("service:")
    {
        add(dep, true, losses, "network_mode");
    }
    let _ = service;
    if !out.is_empty() {
        spec.insert("dependsOn".into(), json!(out));
    }
}

/// `network_mode` and the aliases: the service's name (compose's DNS name for it on each
/// network), its own `aliases` and those other services' `links` give it.
pub(crate) fn network_mode_and_aliases(
    ctx: &Context<'_>,
    service: &str,
    app: &str,
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    let own = spec.remove("#aliases");
    if let Some(mode) = svc.remove("network_mode").and_then(|v| text(&v)) {
        let value = match mode.as_str() {
            "bridge" | "host" | "none" => Some(mode.clone()),
            m if m.starts_with("container:") => Some(mode.clone()),
            m => match m.strip_prefix("service:") {
                Some(dep) => ctx.app_names.get(dep).map(|a| format!("app:{a}")),
                None => {
                    losses.push(Loss::new(
                        "network_mode",
                        &format!("`{m}` is not supported"),
                    ));
                    None
                }
            },
        };
        if let Some(v) = value {
            spec.insert("networkMode".into(), json!(v));
        }
        return;
    }
    let mut aliases: Vec<String> = Vec::new();
    if service != app {
        aliases.push(service.to_string());
    }
    for a in own
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(text)
        .chain(ctx.link_aliases.get(service).into_iter().flatten().cloned())
    {
        if !aliases.contains(&a) && a != app {
            aliases.push(a);
        }
    }
    if !aliases.is_empty() {
        spec.insert("aliases".into(), json!(aliases));
    }
}
