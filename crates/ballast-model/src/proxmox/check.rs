//! Per-document checks of the Proxmox kinds, shaped like the App and Server checks of
//! `validate.rs`: each problem is a [`Diagnostic`] at the value's file:line:column with its
//! field path. Values with a span are placed by it; the rest by their path in the document.
//! The checks that need the whole set (a `cluster` that must exist, a vmid used twice) are in
//! `refs.rs`.

use serde_saphyr::Spanned;

use super::cluster::ProxmoxClusterSpec;
use super::values::{
    bridge_problem, endpoint_problem, fingerprint_problem, node_problem, pool_problem,
    storage_problem, tag_problem, token_id_problem, user_problem, vmid_problem,
};
use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;
use crate::server::CredentialSource;
use crate::validate::dns1123_problem;

/// Where diagnostics of one document go, and how they are placed.
pub(crate) struct Checker<'a> {
    pub doc: &'a DocContext,
    pub out: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub fn new(doc: &'a DocContext) -> Checker<'a> {
        Checker {
            doc,
            out: Vec::new(),
        }
    }

    /// A problem with a value that has a span.
    pub fn at<T>(&mut self, value: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.out
            .push(self.doc.diag(&value.referenced, field, message));
    }

    /// A problem placed by its path (`["spec", "disks", "0", "size"]`).
    pub fn path(&mut self, segments: &[&str], message: impl Into<String>) {
        self.out.push(self.doc.diag_at_path(segments, message));
    }

    /// Runs `problem` on a spanned text value and reports what it says.
    pub fn text(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        problem: impl Fn(&str) -> Option<String>,
    ) {
        if let Some(why) = problem(&value.value) {
            self.at(value, field, why);
        }
    }

    pub fn opt_text(
        &mut self,
        value: &Option<Spanned<String>>,
        field: &str,
        problem: impl Fn(&str) -> Option<String>,
    ) {
        if let Some(value) = value {
            self.text(value, field, problem);
        }
    }

    /// An integer that must lie in `range`.
    pub fn range(
        &mut self,
        value: &Option<Spanned<i64>>,
        field: &str,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) {
        if let Some(v) = value
            && !range.contains(&v.value)
        {
            self.at(
                v,
                field,
                format!(
                    "{what} {} is out of range; expected {} to {}",
                    v.value,
                    range.start(),
                    range.end()
                ),
            );
        }
    }

    /// A credential source: exactly one of secretRef, file and env, as the Server's.
    pub fn credential(&mut self, path: &[&str], source: &CredentialSource) {
        let given = [
            source.secret_ref.is_some(),
            source.file.is_some(),
            source.env.is_some(),
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given != 1 {
            self.path(
                path,
                "expected exactly one of `secretRef: {name: NAME}`, `file: PATH` or `env: VAR` (a secret is never written in a manifest)",
            );
            return;
        }
        if let Some(file) = &source.file
            && !(file.starts_with('/') || file.starts_with("~/"))
        {
            self.path(
                path,
                format!("`{file}` is not an absolute path; expected /path or ~/path"),
            );
        }
        if let Some(secret) = &source.secret_ref
            && secret.name.trim().is_empty()
        {
            self.path(path, "the secret needs a name");
        }
    }

    /// The placement fields every guest has: cluster, node, allowedNodes, vmid, tags, pool.
    pub fn placement(&mut self, guest: &Placement<'_>) {
        if let Some(why) = dns1123_problem(&guest.cluster.value) {
            self.at(
                guest.cluster,
                "spec.cluster",
                format!(
                    "`{}` cannot name a ProxmoxCluster: {why}",
                    guest.cluster.value
                ),
            );
        }
        self.opt_text(guest.node, "spec.node", node_problem);
        for (i, node) in guest.allowed_nodes.iter().enumerate() {
            let field = format!("spec.allowedNodes[{i}]");
            self.text(node, &field, node_problem);
            if guest.allowed_nodes[..i]
                .iter()
                .any(|n| n.value == node.value)
            {
                self.at(
                    node,
                    &field,
                    format!("node `{}` is listed twice", node.value),
                );
            }
        }
        if let Some(node) = guest.node
            && !guest.allowed_nodes.is_empty()
            && !guest.allowed_nodes.iter().any(|n| n.value == node.value)
        {
            self.at(
                node,
                "spec.node",
                format!(
                    "node `{}` is not one of allowedNodes ({}); the guest is created on `node`, so it must be allowed",
                    node.value,
                    guest
                        .allowed_nodes
                        .iter()
                        .map(|n| n.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if let Some(vmid) = guest.vmid
            && let Some(why) = vmid_problem(vmid.value)
        {
            self.at(vmid, "spec.vmid", why);
        }
        if let Some(tags) = guest.tags {
            for (i, tag) in tags.iter().enumerate() {
                let field = format!("spec.tags[{i}]");
                self.text(tag, &field, tag_problem);
                if let Some(first) = tags[..i]
                    .iter()
                    .position(|t| t.value.eq_ignore_ascii_case(&tag.value))
                {
                    self.at(
                        tag,
                        &field,
                        format!(
                            "tag `{}` is listed twice (also spec.tags[{first}]); tags are compared without case",
                            tag.value
                        ),
                    );
                }
            }
        }
        self.opt_text(guest.pool, "spec.pool", pool_problem);
    }
}

/// The placement fields of a guest, by reference.
pub(crate) struct Placement<'a> {
    pub cluster: &'a Spanned<String>,
    pub node: &'a Option<Spanned<String>>,
    pub allowed_nodes: &'a [Spanned<String>],
    pub vmid: &'a Option<Spanned<i64>>,
    pub tags: &'a Option<Vec<Spanned<String>>>,
    pub pool: &'a Option<Spanned<String>>,
}

/// Checks a ProxmoxCluster on its own.
pub(crate) fn check_cluster(doc: &DocContext, spec: &ProxmoxClusterSpec) -> Vec<Diagnostic> {
    let mut c = Checker::new(doc);
    c.text(&spec.endpoint, "spec.endpoint", endpoint_problem);
    let auth = &spec.auth;
    match (&auth.token_id, &auth.user) {
        (Some(_), Some(_)) => c.path(
            &["spec", "auth"],
            "give either `tokenId` (with `tokenSecret`) or `user` (with `password`), not both",
        ),
        (None, None) => c.path(
            &["spec", "auth"],
            "missing credentials; expected `tokenId: USER@REALM!NAME` with `tokenSecret: {secretRef: {name: NAME}}`, or `user: USER@REALM` with `password: {secretRef: {name: NAME}}`",
        ),
        _ => {}
    }
    c.opt_text(&auth.token_id, "spec.auth.tokenId", token_id_problem);
    c.opt_text(&auth.user, "spec.auth.user", user_problem);
    match (&auth.token_id, &auth.token_secret) {
        (Some(id), None) => c.at(
            id,
            "spec.auth.tokenId",
            "an API token needs its `tokenSecret: {secretRef: {name: NAME}}`",
        ),
        (None, Some(_)) => c.path(
            &["spec", "auth", "tokenSecret"],
            "a tokenSecret goes with a `tokenId`; there is none here",
        ),
        _ => {}
    }
    match (&auth.user, &auth.password) {
        (Some(user), None) => c.at(
            user,
            "spec.auth.user",
            "a user needs its `password: {secretRef: {name: NAME}}`",
        ),
        (None, Some(_)) => c.path(
            &["spec", "auth", "password"],
            "a password goes with a `user`; there is none here",
        ),
        _ => {}
    }
    for (field, source) in [
        ("tokenSecret", &auth.token_secret),
        ("password", &auth.password),
    ] {
        if let Some(source) = source {
            c.credential(&["spec", "auth", field], source);
        }
    }
    if let Some(tls) = &spec.tls {
        let given = [
            tls.ca_file.is_some(),
            tls.fingerprint.is_some(),
            tls.insecure_skip_verify,
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given > 1 {
            c.path(
                &["spec", "tls"],
                "give one of `caFile`, `fingerprint` or `insecureSkipVerify: true`: each says how the certificate is checked",
            );
        }
        c.opt_text(&tls.ca_file, "spec.tls.caFile", |f| {
            (!(f.starts_with('/') || f.starts_with("~/"))).then(|| {
                format!("`{f}` is not an absolute path; expected the CA's PEM file, e.g. /etc/ballast/pve-root-ca.pem")
            })
        });
        c.opt_text(
            &tls.fingerprint,
            "spec.tls.fingerprint",
            fingerprint_problem,
        );
    }
    if let Some(defaults) = &spec.defaults {
        c.opt_text(&defaults.node, "spec.defaults.node", node_problem);
        c.opt_text(&defaults.storage, "spec.defaults.storage", storage_problem);
        c.opt_text(&defaults.bridge, "spec.defaults.bridge", bridge_problem);
    }
    c.out
}
