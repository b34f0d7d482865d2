//! `ballast import compose`: docker compose files in, one App manifest per service out.
//!
//! The compose files are read as the compose specification defines them ([`load`]: `.env` and
//! `${VAR:-default}` interpolation, `env_file`, `include`, `profiles`, `extends`, YAML anchors
//! and merge keys, the list and map form of every field, several files merged in order). Each
//! service is converted with compose's meaning ([`convert`]); what ballast cannot express
//! (`build:` first of all) is listed per service with the reason, never dropped silently.
//! Environment values that look like credentials become `secretRef`s, and the
//! `ballast secret set` commands to run are listed, without the values.
//!
//! Everything here reads files and returns text; writing the manifests and printing is the
//! CLI's job.

mod convert;
mod convert_env;
mod convert_net;
pub mod load;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

pub use convert::is_credential;
use load::{Environment, Model, load_file, merge_models, scalar_text};

/// Why an import could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}: {field}: {message}", path.display())]
    Interpolation {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{}: {what} forms a cycle", path.display())]
    Cycle { path: PathBuf, what: String },
    #[error("no compose file given")]
    NoFile,
}

/// Something of a service ballast could not express, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The compose key, e.g. `build`, `ports (3000)`, `networks.front.ipv4_address`.
    pub field: String,
    pub reason: String,
}

impl Loss {
    pub fn new(field: &str, reason: &str) -> Loss {
        Loss {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A secret the imported apps refer to, to be stored with `ballast secret set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNeeded {
    pub name: String,
    /// The environment variable it fills.
    pub variable: String,
    pub app: String,
}

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The compose files, merged in order (as `docker compose -f a -f b`).
    pub files: Vec<PathBuf>,
    /// `-p`; else `COMPOSE_PROJECT_NAME`, the files' `name:`, or the project directory's name.
    pub project_name: Option<String>,
    /// Profiles to enable, besides `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// The Server the apps run on (`spec.server`); none for this machine's engine.
    pub server: Option<String>,
    /// The directory the manifests are written to (absolute): paths are relative to it.
    pub out_dir: PathBuf,
    /// The environment compose would run in.
    pub env: HashMap<String, String>,
}

/// One imported service.
#[derive(Debug, Clone)]
pub struct ImportedApp {
    pub service: String,
    /// The App's name (and container name).
    pub name: String,
    /// The manifest, as YAML text (with a comment naming what was not imported).
    pub manifest: String,
    pub losses: Vec<Loss>,
    pub notes: Vec<String>,
    pub secrets: Vec<SecretNeeded>,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Import {
    pub project: String,
    pub apps: Vec<ImportedApp>,
    /// Services not imported (a profile not enabled), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Services that could not be imported at all (no image), with the reason.
    pub refused: Vec<(String, Vec<Loss>)>,
    /// Top-level settings ballast does not read.
    pub ignored: Vec<String>,
}

impl Import {
    /// Whether every service was imported with nothing lost.
    pub fn is_lossless(&self) -> bool {
        self.refused.is_empty()
            && self.ignored.is_empty()
            && self.apps.iter().all(|a| a.losses.is_empty())
    }

    /// The `ballast secret set` commands to run, one per secret (values are never shown).
    pub fn secret_commands(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.apps
            .iter()
            .flat_map(|a| &a.secrets)
            .filter(|s| seen.insert(s.name.clone()))
            .map(|s| {
                format!(
                    "ballast secret set {}   # {} of app {}",
                    s.name, s.variable, s.app
                )
            })
            .collect()
    }
}

/// A compose project name made of what compose allows: lower-case letters, digits, `-`, `_`.
fn project_name(text: &str) -> String {
    let name: String = text
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    name.trim_start_matches(['-', '_']).to_string()
}

/// A DNS-1123 label (the App name rule) from any text.
pub fn app_name(text: &str) -> String {
    let mut name: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    name[..name.len().min(63)].trim_end_matches('-').to_string()
}

/// Whether this build's App has the `wait` field (compose's `condition: service_healthy`):
/// read from the App's schema, so the import writes `wait: healthy` as soon as the field
/// exists and lists it as not imported until then.
fn wait_supported() -> bool {
    serde_json::to_value(schemars::schema_for!(ballast_model::AppSpec))
        .ok()
        .and_then(|schema| schema.get("properties")?.get("wait").cloned())
        .is_some()
}

/// Reads the compose files and converts every active service.
pub fn import(options: &ImportOptions) -> Result<Import, ImportError> {
    let first = options.files.first().ok_or(ImportError::NoFile)?;
    let project_dir = load::normalize(
        &std::path::absolute(first)
            .unwrap_or_else(|_| first.clone())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    );
    let env = Environment::for_dir(options.env.clone(), &project_dir)?;
    let mut model = Model::default();
    for file in &options.files {
        let loaded = load_file(file, &project_dir, &env, &mut Vec::new())?;
        model = merge_models(model, loaded);
    }
    use ballast_model::app::dotenv::Lookup;
    let project = options
        .project_name
        .clone()
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()))
        .or_else(|| model.name.clone())
        .unwrap_or_else(|| {
            project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into())
        });
    let project = project_name(&project);
    let mut profiles: HashSet<String> = options.profiles.iter().cloned().collect();
    if let Some(list) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    let mut skipped = Vec::new();
    let mut active: Vec<(String, Map<String, Value>)> = Vec::new();
    for (name, service) in &model.services {
        let Value::Object(service) = service else {
            continue;
        };
        let wanted: Vec<String> = service
            .get("profiles")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(scalar_text).collect())
            .unwrap_or_default();
        if !wanted.is_empty()
            && !wanted
                .iter()
                .any(|p| profiles.contains(p) || profiles.contains("*"))
        {
            skipped.push((
                name.clone(),
                format!(
                    "its profiles ({}) are not enabled; pass --profile or set COMPOSE_PROFILES",
                    wanted.join(", ")
                ),
            ));
            continue;
        }
        active.push((name.clone(), service.clone()));
    }
    let mut app_names = HashMap::new();
    for (name, service) in &active {
        let app = match service.get("container_name").and_then(scalar_text) {
            Some(container) => app_name(&container),
            None => app_name(&format!("{project}-{name}")),
        };
        app_names.insert(name.clone(), app);
    }
    let mut waited_on = HashSet::new();
    let mut link_aliases: HashMap<String, Vec<String>> = HashMap::new();
    for (_, service) in &active {
        if let Some(Value::Object(deps)) = service.get("depends_on") {
            for (dep, settings) in deps {
                if settings.get("condition").and_then(Value::as_str) == Some("service_healthy") {
                    waited_on.insert(dep.clone());
                }
            }
        }
        for link in service
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some((svc, alias)) = scalar_text(link).as_deref().and_then(|l| l.split_once(':'))
            {
                link_aliases
                    .entry(svc.to_string())
                    .or_default()
                    .push(alias.to_string());
            }
        }
    }
    let ctx = convert::Context {
        project: &project,
        model: &model,
        env: &env,
        app_names: &app_names,
        server: options.server.as_deref(),
        out_dir: &options.out_dir,
        wait_supported: wait_supported(),
        waited_on: &waited_on,
        link_aliases: &link_aliases,
    };
    let mut apps = Vec::new();
    let mut refused = Vec::new();
    for (name, service) in &active {
        let mut converted = convert::convert(&ctx, name, service);
        converted.spec.retain(|k, _| !k.starts_with('#'));
        if !converted.spec.contains_key("image") {
            let mut losses = converted.losses;
            losses.push(Loss::new(
                "image",
                "the service has no image, so there is nothing for ballast to run",
            ));
            refused.push((name.clone(), losses));
            continue;
        }
        let app = app_names[name].clone();
        let manifest = render(&project, name, &app, &converted, &options.files);
        apps.push(ImportedApp {
            service: name.clone(),
            name: app,
            manifest,
            losses: converted.losses,
            notes: converted.notes,
            secrets: converted.secrets,
        });
    }
    check_manifests(&mut apps, options.server.is_some());
    Ok(Import {
        project,
        apps,
        skipped,
        refused,
        ignored: model.ignored,
    })
}

