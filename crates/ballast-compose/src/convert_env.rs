//! The parts of a service's conversion about what runs inside the container: environment
//! (credentials become secret references), env files, resource limits, host settings
//! (tmpfs, DNS, ulimits, sysctls, logging, devices, GPUs) and files (`configs`, `secrets`).

use std::path::Path;

use ballast_model::app::dotenv::Lookup;
use serde_json::{Map, Value, json};

use crate::convert::{Context, Converted, is_credential, read_env_file, relative, secret_name};
use crate::load::scalar_text as text;
use crate::{Loss, SecretNeeded};

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// `environment` and `env_file`: `env` (credentials as `secretRef`) and `envFile`.
pub(crate) fn environment(
    ctx: &Context<'_>,
    app: &str,
    svc: &mut Map<String, Value>,
    out: &mut Converted,
) {
    let mut env = Map::new();
    let mut env_files = Vec::new();
    let secret = |key: &str, value: String, env: &mut Map<String, Value>, out: &mut Converted| {
        if is_credential(key) && !value.is_empty() {
            let name = secret_name(app, key);
            env.insert(key.into(), json!({"secretRef": {"name": name}}));
            out.secrets.push(SecretNeeded {
                name,
                variable: key.to_string(),
                app: app.to_string(),
            });
        } else {
            env.insert(key.into(), json!(value));
        }
    };
    if let Some(Value::Array(files)) = svc.remove("env_file") {
        for entry in files {
            let Some(path) = entry.get("path").and_then(text) else {
                continue;
            };
            let required = entry.get("required").and_then(Value::as_bool) != Some(false);
            if let Some(format) = entry.get("format").and_then(text) {
                out.losses.push(Loss::new(
                    "env_file.format",
                    &format!(
                        "ballast reads env files in compose's default format only, not `{format}`"
                    ),
                ));
                continue;
            }
            let file = Path::new(&path);
            let shown = relative(file, ctx.out_dir);
            if !file.exists() {
                if required {
                    out.losses.push(Loss::new(
                        "env_file",
                        &format!("{path} does not exist (compose refuses to start the service)"),
                    ));
                } else {
                    env_files.push(json!({"path": shown, "required": false}));
                }
                continue;
            }
            match read_env_file(file, ctx.env) {
                Ok((_, true)) => env_files.push(if required {
                    json!(shown)
                } else {
                    json!({"path": shown, "required": false})
                }),
                Ok((vars, false)) => {
                    // The file takes values from the environment compose runs in, which an
                    // App's env file may not: its variables as compose resolves them now go
                    // into `env`, credentials as secret references.
                    out.notes.push(format!(
                        "{path} uses variables of the environment compose runs in; its variables are written into `env` as compose resolves them today"
                    ));
                    for (k, v) in vars {
                        secret(&k, v, &mut env, out);
                    }
                }
                Err(why) => out.losses.push(Loss::new("env_file", &why)),
            }
        }
    }
    if let Some(Value::Object(vars)) = svc.remove("environment") {
        for (key, value) in vars {
            let value = match value {
                // `KEY` alone: compose takes it from its environment, and leaves it out when
                // it is not set there.
                Value::Null => match ctx.env.get(&key) {
                    Some(v) => v,
                    None => {
                        env.remove(&key);
                        continue;
                    }
                },
                other => text(&other).unwrap_or_default(),
            };
            secret(&key, value, &mut env, out);
        }
    }
    if !env.is_empty() {
        out.spec.insert("env".into(), Value::Object(env));
    }
    if !env_files.is_empty() {
        // Placed after `dependsOn` by the caller, in the App's field order.
        out.spec.insert("#envFile".into(), Value::Array(env_files));
    }
}

