//! Plans: pure functions that turn (desired, observed) into the steps that make reality match,
//! and the rendering of a plan as a Terraform-style diff. No I/O happens here, so `diff` and
//! `apply` share one code path and every rule is tested from tables of cases.

pub mod app;
pub mod render;
pub mod server;

pub use app::{AppStep, DesiredApp, ObservedApp, plan_app};
pub use server::{DesiredServer, ObservedServer, ServerStep, plan_server};

use std::collections::{BTreeMap, HashMap, HashSet};

use ballast_model::{DesiredSet, Kind, ResourceKey, ResourceSpec};
use serde::{Deserialize, Serialize};

/// What a plan does to one resource, in Terraform's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// The symbol a diff line starts with.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "unchanged",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }
}

/// The plan for one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub key: ResourceKey,
    pub action: Action,
    /// Why: one short sentence per difference found (`image changed`, `container stopped by hand`).
    pub reasons: Vec<String>,
    pub steps: Vec<Step>,
    /// Resources of this plan that must be applied before this one (from `dependsOn`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceKey>,
    /// The live (last applied) document, as YAML text; empty for a create or no change.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub before: String,
    /// The desired document, as YAML text; empty for a delete or no change.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
}

/// One step of an action, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    App(AppStep),
    Server(ServerStep),
}

/// What was found, by kind: apps by name (on whichever server they run) and servers by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub apps: BTreeMap<String, ObservedApp>,
    pub servers: BTreeMap<String, ObservedServer>,
}

/// The plan for a whole set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub resources: Vec<ResourcePlan>,
}

/// Counts for the closing line of a diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub delete: usize,
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &ResourcePlan> {
        self.resources.iter().filter(|r| r.action != Action::NoOp)
    }
    pub fn has_changes(&self) -> bool {
        self.changes().next().is_some()
    }
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.resources {
            match r.action {
                Action::NoOp => {}
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plan: {} to add, {} to change, {} to replace, {} to delete.",
            self.add, self.change, self.replace, self.delete
        )
    }
}

