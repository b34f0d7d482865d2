//! The Server plan: the desired server against what ballast last found when it connected.
//! Acting on a server never changes more than the spec asks: connect (checking the host key),
//! prepare (install what is missing), or forget it (ballast never touches a machine it is told
//! to forget).

use serde::{Deserialize, Serialize};

use crate::Action;

/// What ballast found about a server the last time it tried to connect: the observed state the
/// store records (volatile figures such as free disk live only in the `servers` table, so a
/// snapshot is written when something meaningful changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedServer {
    /// `connected`, `preparing`, `error` or `disconnected`.
    pub status: String,
    /// Why the status is not `connected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The host key fingerprint seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Hash of the spec last reconciled successfully (connected and, if asked, prepared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    /// The spec last reconciled successfully, for diffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// What preparation would still do ("docker is not installed", "packages missing: jq").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// OS (PRETTY_NAME), kernel and architecture, for `describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

pub const CONNECTED: &str = "connected";

impl ObservedServer {
    pub fn is_connected(&self) -> bool {
        self.status == CONNECTED
    }
    /// Whether apps can run on it: connected, and nothing left to prepare.
    pub fn is_ready(&self) -> bool {
        self.is_connected() && self.needs.is_empty()
    }
}

/// One step of a Server action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum ServerStep {
    /// Connect (verifying the host key) and read the system information.
    Connect,
    /// Install what `prepare` asks for that is missing, step by step.
    Prepare,
    /// Forget the server: its recorded state and credentials; the machine is not touched.
    Forget,
}

/// The desired side of a Server plan.
pub struct DesiredServer<'a> {
    pub spec: &'a ballast_model::ServerSpec,
    /// Spec hash including the versions of the secrets it uses.
    pub hash: &'a str,
}

/// Plans one server.
pub fn plan_server(
    desired: Option<DesiredServer<'_>>,
    observed: Option<&ObservedServer>,
    prune: bool,
) -> (Action, Vec<String>, Vec<ServerStep>) {
    let work = |spec: &ballast_model::ServerSpec| {
        let mut steps = vec![ServerStep::Connect];
        if spec.prepare.is_some() {
            steps.push(ServerStep::Prepare);
        }
        steps
    };
    match (desired, observed) {
        (None, None) => (Action::NoOp, vec![], vec![]),
        (None, Some(_)) if prune => (
            Action::Delete,
            vec!["removed from the manifests; forgotten (the machine is not touched)".into()],
            vec![ServerStep::Forget],
        ),
        (None, Some(_)) => (
            Action::NoOp,
            vec!["removed from the manifests; kept (use --prune to forget it)".into()],
            vec![],
        ),
        (Some(want), None) => (
            Action::Create,
            vec!["never connected".into()],
            work(want.spec),
        ),
        (Some(want), Some(live)) if live.applied_hash.is_none() => {
            let mut reasons = vec!["never reconciled".to_string()];
            if !live.is_connected() {
                reasons.push(format!(
                    "{}: {}",
                    live.status,
                    live.message.as_deref().unwrap_or("no detail")
                ));
            }
            (Action::Create, reasons, work(want.spec))
        }
        (Some(want), Some(live)) => {
            let mut reasons = Vec::new();
            if live.applied_hash.as_deref() != Some(want.hash) {
                reasons.push("spec changed".to_string());
            }
            if !live.is_connected() {
                reasons.push(format!(
                    "{}: {}",
                    live.status,
                    live.message.as_deref().unwrap_or("no detail")
                ));
            }
            if want.spec.prepare.is_some() {
                reasons.extend(live.needs.iter().cloned());
            }
            if reasons.is_empty() {
                (Action::NoOp, vec![], vec![])
            } else {
                (Action::Update, reasons, work(want.spec))
            }
        }
    }
}

/// The document a diff shows for a desired server.
pub fn desired_document(name: &str, spec: &ballast_model::ServerSpec) -> serde_json::Value {
    crate::app::document(
        "Server",
        name,
        serde_json::to_value(spec).unwrap_or(serde_json::Value::Null),
    )
}

/// The document a diff shows for a server as last reconciled.
pub fn live_document(name: &str, live: &ObservedServer) -> serde_json::Value {
    crate::app::document(
        "Server",
        name,
        live.applied_spec
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ballast_model::ServerSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn connected(hash: &str) -> ObservedServer {
        ObservedServer {
            status: CONNECTED.into(),
            applied_hash: Some(hash.into()),
            ..Default::default()
        }
    }

    #[test]
    fn server_plans_from_a_table_of_cases() {
        let plain = spec("address: 10.0.0.5\nauth: {password: {env: PW}}\n");
        let prepared =
            spec("address: 10.0.0.5\nauth: {password: {env: PW}}\nprepare: {packages: [jq]}\n");
        let mut needs_docker = connected("h1");
        needs_docker.needs = vec!["docker is not installed".into()];
        let mut down = connected("h1");
        down.status = "disconnected".into();
        down.message = Some("connection refused".into());
        let want = |s| {
            Some(DesiredServer {
                spec: s,
                hash: "h1",
            })
        };
        type Planned = (Action, Vec<String>, Vec<ServerStep>);
        let cases: Vec<(&str, Planned)> = vec![
            ("new server", plan_server(want(&prepared), None, false)),
            (
                "in sync",
                plan_server(want(&plain), Some(&connected("h1")), false),
            ),
            (
                "spec changed",
                plan_server(want(&plain), Some(&connected("h0")), false),
            ),
            (
                "missing docker",
                plan_server(want(&prepared), Some(&needs_docker), false),
            ),
            (
                "needs ignored without prepare",
                plan_server(want(&plain), Some(&needs_docker), false),
            ),
            ("unreachable", plan_server(want(&plain), Some(&down), false)),
            (
                "removed, kept",
                plan_server(None, Some(&connected("h1")), false),
            ),
            (
                "removed, pruned",
                plan_server(None, Some(&connected("h1")), true),
            ),
        ];
        let got: Vec<(&str, Action, Vec<ServerStep>, String)> = cases
            .into_iter()
            .map(|(name, (action, reasons, steps))| (name, action, steps, reasons.join("; ")))
            .collect();
        use ServerStep::*;
        assert_eq!(
            got,
            vec![
                (
                    "new server",
                    Action::Create,
                    vec![Connect, Prepare],
                    "never connected".into()
                ),
                ("in sync", Action::NoOp, vec![], String::new()),
                (
                    "spec changed",
                    Action::Update,
                    vec![Connect],
                    "spec changed".into()
                ),
                (
                    "missing docker",
                    Action::Update,
                    vec![Connect, Prepare],
                    "docker is not installed".into()
                ),
                (
                    "needs ignored without prepare",
                    Action::NoOp,
                    vec![],
                    String::new()
                ),
                (
                    "unreachable",
                    Action::Update,
                    vec![Connect],
                    "disconnected: connection refused".into()
                ),
                (
                    "removed, kept",
                    Action::NoOp,
                    vec![],
                    "removed from the manifests; kept (use --prune to forget it)".into()
                ),
                (
                    "removed, pruned",
                    Action::Delete,
                    vec![Forget],
                    "removed from the manifests; forgotten (the machine is not touched)".into()
                ),
            ]
        );
    }
}