/// Memory, CPU and process limits: `mem_limit`, `memswap_limit`, `cpus`, `pids_limit` and
/// `deploy.resources` (the same settings in compose's newer place), `deploy.restart_policy`.
pub(crate) fn resources(
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    let mut resources = Map::new();
    let mut pids = svc.remove("pids_limit").and_then(|v| text(&v));
    if let Some(Value::Object(mut deploy)) = svc.remove("deploy") {
        if let Some(Value::Object(mut res)) = deploy.remove("resources") {
            if let Some(Value::Object(mut limits)) = res.remove("limits") {
                if let Some(v) = limits.remove("memory").and_then(|v| text(&v)) {
                    resources.insert("memory".into(), json!(v));
                }
                if let Some(v) = limits.remove("cpus").and_then(|v| text(&v)) {
                    resources.insert("cpus".into(), json!(v));
                }
                if let Some(v) = limits.remove("pids").and_then(|v| text(&v)) {
                    pids = Some(v);
                }
                for (k, _) in limits {
                    losses.push(Loss::new(
                        &format!("deploy.resources.limits.{k}"),
                        "ballast has no such limit",
                    ));
                }
            }
            if let Some(Value::Object(mut reservations)) = res.remove("reservations") {
                if let Some(Value::Array(devices)) = reservations.remove("devices") {
                    gpu_requests(
                        &devices,
                        "deploy.resources.reservations.devices",
                        spec,
                        losses,
                    );
                }
                for (k, _) in reservations {
                    losses.push(Loss::new(
                        &format!("deploy.resources.reservations.{k}"),
                        "ballast reserves nothing (only limits)",
                    ));
                }
            }
            for (k, _) in res {
                losses.push(Loss::new(
                    &format!("deploy.resources.{k}"),
                    "ballast has no such setting",
                ));
            }
        }
        if let Some(Value::Object(mut policy)) = deploy.remove("restart_policy") {
            let condition = policy.remove("condition").and_then(|v| text(&v));
            let attempts = policy.remove("max_attempts").and_then(|v| text(&v));
            let restart = match (condition.as_deref(), attempts) {
                (Some("none"), _) => Some("no".to_string()),
                (Some("on-failure"), Some(n)) => Some(format!("on-failure:{n}")),
                (Some("on-failure"), None) => Some("on-failure".into()),
                (Some("any") | None, _) => Some("always".into()),
                (Some(other), _) => {
                    losses.push(Loss::new(
                        "deploy.restart_policy",
                        &format!("unknown condition `{other}`"),
                    ));
                    None
                }
            };
            if let Some(r) = restart
                && !spec.contains_key("restart")
            {
                spec.insert("restart".into(), json!(r));
            }
            for (k, _) in policy {
                losses.push(Loss::new(
                    &format!("deploy.restart_policy.{k}"),
                    "ballast's restart policy has no such setting",
                ));
            }
        }
        if let Some(n) = deploy.remove("replicas").and_then(|v| text(&v))
            && n != "1"
        {
            losses.push(Loss::new(
                "deploy.replicas",
                "ballast runs one container per App; make one App per replica",
            ));
        }
        for (k, _) in deploy {
            losses.push(Loss::new(
                &format!("deploy.{k}"),
                "a swarm setting; ballast runs single containers",
            ));
        }
    }
    if let Some(v) = svc.remove("mem_limit").and_then(|v| text(&v)) {
        resources.insert("memory".into(), json!(v));
    }
    if let Some(v) = svc.remove("cpus").and_then(|v| text(&v)) {
        resources.insert("cpus".into(), json!(v));
    }
    if let Some(v) = svc.remove("memswap_limit").and_then(|v| text(&v)) {
        resources.insert("memorySwap".into(), json!(v));
    }
    if let Some(cpus) = resources.get("cpus").and_then(text) {
        match cpus.parse::<f64>() {
            Ok(n) if n > 0.0 => {
                resources.insert("cpus".into(), json!(n));
            }
            // 0 means no limit in compose.
            _ => {
                resources.remove("cpus");
            }
        }
    }
    if !resources.is_empty() {
        spec.insert("resources".into(), Value::Object(resources));
    }
    if let Some(p) = pids {
        match p.parse::<i64>() {
            Ok(n) => {
                spec.insert("#pidsLimit".into(), json!(n));
            }
            Err(_) => losses.push(Loss::new("pids_limit", &format!("`{p}` is not a number"))),
        }
    }
}

