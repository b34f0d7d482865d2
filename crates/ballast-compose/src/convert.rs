//! One compose service to one App spec. Every key of the service is either carried over with
//! compose's meaning or listed as a [`Loss`] with the reason; nothing is dropped silently.
//! Compose's naming is kept so the App finds what compose made: volumes `PROJECT_NAME`,
//! networks `PROJECT_NAME` (and `PROJECT_default`), the service name as a network alias.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ballast_model::app::dotenv::{parse_env_file, parse_env_file_with};
use serde_json::{Map, Value, json};

use crate::load::{Environment, Model, read_text, scalar_text};
use crate::{Loss, SecretNeeded};

/// What every service's conversion shares.
pub(crate) struct Context<'a> {
    pub project: &'a str,
    pub model: &'a Model,
    pub env: &'a Environment,
    /// Service name → App name, for the services imported.
    pub app_names: &'a HashMap<String, String>,
    pub server: Option<&'a str>,
    /// Where the manifests will be written: `files` and `envFile` paths are relative to it.
    pub out_dir: &'a Path,
    /// Whether this build's App has `wait` (compose's `condition: service_healthy`).
    pub wait_supported: bool,
    /// Services another one waits on to be healthy.
    pub waited_on: &'a HashSet<String>,
    /// Service → aliases other services give it with `links: [svc:alias]`.
    pub link_aliases: &'a HashMap<String, Vec<String>>,
}

/// The result for one service.
pub(crate) struct Converted {
    pub spec: Map<String, Value>,
    pub losses: Vec<Loss>,
    pub notes: Vec<String>,
    pub secrets: Vec<SecretNeeded>,
}

/// Keys ballast has no field for, with why that matters or what to do.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("mac_address", "ballast sets no MAC address"),
    ("ipc", "ballast has no IPC mode"),
    ("pid", "ballast has no PID mode"),
    ("uts", "ballast has no UTS mode"),
    ("userns_mode", "ballast has no user-namespace mode"),
    ("cgroup", "ballast has no cgroup namespace mode"),
    ("cgroup_parent", "ballast has no cgroup parent"),
    ("group_add", "ballast adds no supplementary groups"),
    ("isolation", "ballast has no isolation setting"),
    ("runtime", "ballast has no runtime setting"),
    ("storage_opt", "ballast has no storage options"),
    (
        "volumes_from",
        "ballast mounts no volumes from other containers; name the volumes",
    ),
    (
        "external_links",
        "ballast has no external links; join the other container's network",
    ),
    ("oom_kill_disable", "ballast has no OOM-killer setting"),
    ("oom_score_adj", "ballast has no OOM score"),
    ("mem_swappiness", "ballast has no swappiness setting"),
    (
        "mem_reservation",
        "ballast has no memory reservation (only a limit)",
    ),
    (
        "cpu_shares",
        "ballast has no CPU shares (only a limit, resources.cpus)",
    ),
    (
        "cpu_quota",
        "ballast has no CPU quota (only resources.cpus)",
    ),
    (
        "cpu_period",
        "ballast has no CPU period (only resources.cpus)",
    ),
    ("cpuset", "ballast pins no CPUs"),
    ("cpu_count", "ballast has no CPU count"),
    ("cpu_percent", "ballast has no CPU percent"),
    ("cpu_rt_period", "ballast has no real-time CPU setting"),
    ("cpu_rt_runtime", "ballast has no real-time CPU setting"),
    ("blkio_config", "ballast has no block IO limits"),
    (
        "device_cgroup_rules",
        "ballast has no device cgroup rules (list the devices)",
    ),
    ("credential_spec", "Windows only"),
    ("annotations", "ballast sets no OCI annotations"),
    ("attach", "ballast never attaches to logs"),
    ("develop", "compose watch is a development loop"),
    ("post_start", "ballast runs no lifecycle hooks"),
    ("pre_stop", "ballast runs no lifecycle hooks"),
    (
        "label_file",
        "ballast reads no label files; write the labels",
    ),
    ("dns_opt", "ballast has no resolver options"),
    ("models", "ballast has no model runner"),
    ("provider", "ballast has no service providers"),
    (
        "use_api_socket",
        "ballast gives no engine socket implicitly",
    ),
    ("platform", "ballast pulls the engine's platform"),
];

