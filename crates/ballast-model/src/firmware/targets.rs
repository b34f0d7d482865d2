//! What a FirmwarePlan needs from the rest of the set: its targets resolved into hosts (Servers
//! by name or by `metadata.labels` selector, each with its priority), and the set-wide checks
//! (every target is a Server with a `bmc`; `minHostsOnline` leaves a host to update;
//! maintenance commands have an SSH connection to run over).

use std::collections::BTreeMap;

use indexmap::IndexMap;

use crate::diagnostic::Diagnostic;
use crate::firmware::FirmwarePlanSpec;
use crate::firmware::check::ParsedFirmwarePlan;
use crate::loader::DocContext;
use crate::manifest::DesiredSet;
use crate::near::diag_near;
use crate::server::ServerSpec;

/// A Server of the set, as target resolution sees it.
#[derive(Debug, Clone, Copy)]
pub struct ServerRef<'a> {
    pub name: &'a str,
    /// `metadata.labels`: what selectors match.
    pub labels: &'a IndexMap<String, String>,
    pub spec: &'a ServerSpec,
}

impl<'a> ServerRef<'a> {
    /// Every Server of a validated set.
    pub fn all(set: &'a DesiredSet) -> Vec<ServerRef<'a>> {
        set.servers()
            .map(|(resource, spec)| ServerRef {
                name: &resource.key.name,
                labels: &resource.metadata.labels,
                spec,
            })
            .collect()
    }
}

/// One host of a plan: a Server and its priority (lower first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub server: String,
    pub priority: i64,
}

/// Whether every label of `wanted` is on `labels` with the same value.
fn matches(wanted: &IndexMap<String, String>, labels: &IndexMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The plan's hosts: each Server named or selected, once, with the lowest priority of the
/// entries that name it (an entry without `priority` has its position in the list), ordered by
/// priority then name. Names of Servers not in `servers` are kept (the set-wide check reports
/// them); Servers without a `bmc` are kept too, for the same reason.
pub fn resolve_targets(spec: &FirmwarePlanSpec, servers: &[ServerRef<'_>]) -> Vec<ResolvedTarget> {
    let mut best: BTreeMap<String, i64> = BTreeMap::new();
    let mut take = |name: &str, priority: i64| {
        best.entry(name.to_string())
            .and_modify(|p| *p = (*p).min(priority))
            .or_insert(priority);
    };
    for (i, target) in spec.targets.iter().enumerate() {
        let priority = target
            .priority
            .as_ref()
            .map(|p| p.value)
            .unwrap_or(i as i64);
        if let Some(server) = &target.server {
            take(&server.value, priority);
        }
        if let Some(selector) = &target.selector {
            for server in servers {
                if matches(&selector.match_labels, server.labels) {
                    take(server.name, priority);
                }
            }
        }
    }
    let mut out: Vec<ResolvedTarget> = best
        .into_iter()
        .map(|(server, priority)| ResolvedTarget { server, priority })
        .collect();
    out.sort_by(|a, b| (a.priority, &a.server).cmp(&(b.priority, &b.server)));
    out
}

impl ParsedFirmwarePlan {
    /// The set-wide checks of this plan against the set's Servers.
    pub fn check_targets(&self, servers: &[ServerRef<'_>]) -> Vec<Diagnostic> {
        check_plan_targets(&self.doc, &self.spec, servers)
    }
}

/// The checks of a plan that need the set: each named Server exists and has a `bmc`; each
/// selector matches Servers, all with a `bmc`; `minHostsOnline` is below the number of hosts;
/// maintenance commands need every host to have an SSH `address`.
pub(crate) fn check_plan_targets(
    ctx: &DocContext,
    spec: &FirmwarePlanSpec,
    servers: &[ServerRef<'_>],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let by_name: BTreeMap<&str, &ServerRef<'_>> = servers.iter().map(|s| (s.name, s)).collect();
    let no_bmc = |name: &str| {
        format!(
            "Server `{name}` has no `bmc`; a firmware plan reaches hosts through their BMC (add `spec.bmc` to the Server)"
        )
    };
    for (i, target) in spec.targets.iter().enumerate() {
        if let Some(name) = &target.server {
            let field = format!("spec.targets[{i}].server");
            match by_name.get(name.value.as_str()) {
                None => out.push(ctx.diag(
                    &name.referenced,
                    &field,
                    format!(
                        "unknown server `{}`: no Server by that name in the manifests",
                        name.value
                    ),
                )),
                Some(server) if server.spec.bmc.is_none() => {
                    out.push(ctx.diag(&name.referenced, &field, no_bmc(&name.value)))
                }
                Some(_) => {}
            }
        }
        if let Some(selector) = &target.selector {
            if selector.match_labels.is_empty() {
                // Reported by the plan's own checks.
                continue;
            }
            let index = i.to_string();
            let path = ["spec", "targets", &index, "selector"];
            let selected: Vec<&ServerRef<'_>> = servers
                .iter()
                .filter(|s| matches(&selector.match_labels, s.labels))
                .collect();
            if selected.is_empty() {
                let labels: Vec<String> = selector
                    .match_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                out.push(diag_near(
                    ctx,
                    &path,
                    format!(
                        "the selector {} matches no Server (selectors match a Server's metadata.labels)",
                        labels.join(",")
                    ),
                ));
            }
            for server in selected.iter().filter(|s| s.spec.bmc.is_none()) {
                out.push(diag_near(ctx, &path, no_bmc(server.name)));
            }
        }
    }
    let hosts = resolve_targets(spec, servers);
    let known: Vec<&ResolvedTarget> = hosts
        .iter()
        .filter(|t| by_name.contains_key(t.server.as_str()))
        .collect();
    let min = spec.policy.min_hosts_online;
    if min > 0 && !known.is_empty() && min as usize >= known.len() {
        out.push(diag_near(
            ctx,
            &["spec", "policy", "minHostsOnline"],
            format!(
                "minHostsOnline {min} leaves no host to update: the plan has {} host(s); expected at most {}",
                known.len(),
                known.len() - 1
            ),
        ));
    }
    let has_commands = spec
        .policy
        .maintenance
        .as_ref()
        .is_some_and(|m| !m.is_empty());
    if has_commands {
        for target in &known {
            if let Some(server) = by_name.get(target.server.as_str())
                && !server.spec.has_ssh()
            {
                out.push(diag_near(
                    ctx,
                    &["spec", "policy", "maintenance"],
                    format!(
                        "maintenance commands run over SSH, but Server `{}` has no `address` (it has only a BMC)",
                        target.server
                    ),
                ));
            }
        }
    }
    out
}