/// GPU device requests (`gpus`, `deploy.resources.reservations.devices`) as ballast's `gpus`.
fn gpu_requests(
    requests: &[Value],
    field: &str,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    if requests.len() > 1 {
        losses.push(Loss::new(
            field,
            "ballast takes one GPU request; only the first is imported",
        ));
    }
    let Some(Value::Object(request)) = requests.first() else {
        return;
    };
    let capabilities = request.get("capabilities").map(strings).unwrap_or_default();
    if !capabilities.is_empty() && !capabilities.iter().any(|c| c == "gpu") {
        losses.push(Loss::new(field, "only GPU device requests are supported"));
        return;
    }
    let mut parts = Vec::new();
    if let Some(count) = request.get("count").and_then(text) {
        parts.push(format!("count={count}"));
    }
    let ids = request.get("device_ids").map(strings).unwrap_or_default();
    if !ids.is_empty() {
        parts.push(format!("device={}", ids.join(",")));
    }
    if let Some(driver) = request.get("driver").and_then(text) {
        parts.push(format!("driver={driver}"));
    }
    if !capabilities.is_empty() && capabilities != ["gpu"] {
        parts.push(format!("capabilities={}", capabilities.join(",")));
    }
    if request.get("options").is_some() {
        losses.push(Loss::new(field, "GPU request options are not supported"));
    }
    let value = if parts.is_empty() || parts == ["count=all"] {
        "all".to_string()
    } else {
        parts.join(",")
    };
    spec.insert("gpus".into(), json!(value));
}

/// tmpfs, DNS, hosts, ulimits, sysctls, logging, devices and GPUs.
pub(crate) fn host_settings(
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    if let Some(v) = svc.remove("tmpfs") {
        let mut entries = strings(&v);
        if let Some(Value::Array(extra)) = spec.remove("#tmpfs") {
            entries.extend(extra.iter().filter_map(text));
        }
        spec.insert("tmpfs".into(), json!(entries));
    } else if let Some(extra) = spec.remove("#tmpfs") {
        spec.insert("tmpfs".into(), extra);
    }
    for (key, field) in [("dns", "dns"), ("dns_search", "dnsSearch")] {
        if let Some(v) = svc.remove(key) {
            spec.insert(field.into(), json!(strings(&v)));
        }
    }
    if let Some(Value::Object(hosts)) = svc.remove("extra_hosts") {
        let mut entries = Vec::new();
        for (host, ips) in hosts {
            for ip in strings(&ips) {
                entries.push(format!("{host}={ip}"));
            }
        }
        spec.insert("extraHosts".into(), json!(entries));
    }
    if let Some(Value::Object(limits)) = svc.remove("ulimits") {
        let mut out = Map::new();
        for (name, limit) in limits {
            let number = |v: Option<&Value>| v.and_then(text).and_then(|t| t.parse::<i64>().ok());
            let value = match &limit {
                Value::Object(pair) => match (number(pair.get("soft")), number(pair.get("hard"))) {
                    (Some(soft), Some(hard)) => json!({"soft": soft, "hard": hard}),
                    _ => {
                        losses.push(Loss::new(
                            &format!("ulimits.{name}"),
                            "expected soft and hard",
                        ));
                        continue;
                    }
                },
                other => match number(Some(other)) {
                    Some(n) => json!(n),
                    None => {
                        losses.push(Loss::new(&format!("ulimits.{name}"), "not a number"));
                        continue;
                    }
                },
            };
            out.insert(name, value);
        }
        spec.insert("ulimits".into(), Value::Object(out));
    }
    if let Some(p) = spec.remove("#pidsLimit") {
        spec.insert("pidsLimit".into(), p);
    }
    if let Some(Value::Object(sysctls)) = svc.remove("sysctls") {
        let map: Map<String, Value> = sysctls
            .into_iter()
            .map(|(k, v)| (k, json!(text(&v).unwrap_or_default())))
            .collect();
        spec.insert("sysctls".into(), Value::Object(map));
    }
    if let Some(Value::Object(mut logging)) = svc.remove("logging") {
        let mut out = Map::new();
        if let Some(driver) = logging.remove("driver").and_then(|v| text(&v)) {
            out.insert("driver".into(), json!(driver));
        }
        if let Some(Value::Object(options)) = logging.remove("options") {
            let options: Map<String, Value> = options
                .into_iter()
                .map(|(k, v)| (k, json!(text(&v).unwrap_or_default())))
                .collect();
            out.insert("options".into(), Value::Object(options));
        }
        spec.insert("logging".into(), Value::Object(out));
    }
    if let Some(Value::Array(devices)) = svc.remove("devices") {
        let mut out = Vec::new();
        for device in devices {
            let entry = match &device {
                Value::Object(long) => {
                    let source = long.get("source").and_then(text).unwrap_or_default();
                    let target = long
                        .get("target")
                        .and_then(text)
                        .unwrap_or_else(|| source.clone());
                    match long.get("permissions").and_then(text) {
                        Some(p) => format!("{source}:{target}:{p}"),
                        None => format!("{source}:{target}"),
                    }
                }
                other => text(other).unwrap_or_default(),
            };
            if !entry.starts_with('/') {
                losses.push(Loss::new(
                    "devices",
                    &format!("`{entry}` is a CDI device name; ballast maps device paths only"),
                ));
                continue;
            }
            out.push(entry);
        }
        spec.insert("devices".into(), json!(out));
    }
    match svc.remove("gpus") {
        Some(Value::Array(requests)) => gpu_requests(&requests, "gpus", spec, losses),
        Some(v) => {
            if let Some(t) = text(&v) {
                spec.insert("gpus".into(), json!(t));
            }
        }
        None => {}
    }
}

