//! The checks of one FirmwarePlan on its own, each problem at its file:line:column with its field
//! path and what was expected, and the entry point that parses one document text as a
//! FirmwarePlan and runs them ([`parse_firmware_plan`]). Registration of the kind will call
//! `check_firmware_plan` where the loader checks each resource; until then the entry point is
//! how the checks are reached (and tested from `tests/corpus-firmware/`).

use std::path::Path;

use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy};

use crate::diagnostic::Diagnostic;
use crate::firmware::{FirmwarePlanSpec, KIND, TransferProtocol, UpdateMode};
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_SCALAR_BYTES, human};
use crate::loader::{DocContext, parse_collecting};
use crate::manifest::{API_VERSION, Document, Header, Metadata};
use crate::near::diag_near;
use crate::scan::scan_sizes;
use crate::validate::dns1123_problem;

/// A FirmwarePlan document as parsed, with where it was written (for the set-wide checks).
#[derive(Debug, Clone)]
pub struct ParsedFirmwarePlan {
    pub metadata: Metadata,
    pub spec: FirmwarePlanSpec,
    pub(crate) doc: DocContext,
}

/// Parses one document's text (`first_line`: the file line it starts on; the text holds no
/// `---`) as a FirmwarePlan and runs its own checks: the plan when its shape could be read, and
/// every problem found. The set-wide checks are [`ParsedFirmwarePlan::check_targets`].
pub fn parse_firmware_plan(
    path: &Path,
    first_line: u64,
    text: &str,
) -> (Option<ParsedFirmwarePlan>, Vec<Diagnostic>) {
    let ctx = DocContext {
        file: path.to_path_buf(),
        first_line,
        text: text.into(),
    };
    if text.len() > MAX_DOCUMENT_BYTES {
        let message = format!(
            "this document is {}; the limit is {} per document",
            human(text.len() as u64),
            human(MAX_DOCUMENT_BYTES as u64)
        );
        return (None, vec![ctx.diag_at(1, 1, "", message)]);
    }
    let sizes = scan_sizes(text, MAX_SCALAR_BYTES, MAX_DOCUMENT_BYTES);
    let mut out: Vec<Diagnostic> = sizes
        .oversized
        .iter()
        .map(|big| {
            let message = format!(
                "the value is {}; the limit is {} per value",
                human(big.bytes as u64),
                human(MAX_SCALAR_BYTES as u64)
            );
            ctx.diag_at(big.line, big.column, "", message)
        })
        .collect();
    if let Some(over) = &sizes.expanded_over {
        let message = format!(
            "with its aliases expanded this document grows past {} here (the limit per document)",
            human(MAX_DOCUMENT_BYTES as u64)
        );
        out.push(ctx.diag_at(over.line, over.column, "", message));
        return (None, out);
    }
    if let Err(d) = check_envelope(&ctx, text) {
        out.push(*d);
        return (None, out);
    }
    let (parsed, problems) = parse_collecting::<Document<FirmwarePlanSpec>>(&ctx, text);
    out.extend(problems);
    let Some((document, _)) = parsed else {
        return (None, out);
    };
    let name = &document.metadata.name;
    if let Some(problem) = dns1123_problem(&name.value) {
        out.push(ctx.diag(&name.referenced, "metadata.name", problem));
    }
    out.extend(check_firmware_plan(&ctx, &document.spec));
    let plan = ParsedFirmwarePlan {
        metadata: document.metadata,
        spec: document.spec,
        doc: ctx,
    };
    (Some(plan), out)
}

/// `apiVersion: ballast/v1` and `kind: FirmwarePlan`.
fn check_envelope(ctx: &DocContext, text: &str) -> Result<(), Box<Diagnostic>> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::FirstWins,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
    };
    let header: Header = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let at = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        Box::new(ctx.diag_at(
            at.0.max(1),
            at.1,
            "",
            format!("a manifest is a mapping with apiVersion, kind, metadata and spec: {e}"),
        ))
    })?;
    match &header.api_version {
        Some(v) if v.value == API_VERSION => {}
        Some(v) => {
            return Err(Box::new(ctx.diag(
                &v.referenced,
                "apiVersion",
                format!(
                    "unsupported apiVersion `{}`; expected `{API_VERSION}`",
                    v.value
                ),
            )));
        }
        None => {
            return Err(Box::new(ctx.diag_at(
                1,
                1,
                "apiVersion",
                format!("missing field `apiVersion`; expected `{API_VERSION}`"),
            )));
        }
    }
    match &header.kind {
        Some(k) if k.value == KIND => Ok(()),
        Some(k) => Err(Box::new(ctx.diag(
            &k.referenced,
            "kind",
            format!("kind `{}` is not a {KIND}", k.value),
        ))),
        None => Err(Box::new(ctx.diag_at(
            1,
            1,
            "kind",
            format!("missing field `kind`; expected `{KIND}`"),
        ))),
    }
}

