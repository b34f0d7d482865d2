//! Reading a manifest directory: every `*.yaml`/`*.yml` file below it (recursively, in path
//! order, hidden directories such as `.git` skipped), every `---` document in each.
//!
//! Each document is parsed on its own so that one broken document does not hide the errors of
//! the others: a user fixing manifests sees every problem at once, as `ballast validate` promises.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use crate::app::AppSpec;
use crate::diagnostic::{Diagnostic, Diagnostics, SourcePos};
use crate::manifest::{
    API_VERSION, DesiredResource, Document, Header, Kind, ResourceKey, ResourceSpec,
};
use crate::path_at::{Prefer, locate, path_and_shape_at};
use crate::server::ServerSpec;
use crate::validate;

/// Kinds in the product's direction that this build does not reconcile yet; named in the error
/// so a user knows the manifest is not simply misspelt.
const PLANNED_KINDS: &[&str] = &[
    "ProxmoxCluster",
    "ProxmoxVm",
    "ProxmoxContainer",
    "FirmwarePlan",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A manifest file's text, as read.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub path: PathBuf,
    pub text: String,
}

/// Every manifest file under `root` (or `root` itself when it is a file), in path order.
pub fn manifest_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |path: &Path, source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(root).map_err(|e| io(root, e))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let file_type = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if file_type.is_dir() {
                pending.push(path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Loads and validates the whole set under `root`. Any error anywhere fails the whole set.
pub fn load_dir(root: &Path) -> Result<crate::DesiredSet, LoadError> {
    let mut resources = Vec::new();
    let mut diagnostics = Diagnostics::default();
    for path in manifest_files(root)? {
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let (parsed, problems) = parse_source(&path, &text);
        resources.extend(parsed);
        diagnostics.0.extend(problems);
    }
    validate::validate_set(resources, diagnostics).map_err(LoadError::Invalid)
}

/// One `---` document of a file: its text with the marker line blanked (so columns stay true)
/// and the file line its first line sits on.
struct RawDocument {
    text: String,
    first_line: u64,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '#']))
}

fn split_documents(text: &str) -> Vec<RawDocument> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1u64;
    for (index, line) in text.lines().enumerate() {
        let line_number = index as u64 + 1;
        let start = is_marker(line, "---");
        let end = is_marker(line, "...");
        if start || end {
            docs.push(RawDocument {
                text: std::mem::take(&mut current),
                first_line,
            });
            first_line = line_number;
            if start {
                // Keep what follows `---` on the same line, at its column.
                current.push_str("   ");
                current.push_str(&line[3..]);
            }
            current.push('\n');
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(RawDocument {
        text: current,
        first_line,
    });
    docs.retain(|d| {
        d.text.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
    });
    docs
}

/// Where in the file a location inside one document is.
#[derive(Debug, Clone)]
pub(crate) struct DocContext {
    pub file: PathBuf,
    pub first_line: u64,
    /// The document's text, to locate fields that carry no span of their own.
    pub text: std::sync::Arc<str>,
}

impl DocContext {
    pub(crate) fn pos(&self, line: u64, column: u64) -> SourcePos {
        SourcePos {
            file: self.file.clone(),
            line: line + self.first_line - 1,
            column: column.max(1),
        }
    }
    pub(crate) fn pos_of(&self, location: &Location) -> SourcePos {
        if location.line() == 0 {
            return self.pos(1, 1);
        }
        self.pos(location.line(), location.column())
    }
    /// A diagnostic about the field at `segments` (keys, or decimal indexes), placed where it
    /// is written, or at the document start if it cannot be found.
    pub(crate) fn diag_at_path(&self, segments: &[&str], message: impl Into<String>) -> Diagnostic {
        let (line, column) = locate(&self.text, segments).unwrap_or((1, 1));
        let mut field = String::new();
        for segment in segments {
            if segment.parse::<usize>().is_ok() {
                field.push_str(&format!("[{segment}]"));
            } else {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(segment);
            }
        }
        Diagnostic {
            pos: self.pos(line, column),
            field,
            message: message.into(),
            related: None,
        }
    }

    pub(crate) fn diag(
        &self,
        location: &Location,
        field: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            pos: self.pos_of(location),
            field: field.to_string(),
            message: message.into(),
            related: None,
        }
    }
}