/// `configs` and `secrets` with a file source become `files`; compose's default targets
/// (`/NAME`, `/run/secrets/NAME`) and mode (0444) are kept.
pub(crate) fn files(
    ctx: &Context<'_>,
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    let mut out = Vec::new();
    for (key, defs, default_dir) in [
        ("configs", &ctx.model.configs, "/"),
        ("secrets", &ctx.model.secrets, "/run/secrets/"),
    ] {
        let Some(Value::Array(refs)) = svc.remove(key) else {
            continue;
        };
        for r in refs {
            let (source, long) = match &r {
                Value::Object(m) => (m.get("source").and_then(text).unwrap_or_default(), Some(m)),
                other => (text(other).unwrap_or_default(), None),
            };
            let field = format!("{key}.{source}");
            let Some(Value::Object(def)) = defs.get(&source) else {
                losses.push(Loss::new(&field, "not defined under the top-level key"));
                continue;
            };
            let Some(file) = def.get("file").and_then(text) else {
                let what = ["content", "environment", "external"]
                    .into_iter()
                    .find(|k| def.contains_key(*k))
                    .unwrap_or("its source");
                losses.push(Loss::new(
                    &field,
                    &format!("its source is `{what}`; ballast writes files of the repository only (put the content in a file)"),
                ));
                continue;
            };
            let target = long
                .and_then(|m| m.get("target"))
                .and_then(text)
                .unwrap_or_else(|| source.clone());
            let target = if target.starts_with('/') {
                target
            } else {
                format!("{default_dir}{target}")
            };
            let mut entry = Map::new();
            entry.insert(
                "source".into(),
                json!(relative(Path::new(&file), ctx.out_dir)),
            );
            entry.insert("target".into(), json!(target));
            if let Some(m) = long {
                if let Some(mode) = m.get("mode") {
                    let mode = match mode {
                        Value::Number(n) => n.as_u64().map(|n| format!("{n:04o}")),
                        other => text(other),
                    };
                    if let Some(mode) = mode.filter(|m| m != "0444") {
                        entry.insert("mode".into(), json!(mode));
                    }
                }
                for id in ["uid", "gid"] {
                    if let Some(n) = m.get(id).and_then(text).and_then(|t| t.parse::<u32>().ok()) {
                        entry.insert(id.into(), json!(n));
                    }
                }
            }
            out.push(Value::Object(entry));
        }
    }
    if !out.is_empty() {
        spec.insert("files".into(), Value::Array(out));
    }
}
