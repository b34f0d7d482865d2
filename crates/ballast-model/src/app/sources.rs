//! Files an App takes from next to its manifest: `files` (put into the container before it
//! starts, compose's `configs` with a file source) and `envFile` (compose's `env_file`).
//!
//! Their content is read when the manifests are loaded ([`load_sources`], called by
//! `load_dir`), within the model's size limits, and its SHA-256 is written into the spec
//! (`sha256`), so the spec hash changes when a file changes and the app is recreated, as an
//! edited image tag would. The content itself never enters the spec, its JSON, a label, a diff
//! or a log (a config file or an env file may hold credentials): it travels beside the spec in
//! memory ([`FileContent`], [`EnvVars`], whose `Debug` shows sizes and names only) to the Docker
//! controller, which sends it to the engine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::app::dotenv::parse_env_file;
use crate::diagnostic::Diagnostics;
use crate::limits::{MAX_FILE_BYTES, MAX_SCALAR_BYTES, MAX_SET_BYTES, human};
use crate::manifest::{DesiredResource, ResourceSpec};

/// A file's bytes, shared; `Debug` shows the size only.
#[derive(Clone, PartialEq, Eq)]
pub struct FileContent(pub Arc<Vec<u8>>);

impl fmt::Debug for FileContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileContent({} bytes)", self.0.len())
    }
}

/// The variables of an env file, in order; `Debug` shows the names only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EnvVars(pub Arc<Vec<(String, String)>>);

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "EnvVars({names:?}, values redacted)")
    }
}

/// One entry of `files`: a file of the repository written into the container before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileMount {
    /// The file, relative to this manifest's directory (or absolute on the machine running
    /// ballast). Its content is part of the spec: editing it recreates the app.
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// The absolute path in the container; parent directories are created.
    #[schemars(with = "String")]
    pub target: Spanned<String>,
    /// Permissions in octal, quoted: `"0640"`. Default `"0444"` (compose's for configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub mode: Option<Spanned<String>>,
    /// Owner in the container (default 0, root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The content's SHA-256, written by ballast when it reads the file; never by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub sha256: Option<String>,
    /// The content read at load time; not part of the spec's JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub content: Option<FileContent>,
}

/// The default mode of a `files` entry.
pub const DEFAULT_FILE_MODE: u32 = 0o444;

/// One entry of `envFile`: a path (`./app.env`) or `{path, required: false}` for a file that
/// may be missing.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvFile {
    pub path: String,
    pub required: bool,
    /// The content's SHA-256, written by ballast when it reads the file.
    pub sha256: Option<String>,
    /// The variables read at load time; not part of the spec's JSON.
    pub vars: Option<EnvVars>,
}

/// The schema of an `envFile` entry (the type itself is read by hand).
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub(crate) enum EnvFileSchema {
    /// A path relative to this manifest.
    Path(String),
    Entry(EnvFileEntrySchema),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct EnvFileEntrySchema {
    path: String,
    /// `false`: a missing file is skipped (compose's `required: false`). Default true.
    #[serde(default)]
    required: Option<bool>,
}

impl Serialize for EnvFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("path", &self.path)?;
        if !self.required {
            map.serialize_entry("required", &false)?;
        }
        if let Some(sha) = &self.sha256 {
            map.serialize_entry("sha256", sha)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EnvFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvFileVisitor;
        impl<'de> Visitor<'de> for EnvFileVisitor {
            type Value = EnvFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path such as ./app.env, or {path: PATH, required: false}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvFile, E> {
                Ok(EnvFile {
                    path: v.to_string(),
                    required: true,
                    sha256: None,
                    vars: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvFile, A::Error> {
                const FIELDS: &[&str] = &["path", "required"];
                let (mut path, mut required, mut sha256) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "path" if path.is_none() => path = Some(map.next_value::<String>()?),
                        "required" if required.is_none() => {
                            required = Some(map.next_value::<bool>()?)
                        }
                        // Written by ballast into the recorded spec, read back by `get`.
                        "sha256" if sha256.is_none() => sha256 = Some(map.next_value::<String>()?),
                        "path" | "required" | "sha256" => {
                            return Err(de::Error::custom(format!("duplicate field `{key}`")));
                        }
                        other => return Err(de::Error::unknown_field(other, FIELDS)),
                    }
                }
                Ok(EnvFile {
                    path: path.ok_or_else(|| de::Error::missing_field("path"))?,
                    required: required.unwrap_or(true),
                    sha256,
                    vars: None,
                })
            }
        }
        deserializer.deserialize_any(EnvFileVisitor)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where a source path points: relative to the manifest's directory, or absolute.
pub fn resolve_source(manifest: &Path, source: &str) -> PathBuf {
    let path = Path::new(source);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let joined = manifest
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(path);
    // `dir/./conf/a.ini` reads better in a message as `dir/conf/a.ini`.
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Reads a source file within the per-file limit; `Ok(None)` when it does not exist.
fn read_limited(path: &Path, budget: &mut u64) -> Result<Option<Vec<u8>>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} is {}; the limit is {} per file (larger data belongs in a volume)",
            path.display(),
            human(meta.len()),
            human(MAX_FILE_BYTES)
        ));
    }
    if meta.len() > *budget {
        return Err(format!(
            "{} would bring the files read for the manifests past {} in all",
            path.display(),
            human(MAX_SET_BYTES)
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} grew past {} while it was read",
            path.display(),
            human(MAX_FILE_BYTES)
        ));
    }
    *budget = budget.saturating_sub(bytes.len() as u64);
    Ok(Some(bytes))
}

