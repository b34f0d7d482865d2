//! Reading a compose project as the compose specification defines it: the YAML of each file
//! (anchors, aliases and `<<` merge keys resolved by the parser), `${VAR:-default}`
//! interpolation from the environment and the project's `.env`, relative paths made absolute
//! against the file that wrote them, `include`, `extends`, and several files merged in order
//! with compose's rules. The result is one model of plain JSON values, every service in one
//! canonical shape (maps for `environment`, `labels`, `depends_on`, `networks`…; lists for
//! `dns`, `tmpfs`, `env_file`…), ready for [`crate::convert`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ballast_model::app::dotenv::{Lookup, parse_env_file_with, substitute};
use serde_json::{Map, Value};

use crate::ImportError;

/// The variables interpolation sees: the process environment first, then the project's `.env`,
/// as compose resolves them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub process: HashMap<String, String>,
    pub dotenv: Vec<(String, String)>,
}

impl Lookup for Environment {
    fn get(&self, name: &str) -> Option<String> {
        self.process.get(name).cloned().or_else(|| {
            self.dotenv
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }
    fn strict(&self) -> bool {
        false
    }
}

impl Environment {
    /// The process environment and the `.env` of `dir` (when there is one).
    pub fn for_dir(process: HashMap<String, String>, dir: &Path) -> Result<Self, ImportError> {
        let mut env = Environment {
            process,
            dotenv: Vec::new(),
        };
        let path = dir.join(".env");
        if path.is_file() {
            let text = read_text(&path)?;
            env.dotenv = parse_env_file_with(&text, &env).map_err(|e| ImportError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(env)
    }
}

/// A project's model after loading.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// `name:` of the first file that sets one.
    pub name: Option<String>,
    pub services: Map<String, Value>,
    pub networks: Map<String, Value>,
    pub volumes: Map<String, Value>,
    pub configs: Map<String, Value>,
    pub secrets: Map<String, Value>,
    /// Top-level keys ballast does not read (`models`, …), with the file naming them.
    pub ignored: Vec<String>,
}

pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|e| ImportError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Parses YAML as compose-go's YAML 1.2 reader does: `yes`/`on` are text, `0440` is octal.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Value, ImportError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: true,
    };
    let value: Value =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| ImportError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    })
}