fn text(v: &Value) -> Option<String> {
    scalar_text(v)
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "TRUE" | "yes" | "1" => Some(true),
            "false" | "False" | "FALSE" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// A path written relative to `base` (both absolute), `./`-prefixed when below it.
pub(crate) fn relative(path: &Path, base: &Path) -> String {
    let path = crate::load::normalize(path);
    let base = crate::load::normalize(base);
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return path.display().to_string();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    let s = out.display().to_string();
    if s.starts_with("..") {
        s
    } else {
        format!("./{s}")
    }
}

/// Whether an environment variable's name says it holds a credential.
pub fn is_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    // `*_FILE` names a file holding the credential (the image's convention), not the value.
    !upper.ends_with("_FILE")
        && ["PASSWORD", "TOKEN", "SECRET", "KEY"]
            .iter()
            .any(|w| upper.contains(w))
}

pub(crate) fn secret_name(app: &str, variable: &str) -> String {
    format!("{app}-{}", variable.to_ascii_lowercase().replace('_', "-"))
}

impl Context<'_> {
    pub(crate) fn volume_name(&self, key: &str, losses: &mut Vec<Loss>) -> String {
        match self.model.volumes.get(key) {
            Some(Value::Object(def)) => {
                for (k, v) in def {
                    if matches!(k.as_str(), "name" | "external") || k.starts_with("x-") {
                        continue;
                    }
                    if k == "driver" && text(v).as_deref() == Some("local") {
                        continue;
                    }
                    losses.push(Loss::new(
                        &format!("volumes.{key}.{k}"),
                        "ballast lets the engine create named volumes with the local driver and no options; create this one by hand first (docker volume create) and it is used as it is",
                    ));
                }
                if let Some(name) = def.get("name").and_then(text) {
                    return name;
                }
                if def.get("external").and_then(as_bool) == Some(true) {
                    return key.to_string();
                }
                format!("{}_{key}", self.project)
            }
            Some(_) => format!("{}_{key}", self.project),
            None => {
                losses.push(Loss::new(
                    &format!("volumes ({key})"),
                    "the volume is not declared under the top-level `volumes:` (compose refuses that); imported as compose would name it",
                ));
                format!("{}_{key}", self.project)
            }
        }
    }

    pub(crate) fn network_name(&self, key: &str, losses: &mut Vec<Loss>) -> String {
        match self.model.networks.get(key) {
            Some(Value::Object(def)) => {
                for (k, v) in def {
                    if matches!(k.as_str(), "name" | "external") || k.starts_with("x-") {
                        continue;
                    }
                    if k == "driver" && text(v).as_deref() == Some("bridge") {
                        continue;
                    }
                    losses.push(Loss::new(
                        &format!("networks.{key}.{k}"),
                        "ballast creates plain bridge networks; create this one by hand first (docker network create) and it is joined as it is",
                    ));
                }
                if let Some(name) = def.get("name").and_then(text) {
                    return name;
                }
                if def.get("external").and_then(as_bool) == Some(true) {
                    return key.to_string();
                }
                format!("{}_{key}", self.project)
            }
            _ => format!("{}_{key}", self.project),
        }
    }

    fn app_of(&self, service: &str) -> Option<&String> {
        self.app_names.get(service)
    }
}

