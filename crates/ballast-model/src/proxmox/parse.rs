//! The entry point that parses Proxmox manifests and runs their checks, until the kinds are
//! registered with the loader (which will then call [`check_cluster`], [`check_vm`],
//! [`check_container`] and [`check_guest_refs`] itself, with its own error-collecting parse).
//!
//! [`check_cluster`]: super::check::check_cluster
//! [`check_vm`]: super::check_guest::check_vm
//! [`check_container`]: super::check_guest::check_container
//! [`check_guest_refs`]: super::refs::check_guest_refs

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use super::check::check_cluster;
use super::check_guest::{check_container, check_vm};
use super::cluster::{GuestDefaults, ProxmoxClusterSpec};
use super::container::ProxmoxContainerSpec;
use super::refs::{GuestRefs, check_guest_refs};
use super::vm::ProxmoxVmSpec;
use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;
use crate::manifest::{API_VERSION, Document, Header, Metadata};
use crate::path_at::{Prefer, path_and_shape_at};
use crate::validate::dns1123_problem;

/// The three Proxmox kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxmoxKind {
    Cluster,
    Vm,
    Container,
}

impl ProxmoxKind {
    pub const ALL: [ProxmoxKind; 3] = [
        ProxmoxKind::Cluster,
        ProxmoxKind::Vm,
        ProxmoxKind::Container,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProxmoxKind::Cluster => "ProxmoxCluster",
            ProxmoxKind::Vm => "ProxmoxVm",
            ProxmoxKind::Container => "ProxmoxContainer",
        }
    }
}

/// A parsed spec of one of the kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxmoxSpec {
    Cluster(ProxmoxClusterSpec),
    Vm(ProxmoxVmSpec),
    Container(ProxmoxContainerSpec),
}

/// One parsed Proxmox document, with where it was written.
#[derive(Debug, Clone)]
pub struct ProxmoxResource {
    pub kind: ProxmoxKind,
    pub metadata: Metadata,
    pub spec: ProxmoxSpec,
    pub(crate) doc: DocContext,
}

/// Parses every `---` document of a file as a Proxmox kind and checks each on its own. A
/// document of another kind is an error here (the general loader handles those).
pub fn parse_proxmox_source(path: &Path, text: &str) -> (Vec<ProxmoxResource>, Vec<Diagnostic>) {
    let mut resources = Vec::new();
    let mut problems = Vec::new();
    for (first_line, doc_text) in split(text) {
        let ctx = DocContext {
            file: path.to_path_buf(),
            first_line,
            text: doc_text.as_str().into(),
        };
        match parse_one(&ctx, &doc_text) {
            Ok(resource) => {
                problems.extend(check_resource(&resource));
                resources.push(resource);
            }
            Err(d) => problems.push(d),
        }
    }
    (resources, problems)
}

/// The checks of one resource on its own.
pub(crate) fn check_resource(resource: &ProxmoxResource) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let name = &resource.metadata.name;
    if let Some(why) = dns1123_problem(&name.value) {
        out.push(resource.doc.diag(&name.referenced, "metadata.name", why));
    }
    out.extend(match &resource.spec {
        ProxmoxSpec::Cluster(spec) => check_cluster(&resource.doc, spec),
        ProxmoxSpec::Vm(spec) => check_vm(&resource.doc, spec),
        ProxmoxSpec::Container(spec) => check_container(&resource.doc, spec),
    });
    out
}

/// The checks across a set of Proxmox resources: names unique per kind, and every guest's
/// cluster, defaults and vmid ([`check_guest_refs`]).
pub fn check_proxmox_set(resources: &[ProxmoxResource]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(ProxmoxKind, &str), &ProxmoxResource> = BTreeMap::new();
    for r in resources {
        let name = &r.metadata.name;
        if let Some(first) = seen.get(&(r.kind, name.value.as_str())) {
            let first_pos = first.doc.pos_of(&first.metadata.name.referenced);
            let mut d = r.doc.diag(
                &name.referenced,
                "metadata.name",
                format!(
                    "duplicate {}: `{}` is already defined at {first_pos}",
                    r.kind.as_str(),
                    name.value
                ),
            );
            d.related = Some(first_pos);
            out.push(d);
        } else {
            seen.insert((r.kind, name.value.as_str()), r);
        }
    }
    let clusters: BTreeMap<String, GuestDefaults> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            ProxmoxSpec::Cluster(c) => Some((r.metadata.name.value.clone(), c.guest_defaults())),
            _ => None,
        })
        .collect();
    let guests: Vec<GuestRefs<'_>> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            ProxmoxSpec::Vm(spec) => Some(GuestRefs::of_vm(&r.doc, &r.metadata.name.value, spec)),
            ProxmoxSpec::Container(spec) => Some(GuestRefs::of_container(
                &r.doc,
                &r.metadata.name.value,
                spec,
            )),
            ProxmoxSpec::Cluster(_) => None,
        })
        .collect();
    out.extend(check_guest_refs(&guests, &clusters));
    out.sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
    out
}