/// Interpolates every string value (not keys) of `value`.
fn interpolate(
    value: &mut Value,
    env: &Environment,
    file: &Path,
    at: &str,
) -> Result<(), ImportError> {
    match value {
        Value::String(text) if text.contains('$') => {
            *text = substitute(text, env).map_err(|e| ImportError::Interpolation {
                path: file.to_path_buf(),
                field: at.to_string(),
                message: e.message,
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, env, file, &format!("{at}[{i}]"))?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                // Extension fields hold templates of their own (anchors); compose leaves them.
                if key.starts_with("x-") {
                    continue;
                }
                let next = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                interpolate(item, env, file, &next)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Text of a scalar as compose reads it into a string field.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `~/x` against `$HOME`, `x` against `dir`; absolute paths as they are.
pub fn absolute(dir: &Path, path: &str, env: &Environment) -> String {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = env.process.get("HOME") {
            return Path::new(home).join(rest).display().to_string();
        }
        return path.to_string();
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return path.to_string();
    }
    let joined = dir.join(p);
    normalize(&joined).display().to_string()
}

/// Removes `.` and resolves `..` textually, as compose does for its paths.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Makes the relative paths a service writes absolute against `dir`: env files, bind-mount
/// sources, an `extends` file, a build context.
fn resolve_service_paths(service: &mut Map<String, Value>, dir: &Path, env: &Environment) {
    if let Some(Value::Array(files)) = service.get_mut("env_file") {
        for file in files {
            if let Some(Value::String(path)) = file.get_mut("path") {
                *path = absolute(dir, path, env);
            }
        }
    }
    if let Some(Value::Array(volumes)) = service.get_mut("volumes") {
        for volume in volumes {
            match volume {
                Value::String(text) => {
                    if let Some((source, rest)) = text.split_once(':')
                        && (source.starts_with('.') || source.starts_with('~'))
                    {
                        *text = format!("{}:{rest}", absolute(dir, source, env));
                    }
                }
                Value::Object(long) => {
                    let is_bind = long.get("type").and_then(Value::as_str) == Some("bind");
                    if is_bind && let Some(Value::String(source)) = long.get_mut("source") {
                        *source = absolute(dir, source, env);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Object(extends)) = service.get_mut("extends")
        && let Some(Value::String(file)) = extends.get_mut("file")
    {
        *file = absolute(dir, file, env);
    }
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// `["K=V", "K"]` or `{K: V}` as a map (`K` alone is null: taken from the environment).
fn as_map(value: Value, separator: char) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| scalar_text(&item))
            .map(|text| match text.split_once(separator) {
                Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                None => (text, Value::Null),
            })
            .collect(),
        _ => Map::new(),
    }
}

/// Brings a service's fields that compose accepts in several shapes into one.
pub fn normalize_service(service: &mut Map<String, Value>) {
    for key in ["environment", "labels", "sysctls", "annotations"] {
        if let Some(v) = service.remove(key) {
            service.insert(key.into(), Value::Object(as_map(v, '=')));
        }
    }
    if let Some(v) = service.remove("extra_hosts") {
        let map = match v {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                for item in as_list(other) {
                    let Some(text) = scalar_text(&item) else {
                        continue;
                    };
                    let (host, ip) = text
                        .split_once('=')
                        .or_else(|| text.split_once(':'))
                        .unwrap_or((text.as_str(), ""));
                    map.insert(host.to_string(), Value::String(ip.to_string()));
                }
                map
            }
        };
        service.insert("extra_hosts".into(), Value::Object(map));
    }
    for key in [
        "dns",
        "dns_search",
        "dns_opt",
        "tmpfs",
        "expose",
        "cap_add",
        "cap_drop",
        "security_opt",
        "profiles",
        "devices",
        "links",
        "external_links",
        "group_add",
        "volumes_from",
    ] {
        if let Some(v) = service.remove(key) {
            let items = as_list(v)
                .into_iter()
                .map(|i| scalar_text(&i).map(Value::String).unwrap_or(i))
                .collect();
            service.insert(key.into(), Value::Array(items));
        }
    }
    if let Some(v) = service.remove("env_file") {
        let entries = as_list(v)
            .into_iter()
            .map(|entry| match entry {
                Value::String(path) => {
                    serde_json::json!({"path": path, "required": true})
                }
                other => other,
            })
            .collect();
        service.insert("env_file".into(), Value::Array(entries));
    }
    if let Some(v) = service.remove("depends_on") {
        let map: Map<String, Value> = match v {
            Value::Object(map) => map,
            other => as_list(other)
                .into_iter()
                .filter_map(|i| scalar_text(&i))
                .map(|name| {
                    (
                        name,
                        serde_json::json!({"condition": "service_started", "required": true}),
                    )
                })
                .collect(),
        };
        service.insert("depends_on".into(), Value::Object(map));
    }
    if let Some(v) = service.remove("networks") {
        let map: Map<String, Value> = match v {
            Value::Object(map) => map,
            other => as_list(other)
                .into_iter()
                .filter_map(|i| scalar_text(&i))
                .map(|name| (name, Value::Null))
                .collect(),
        };
        service.insert("networks".into(), Value::Object(map));
    }
    if let Some(Value::String(name)) = service.get("extends") {
        let name = name.clone();
        service.insert("extends".into(), serde_json::json!({"service": name}));
    }
}

/// The target path of a `volumes` entry, to merge overrides by mount point.
fn volume_target(volume: &Value) -> Option<String> {
    match volume {
        Value::String(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [target] => Some(target.to_string()),
                [_, target, ..] => Some(target.to_string()),
                _ => None,
            }
        }
        Value::Object(map) => map.get("target").and_then(scalar_text),
        _ => None,
    }
}

/// Merges `over` onto `base` with compose's rules: mappings merge key by key, sequences
/// append (volumes replace by mount point, other duplicates dropped), scalars override;
/// `command`, `entrypoint` and `healthcheck.test` are replaced whole, `logging` replaced when
/// the driver changes.
pub fn merge(base: Value, over: Value, path: &str) -> Value {
    let replaced_whole = matches!(path, "command" | "entrypoint" | "healthcheck.test")
        || path.starts_with("ulimits.");
    if replaced_whole {
        return over;
    }
    // An empty override (`networks: {front: }`) keeps what was there, as compose-go does.
    if over.is_null() {
        return base;
    }
    match (base, over) {
        (Value::Object(mut base), Value::Object(over)) => {
            if path == "logging"
                && over.get("driver").is_some()
                && over.get("driver") != base.get("driver")
            {
                return Value::Object(over);
            }
            for (key, value) in over {
                let next = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let merged = match base.remove(&key) {
                    Some(existing) => merge(existing, value, &next),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Object(base)
        }
        (Value::Array(mut base), Value::Array(over)) => {
            if path == "volumes" {
                for item in over {
                    let target = volume_target(&item);
                    base.retain(|b| target.is_none() || volume_target(b) != target);
                    base.push(item);
                }
            } else {
                for item in over {
                    if !base.contains(&item) {
                        base.push(item);
                    }
                }
            }
            Value::Array(base)
        }
        (_, over) => over,
    }
}

/// Loads one compose file with its includes and `extends` resolved. `dir` is where its
/// relative paths point (the project directory for the files given on the command line, the
/// file's own directory for an include or an extended file).
pub fn load_file(
    path: &Path,
    dir: &Path,
    env: &Environment,
    stack: &mut Vec<PathBuf>,
) -> Result<Model, ImportError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canonical) {
        return Err(ImportError::Cycle {
            path: path.to_path_buf(),
            what: "include".into(),
        });
    }
    stack.push(canonical);
    let text = read_text(path)?;
    let mut top = match parse_yaml(path, &text)? {
        Value::Object(map) => map,
        _ => {
            return Err(ImportError::File {
                path: path.to_path_buf(),
                message: "a compose file is a mapping with `services:`".into(),
            });
        }
    };
    let mut model = Model::default();
    let includes = top.remove("include");
    let mut root = Value::Object(top);
    interpolate(&mut root, env, path, "")?;
    let Value::Object(mut top) = root else {
        return Err(ImportError::File {
            path: path.to_path_buf(),
            message: "a compose file is a mapping".into(),
        });
    };
    model.name = top.remove("name").and_then(|n| scalar_text(&n));
    for (key, value) in top {
        let section = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ if key == "version" || key.starts_with("x-") => continue,
            _ => {
                return Err(ImportError::File {
                    path: path.to_path_buf(),
                    message: format!("`{key}` must be a mapping"),
                });
            }
        };
        match key.as_str() {
            "services" => model.services = section,
            "networks" => model.networks = section,
            "volumes" => model.volumes = section,
            "configs" => model.configs = section,
            "secrets" => model.secrets = section,
            k if k.starts_with("x-") || k == "version" => {}
            other => model.ignored.push(format!(
                "top-level `{other}` in {}: ballast has no equivalent",
                path.display()
            )),
        }
    }
    for (key, section) in [
        ("configs", &mut model.configs),
        ("secrets", &mut model.secrets),
    ] {
        for (name, def) in section.iter_mut() {
            if let Some(Value::String(file)) = def.get_mut("file") {
                *file = absolute(dir, file, env);
            } else if def.is_null() {
                return Err(ImportError::File {
                    path: path.to_path_buf(),
                    message: format!("{key}.{name} has no definition"),
                });
            }
        }
    }
    for (_, service) in model.services.iter_mut() {
        if service.is_null() {
            *service = Value::Object(Map::new());
        }
        if let Value::Object(map) = service {
            normalize_service(map);
            resolve_service_paths(map, dir, env);
        }
    }
    resolve_all_extends(&mut model, path, env)?;
    if let Some(includes) = includes {
        for entry in as_list(includes) {
            load_include(&mut model, entry, path, dir, env, stack)?;
        }
    }
    stack.pop();
    Ok(model)
}

fn load_include(
    model: &mut Model,
    entry: Value,
    from: &Path,
    dir: &Path,
    env: &Environment,
    stack: &mut Vec<PathBuf>,
) -> Result<(), ImportError> {
    let (paths, project_dir) = match &entry {
        Value::String(p) => (vec![p.clone()], None),
        Value::Object(map) => (
            as_list(map.get("path").cloned().unwrap_or(Value::Null))
                .iter()
                .filter_map(scalar_text)
                .collect(),
            map.get("project_directory").and_then(scalar_text),
        ),
        _ => (Vec::new(), None),
    };
    if paths.is_empty() {
        return Err(ImportError::File {
            path: from.to_path_buf(),
            message: "an `include` entry names no file".into(),
        });
    }
    let files: Vec<PathBuf> = paths
        .iter()
        .map(|p| PathBuf::from(absolute(dir, p, env)))
        .collect();
    let include_dir = match project_dir {
        Some(d) => PathBuf::from(absolute(dir, &d, env)),
        None => files[0].parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let include_env = Environment::for_dir(env.process.clone(), &include_dir)?;
    let mut included = Model::default();
    for file in &files {
        let loaded = load_file(file, &include_dir, &include_env, stack)?;
        included = merge_models(included, loaded);
    }
    for (name, service) in included.services {
        if model.services.contains_key(&name) {
            return Err(ImportError::File {
                path: from.to_path_buf(),
                message: format!(
                    "service `{name}` is defined here and in the included {}; compose refuses the conflict",
                    files[0].display()
                ),
            });
        }
        model.services.insert(name, service);
    }
    for (ours, theirs) in [
        (&mut model.networks, included.networks),
        (&mut model.volumes, included.volumes),
        (&mut model.configs, included.configs),
        (&mut model.secrets, included.secrets),
    ] {
        for (name, def) in theirs {
            ours.entry(name).or_insert(def);
        }
    }
    model.ignored.extend(included.ignored);
    Ok(())
}

fn resolve_all_extends(
    model: &mut Model,
    path: &Path,
    env: &Environment,
) -> Result<(), ImportError> {
    let names: Vec<String> = model.services.keys().cloned().collect();
    let mut done: HashMap<String, Value> = HashMap::new();
    for name in &names {
        let resolved =
            resolve_extends(&model.services, name, path, env, &mut Vec::new(), &mut done)?;
        model.services.insert(name.clone(), resolved);
    }
    Ok(())
}

fn resolve_extends(
    services: &Map<String, Value>,
    name: &str,
    path: &Path,
    env: &Environment,
    stack: &mut Vec<String>,
    done: &mut HashMap<String, Value>,
) -> Result<Value, ImportError> {
    let key = format!("{}#{name}", path.display());
    if let Some(v) = done.get(&key) {
        return Ok(v.clone());
    }
    if stack.contains(&key) {
        return Err(ImportError::Cycle {
            path: path.to_path_buf(),
            what: format!("extends of service `{name}`"),
        });
    }
    let mut service = services
        .get(name)
        .cloned()
        .ok_or_else(|| ImportError::File {
            path: path.to_path_buf(),
            message: format!("`extends` names service `{name}`, which this file does not define"),
        })?;
    let Some(Value::Object(extends)) = service.as_object_mut().and_then(|m| m.remove("extends"))
    else {
        done.insert(key, service.clone());
        return Ok(service);
    };
    stack.push(key.clone());
    let base_name = extends
        .get("service")
        .and_then(scalar_text)
        .ok_or_else(|| ImportError::File {
            path: path.to_path_buf(),
            message: format!("service `{name}`: `extends` needs `service`"),
        })?;
    let base = match extends.get("file").and_then(scalar_text) {
        Some(file) => {
            let file = PathBuf::from(file);
            let file_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let other = load_file(&file, &file_dir, env, &mut Vec::new())?;
            other
                .services
                .get(&base_name)
                .cloned()
                .ok_or_else(|| ImportError::File {
                    path: file.clone(),
                    message: format!(
                        "`extends` names service `{base_name}`, which this file does not define"
                    ),
                })?
        }
        None => resolve_extends(services, &base_name, path, env, stack, done)?,
    };
    stack.pop();
    let merged = merge(base, service, "");
    done.insert(key, merged.clone());
    Ok(merged)
}

/// Merges a later file's model onto an earlier one (`-f a.yaml -f b.yaml`).
pub fn merge_models(base: Model, over: Model) -> Model {
    let merge_section = |a: Map<String, Value>, b: Map<String, Value>| -> Map<String, Value> {
        match merge(Value::Object(a), Value::Object(b), "#section") {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    };
    let mut services = base.services;
    for (name, service) in over.services {
        let merged = match services.remove(&name) {
            Some(existing) => merge(existing, service, ""),
            None => service,
        };
        services.insert(name, merged);
    }
    let mut ignored = base.ignored;
    ignored.extend(over.ignored);
    Model {
        name: base.name.or(over.name),
        services,
        networks: merge_section(base.networks, over.networks),
        volumes: merge_section(base.volumes, over.volumes),
        configs: merge_section(base.configs, over.configs),
        secrets: merge_section(base.secrets, over.secrets),
        ignored,
    }
}
