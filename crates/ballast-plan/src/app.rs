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
}

impl ObservedApp {
    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(labels::SPEC_HASH).map(String::as_str)
    }
    pub fn applied_spec(&self) -> Option<serde_json::Value> {
        self.labels.get(labels::SPEC).and_then(|s| serde_json::from_str(s).ok())
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
    RemoveContainer { container_id: String },
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
                    vec![AppStep::RemoveContainer { container_id: live.container_id.clone() }],
                )
            } else {
                (Action::NoOp, vec!["removed from the manifests; kept (use --prune to delete)".into()], vec![])
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
                steps.push(AppStep::RemoveContainer { container_id: live.container_id.clone() });
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