/// Every check of one plan that needs nothing but the plan.
pub(crate) fn check_firmware_plan(ctx: &DocContext, spec: &FirmwarePlanSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_targets(ctx, spec, &mut out);
    check_artifacts(ctx, spec, &mut out);
    check_policy(ctx, spec, &mut out);
    out
}

fn check_targets(ctx: &DocContext, spec: &FirmwarePlanSpec, out: &mut Vec<Diagnostic>) {
    if spec.targets.is_empty() {
        out.push(diag_near(
            ctx,
            &["spec", "targets"],
            "expected at least one target: `- server: NAME` or `- selector: {matchLabels: {KEY: VALUE}}`",
        ));
    }
    let mut named: Vec<(&str, usize)> = Vec::new();
    for (i, target) in spec.targets.iter().enumerate() {
        let index = i.to_string();
        let at = |rest: &[&str]| -> Vec<String> {
            let mut path = vec!["spec".to_string(), "targets".to_string(), index.clone()];
            path.extend(rest.iter().map(|s| s.to_string()));
            path
        };
        let near = |rest: &[&str], message: String| {
            let path = at(rest);
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            diag_near(ctx, &segments, message)
        };
        match (&target.server, &target.selector) {
            (Some(_), Some(_)) => out.push(near(
                &[],
                "give either `server` or `selector` in one target, not both (list them as two targets)".into(),
            )),
            (None, None) => out.push(near(
                &[],
                "expected `server: NAME` or `selector: {matchLabels: {KEY: VALUE}}`".into(),
            )),
            _ => {}
        }
        if let Some(server) = &target.server {
            let field = format!("spec.targets[{i}].server");
            if let Some(problem) = dns1123_problem(&server.value) {
                out.push(ctx.diag(&server.referenced, &field, problem));
            } else if let Some((_, first)) = named.iter().find(|(n, _)| *n == server.value) {
                out.push(ctx.diag(
                    &server.referenced,
                    &field,
                    format!(
                        "server `{}` is listed twice (also spec.targets[{first}]); list a server once",
                        server.value
                    ),
                ));
            } else {
                named.push((&server.value, i));
            }
        }
        if let Some(selector) = &target.selector {
            if selector.match_labels.is_empty() {
                out.push(near(
                    &["selector", "matchLabels"],
                    "an empty selector would match every Server; list at least one label, or name the servers".into(),
                ));
            }
            if selector.match_labels.keys().any(|k| k.trim().is_empty()) {
                out.push(near(
                    &["selector", "matchLabels"],
                    "a label name is empty".into(),
                ));
            }
        }
        if let Some(priority) = &target.priority
            && priority.value < 0
        {
            out.push(ctx.diag(
                &priority.referenced,
                &format!("spec.targets[{i}].priority"),
                format!(
                    "priority {} is negative; expected 0 or more (lower goes first)",
                    priority.value
                ),
            ));
        }
    }
}

