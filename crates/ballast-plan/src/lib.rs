//! Plans: pure functions that turn (desired, observed) into the steps that make reality match,
//! and the rendering of a plan as a Terraform-style diff. No I/O happens here, so `diff` and
//! `apply` share one code path and every rule is tested from tables of cases.

pub mod app;
pub mod render;

pub use app::{plan_app, AppStep, ObservedApp};

use ballast_model::ResourceKey;
use serde::Serialize;

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
    pub steps: Vec<AppStep>,
    /// The live (last applied) document, as YAML text; empty for a create.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub before: String,
    /// The desired document, as YAML text; empty for a delete.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
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