/// Turns a serde-saphyr error into a diagnostic with the field path.
fn yaml_error(ctx: &DocContext, doc: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let bare = err.without_snippet().to_string();
    // The plain message ends with " at line N, column M"; the diagnostic carries that itself.
    let message = match bare.rfind(" at line ") {
        Some(i) => bare[..i].to_string(),
        None => bare,
    };
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // An unknown or repeated key is named itself; any other problem (a wrong type, a missing
    // field) belongs to the value at the location, which may be a mapping starting there.
    // An empty value (`KEY:` with nothing after) is reported at its key.
    let at_key = ["unknown field", "duplicate", "invalid type: unit value"];
    let prefer = if at_key.iter().any(|p| message.starts_with(p)) {
        Prefer::Inner
    } else {
        Prefer::Outer
    };
    let (mut field, is_mapping) = if line == 0 {
        (String::new(), false)
    } else {
        path_and_shape_at(doc, line, column, prefer)
    };
    let (mut line, mut column) = (line, column);
    if message.starts_with("missing field") && !is_mapping {
        // A field missing from the document itself: serde-saphyr points at some top-level key.
        field.clear();
        (line, column) = (1, 1);
    }
    let message = match message.as_str() {
        "expected sequence start" => "expected a list (a YAML sequence) here".to_string(),
        "expected mapping start" => "expected a mapping (`key: value` lines) here".to_string(),
        _ => message,
    };
    Diagnostic {
        pos: ctx.pos(line.max(1), column),
        field,
        message,
        related: None,
    }
}

// A diagnostic is the expected outcome of a broken document, not a rare failure; boxing it
// would only add noise to every caller.
#[allow(clippy::result_large_err)]
fn parse_typed<T: DeserializeOwned>(ctx: &DocContext, doc: &str) -> Result<T, Diagnostic> {
    serde_saphyr::from_str::<T>(doc).map_err(|e| yaml_error(ctx, doc, &e))
}

/// Parses every document of one file and checks each on its own. Set-wide checks (duplicates,
/// references, cycles) are [`crate::validate_set`]'s.
pub fn parse_source(path: &Path, text: &str) -> (Vec<DesiredResource>, Vec<Diagnostic>) {
    let mut resources = Vec::new();
    let mut diagnostics = Vec::new();
    for raw in split_documents(text) {
        let ctx = DocContext {
            file: path.to_path_buf(),
            first_line: raw.first_line,
            text: raw.text.as_str().into(),
        };
        match parse_document(&ctx, &raw.text) {
            Ok(resource) => {
                diagnostics.extend(validate::check_resource(&resource));
                resources.push(resource);
            }
            Err(d) => diagnostics.push(d),
        }
    }
    (resources, diagnostics)
}

#[allow(clippy::result_large_err)]
fn parse_document(ctx: &DocContext, doc: &str) -> Result<DesiredResource, Diagnostic> {
    let header: Spanned<Header> = match serde_saphyr::from_str(doc) {
        Ok(h) => h,
        Err(e) => {
            let mut d = yaml_error(ctx, doc, &e);
            if d.message.contains("invalid type") {
                d.message = format!(
                    "{}; a manifest is a mapping with apiVersion, kind, metadata and spec",
                    d.message
                );
            }
            return Err(d);
        }
    };
    let doc_start = header.referenced;
    let api_version = header.value.api_version.ok_or_else(|| {
        ctx.diag(
            &doc_start,
            "apiVersion",
            format!("missing field `apiVersion`; expected `{API_VERSION}`"),
        )
    })?;
    if api_version.value != API_VERSION {
        return Err(ctx.diag(
            &api_version.referenced,
            "apiVersion",
            format!(
                "unsupported apiVersion `{}`; expected `{API_VERSION}`",
                api_version.value
            ),
        ));
    }
    let kind_text = header.value.kind.ok_or_else(|| {
        ctx.diag(
            &doc_start,
            "kind",
            format!("missing field `kind`; expected one of: {}", kind_list()),
        )
    })?;
    let kind = match Kind::ALL.iter().find(|k| k.as_str() == kind_text.value) {
        Some(kind) => *kind,
        None if PLANNED_KINDS.contains(&kind_text.value.as_str()) => {
            return Err(ctx.diag(
                &kind_text.referenced,
                "kind",
                format!(
                    "kind `{}` is not supported by this version of ballast yet; supported: {}",
                    kind_text.value,
                    kind_list()
                ),
            ));
        }
        None => {
            return Err(ctx.diag(
                &kind_text.referenced,
                "kind",
                format!(
                    "unknown kind `{}`; expected one of: {} (kinds are case-sensitive)",
                    kind_text.value,
                    kind_list()
                ),
            ));
        }
    };
    let (metadata, spec) = match kind {
        Kind::App => {
            let document: Document<AppSpec> = parse_typed(ctx, doc)?;
            (document.metadata, ResourceSpec::App(document.spec))
        }
        Kind::Server => {
            let document: Document<ServerSpec> = parse_typed(ctx, doc)?;
            (document.metadata, ResourceSpec::Server(document.spec))
        }
    };
    let name = metadata.name.value.clone();
    Ok(DesiredResource {
        key: ResourceKey::new(kind, name),
        source: ctx.pos_of(&api_version.referenced),
        metadata,
        spec,
        doc: ctx.clone(),
    })
}

fn kind_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_markers_and_keep_line_numbers() {
        let text = "# header comment\n---\na: 1\n---  # second\nb: 2\n...\n---\n\n# only a comment\n---\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[1].first_line, 4);
        assert_eq!(docs[2].first_line, 10);
        assert!(docs[2].text.contains("c: 3"));
    }
}
