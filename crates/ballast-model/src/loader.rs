//! Reading a manifest directory: every `*.yaml`/`*.yml` file below it (recursively, in path
//! order, hidden directories such as `.git` skipped), every `---` document in each.
//!
//! Each document is parsed on its own so that one broken document does not hide the errors of
//! the others: a user fixing manifests sees every problem at once, as `ballast validate` promises.
//! Within a document, an unknown or repeated key is reported and its entry blanked out, and the
//! document parsed again, so a misspelt field does not hide the document's other errors.
//!
//! Sizes are limited ([`crate::limits`]): the set and each file before they are read, each
//! document before it is parsed, each scalar and the alias-expanded document by a scan of the
//! document's events before it is deserialized.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{DuplicateKeyPolicy, Location, NonFiniteFloatPolicy, Spanned};

use crate::app::{AppSpec, EnvValue};
use crate::diagnostic::{Diagnostic, Diagnostics, SourcePos};
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_FILE_BYTES, MAX_SCALAR_BYTES, MAX_SET_BYTES, human};
use crate::manifest::{
    API_VERSION, DesiredResource, Document, Header, Kind, ResourceKey, ResourceSpec,
};
use crate::path_at::{Prefer, locate, path_and_shape_at};
use crate::scan::{At, blank, entry_at, plain_scalar_texts, scan_sizes};
use crate::server::ServerSpec;
use crate::validate;

/// At most this many failing entries (unknown or repeated keys, values of the wrong shape) are
/// reported per document; past it the document is most likely not a ballast manifest at all.
const MAX_ENTRY_ERRORS: usize = 50;

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
    /// The manifest path given (or the default `manifests`) is not there.
    #[error(
        "manifest directory {} does not exist; pass -f DIR or set BALLAST_MANIFESTS",
        path.display()
    )]
    NotFound { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A symbolic link under the manifest directory leads back to a directory above it.
    #[error(
        "symlink loop in the manifests: {} leads back to {}; remove the link or point it elsewhere",
        path.display(),
        ancestor.display()
    )]
    SymlinkLoop { path: PathBuf, ancestor: PathBuf },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A manifest file's text, as read.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub path: PathBuf,
    pub text: String,
}

fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Every manifest file under `root` (or `root` itself when it is a file), in path order.
/// Symbolic links are followed; one that leads back to a directory above it is an error naming
/// the link once.
pub fn manifest_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let meta = match std::fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::NotFound {
                path: root.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(LoadError::Io {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        // Hidden entries (`.git`, editor swap files) are not manifests.
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = err.path().unwrap_or(root).to_path_buf();
                if let Some(ancestor) = err.loop_ancestor() {
                    return Err(LoadError::SymlinkLoop {
                        path,
                        ancestor: ancestor.to_path_buf(),
                    });
                }
                let source = err
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot walk the directory"));
                return Err(LoadError::Io { path, source });
            }
        };
        if entry.file_type().is_file() && is_manifest_name(&entry.file_name().to_string_lossy()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// A diagnostic about a whole file, at its first line.
fn file_diagnostic(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        pos: SourcePos {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
        },
        field: String::new(),
        message,
        related: None,
    }
}

/// Reads one manifest file: refused unread when it is over the limit, at most the limit plus one
/// byte read (it may grow meanwhile), and it must be UTF-8 text.
fn read_manifest(path: &Path, len: u64) -> Result<Result<String, Diagnostic>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_big = |len: u64| {
        file_diagnostic(
            path,
            format!(
                "the file is {}; the limit is {} per manifest file (and {} per value); split it into several files, and keep large data out of manifests",
                human(len),
                human(MAX_FILE_BYTES),
                human(MAX_SCALAR_BYTES as u64)
            ),
        )
    };
    if len > MAX_FILE_BYTES {
        return Ok(Err(too_big(len)));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Ok(Err(too_big(bytes.len() as u64)));
    }
    Ok(String::from_utf8(bytes).map_err(|e| not_utf8(path, &e)))
}

