//! Plans: pure functions that turn (desired, observed) into the steps that make reality match,
//! and the rendering of a plan as a Terraform-style diff. No I/O happens here, so `diff` and
//! `apply` share one code path and every rule is tested from tables of cases.

pub mod app;
pub mod firmware;
pub mod proxmox;
pub mod render;
pub mod server;

pub use app::{AppStep, AppliedMetadata, DesiredApp, Health, ObservedApp, plan_app};
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
    /// Each app's `metadata` (labels, annotations) as recorded with its last applied desired
    /// state, by app name. It never reaches the container, so this is the only place its
    /// applied value is known. An app missing here is not compared on metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_metadata: BTreeMap<String, AppliedMetadata>,
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
            ResourceSpec::App(spec) => {
                let metadata = AppliedMetadata::of(&resource.metadata);
                plan_desired_app(name, spec, &metadata, hash, observed, prune, &wanted)
            }
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
    metadata: &AppliedMetadata,
    hash: &str,
    observed: &Observed,
    prune: bool,
    wanted: &dyn Fn(&ResourceKey) -> bool,
) -> ResourcePlan {
    let key = ResourceKey::new(Kind::App, name);
    let live = observed.apps.get(name);
    let (mut action, mut reasons, steps) = plan_app(Some(DesiredApp { spec, hash }), live, prune);
    if action == Action::Replace
        && live.and_then(ObservedApp::spec_hash) != Some(hash)
        && let Some(applied) = live.and_then(ObservedApp::applied_spec)
        && serde_json::to_value(spec).ok().as_ref() == Some(&applied)
    {
        // Same spec, different hash: only the secrets' versions enter the hash besides it.
        reasons = vec!["a secret it uses was changed".into()];
    }
    // Metadata is ballast's own (selection, policy) and never reaches the container: a change
    // of it alone is an update with no container step, which records the new desired state.
    // Unknown (nothing recorded yet) counts as unchanged.
    let applied_metadata = observed.app_metadata.get(name);
    if live.is_some() && applied_metadata.is_some_and(|m| m != metadata) {
        if action == Action::NoOp {
            action = Action::Update;
            reasons = vec![
                "metadata changed; it is ballast's own and does not reach the container".into(),
            ];
        } else {
            reasons.push("metadata changed".into());
        }
    }
    // Only a change is shown as a diff; rendering thousands of unchanged apps is waste.
    let (before, after) = if action == Action::NoOp {
        (String::new(), String::new())
    } else {
        let before = live.map(|l| {
            let mut doc = app::live_document(l);
            applied_metadata.unwrap_or(metadata).write_into(&mut doc);
            to_yaml(&doc)
        });
        let mut after = app::desired_document(name, spec);
        metadata.write_into(&mut after);
        (before.unwrap_or_default(), to_yaml(&after))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(metadata: &str) -> DesiredSet {
        let text = format!(
            "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: web\n{metadata}spec:\n  image: img:1\n"
        );
        let (resources, problems) =
            ballast_model::parse_source(std::path::Path::new("web.yaml"), &text);
        assert!(problems.is_empty(), "{problems:?}");
        ballast_model::validate_set(resources, Default::default()).expect("valid set")
    }

    fn container(hash: &str) -> ObservedApp {
        ObservedApp {
            container_id: "c1".into(),
            name: "web".into(),
            image: "img:1".into(),
            image_id: "sha256:1".into(),
            state: "running".into(),
            status: String::new(),
            health: None,
            exit_code: None,
            ports: vec![],
            labels: BTreeMap::from([(app::labels::SPEC_HASH.to_string(), hash.to_string())]),
            created: 0,
            networks: None,
            server: "local".into(),
        }
    }

    fn recorded(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> AppliedMetadata {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        AppliedMetadata {
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    #[test]
    fn table_of_metadata_changes() {
        let key = ResourceKey::new(Kind::App, "web");
        type Case = (
            &'static str,
            &'static str,
            Option<AppliedMetadata>,
            Option<&'static str>,
            Action,
        );
        let team_b = "  labels:\n    team: b\n";
        let cases: Vec<Case> = vec![
            (
                "labels changed",
                team_b,
                Some(recorded(&[("team", "a")], &[])),
                Some("h"),
                Action::Update,
            ),
            (
                "labels added",
                team_b,
                Some(recorded(&[], &[])),
                Some("h"),
                Action::Update,
            ),
            (
                "labels removed",
                "",
                Some(recorded(&[("team", "a")], &[])),
                Some("h"),
                Action::Update,
            ),
            (
                "annotations changed",
                "  annotations:\n    note: new\n",
                Some(recorded(&[], &[("note", "old")])),
                Some("h"),
                Action::Update,
            ),
            (
                "unchanged",
                team_b,
                Some(recorded(&[("team", "b")], &[])),
                Some("h"),
                Action::NoOp,
            ),
            (
                "nothing recorded: not compared",
                team_b,
                None,
                Some("h"),
                Action::NoOp,
            ),
            (
                "spec changed too",
                team_b,
                Some(recorded(&[("team", "a")], &[])),
                Some("old"),
                Action::Replace,
            ),
            (
                "no container",
                team_b,
                Some(recorded(&[("team", "a")], &[])),
                None,
                Action::Create,
            ),
        ];
        for (name, metadata, applied, live_hash, action) in cases {
            let desired = set(metadata);
            let hashes = HashMap::from([(key.clone(), "h".to_string())]);
            let mut observed = Observed::default();
            if let Some(hash) = live_hash {
                observed.apps.insert("web".into(), container(hash));
            }
            if let Some(applied) = applied.clone() {
                observed.app_metadata.insert("web".into(), applied);
            }
            let plan = plan_set(&desired, &hashes, &observed, false, &[]);
            let got = &plan.resources[0];
            assert_eq!(got.action, action, "{name}");
            match action {
                Action::Update => {
                    assert!(got.steps.is_empty(), "{name}: no container step");
                    assert!(
                        got.reasons[0].starts_with("metadata changed"),
                        "{name}: {:?}",
                        got.reasons
                    );
                    assert_ne!(got.before, got.after, "{name}: the diff shows it");
                }
                Action::Replace => {
                    assert!(
                        got.reasons.contains(&"metadata changed".to_string()),
                        "{name}: {:?}",
                        got.reasons
                    );
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_diff_shows_the_old_and_new_labels() {
        let desired = set("  labels:\n    team: b\n");
        let key = ResourceKey::new(Kind::App, "web");
        let hashes = HashMap::from([(key, "h".to_string())]);
        let mut observed = Observed::default();
        observed.apps.insert("web".into(), container("h"));
        observed
            .app_metadata
            .insert("web".into(), recorded(&[("team", "a")], &[]));
        let plan = plan_set(&desired, &hashes, &observed, false, &[]);
        let shown = render::render_plan(&plan, false);
        let line = |sign: &str, text: &str| {
            shown
                .lines()
                .any(|l| l.trim_start().starts_with(sign) && l.contains(text))
        };
        assert!(line("-", "team: a") && line("+", "team: b"), "{shown}");
        assert!(
            shown.contains("~ App/web will be updated in place (metadata changed"),
            "{shown}"
        );
        assert!(
            shown.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to delete."),
            "{shown}"
        );
    }
}