/// Converts one service. `service` is its loaded, normalized model.
pub(crate) fn convert(ctx: &Context<'_>, name: &str, service: &Map<String, Value>) -> Converted {
    let app_name = ctx
        .app_of(name)
        .cloned()
        .unwrap_or_else(|| name.to_string());
    let mut svc = service.clone();
    let mut out = Converted {
        spec: Map::new(),
        losses: Vec::new(),
        notes: Vec::new(),
        secrets: Vec::new(),
    };
    let spec = &mut out.spec;
    let losses = &mut out.losses;
    // Keys handled elsewhere or with no effect on the container.
    for key in ["container_name", "profiles", "extends", "scale"] {
        if key == "scale"
            && let Some(n) = svc.get("scale").and_then(text)
            && n != "1"
        {
            losses.push(Loss::new(
                "scale",
                "ballast runs one container per App; make one App per replica",
            ));
        }
        svc.remove(key);
    }
    if svc.remove("build").is_some() {
        losses.push(Loss::new(
            "build",
            "ballast deploys images and builds none: build this one in CI, push it to a registry and set `image`",
        ));
    }
    if let Some(server) = ctx.server {
        spec.insert("server".into(), json!(server));
    }
    if let Some(image) = svc.remove("image").and_then(|v| text(&v)) {
        spec.insert("image".into(), json!(image));
    }
    if let Some(policy) = svc.remove("pull_policy").and_then(|v| text(&v)) {
        match policy.as_str() {
            "always" => {
                spec.insert("pullPolicy".into(), json!("Always"));
            }
            "never" => {
                spec.insert("pullPolicy".into(), json!("Never"));
            }
            "missing" | "if_not_present" => {}
            other => losses.push(Loss::new(
                "pull_policy",
                &format!("`{other}` has no ballast equivalent (Always, IfNotPresent, Never); IfNotPresent is used"),
            )),
        }
    }
    for (key, field) in [("command", "command"), ("entrypoint", "entrypoint")] {
        match svc.remove(key) {
            Some(Value::Array(items)) if items.is_empty() => losses.push(Loss::new(
                key,
                "an empty list resets the image's value, which ballast cannot express",
            )),
            Some(Value::Array(items)) => {
                spec.insert(
                    field.into(),
                    Value::Array(items.iter().filter_map(text).map(Value::String).collect()),
                );
            }
            Some(v @ (Value::String(_) | Value::Number(_))) => {
                spec.insert(field.into(), json!(text(&v)));
            }
            _ => {}
        }
    }
    crate::convert_env::environment(ctx, &app_name, &mut svc, &mut out);
    let spec = &mut out.spec;
    let losses = &mut out.losses;
    crate::convert_net::ports_volumes_networks(ctx, name, &mut svc, spec, losses, &mut out.notes);
    restart(&mut svc, spec, losses);
    if let Some(Value::Object(labels)) = svc.remove("labels") {
        let mut map = Map::new();
        for (k, v) in labels {
            if k.starts_with("ballast.") {
                losses.push(Loss::new(
                    &format!("labels.{k}"),
                    "keys starting with `ballast.` are ballast's own",
                ));
                continue;
            }
            map.insert(k, json!(text(&v).unwrap_or_default()));
        }
        if !map.is_empty() {
            spec.insert("labels".into(), Value::Object(map));
        }
    }
    healthcheck(&mut svc, spec, losses);
    for (key, field) in [("user", "user"), ("working_dir", "workingDir")] {
        if let Some(v) = svc.remove(key).and_then(|v| text(&v)) {
            spec.insert(field.into(), json!(v));
        }
    }
    if let Some(b) = svc.remove("init").and_then(|v| as_bool(&v)) {
        spec.insert("init".into(), json!(b));
    }
    if let Some(v) = svc.remove("stop_signal").and_then(|v| text(&v)) {
        spec.insert("stopSignal".into(), json!(v));
    }
    if let Some(v) = svc.remove("stop_grace_period").and_then(|v| text(&v)) {
        match ballast_model::app::parse_stop_grace_period(&v) {
            Ok(_) => {
                spec.insert("stopGracePeriod".into(), json!(v));
            }
            Err(why) => losses.push(Loss::new("stop_grace_period", &why)),
        }
    }
    crate::convert_env::resources(&mut svc, spec, losses);
    crate::convert_net::dependencies(ctx, name, &mut svc, spec, losses);
    if ctx.waited_on.contains(name) && ctx.wait_supported {
        spec.insert("wait".into(), json!("healthy"));
    }
    for (key, field) in [("hostname", "hostname"), ("domainname", "domainname")] {
        if let Some(v) = svc.remove(key).and_then(|v| text(&v)) {
            spec.insert(field.into(), json!(v));
        }
    }
    if let Some(v) = svc.remove("expose") {
        let items = strings(&v);
        if !items.is_empty() {
            spec.insert("expose".into(), json!(items));
        }
    }
    if let Some(files) = out.spec.remove("#envFile") {
        out.spec.insert("envFile".into(), files);
    }
    let spec = &mut out.spec;
    let losses = &mut out.losses;
    for (key, field) in [("cap_add", "capAdd"), ("cap_drop", "capDrop")] {
        if let Some(v) = svc.remove(key) {
            spec.insert(field.into(), json!(strings(&v)));
        }
    }
    if let Some(v) = svc.remove("security_opt") {
        let mut kept = Vec::new();
        for opt in strings(&v) {
            match ballast_model::app::fields::check_security_opt(&opt) {
                Ok(()) => kept.push(opt),
                Err(why) => losses.push(Loss::new("security_opt", &why)),
            }
        }
        if !kept.is_empty() {
            spec.insert("securityOpt".into(), json!(kept));
        }
    }
    for (key, field) in [("read_only", "readOnly")] {
        if let Some(true) = svc.remove(key).and_then(|v| as_bool(&v)) {
            spec.insert(field.into(), json!(true));
        }
    }
    crate::convert_net::network_mode_and_aliases(ctx, name, &app_name, &mut svc, spec, losses);
    crate::convert_env::host_settings(&mut svc, spec, losses);
    for (key, field) in [("privileged", "privileged")] {
        if let Some(true) = svc.remove(key).and_then(|v| as_bool(&v)) {
            spec.insert(field.into(), json!(true));
        }
    }
    if let Some(v) = svc.remove("shm_size").and_then(|v| text(&v)) {
        spec.insert("shmSize".into(), json!(v));
    }
    for (key, field) in [("stdin_open", "stdinOpen"), ("tty", "tty")] {
        if let Some(true) = svc.remove(key).and_then(|v| as_bool(&v)) {
            spec.insert(field.into(), json!(true));
        }
    }
    crate::convert_env::files(ctx, &mut svc, spec, losses);
    for (key, _) in svc {
        if key.starts_with("x-") {
            continue;
        }
        let reason = UNSUPPORTED
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("ballast has no field for it", |(_, why)| why);
        out.losses.push(Loss::new(&key, reason));
    }
    out
}