/// Where the first byte that is not UTF-8 is, as line and column (in characters) of the text
/// before it.
fn not_utf8(path: &Path, err: &std::string::FromUtf8Error) -> Diagnostic {
    let bytes = err.as_bytes();
    let valid = err.utf8_error().valid_up_to();
    // The prefix is valid UTF-8 by definition of `valid_up_to`.
    let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    Diagnostic {
        pos: SourcePos {
            file: path.to_path_buf(),
            line,
            column,
        },
        field: String::new(),
        message: format!(
            "the file is not UTF-8 text (byte 0x{:02X}); manifests are UTF-8 YAML (is it a binary file?)",
            bytes[valid]
        ),
        related: None,
    }
}

/// Loads and validates the whole set under `root`. Any error anywhere fails the whole set.
pub fn load_dir(root: &Path) -> Result<crate::DesiredSet, LoadError> {
    let files = manifest_files(root)?;
    let mut sized = Vec::with_capacity(files.len());
    let mut total = 0u64;
    let mut crossed = None;
    for path in files {
        let len = std::fs::metadata(&path)
            .map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        total = total.saturating_add(len);
        if total > MAX_SET_BYTES && crossed.is_none() {
            crossed = Some(path.clone());
        }
        sized.push((path, len));
    }
    if let Some(path) = crossed {
        return Err(LoadError::Invalid(Diagnostics(vec![file_diagnostic(
            &path,
            format!(
                "the manifest files add up to {}, past the limit of {} per set at this file; nothing was read",
                human(total),
                human(MAX_SET_BYTES)
            ),
        )])));
    }
    let mut resources = Vec::new();
    let mut diagnostics = Diagnostics::default();
    for (path, len) in sized {
        match read_manifest(&path, len)? {
            Ok(text) => {
                let (parsed, problems) = parse_source(&path, &text);
                resources.extend(parsed);
                diagnostics.0.extend(problems);
            }
            Err(problem) => diagnostics.push(problem),
        }
    }
    // The files Apps take from next to their manifests (`files`, `envFile`) are read here.
    crate::app::sources::load_sources(&mut resources, &mut diagnostics);
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

    /// A diagnostic at a line and column of the document.
    pub(crate) fn diag_at(
        &self,
        line: u64,
        column: u64,
        field: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            pos: self.pos(line, column),
            field: field.to_string(),
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

/// Parses "N, column M" at the start of `text`: the line, the column and the length read.
fn line_column(text: &str) -> Option<(u64, u64, usize)> {
    let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n = digits(text);
    let line = text[..n].parse().ok()?;
    let rest = text[n..].strip_prefix(", column ")?;
    let m = digits(rest);
    let column = rest[..m].parse().ok()?;
    Some((line, column, text.len() - rest.len() + m))
}

/// A serde-saphyr message made fit for a diagnostic: the trailing " at line N, column M" (which
/// the diagnostic carries itself) removed, and the positions inside it, such as an alias's
/// "(defined at line 2, column 9) (used at line 8, column 10)", moved from the document's lines
/// to the file's.
fn clean_message(bare: &str, first_line: u64) -> String {
    const AT: &str = " at line ";
    let mut text = bare;
    if let Some(i) = text.rfind(AT)
        && let Some((_, _, len)) = line_column(&text[i + AT.len()..])
        && i + AT.len() + len == text.len()
    {
        text = &text[..i];
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(AT) {
        let after = &rest[i + AT.len()..];
        out.push_str(&rest[..i + AT.len()]);
        match line_column(after) {
            Some((line, column, len)) => {
                out.push_str(&format!("{}, column {column}", line + first_line - 1));
                rest = &after[len..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Messages of problems that belong to a key rather than to its value: an unknown or repeated
/// key, and an empty value (`KEY:` with nothing after), which serde-saphyr reports at its key.
const AT_KEY: &[&str] = &["unknown field", "duplicate", "invalid type: unit value"];

/// Turns a serde-saphyr error into a diagnostic with the field path.
fn yaml_error(ctx: &DocContext, doc: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let message = clean_message(&err.without_snippet().to_string(), ctx.first_line);
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // A key's problem is named at the key; any other problem (a wrong type, a missing field)
    // belongs to the value at the location, which may be a mapping starting there.
    let prefer = if AT_KEY.iter().any(|p| message.starts_with(p)) {
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
        m if m.starts_with("expected sequence start") => m.replacen(
            "expected sequence start",
            "expected a list (a YAML sequence) here",
            1,
        ),
        m if m.starts_with("expected mapping start") => m.replacen(
            "expected mapping start",
            "expected a mapping (`key: value` lines) here",
            1,
        ),
        m if m.starts_with("duplicate mapping key") => format!(
            "{}; a key may appear once in a mapping",
            m.split(", set DuplicateKeyPolicy").next().unwrap_or(m)
        ),
        m if m.starts_with("cannot deserialize null into string") => {
            "no value; expected text (write \"\" for an empty value, or quote text such as \"null\" or \"~\")".to_string()
        }
        _ => message,
    };
    Diagnostic {
        pos: ctx.pos(line.max(1), column),
        field,
        message,
        related: None,
    }
}

/// Whether `d` may follow from an entry blanked earlier rather than be a problem of its own:
/// a required field now missing, or a mapping a blank left empty.
fn follows_from_blank(d: &Diagnostic, blanked: &[String], emptied: &[String]) -> bool {
    if let Some(rest) = d.message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        let path = if d.field.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", d.field)
        };
        if blanked.contains(&path) {
            return true;
        }
    }
    let shape_error = ["missing field", "invalid type", "expected"]
        .iter()
        .any(|p| d.message.starts_with(p));
    shape_error && emptied.contains(&d.field)
}

/// Deserializes a document strictly, but reports every problem of a mapping entry it can: the
/// entry (an unknown or repeated key, or a value of the wrong type) is reported, blanked out,
/// and the document parsed again, so the value comes back (and is checked further) when the
/// rest of the document is sound. Returns the value with the text it was parsed from (every
/// byte where it was in `doc`), and the problems found.
pub(crate) fn parse_collecting<T: DeserializeOwned>(
    ctx: &DocContext,
    doc: &str,
) -> (Option<(T, String)>, Vec<Diagnostic>) {
    let mut text = doc.to_string();
    let mut found: Vec<Diagnostic> = Vec::new();
    // Field paths of the entries blanked, and of the mappings that left empty.
    let mut blanked: Vec<String> = Vec::new();
    let mut emptied: Vec<String> = Vec::new();
    loop {
        // `.inf` and `.nan` where text is expected (an env value) are text, not an error.
        let options = serde_saphyr::options! {
            non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        };
        let err = match serde_saphyr::from_str_with_options::<T>(&text, options) {
            Ok(value) => return (Some((value, text)), found),
            Err(err) => err,
        };
        let d = yaml_error(ctx, &text, &err);
        // A consequence of an earlier blank is not reported; its entry is blanked in turn.
        let consequence = !found.is_empty() && follows_from_blank(&d, &blanked, &emptied);
        let at = if AT_KEY.iter().any(|p| d.message.starts_with(p)) {
            At::Key
        } else {
            At::Value
        };
        let entry = match err.location() {
            Some(l) if found.len() < MAX_ENTRY_ERRORS && !d.field.is_empty() => {
                entry_at(&text, l.line(), l.column(), at)
            }
            _ => None,
        };
        let Some(entry) = entry else {
            if !consequence {
                found.push(d);
            }
            return (None, found);
        };
        if entry.only_entry {
            let parent = d.field.rsplit_once('.').map_or("", |(p, _)| p);
            emptied.push(parent.to_string());
        }
        blanked.push(d.field.clone());
        blank(&mut text, entry.range);
        if !consequence {
            found.push(d);
        }
    }
}

/// Env values are text: the value of a plain scalar is what was written (`1.50`, `0x1F`, `no`),
/// not what YAML's type resolution makes of it (1.5, 31, false). `text` is the document the spec
/// was parsed from; each value's span points into it (at the anchor, for an alias).
fn restore_env_text(spec: &mut AppSpec, text: &str) {
    if !spec
        .env
        .values()
        .any(|v| matches!(v.value, EnvValue::Text(_)))
    {
        return;
    }
    let written = plain_scalar_texts(text);
    for value in spec.env.values_mut() {
        if let EnvValue::Text(current) = &mut value.value
            && let Some(offset) = value.defined.span().byte_offset()
            && let Some(raw) = usize::try_from(offset).ok().and_then(|o| written.get(&o))
        {
            current.clone_from(raw);
        }
    }
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
        if raw.text.len() > MAX_DOCUMENT_BYTES {
            diagnostics.push(ctx.diag_at(
                1,
                1,
                "",
                format!(
                    "this document is {}; the limit is {} per document",
                    human(raw.text.len() as u64),
                    human(MAX_DOCUMENT_BYTES as u64)
                ),
            ));
            continue;
        }
        let sizes = scan_sizes(&raw.text, MAX_SCALAR_BYTES, MAX_DOCUMENT_BYTES);
        for big in &sizes.oversized {
            let (field, _) = path_and_shape_at(&raw.text, big.line, big.column, Prefer::Outer);
            diagnostics.push(ctx.diag_at(
                big.line,
                big.column,
                &field,
                format!(
                    "the value is {}; the limit is {} per value; keep large data in a file and mount it with `volumes`",
                    human(big.bytes as u64),
                    human(MAX_SCALAR_BYTES as u64)
                ),
            ));
        }
        if let Some(over) = &sizes.expanded_over {
            // Deserializing would expand the aliases: refuse before doing so.
            let (field, _) = path_and_shape_at(&raw.text, over.line, over.column, Prefer::Outer);
            diagnostics.push(ctx.diag_at(
                over.line,
                over.column,
                &field,
                format!(
                    "with its aliases expanded this document grows past {} here (the limit per document); an alias repeats its anchor's whole value",
                    human(MAX_DOCUMENT_BYTES as u64)
                ),
            ));
            continue;
        }
        let (resource, problems) = parse_document(&ctx, &raw.text);
        diagnostics.extend(problems);
        if let Some(resource) = resource {
            diagnostics.extend(validate::check_resource(&resource));
            resources.push(resource);
        }
    }
    (resources, diagnostics)
}

/// Parses one document: the resource when its shape could be read (possibly with problems still
/// to report), and every problem found.
fn parse_document(ctx: &DocContext, doc: &str) -> (Option<DesiredResource>, Vec<Diagnostic>) {
    match parse_envelope(ctx, doc) {
        Ok((api_version, kind)) => parse_kind(ctx, doc, api_version, kind),
        Err(d) => (None, vec![d]),
    }
}

/// The document's `apiVersion` (with its place) and kind.
#[allow(clippy::result_large_err)]
fn parse_envelope(ctx: &DocContext, doc: &str) -> Result<(Spanned<String>, Kind), Diagnostic> {
    // Repeated keys are reported by the strict parse of the kind, with every other problem.
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::FirstWins,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
    };
    let header: Spanned<Header> = match serde_saphyr::from_str_with_options(doc, options) {
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
    Ok((api_version, kind))
}

fn parse_kind(
    ctx: &DocContext,
    doc: &str,
    api_version: Spanned<String>,
    kind: Kind,
) -> (Option<DesiredResource>, Vec<Diagnostic>) {
    let (parsed, mut problems) = match kind {
        Kind::App => {
            let (parsed, problems) = parse_collecting::<Document<AppSpec>>(ctx, doc);
            let parsed = parsed.map(|(mut document, text)| {
                restore_env_text(&mut document.spec, &text);
                (document.metadata, ResourceSpec::App(document.spec))
            });
            (parsed, problems)
        }
        Kind::Server => {
            let (parsed, problems) = parse_collecting::<Document<ServerSpec>>(ctx, doc);
            let parsed = parsed
                .map(|(document, _)| (document.metadata, ResourceSpec::Server(document.spec)));
            (parsed, problems)
        }
    };
    let Some((metadata, spec)) = parsed else {
        return (None, problems);
    };
    let name = metadata.name.value.clone();
    let resource = DesiredResource {
        key: ResourceKey::new(kind, name),
        source: ctx.pos_of(&api_version.referenced),
        metadata,
        spec,
        doc: ctx.clone(),
    };
    // The expanded size was bounded before parsing; this guards what is stored and labelled.
    let stored = serde_json::to_vec(&resource.document_json()).map_or(0, |v| v.len());
    if stored > MAX_DOCUMENT_BYTES {
        problems.push(ctx.diag_at(
            1,
            1,
            "",
            format!(
                "this document is {} as stored; the limit is {} per document",
                human(stored as u64),
                human(MAX_DOCUMENT_BYTES as u64)
            ),
        ));
    }
    (Some(resource), problems)
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