#[derive(Clone)]
enum Place {
    Span(serde_saphyr::Location, String),
    Path(Vec<String>),
}

/// Reads every App's `files` and `envFile` sources (relative to each manifest), checks them,
/// and writes their SHA-256 into the spec and their content beside it. Problems are reported
/// at the entry that names the file.
pub(crate) fn load_sources(resources: &mut [DesiredResource], diagnostics: &mut Diagnostics) {
    let mut budget = MAX_SET_BYTES;
    for resource in resources.iter_mut() {
        let manifest = resource.source.file.clone();
        let ResourceSpec::App(app) = &mut resource.spec else {
            continue;
        };
        // Where each problem is: a value's span, or a field path (for text without a span).
        let mut problems: Vec<(Place, String)> = Vec::new();
        for (i, file) in app.files.iter_mut().enumerate() {
            let field = format!("spec.files[{i}].source");
            let at =
                |message: String| (Place::Span(file.source.referenced, field.clone()), message);
            if file.sha256.take().is_some() {
                problems.push((
                    Place::Path(vec![
                        "spec".into(),
                        "files".into(),
                        i.to_string(),
                        "sha256".into(),
                    ]),
                    "`sha256` is written by ballast from the file's content; remove it".to_string(),
                ));
                continue;
            }
            let path = resolve_source(&manifest, &file.source.value);
            match read_limited(&path, &mut budget) {
                Ok(Some(bytes)) => {
                    file.sha256 = Some(sha256_hex(&bytes));
                    file.content = Some(FileContent(Arc::new(bytes)));
                }
                Ok(None) => problems.push(at(format!(
                    "{} does not exist; `source` is relative to this manifest's directory",
                    path.display()
                ))),
                Err(message) => problems.push(at(message)),
            }
        }
        for (i, env_file) in app.env_file.iter_mut().enumerate() {
            let place = Place::Path(vec!["spec".into(), "envFile".into(), i.to_string()]);
            let at = |message: String| (place.clone(), message);
            if env_file.sha256.take().is_some() {
                problems.push(at(
                    "`sha256` is written by ballast from the file's content; remove it".into(),
                ));
                continue;
            }
            let path = resolve_source(&manifest, &env_file.path);
            let bytes = match read_limited(&path, &mut budget) {
                Ok(Some(bytes)) => bytes,
                Ok(None) if !env_file.required => continue,
                Ok(None) => {
                    problems.push(at(format!(
                        "{} does not exist; the path is relative to this manifest's directory (`required: false` skips a missing file)",
                        path.display()
                    )));
                    continue;
                }
                Err(message) => {
                    problems.push(at(message));
                    continue;
                }
            };
            let text = match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    problems.push(at(format!("{} is not UTF-8 text", path.display())));
                    continue;
                }
            };
            match parse_env_file(&text) {
                Ok(vars) => {
                    if let Some((name, value)) =
                        vars.iter().find(|(_, v)| v.len() > MAX_SCALAR_BYTES)
                    {
                        problems.push(at(format!(
                            "{}: the value of `{name}` is {}; the limit is {} per value",
                            path.display(),
                            human(value.len() as u64),
                            human(MAX_SCALAR_BYTES as u64)
                        )));
                        continue;
                    }
                    env_file.sha256 = Some(sha256_hex(text.as_bytes()));
                    env_file.vars = Some(EnvVars(Arc::new(vars)));
                }
                Err(e) => problems.push(at(format!(
                    "{}:{}:{}: {}",
                    path.display(),
                    e.line,
                    e.column,
                    e.message
                ))),
            }
        }
        for (place, message) in problems {
            diagnostics.push(match place {
                Place::Span(location, field) => resource.diagnostic(&location, &field, message),
                Place::Path(segments) => {
                    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                    resource.diagnostic_at_path(&segments, message)
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_entries_read_both_forms_and_debug_hides_content() {
        let short: EnvFile = serde_json::from_value(serde_json::json!("./a.env")).unwrap();
        assert_eq!((short.path.as_str(), short.required), ("./a.env", true));
        let long: EnvFile =
            serde_json::from_value(serde_json::json!({"path": "b.env", "required": false}))
                .unwrap();
        assert!(!long.required);
        assert!(
            serde_json::from_value::<EnvFile>(serde_json::json!({"file": "x"}))
                .unwrap_err()
                .to_string()
                .contains("unknown field `file`")
        );
        let with_vars = EnvFile {
            vars: Some(EnvVars(Arc::new(vec![("TOKEN".into(), "s3cret".into())]))),
            sha256: Some("ab".into()),
            ..long
        };
        let shown = format!("{with_vars:?}");
        assert!(shown.contains("TOKEN") && !shown.contains("s3cret"));
        assert_eq!(
            serde_json::to_value(&with_vars).unwrap(),
            serde_json::json!({"path": "b.env", "required": false, "sha256": "ab"})
        );
        let content = FileContent(Arc::new(b"password=hunter2".to_vec()));
        assert_eq!(format!("{content:?}"), "FileContent(16 bytes)");
    }

    #[test]
    fn sources_resolve_next_to_the_manifest() {
        assert_eq!(
            resolve_source(Path::new("/m/apps/web.yaml"), "./conf/a.ini"),
            Path::new("/m/apps/conf/a.ini")
        );
        assert_eq!(
            resolve_source(Path::new("web.yaml"), "a.env"),
            Path::new("a.env")
        );
        assert_eq!(
            resolve_source(Path::new("/m/web.yaml"), "/etc/a"),
            Path::new("/etc/a")
        );
    }
}