/// Splits a file at `---` lines: (the file line a document starts on, its text with earlier
/// lines blanked so serde's positions are the document's own).
fn split(text: &str) -> Vec<(u64, String)> {
    let mut docs: Vec<(u64, String)> = Vec::new();
    let mut current = String::new();
    let mut first = 1u64;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ");
        if is_marker {
            docs.push((first, std::mem::take(&mut current)));
            first = i as u64 + 1;
            current.push('\n');
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((first, current));
    docs.retain(|(_, d)| {
        d.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
    });
    docs
}

// A diagnostic is the error of a parse; boxing it would buy nothing but noise (as the loader).
#[allow(clippy::result_large_err)]
fn parse_one(ctx: &DocContext, doc: &str) -> Result<ProxmoxResource, Diagnostic> {
    let header: Spanned<Header> =
        serde_saphyr::from_str(doc).map_err(|e| yaml_diagnostic(ctx, doc, &e))?;
    let start = header.referenced;
    let api = header.value.api_version.ok_or_else(|| {
        ctx.diag(
            &start,
            "apiVersion",
            format!("missing field `apiVersion`; expected `{API_VERSION}`"),
        )
    })?;
    if api.value != API_VERSION {
        return Err(ctx.diag(
            &api.referenced,
            "apiVersion",
            format!(
                "unsupported apiVersion `{}`; expected `{API_VERSION}`",
                api.value
            ),
        ));
    }
    let kind_text = header
        .value
        .kind
        .ok_or_else(|| ctx.diag(&start, "kind", "missing field `kind`".to_string()))?;
    let kind = ProxmoxKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind_text.value)
        .ok_or_else(|| {
            ctx.diag(
                &kind_text.referenced,
                "kind",
                format!(
                    "`{}` is not a Proxmox kind; expected ProxmoxCluster, ProxmoxVm or ProxmoxContainer",
                    kind_text.value
                ),
            )
        })?;
    let (metadata, spec) = match kind {
        ProxmoxKind::Cluster => document::<ProxmoxClusterSpec>(ctx, doc)
            .map(|d| (d.metadata, ProxmoxSpec::Cluster(d.spec)))?,
        ProxmoxKind::Vm => {
            document::<ProxmoxVmSpec>(ctx, doc).map(|d| (d.metadata, ProxmoxSpec::Vm(d.spec)))?
        }
        ProxmoxKind::Container => document::<ProxmoxContainerSpec>(ctx, doc)
            .map(|d| (d.metadata, ProxmoxSpec::Container(d.spec)))?,
    };
    Ok(ProxmoxResource {
        kind,
        metadata,
        spec,
        doc: ctx.clone(),
    })
}

#[allow(clippy::result_large_err)]
fn document<S: DeserializeOwned>(ctx: &DocContext, doc: &str) -> Result<Document<S>, Diagnostic> {
    serde_saphyr::from_str(doc).map_err(|e| yaml_diagnostic(ctx, doc, &e))
}

/// A serde-saphyr error as a diagnostic: its place, the field path there, and its message
/// without the position it repeats.
fn yaml_diagnostic(ctx: &DocContext, doc: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let mut message = err.without_snippet().to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|(line, _)| *line > 0)
        .unwrap_or((1, 1));
    let prefer = if message.starts_with("unknown field") || message.starts_with("duplicate") {
        Prefer::Inner
    } else {
        Prefer::Outer
    };
    let (field, _) = path_and_shape_at(doc, line, column, prefer);
    let credential = ["tokenSecret", "password"]
        .iter()
        .any(|f| field.ends_with(f));
    if message.starts_with("expected mapping start") || message.starts_with("invalid type") {
        message = if credential {
            // Never repeat what was written: it is most likely the secret itself.
            "expected `{secretRef: {name: NAME}}`, `{env: VAR}` or `{file: PATH}`; a secret is never written in a manifest (`ballast secret set NAME` stores it)".to_string()
        } else {
            message.replacen(
                "expected mapping start",
                "expected a mapping (`key: value` lines) here",
                1,
            )
        };
    }
    ctx.diag_at(line, column, &field, message)
}
