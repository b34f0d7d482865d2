//! The App plan: desired container vs the container found on the engine.

use std::collections::BTreeMap;

use ballast_model::app::AppState;
use serde::{Deserialize, Serialize};

/// Labels ballast puts on every container it creates.
pub mod labels {
    /// `true` on every container ballast created; prune never touches a container without it.
    pub const MANAGED: &str = "ballast.managed";
    /// The store's instance id: two ballast databases on one engine never prune each other.
    pub const INSTANCE: &str = "ballast.instance";
    /// The App's name.
    pub const APP: &str = "ballast.app";
    /// Hash of the spec the container was created from (secret values enter only as versions).
    pub const SPEC_HASH: &str = "ballast.spec-hash";
    /// The spec the container was created from, as JSON (secret references, never values), so
    /// a diff can show what changed, as kubectl's last-applied-configuration does.
    pub const SPEC: &str = "ballast.spec";
}

/// What the engine reports about one app's container: the observed state the store records and
/// the plan compares against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedApp {
    pub container_id: String,
    /// Container name without Docker's leading `/`.
    pub name: String,
    /// The image reference the container was created with.
    pub image: String,
    pub image_id: String,
    /// Docker's state: created, running, paused, restarting, removing, exited or dead.
    pub state: String,
    /// Docker's human status, e.g. `Up 3 minutes`.
    pub status: String,
    /// `ip:host->container/proto` for every published port.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// The server whose engine runs it (`local` for this machine's).
    #[serde(default = "local_server", skip_serializing_if = "is_local")]
    pub server: String,
}

fn local_server() -> String {
    ballast_model::app::LOCAL_SERVER.to_string()
}

fn is_local(server: &str) -> bool {
    server == ballast_model::app::LOCAL_SERVER
}

impl ObservedApp {
    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(labels::SPEC_HASH).map(String::as_str)
    }
    pub fn applied_spec(&self) -> Option<serde_json::Value> {
        self.labels
            .get(labels::SPEC)
            .and_then(|s| serde_json::from_str(s).ok())
    }
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting")
    }
}

/// One step of an App action, executed in order by the Docker controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum AppStep {
    /// Make the image present according to `pullPolicy`.
    EnsureImage,
    /// Create the networks the spec names that do not exist yet.
    EnsureNetworks,
    /// Create the container (named after the app) with every spec field and ballast's labels.
    CreateContainer,
    StartContainer,
    StopContainer,
    /// Stop if needed and remove a container; named volumes are kept.
    RemoveContainer {
        container_id: String,
    },
}

/// The desired side of an App plan.
pub struct DesiredApp<'a> {
    pub spec: &'a ballast_model::AppSpec,
    /// Spec hash including the versions of the secrets it uses.
    pub hash: &'a str,
}

/// Plans one app. `desired` is `None` when the app left the manifests; it is then deleted only
/// when `prune` is set (and only a container ballast created ever reaches here).
pub fn plan_app(
    desired: Option<DesiredApp<'_>>,
    observed: Option<&ObservedApp>,
    prune: bool,
) -> (crate::Action, Vec<String>, Vec<AppStep>) {
    use crate::Action;
    match (desired, observed) {
        (None, None) => (Action::NoOp, vec![], vec![]),
        (None, Some(live)) => {
            if prune {
                (
                    Action::Delete,
                    vec!["removed from the manifests".into()],
                    vec![AppStep::RemoveContainer {
                        container_id: live.container_id.clone(),
                    }],
                )
            } else {
                (
                    Action::NoOp,
                    vec!["removed from the manifests; kept (use --prune to delete)".into()],
                    vec![],
                )
            }
        }
        (Some(want), None) => {
            let mut steps = vec![AppStep::EnsureImage];
            if !want.spec.networks.is_empty() {
                steps.push(AppStep::EnsureNetworks);
            }
            steps.push(AppStep::CreateContainer);
            if want.spec.state == AppState::Running {
                steps.push(AppStep::StartContainer);
            }
            (Action::Create, vec!["no container".into()], steps)
        }
        (Some(want), Some(live)) => {
            if live.spec_hash() != Some(want.hash) {
                let mut steps = vec![AppStep::EnsureImage];
                if !want.spec.networks.is_empty() {
                    steps.push(AppStep::EnsureNetworks);
                }
                steps.push(AppStep::RemoveContainer {
                    container_id: live.container_id.clone(),
                });
                steps.push(AppStep::CreateContainer);
                if want.spec.state == AppState::Running {
                    steps.push(AppStep::StartContainer);
                }
                let reason = match live.spec_hash() {
                    None => "container has no spec hash label".to_string(),
                    Some(_) => "spec changed".to_string(),
                };
                return (Action::Replace, vec![reason], steps);
            }
            match (want.spec.state, live.is_running()) {
                (AppState::Running, false) => (
                    Action::Update,
                    vec![format!("container is {}, want running", live.state)],
                    vec![AppStep::StartContainer],
                ),
                (AppState::Stopped, true) => (
                    Action::Update,
                    vec![format!("container is {}, want stopped", live.state)],
                    vec![AppStep::StopContainer],
                ),
                _ => (Action::NoOp, vec![], vec![]),
            }
        }
    }
}