/// The manifest of one app: a header naming its origin and what was not imported, then the
/// document.
fn render(
    project: &str,
    service: &str,
    app: &str,
    converted: &convert::Converted,
    files: &[PathBuf],
) -> String {
    let document = json!({
        "apiVersion": ballast_model::API_VERSION,
        "kind": "App",
        "metadata": {"name": app},
        "spec": Value::Object(converted.spec.clone()),
    });
    let sources: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let mut out = format!(
        "# Imported by `ballast import compose` from {}: service `{service}` of project `{project}`.\n",
        sources.join(", ")
    );
    if !converted.losses.is_empty() {
        out.push_str("# Not imported (ballast cannot express it):\n");
        for loss in &converted.losses {
            out.push_str(&format!("#   {loss}\n"));
        }
    }
    for note in &converted.notes {
        out.push_str(&format!("# Note: {note}\n"));
    }
    if !converted.secrets.is_empty() {
        out.push_str("# Secrets to store before applying (values are not shown):\n");
        for s in &converted.secrets {
            out.push_str(&format!("#   ballast secret set {}\n", s.name));
        }
    }
    out.push_str(&serde_saphyr::to_string(&document).unwrap_or_default());
    out
}

/// Validates the manifests as ballast would (each on its own, then together), and lists any
/// problem as a loss of the app it is in: a compose value ballast refuses (a capability it
/// does not know, a size it cannot read) is named, never written silently.
fn check_manifests(apps: &mut [ImportedApp], remote_server: bool) {
    let mut resources = Vec::new();
    let mut diagnostics = ballast_model::Diagnostics::default();
    for app in apps.iter() {
        let (parsed, problems) =
            ballast_model::parse_source(Path::new(&format!("{}.yaml", app.name)), &app.manifest);
        resources.extend(parsed);
        diagnostics.0.extend(problems);
    }
    if let Err(found) = ballast_model::validate_set(resources, diagnostics) {
        for d in found.iter() {
            // The Server named by --server is in the user's manifests, not in the import.
            if remote_server && d.field == "spec.server" {
                continue;
            }
            let file = d.pos.file.display().to_string();
            if let Some(app) = apps.iter_mut().find(|a| file == format!("{}.yaml", a.name)) {
                let loss = Loss::new(
                    &d.field,
                    &format!("ballast refuses the value: {}", d.message),
                );
                let header_end = app.manifest.find('\n').map_or(0, |i| i + 1);
                app.manifest
                    .insert_str(header_end, &format!("# Does not validate: {loss}\n"));
                app.losses.push(loss);
            }
        }
    }
}
