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
    /// Docker's human status, e.g. `Up 3 minutes (healthy)`, from a live observation only. It
    /// holds clocks ("Up 3 minutes" becomes "Up 4 minutes"), so it is never serialized: the
    /// recorded state, and so the snapshots, hold only facts whose change means something
    /// (`state`, `health`, `exitCode`, …).
    #[serde(default, skip_serializing)]
    pub status: String,
    /// The healthcheck's verdict, parsed from the status; absent without a healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The exit code of the last run of an exited or restarting container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `ip:host->container/proto` for every published port.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// The networks the container is attached to, sorted. `None` when not observed (a state
    /// recorded by an older ballast); then it is not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// The server whose engine runs it (`local` for this machine's).
    #[serde(default = "local_server", skip_serializing_if = "is_local")]
    pub server: String,
}

/// A container's health as its healthcheck last judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What ballast recorded of an app's `metadata` when its desired state was last recorded:
/// ballast's own labels and annotations (for selection and policy), which never reach the
/// container, so only the store knows what was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppliedMetadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl AppliedMetadata {
    /// The labels and annotations of a manifest's metadata.
    pub fn of(metadata: &ballast_model::Metadata) -> AppliedMetadata {
        let collect = |m: &indexmap::IndexMap<String, String>| {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        AppliedMetadata {
            labels: collect(&metadata.labels),
            annotations: collect(&metadata.annotations),
        }
    }

    /// Read from a recorded desired document (`{"metadata": {...}, ...}`); a document without
    /// labels or annotations has empty ones.
    pub fn from_document(document: &serde_json::Value) -> Option<AppliedMetadata> {
        serde_json::from_value(document.get("metadata")?.clone()).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }

    /// Writes the labels and annotations into a document's `metadata`.
    pub fn write_into(&self, document: &mut serde_json::Value) {
        let Some(metadata) = document
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        else {
            return;
        };
        let as_value = |m: &BTreeMap<String, String>| serde_json::to_value(m).ok();
        if !self.labels.is_empty()
            && let Some(v) = as_value(&self.labels)
        {
            metadata.insert("labels".into(), v);
        }
        if !self.annotations.is_empty()
            && let Some(v) = as_value(&self.annotations)
        {
            metadata.insert("annotations".into(), v);
        }
    }
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
            let replace = |reason: String| {
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
                (Action::Replace, vec![reason], steps)
            };
            match live.spec_hash() {
                None => return replace("container has no spec hash label".into()),
                Some(hash) if hash != want.hash => return replace("spec changed".into()),
                Some(_) => {}
            }
            // The same spec hash says what the container was created from, not that its
            // setup finished: a create that failed or crashed after the engine made the
            // container leaves it without the networks connected after create.
            let missing = missing_networks(want.spec, live);
            if !missing.is_empty() {
                return replace(format!(
                    "container is not attached to network {}: its setup did not finish",
                    missing.join(", ")
                ));
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

/// The networks the spec names that the container is not attached to; none when the
/// container's networks were not observed.
fn missing_networks<'a>(spec: &'a ballast_model::AppSpec, live: &ObservedApp) -> Vec<&'a str> {
    let Some(attached) = &live.networks else {
        return Vec::new();
    };
    spec.networks
        .iter()
        .map(|n| n.value.as_str())
        .filter(|n| !attached.iter().any(|a| a == n))
        .collect()
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
            health: None,
            exit_code: None,
            ports: vec![],
            labels,
            created: 0,
            networks: None,
            server: "local".into(),
        }
    }

    fn on_networks(mut app: ObservedApp, networks: &[&str]) -> ObservedApp {
        app.networks = Some(networks.iter().map(|n| n.to_string()).collect());
        app
    }

    #[test]
    fn table_of_app_plans() {
        let running = spec("image: img:1\n");
        let stopped = spec("image: img:1\nstate: stopped\n");
        let networked = spec("image: img:1\nnetworks: [front]\n");
        let two_nets = spec("image: img:1\nnetworks: [front, back]\n");
        let want = |s: &'static AppSpec, hash: &'static str| Some(DesiredApp { spec: s, hash });
        // Leak the specs so the table can hold plain references.
        let running: &'static AppSpec = Box::leak(Box::new(running));
        let stopped: &'static AppSpec = Box::leak(Box::new(stopped));
        let networked: &'static AppSpec = Box::leak(Box::new(networked));
        let two_nets: &'static AppSpec = Box::leak(Box::new(two_nets));
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
                "created on its first network only (create failed or crashed before connect)",
                want(two_nets, "h"),
                Some(on_networks(live("created", Some("h")), &["front"])),
                false,
                Action::Replace,
                vec![
                    EnsureImage,
                    EnsureNetworks,
                    rm(),
                    CreateContainer,
                    StartContainer,
                ],
            ),
            (
                "running but a network was disconnected by hand",
                want(two_nets, "h"),
                Some(on_networks(live("running", Some("h")), &["back"])),
                false,
                Action::Replace,
                vec![
                    EnsureImage,
                    EnsureNetworks,
                    rm(),
                    CreateContainer,
                    StartContainer,
                ],
            ),
            (
                "every network attached, never started",
                want(two_nets, "h"),
                Some(on_networks(live("created", Some("h")), &["back", "front"])),
                false,
                Action::Update,
                vec![StartContainer],
            ),
            (
                "networks not observed (recorded by an older ballast): not compared",
                want(two_nets, "h"),
                Some(live("running", Some("h"))),
                false,
                Action::NoOp,
                vec![],
            ),
            (
                "no networks wanted: extra ones are not ballast's business",
                want(running, "h"),
                Some(on_networks(
                    live("running", Some("h")),
                    &["bridge", "other"],
                )),
                false,
                Action::NoOp,
                vec![],
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

    #[test]
    fn a_missing_network_is_named_in_the_reason() {
        let want = spec("image: img:1\nnetworks: [front, back]\n");
        let found = on_networks(live("created", Some("h")), &["front"]);
        let (_, reasons, _) = plan_app(
            Some(DesiredApp {
                spec: &want,
                hash: "h",
            }),
            Some(&found),
            false,
        );
        assert_eq!(
            reasons,
            vec!["container is not attached to network back: its setup did not finish"]
        );
    }

    #[test]
    fn the_recorded_state_holds_no_clock() {
        let mut found = live("running", Some("h"));
        found.status = "Up 3 minutes (healthy)".into();
        found.health = Some(Health::Healthy);
        let recorded = serde_json::to_value(&found).unwrap();
        assert!(recorded.get("status").is_none(), "{recorded}");
        assert_eq!(recorded["health"], "healthy");
        let mut later = found.clone();
        later.status = "Up 4 minutes (healthy)".into();
        assert_eq!(serde_json::to_value(&later).unwrap(), recorded);
        // A state recorded by an older ballast, with its status text, still reads.
        let old = serde_json::json!({
            "containerId": "c1", "name": "web", "image": "img:1", "imageId": "sha256:1",
            "state": "exited", "status": "Exited (1) 2 hours ago", "created": 0,
        });
        let read: ObservedApp = serde_json::from_value(old).unwrap();
        assert_eq!((read.networks, read.exit_code), (None, None));
    }
}
