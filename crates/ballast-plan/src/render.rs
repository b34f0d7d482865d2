//! Rendering a plan for people: Terraform-style symbols, a unified YAML diff per changed resource
//! (coloured on a terminal), and the closing `Plan: …` line.

use std::fmt::Write;

use owo_colors::OwoColorize;
use similar::{ChangeTag, TextDiff};

use crate::{Action, Plan, ResourcePlan};

/// Renders the human diff of a plan.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    let mut changes = plan.changes().peekable();
    if changes.peek().is_none() {
        for kept in plan
            .resources
            .iter()
            .filter(|r| r.action == Action::NoOp && !r.reasons.is_empty())
        {
            let _ = writeln!(out, "note: {} is {}", kept.key, kept.reasons.join("; "));
        }
        out.push_str("No changes: the live state matches the manifests.\n");
        return out;
    }
    for resource in changes {
        render_resource(&mut out, resource, color);
        out.push('\n');
    }
    for kept in plan
        .resources
        .iter()
        .filter(|r| r.action == Action::NoOp && !r.reasons.is_empty())
    {
        let _ = writeln!(out, "note: {} is {}", kept.key, kept.reasons.join("; "));
    }
    let _ = writeln!(out, "{}", plan.summary());
    out
}

fn paint(text: &str, tag: Option<ChangeTag>, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    match tag {
        Some(ChangeTag::Insert) => text.green().to_string(),
        Some(ChangeTag::Delete) => text.red().to_string(),
        _ => text.to_string(),
    }
}

fn header(resource: &ResourcePlan) -> String {
    let why = if resource.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", resource.reasons.join("; "))
    };
    let what = match resource.action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Replace => "must be replaced",
        Action::Delete => "will be deleted",
        Action::NoOp => "is unchanged",
    };
    format!(
        "{:>3} {} {what}{why}",
        resource.action.symbol(),
        resource.key
    )
}

/// One resource's header and YAML diff.
pub fn render_resource(out: &mut String, resource: &ResourcePlan, color: bool) {
    let head = header(resource);
    let head = if color {
        match resource.action {
            Action::Create => head.green().bold().to_string(),
            Action::Delete => head.red().bold().to_string(),
            Action::Replace => head.magenta().bold().to_string(),
            _ => head.yellow().bold().to_string(),
        }
    } else {
        head
    };
    let _ = writeln!(out, "{head}");
    match resource.action {
        Action::Create => {
            for line in resource.after.lines() {
                let _ = writeln!(
                    out,
                    "{}",
                    paint(&format!("    + {line}"), Some(ChangeTag::Insert), color)
                );
            }
        }
        Action::Delete => {
            for line in resource.before.lines() {
                let _ = writeln!(
                    out,
                    "{}",
                    paint(&format!("    - {line}"), Some(ChangeTag::Delete), color)
                );
            }
        }
        Action::Update | Action::Replace => {
            let diff = TextDiff::from_lines(&resource.before, &resource.after);
            for group in diff.grouped_ops(3) {
                for op in group {
                    for change in diff.iter_changes(&op) {
                        let sign = match change.tag() {
                            ChangeTag::Insert => "+",
                            ChangeTag::Delete => "-",
                            ChangeTag::Equal => " ",
                        };
                        let line = format!("    {sign} {}", change.value().trim_end_matches('\n'));
                        let _ = writeln!(out, "{}", paint(&line, Some(change.tag()), color));
                    }
                }
                let _ = writeln!(out, "      ...");
            }
        }
        Action::NoOp => {}
    }
}