fn check_artifacts(ctx: &DocContext, spec: &FirmwarePlanSpec, out: &mut Vec<Diagnostic>) {
    let policy = &spec.policy;
    match policy.update_mode {
        UpdateMode::SpecificPackage => {
            if spec.artifacts.is_empty() {
                out.push(diag_near(
                    ctx,
                    &["spec", "artifacts"],
                    "expected at least one artifact (`- component: …, version: …, imageUri: …`), or `policy.updateMode: LATEST_FROM_CATALOG` with a `catalogUri`",
                ));
            }
            if let Some(uri) = &policy.catalog_uri {
                out.push(ctx.diag(
                    &uri.referenced,
                    "spec.policy.catalogUri",
                    "a catalog is read only with `updateMode: LATEST_FROM_CATALOG`; remove it or set the mode",
                ));
            }
        }
        UpdateMode::LatestFromCatalog => {
            if policy.catalog_uri.is_none() {
                out.push(diag_near(
                    ctx,
                    &["spec", "policy", "catalogUri"],
                    "LATEST_FROM_CATALOG needs `catalogUri`: a Dell Catalog.xml(.gz) URL or an absolute path",
                ));
            }
            if !spec.artifacts.is_empty() {
                out.push(diag_near(
                    ctx,
                    &["spec", "artifacts"],
                    "with LATEST_FROM_CATALOG the catalog names the packages; remove `artifacts` or use SPECIFIC_PACKAGE",
                ));
            }
        }
    }
    if let Some(uri) = &policy.catalog_uri
        && let Some(problem) = catalog_uri_problem(&uri.value)
    {
        out.push(ctx.diag(&uri.referenced, "spec.policy.catalogUri", problem));
    }
    for (i, artifact) in spec.artifacts.iter().enumerate() {
        let field = |name: &str| format!("spec.artifacts[{i}].{name}");
        let component = &artifact.component;
        if component.value.trim().is_empty() {
            out.push(ctx.diag(
                &component.referenced,
                &field("component"),
                "expected the component as the BMC's firmware inventory names it (its SoftwareId, Id or Name, e.g. `159` or `BIOS`)",
            ));
        } else if let Some(first) = spec.artifacts[..i].iter().position(|a| {
            a.component
                .value
                .trim()
                .eq_ignore_ascii_case(component.value.trim())
        }) {
            out.push(ctx.diag(
                &component.referenced,
                &field("component"),
                format!(
                    "component `{}` has two artifacts (also spec.artifacts[{first}]); a component is updated to one version",
                    component.value
                ),
            ));
        }
        let version = &artifact.version;
        if version.value.trim().is_empty() || version.value.contains(char::is_whitespace) {
            out.push(ctx.diag(
                &version.referenced,
                &field("version"),
                "expected the version the component reports once updated, e.g. `2.19.1` (no spaces)",
            ));
        }
        match (&artifact.image_uri, &artifact.file) {
            (Some(_), Some(_)) => out.push(diag_near(
                ctx,
                &["spec", "artifacts", &i.to_string()],
                "give either `imageUri` (the BMC downloads it) or `file` (ballast pushes it), not both",
            )),
            (None, None) => out.push(diag_near(
                ctx,
                &["spec", "artifacts", &i.to_string()],
                "expected `imageUri: URL` (the BMC downloads it) or `file: /path` (ballast pushes it)",
            )),
            _ => {}
        }
        if let Some(uri) = &artifact.image_uri
            && let Err(problem) = image_uri_protocol(&uri.value)
        {
            out.push(ctx.diag(&uri.referenced, &field("imageUri"), problem));
        }
        if let Some(file) = &artifact.file
            && !(file.value.starts_with('/') || file.value.starts_with("~/"))
        {
            out.push(ctx.diag(
                &file.referenced,
                &field("file"),
                format!(
                    "`{}` is not an absolute path; expected /path or ~/path",
                    file.value
                ),
            ));
        }
        if let Some(sum) = &artifact.sha256
            && !(sum.value.len() == 64 && sum.value.chars().all(|c| c.is_ascii_hexdigit()))
        {
            out.push(ctx.diag(
                &sum.referenced,
                &field("sha256"),
                format!(
                    "`{}` is not a SHA-256; expected 64 hex digits (as `sha256sum` prints)",
                    sum.value
                ),
            ));
        }
        if let Some(proto) = &artifact.transfer_protocol {
            match &artifact.image_uri {
                None => out.push(ctx.diag(
                    &proto.referenced,
                    &field("transferProtocol"),
                    "transferProtocol says how the BMC downloads `imageUri`; a `file` is pushed by ballast",
                )),
                Some(uri) => {
                    if let Ok(Some(scheme)) = image_uri_protocol(&uri.value)
                        && scheme != proto.value
                    {
                        out.push(ctx.diag(
                            &proto.referenced,
                            &field("transferProtocol"),
                            format!(
                                "transferProtocol {} does not match imageUri's scheme ({}); leave it out to use the scheme's",
                                proto.value.as_str(),
                                scheme.as_str()
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(rollback) = &artifact.rollback {
            if let Err(problem) = image_uri_protocol(&rollback.image_uri.value) {
                out.push(ctx.diag(
                    &rollback.image_uri.referenced,
                    &field("rollback.imageUri"),
                    problem,
                ));
            }
            let v = &rollback.version;
            if v.value.trim().is_empty() || v.value.contains(char::is_whitespace) {
                out.push(ctx.diag(
                    &v.referenced,
                    &field("rollback.version"),
                    "expected the version the component reports after the rollback (no spaces)",
                ));
            } else if v.value.trim() == version.value.trim() {
                out.push(ctx.diag(
                    &v.referenced,
                    &field("rollback.version"),
                    format!(
                        "the rollback is to {}, the version being installed; expected the version to go back to",
                        v.value
                    ),
                ));
            }
        }
    }
}

fn check_policy(ctx: &DocContext, spec: &FirmwarePlanSpec, out: &mut Vec<Diagnostic>) {
    let policy = &spec.policy;
    let near = |field: &[&str], message: String| {
        let mut path = vec!["spec", "policy"];
        path.extend_from_slice(field);
        diag_near(ctx, &path, message)
    };
    if policy.max_concurrent == 0 {
        out.push(near(
            &["maxConcurrent"],
            "maxConcurrent 0 would never update a host; expected 1 or more".into(),
        ));
    }
    if let Some(windows) = &policy.maintenance_window {
        let items = windows.items();
        if items.is_empty() {
            out.push(near(
                &["maintenanceWindow"],
                "an empty list of windows never opens; leave maintenanceWindow out to allow any time".into(),
            ));
        }
        let many = matches!(windows, crate::firmware::MaintenanceWindows::Many(_));
        for (i, text) in items.iter().enumerate() {
            if let Err(e) = text.parse::<ballast_redfish::window::Window>() {
                let index = i.to_string();
                let mut path = vec!["maintenanceWindow"];
                if many {
                    path.push(&index);
                }
                out.push(near(&path, e.to_string()));
            }
        }
    }
    if policy.rollback_on_failure && !spec.artifacts.iter().any(|a| a.rollback.is_some()) {
        let why = match policy.update_mode {
            UpdateMode::LatestFromCatalog => {
                "catalog packages name no rollback image, so rollbackOnFailure cannot apply; remove it"
            }
            UpdateMode::SpecificPackage => {
                "rollbackOnFailure needs an artifact with `rollback: {version, imageUri}`"
            }
        };
        out.push(near(&["rollbackOnFailure"], why.into()));
    }
    if let Some(timeouts) = &policy.timeouts {
        for (name, value) in [("task", &timeouts.task), ("reboot", &timeouts.reboot)] {
            let Some(value) = value else { continue };
            let problem = match crate::app::parse_duration(&value.value) {
                Err(problem) => problem,
                Ok(d) if d.is_zero() => {
                    format!("`{}` is no time at all; expected e.g. `30m`", value.value)
                }
                Ok(_) => continue,
            };
            out.push(ctx.diag(
                &value.referenced,
                &format!("spec.policy.timeouts.{name}"),
                problem,
            ));
        }
    }
    if let Some(maintenance) = &policy.maintenance {
        for (phase, list) in [
            ("before", &maintenance.before),
            ("after", &maintenance.after),
        ] {
            for (i, command) in list.iter().enumerate() {
                if command.value.trim().is_empty() || command.value.contains('\0') {
                    out.push(ctx.diag(
                        &command.referenced,
                        &format!("spec.policy.maintenance.{phase}[{i}]"),
                        "expected a shell command line, e.g. `kubectl drain $(hostname) --ignore-daemonsets`",
                    ));
                }
            }
        }
    }
}

/// The transfer protocol an image URI's scheme names (`None` never: every accepted scheme names
/// one), or why it is not an image URI.
fn image_uri_protocol(uri: &str) -> Result<Option<TransferProtocol>, String> {
    let expected = "expected a URL the BMC can download, e.g. https://repo.example/BIOS_2.19.1.bin (http, https, nfs, cifs, smb, ftp, sftp, scp or tftp)";
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!("`{uri}` is not a URL; {expected}"));
    };
    let Some(protocol) = TransferProtocol::from_scheme(scheme) else {
        return Err(format!(
            "`{scheme}://` is not a scheme a BMC downloads from; {expected}"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || uri.contains(char::is_whitespace) {
        return Err(format!("`{uri}` has no host or has spaces; {expected}"));
    }
    Ok(Some(protocol))
}

/// Why `uri` is not where a catalog can be read from, if it is not.
fn catalog_uri_problem(uri: &str) -> Option<String> {
    let expected = "expected an https:// or http:// URL, or an absolute path to Catalog.xml(.gz)";
    if uri.starts_with('/') || uri.starts_with("~/") {
        return None;
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return (!path.starts_with('/'))
            .then(|| format!("`{uri}` is not an absolute file URL; {expected}"));
    }
    match uri.split_once("://") {
        Some((scheme, rest))
            if (scheme == "https" || scheme == "http")
                && !rest.split('/').next().unwrap_or("").is_empty()
                && !uri.contains(char::is_whitespace) =>
        {
            None
        }
        _ => Some(format!("`{uri}` is not a catalog location; {expected}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_uris() {
        assert_eq!(
            image_uri_protocol("https://repo.example/a.bin"),
            Ok(Some(TransferProtocol::Https))
        );
        assert_eq!(
            image_uri_protocol("smb://files/share/a.exe"),
            Ok(Some(TransferProtocol::Cifs))
        );
        assert!(image_uri_protocol("repo.example/a.bin").is_err());
        assert!(image_uri_protocol("gopher://x/a").is_err());
        assert!(image_uri_protocol("https:///a.bin").is_err());
    }

    #[test]
    fn catalog_uris() {
        assert_eq!(
            catalog_uri_problem("https://downloads.example/Catalog.xml.gz"),
            None
        );
        assert_eq!(catalog_uri_problem("/srv/repo/Catalog.xml"), None);
        assert_eq!(catalog_uri_problem("file:///srv/repo/Catalog.xml"), None);
        assert!(catalog_uri_problem("Catalog.xml").is_some());
        assert!(catalog_uri_problem("ftp://x/Catalog.xml").is_some());
    }
}
