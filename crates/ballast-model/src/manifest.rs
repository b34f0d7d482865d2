//! The Kubernetes-style envelope shared by every kind, and the validated desired set.

use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::app::AppSpec;
use crate::diagnostic::SourcePos;
use crate::server::ServerSpec;

/// The only manifest API version this build understands.
pub const API_VERSION: &str = "ballast/v1";

/// The kinds of resource ballast reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Server,
    App,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[Kind::Server, Kind::App];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "Server",
            Kind::App => "App",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts `App`, `app`, `apps` (as kubectl accepts `pod`, `pods`, `Pod`).
impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        for kind in Kind::ALL {
            let name = kind.as_str().to_ascii_lowercase();
            if lower == name || lower == format!("{name}s") {
                return Ok(*kind);
            }
        }
        Err(format!(
            "unknown kind `{s}`; expected one of: {}",
            Kind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Identity of a resource: (kind, name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    pub kind: Kind,
    pub name: String,
}

impl ResourceKey {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Accepts `App/web` or `app/web`.
impl FromStr for ResourceKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not KIND/NAME (for example App/web)"))?;
        Ok(ResourceKey::new(kind.parse()?, name))
    }
}

/// `metadata` of every manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// A DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub annotations: IndexMap<String, String>,
}

/// The first pass over a document: enough to know which kind it is, tolerant of everything else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
}

/// The second pass: the full document of one kind, strict about unknown fields.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

/// The spec of a resource, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
// Specs live once each in a desired set; boxing the larger one would buy nothing but a
// dereference on every use.
#[allow(clippy::large_enum_variant)]
pub enum ResourceSpec {
    Server(ServerSpec),
    App(AppSpec),
}

impl ResourceSpec {
    pub fn kind(&self) -> Kind {
        match self {
            ResourceSpec::Server(_) => Kind::Server,
            ResourceSpec::App(_) => Kind::App,
        }
    }
    pub fn as_app(&self) -> Option<&AppSpec> {
        match self {
            ResourceSpec::App(app) => Some(app),
            ResourceSpec::Server(_) => None,
        }
    }
    pub fn as_server(&self) -> Option<&ServerSpec> {
        match self {
            ResourceSpec::Server(server) => Some(server),
            ResourceSpec::App(_) => None,
        }
    }
    /// The names of the secrets the spec refers to.
    pub fn secret_refs(&self) -> Vec<&str> {
        match self {
            ResourceSpec::Server(server) => server.secret_refs().collect(),
            ResourceSpec::App(app) => app.secret_refs().collect(),
        }
    }
}

/// One validated resource of the desired state, with where it was written.
#[derive(Debug, Clone)]
pub struct DesiredResource {
    pub key: ResourceKey,
    pub metadata: Metadata,
    pub spec: ResourceSpec,
    /// Where the document starts (its `apiVersion` line).
    pub source: SourcePos,
    /// Maps locations inside the document to file positions, for later diagnostics.
    pub(crate) doc: crate::loader::DocContext,
}

impl DesiredResource {
    /// The file position of a location recorded while parsing this resource.
    pub fn pos_of(&self, location: &serde_saphyr::Location) -> SourcePos {
        self.doc.pos_of(location)
    }

    /// A diagnostic about one field of this resource, at a location recorded while parsing.
    /// A diagnostic about a field without a span of its own, by path segments
    /// (`["spec", "labels", "x"]`; indexes as decimal strings).
    pub fn diagnostic_at_path(
        &self,
        segments: &[&str],
        message: impl Into<String>,
    ) -> crate::Diagnostic {
        self.doc.diag_at_path(segments, message)
    }

    pub fn diagnostic(
        &self,
        location: &serde_saphyr::Location,
        field: &str,
        message: impl Into<String>,
    ) -> crate::Diagnostic {
        self.doc.diag(location, field, message)
    }

    /// The spec as JSON, the form the store keeps and hashes.
    pub fn spec_json(&self) -> serde_json::Value {
        // Serializing plain data structures into a JSON value cannot fail.
        serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null)
    }

    /// A stable hash of the spec: changes exactly when the spec's meaning changes.
    pub fn spec_hash(&self) -> String {
        spec_hash(&self.spec_json())
    }

    /// The whole document (apiVersion, kind, metadata, spec) as JSON.
    pub fn document_json(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": self.key.kind.as_str(),
            "metadata": self.metadata,
            "spec": self.spec_json(),
        })
    }
}

/// sha256 of canonical JSON (object keys sorted), hex.
pub fn spec_hash(value: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let canonical = canonical_json(value);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_json)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        other => other.to_string(),
    }
}

/// The whole desired state: every resource of every file, validated together.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    pub resources: IndexMap<ResourceKey, DesiredResource>,
}

impl DesiredSet {
    pub fn get(&self, key: &ResourceKey) -> Option<&DesiredResource> {
        self.resources.get(key)
    }
    pub fn len(&self) -> usize {
        self.resources.len()
    }
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &DesiredResource> {
        self.resources.values()
    }
    pub fn apps(&self) -> impl Iterator<Item = (&DesiredResource, &AppSpec)> {
        self.resources
            .values()
            .filter_map(|r| r.spec.as_app().map(|a| (r, a)))
    }
    pub fn servers(&self) -> impl Iterator<Item = (&DesiredResource, &ServerSpec)> {
        self.resources
            .values()
            .filter_map(|r| r.spec.as_server().map(|s| (r, s)))
    }
}