fn restart(svc: &mut Map<String, Value>, spec: &mut Map<String, Value>, losses: &mut Vec<Loss>) {
    let value = match svc.remove("restart") {
        Some(Value::Bool(false)) => Some("no".to_string()),
        Some(v) => text(&v),
        None => None,
    };
    if let Some(policy) = value {
        match ballast_model::app::RestartPolicy::parse(&policy) {
            Ok(_) => {
                spec.insert("restart".into(), json!(policy));
            }
            Err(why) => losses.push(Loss::new("restart", &why)),
        }
    }
}

fn healthcheck(
    svc: &mut Map<String, Value>,
    spec: &mut Map<String, Value>,
    losses: &mut Vec<Loss>,
) {
    let Some(Value::Object(mut hc)) = svc.remove("healthcheck") else {
        return;
    };
    let mut out = Map::new();
    let disable = hc.remove("disable").and_then(|v| as_bool(&v));
    if hc.is_empty() && disable != Some(true) {
        // `disable: false` alone (or nothing): the image's own check, as without the key.
        return;
    }
    if disable == Some(true) {
        out.insert("test".into(), json!(["NONE"]));
        hc.remove("test");
    }
    match hc.remove("test") {
        Some(Value::Array(items)) => {
            let items: Vec<String> = items.iter().filter_map(text).collect();
            // `[CMD-SHELL, line]` is ballast's string form.
            if items.len() == 2 && items[0] == "CMD-SHELL" {
                out.insert("test".into(), json!(items[1]));
            } else {
                out.insert("test".into(), json!(items));
            }
        }
        Some(v) => {
            if let Some(t) = text(&v) {
                out.insert("test".into(), json!(t));
            }
        }
        None => {}
    }
    if !out.contains_key("test") {
        losses.push(Loss::new(
            "healthcheck",
            "a healthcheck without `test` tunes the image's own check, which ballast cannot express; write the test",
        ));
        return;
    }
    for (key, field) in [
        ("interval", "interval"),
        ("timeout", "timeout"),
        ("start_period", "startPeriod"),
    ] {
        if let Some(v) = hc.remove(key).and_then(|v| text(&v)) {
            out.insert(field.into(), json!(v));
        }
    }
    if let Some(v) = hc
        .remove("retries")
        .and_then(|v| text(&v))
        .and_then(|t| t.parse::<u32>().ok())
    {
        out.insert("retries".into(), json!(v));
    }
    for (key, _) in hc {
        losses.push(Loss::new(
            &format!("healthcheck.{key}"),
            "ballast's healthcheck has no such setting",
        ));
    }
    spec.insert("healthcheck".into(), Value::Object(out));
}

/// An env file's variables as compose resolves them, and whether ballast reads it the same
/// without the environment (so `envFile` can name it).
pub(crate) fn read_env_file(
    path: &Path,
    env: &Environment,
) -> Result<(Vec<(String, String)>, bool), String> {
    let text = read_text(path).map_err(|e| e.to_string())?;
    let resolved =
        parse_env_file_with(&text, env).map_err(|e| format!("{}:{e}", path.display()))?;
    let same = parse_env_file(&text).is_ok_and(|strict| strict == resolved);
    Ok((resolved, same))
}