/// Renders a JSON document as YAML text for diffs.
pub fn to_yaml(value: &serde_json::Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// Plans the whole set. `hashes` holds each desired resource's effective hash (its spec hash
/// combined with the versions of the secrets it uses). `targets`, when not empty, limits the
/// plan to those resources. Resources come out in an order that respects dependencies (servers
/// before the apps on them, `dependsOn`), deletions last.
pub fn plan_set(
    desired: &DesiredSet,
    hashes: &HashMap<ResourceKey, String>,
    observed: &Observed,
    prune: bool,
    targets: &[ResourceKey],
) -> Plan {
    let wanted = |key: &ResourceKey| targets.is_empty() || targets.contains(key);
    let mut resources = Vec::new();
    for resource in dependency_order(desired) {
        if !wanted(&resource.key) {
            continue;
        }
        let hash = hashes
            .get(&resource.key)
            .map(String::as_str)
            .unwrap_or_default();
        let name = &resource.key.name;
        let planned = match &resource.spec {
            ResourceSpec::App(spec) => plan_desired_app(name, spec, hash, observed, prune, &wanted),
            ResourceSpec::Server(spec) => {
                let live = observed.servers.get(name);
                let (action, reasons, steps) =
                    plan_server(Some(DesiredServer { spec, hash }), live, prune);
                let (before, after) = if action == Action::NoOp {
                    (String::new(), String::new())
                } else {
                    (
                        live.map(|l| to_yaml(&server::live_document(name, l)))
                            .unwrap_or_default(),
                        to_yaml(&server::desired_document(name, spec)),
                    )
                };
                ResourcePlan {
                    key: resource.key.clone(),
                    action,
                    reasons,
                    steps: steps.into_iter().map(Step::Server).collect(),
                    depends_on: vec![],
                    before,
                    after,
                }
            }
        };
        resources.push(planned);
    }
    for (name, live) in &observed.apps {
        let key = ResourceKey::new(Kind::App, name.clone());
        if desired.get(&key).is_some() || !wanted(&key) {
            continue;
        }
        let (action, reasons, steps) = plan_app(None, Some(live), prune);
        let before = to_yaml(&app::live_document(live));
        resources.push(ResourcePlan {
            key,
            action,
            reasons,
            steps: steps.into_iter().map(Step::App).collect(),
            depends_on: vec![],
            before,
            after: String::new(),
        });
    }
    for (name, live) in &observed.servers {
        let key = ResourceKey::new(Kind::Server, name.clone());
        if desired.get(&key).is_some() || !wanted(&key) {
            continue;
        }
        let (action, reasons, steps) = plan_server(None, Some(live), prune);
        let before = to_yaml(&server::live_document(name, live));
        resources.push(ResourcePlan {
            key,
            action,
            reasons,
            steps: steps.into_iter().map(Step::Server).collect(),
            depends_on: vec![],
            before,
            after: String::new(),
        });
    }
    Plan { resources }
}

fn plan_desired_app(
    name: &str,
    spec: &ballast_model::AppSpec,
    hash: &str,
    observed: &Observed,
    prune: bool,
    wanted: &dyn Fn(&ResourceKey) -> bool,
) -> ResourcePlan {
    let key = ResourceKey::new(Kind::App, name);
    let live = observed.apps.get(name);
    let (action, mut reasons, steps) = plan_app(Some(DesiredApp { spec, hash }), live, prune);
    if action == Action::Replace
        && let Some(applied) = live.and_then(ObservedApp::applied_spec)
        && serde_json::to_value(spec).ok().as_ref() == Some(&applied)
    {
        // Same spec, different hash: only the secrets' versions enter the hash besides it.
        reasons = vec!["a secret it uses was changed".into()];
    }
    // Only a change is shown as a diff; rendering thousands of unchanged apps is waste.
    let (before, after) = if action == Action::NoOp {
        (String::new(), String::new())
    } else {
        (
            live.map(|l| to_yaml(&app::live_document(l)))
                .unwrap_or_default(),
            to_yaml(&app::desired_document(name, spec)),
        )
    };
    let server = (spec.server.value != ballast_model::app::LOCAL_SERVER)
        .then(|| ResourceKey::new(Kind::Server, spec.server.value.clone()));
    let depends_on = server
        .into_iter()
        .chain(
            spec.depends_on
                .iter()
                .map(|d| ResourceKey::new(Kind::App, d.value.clone())),
        )
        .filter(|k| wanted(k))
        .collect();
    ResourcePlan {
        key,
        action,
        reasons,
        steps: steps.into_iter().map(Step::App).collect(),
        depends_on,
        before,
        after,
    }
}

/// Desired resources with servers first and every app after the apps it depends on; otherwise
/// in manifest order. The set was validated, so there is no cycle; a leftover (impossible)
/// cycle is appended as is.
pub fn dependency_order(desired: &DesiredSet) -> Vec<&ballast_model::DesiredResource> {
    let mut placed: HashSet<&ResourceKey> = HashSet::new();
    let mut ordered: Vec<&ballast_model::DesiredResource> = desired
        .iter()
        .filter(|r| r.key.kind == Kind::Server)
        .collect();
    let mut remaining: Vec<_> = desired
        .iter()
        .filter(|r| r.key.kind != Kind::Server)
        .collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|r| {
            let ResourceSpec::App(spec) = &r.spec else {
                ordered.push(*r);
                return false;
            };
            let ready = spec.depends_on.iter().all(|d| {
                let key = ResourceKey::new(Kind::App, d.value.clone());
                placed.contains(&key) || desired.get(&key).is_none()
            });
            if ready {
                placed.insert(&r.key);
                ordered.push(*r);
            }
            !ready
        });
        if remaining.len() == before {
            ordered.append(&mut remaining);
        }
    }
    ordered
}