/// The document a diff shows for a desired app: kind, name and spec, with `state` always
/// written so a stopped container reads as a change of that one field.
pub fn desired_document(name: &str, spec: &ballast_model::AppSpec) -> serde_json::Value {
    let mut spec_json = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
    if let Some(o) = spec_json.as_object_mut() {
        o.insert(
            "state".into(),
            serde_json::Value::String(spec.state.to_string()),
        );
    }
    document("App", name, spec_json)
}

/// The document a diff shows for a live container: the spec it was created from (its label)
/// with `state` replaced by what the engine reports.
pub fn live_document(live: &ObservedApp) -> serde_json::Value {
    let mut spec_json = live
        .applied_spec()
        .unwrap_or_else(|| serde_json::json!({"image": live.image}));
    if let Some(o) = spec_json.as_object_mut() {
        let state = if live.is_running() {
            "running"
        } else {
            "stopped"
        };
        o.insert("state".into(), serde_json::Value::String(state.into()));
    }
    let name = live
        .labels
        .get(labels::APP)
        .cloned()
        .unwrap_or_else(|| live.name.clone());
    document("App", &name, spec_json)
}

pub(crate) fn document(kind: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": ballast_model::API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use ballast_model::AppSpec;

    fn spec(yaml: &str) -> AppSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn live(state: &str, hash: Option<&str>) -> ObservedApp {
        let mut labels = BTreeMap::new();
        if let Some(h) = hash {
            labels.insert(labels::SPEC_HASH.to_string(), h.to_string());
        }
        ObservedApp {
            container_id: "c1".into(),
            name: "web".into(),
            image: "img:1".into(),
            image_id: "sha256:1".into(),
            state: state.into(),
            status: String::new(),
            ports: vec![],
            labels,
            created: 0,
            server: "local".into(),
        }
    }

    #[test]
    fn table_of_app_plans() {
        let running = spec("image: img:1\n");
        let stopped = spec("image: img:1\nstate: stopped\n");
        let networked = spec("image: img:1\nnetworks: [front]\n");
        let want = |s: &'static AppSpec, hash: &'static str| Some(DesiredApp { spec: s, hash });
        // Leak the specs so the table can hold plain references.
        let running: &'static AppSpec = Box::leak(Box::new(running));
        let stopped: &'static AppSpec = Box::leak(Box::new(stopped));
        let networked: &'static AppSpec = Box::leak(Box::new(networked));
        use AppStep::*;
        let rm = || RemoveContainer {
            container_id: "c1".into(),
        };
        type Case = (
            &'static str,
            Option<DesiredApp<'static>>,
            Option<ObservedApp>,
            bool,
            Action,
            Vec<AppStep>,
        );
        let cases: Vec<Case> = vec![
            ("absent both", None, None, false, Action::NoOp, vec![]),
            (
                "create running",
                want(running, "h"),
                None,
                false,
                Action::Create,
                vec![EnsureImage, CreateContainer, StartContainer],
            ),
            (
                "create stopped",
                want(stopped, "h"),
                None,
                false,
                Action::Create,
                vec![EnsureImage, CreateContainer],
            ),
            (
                "create with network",
                want(networked, "h"),
                None,
                false,
                Action::Create,
                vec![EnsureImage, EnsureNetworks, CreateContainer, StartContainer],
            ),
            (
                "in sync",
                want(running, "h"),
                Some(live("running", Some("h"))),
                false,
                Action::NoOp,
                vec![],
            ),
            (
                "stopped by hand",
                want(running, "h"),
                Some(live("exited", Some("h"))),
                false,
                Action::Update,
                vec![StartContainer],
            ),
            (
                "created, never started",
                want(running, "h"),
                Some(live("created", Some("h"))),
                false,
                Action::Update,
                vec![StartContainer],
            ),
            (
                "want stopped",
                want(stopped, "h"),
                Some(live("running", Some("h"))),
                false,
                Action::Update,
                vec![StopContainer],
            ),
            (
                "stopped and in sync",
                want(stopped, "h"),
                Some(live("exited", Some("h"))),
                false,
                Action::NoOp,
                vec![],
            ),
            (
                "spec changed",
                want(running, "h2"),
                Some(live("running", Some("h"))),
                false,
                Action::Replace,
                vec![EnsureImage, rm(), CreateContainer, StartContainer],
            ),
            (
                "no hash label",
                want(running, "h"),
                Some(live("running", None)),
                false,
                Action::Replace,
                vec![EnsureImage, rm(), CreateContainer, StartContainer],
            ),
            (
                "removed, no prune",
                None,
                Some(live("running", Some("h"))),
                false,
                Action::NoOp,
                vec![],
            ),
            (
                "removed, prune",
                None,
                Some(live("running", Some("h"))),
                true,
                Action::Delete,
                vec![rm()],
            ),
        ];
        for (name, desired, observed, prune, action, steps) in cases {
            let (got_action, _reasons, got_steps) = plan_app(desired, observed.as_ref(), prune);
            assert_eq!(got_action, action, "{name}");
            assert_eq!(got_steps, steps, "{name}");
        }
    }
}
