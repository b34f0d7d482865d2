//! The FirmwarePlan plan: pure. From the desired plan, its resolved targets (each with what its
//! BMC showed), the recorded host runs and the clock, it says per host what is already at the
//! version (completed without touching it, unless `force`), what would be flashed and whether
//! a reboot is needed (the check mode `diff` shows), which completed hosts drifted (reported;
//! re-opened only inside a window and, with `approvalRequired`, after an approval given since
//! the host completed), which runs move now (each move a compare-and-set the store makes), and,
//! through [`ballast_redfish::hostrun::schedule`], which hosts start now with their steps.
//!
//! The controller calls, in order: record the plan (its generation), ensure a run per target,
//! observe the targets' BMCs, [`plan_firmware`], then make [`FirmwarePlanResult::moves`] in
//! order (each `move_host_run(from, to)`; a `false` means another actor moved it: plan again),
//! update [`FirmwarePlanResult::regenerate`]d runs, and run each started host's steps.

pub mod desired;
pub mod steps;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use ballast_model::firmware::FirmwarePlanSpec;
use ballast_redfish::catalog::Catalog;
pub use ballast_redfish::hostrun::PlanStatus as CampaignStatus;
use ballast_redfish::hostrun::{Gate, Policy, RunState, RunView, Wait, schedule};
use ballast_redfish::window::Windows;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Action;
pub use desired::{Component, Flash, HostCheck, ImageSource, RollbackImage, check_host};
pub use steps::{FirmwareStep, host_steps};

/// What a host's BMC showed (the controller builds it from its Redfish observation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObservation {
    /// The BMC answered.
    pub reachable: bool,
    /// The system's power state is On (`None`: not said).
    pub power_on: Option<bool>,
    /// The system and the BMC report health OK (`None`: not said).
    pub healthy: Option<bool>,
    /// `Model` (`PowerEdge R640`).
    pub model: Option<String>,
    /// Dell's `SystemID` (decimal), for catalogs.
    pub dell_system_id: Option<u32>,
    /// The installed firmware.
    pub inventory: Vec<Component>,
}

impl HostObservation {
    /// Up, as `minHostsOnline` counts: the BMC answers and the system is not off.
    pub fn is_online(&self) -> bool {
        self.reachable && self.power_on != Some(false)
    }
}

/// One host of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHost {
    pub host: String,
    /// Lower first.
    pub priority: i64,
    /// `None`: not observed (yet).
    pub observed: Option<HostObservation>,
}

/// A host run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    pub host: String,
    pub state: RunState,
    pub attempts: u32,
    /// The plan generation it works for.
    pub generation: i64,
    /// When it reached its final state.
    pub completed_at: Option<DateTime<Utc>>,
}

/// An approval as recorded: for which generation, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalView {
    pub generation: i64,
    pub at: DateTime<Utc>,
}

/// Everything the plan looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub spec: &'a FirmwarePlanSpec,
    /// The plan's current generation.
    pub generation: i64,
    pub approval: Option<ApprovalView>,
    pub targets: &'a [TargetHost],
    pub runs: &'a [RecordedRun],
    /// The parsed catalog, with `LATEST_FROM_CATALOG` (reading it is the controller's I/O).
    pub catalog: Option<&'a Catalog>,
    pub now: DateTime<Utc>,
}

/// A plan that cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwarePlanError {
    #[error("the maintenance windows do not parse: {0}")]
    Windows(String),
    #[error("updateMode LATEST_FROM_CATALOG needs the catalog read from {0}")]
    NoCatalog(String),
}

/// A compare-and-set transition to make now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMove {
    pub host: String,
    #[serde(serialize_with = "state_name")]
    pub from: RunState,
    #[serde(serialize_with = "state_name")]
    pub to: RunState,
    pub reason: String,
    /// A re-opened run moves to this plan generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

fn state_name<S: serde::Serializer>(state: &RunState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

fn status_name<S: serde::Serializer>(status: &CampaignStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

/// A host started now, with what to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStart {
    pub host: String,
    pub steps: Vec<FirmwareStep>,
    /// Run when a validation step fails (rollbackOnFailure); empty otherwise.
    pub rollback: Vec<FirmwareStep>,
}

/// One host as `diff` and `describe` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub priority: i64,
    /// The run's state after this plan's moves (`None`: no run recorded yet).
    pub state: Option<String>,
    /// What the host needs (`None`: not observed, so not known).
    pub check: Option<HostCheck>,
    /// A completed host found at an older version.
    pub drift: bool,
    /// Why it does not start now, if it waits.
    pub waiting: Option<String>,
}

impl HostPlan {
    /// One line: the host, its state and what it needs.
    pub fn summary(&self) -> String {
        let mut line = format!("{}: ", self.host);
        match &self.check {
            None => line.push_str("not observed (its BMC did not answer)"),
            Some(check) => line.push_str(&check.summary()),
        }
        if self.drift {
            line.push_str("; drift: it completed before and is older now");
        }
        if let Some(why) = &self.waiting {
            line.push_str(&format!("; waits: {why}"));
        }
        line
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwarePlanResult {
    pub action: Action,
    /// One line per host that needs something, and per thing the campaign waits for.
    pub reasons: Vec<String>,
    /// Every target, by priority then name.
    pub hosts: Vec<HostPlan>,
    /// Targets without a run: create them (`pending`), then plan again.
    pub create: Vec<String>,
    /// Runs whose host left the plan and is not being updated: forget them.
    pub forget: Vec<String>,
    /// Completed runs of an older generation whose host is at the new generation's versions:
    /// move them to the current generation without changing their state.
    pub regenerate: Vec<String>,
    /// The transitions to make now, in order (a host may have two: re-opened, then started).
    pub moves: Vec<RunMove>,
    /// The hosts started now (their `pending|retrying → running` is in `moves`).
    pub start: Vec<HostStart>,
    #[serde(serialize_with = "status_name")]
    pub status: CampaignStatus,
    pub window_open: bool,
    /// When the next window opens (now when open; `None`: no windows, or none ahead).
    pub next_window: Option<DateTime<Utc>>,
}

/// The state a run moves to after a failed attempt: `retrying` while attempts are left
/// (`attempts` counts the one that failed), else `failed`. The same rule as the scheduler's.
pub fn failure_state(attempts: u32, retries: u32) -> RunState {
    if attempts > retries {
        RunState::Failed
    } else {
        RunState::Retrying
    }
}

/// The plan of a FirmwarePlan removed from the manifests: forgotten with `prune` once no host
/// is being updated (a host in the middle of an update finishes first; firmware is never
/// touched by a delete).
pub fn plan_removed(runs: &[RecordedRun], prune: bool) -> (Action, Vec<String>) {
    let active = runs.iter().filter(|r| r.state.is_active()).count();
    match (prune, active) {
        (false, _) => (
            Action::NoOp,
            vec!["removed from the manifests; kept (use --prune to forget it)".into()],
        ),
        (true, 0) => (
            Action::Delete,
            vec![
                "removed from the manifests; its runs are forgotten (no firmware is touched)"
                    .into(),
            ],
        ),
        (true, n) => (
            Action::NoOp,
            vec![format!(
                "removed from the manifests; {n} host(s) still updating: forgotten once they finish"
            )],
        ),
    }
}

/// Plans a campaign. See the module docs for what the controller does with the result.
pub fn plan_firmware(input: &PlanInput<'_>) -> Result<FirmwarePlanResult, FirmwarePlanError> {
    let spec = input.spec;
    let policy = &spec.policy;
    let windows = Windows::parse(&policy.window_texts()).map_err(|errors| {
        FirmwarePlanError::Windows(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    if policy.update_mode == ballast_model::firmware::UpdateMode::LatestFromCatalog
        && input.catalog.is_none()
    {
        let uri = policy.catalog_uri.as_ref().map(|u| u.value.clone());
        return Err(FirmwarePlanError::NoCatalog(uri.unwrap_or_default()));
    }
    let window_open = windows.is_open(input.now);
    let approved = !policy.approval_required
        || input
            .approval
            .is_some_and(|a| a.generation == input.generation);

    let runs: BTreeMap<&str, &RecordedRun> =
        input.runs.iter().map(|r| (r.host.as_str(), r)).collect();
    let targets: BTreeSet<&str> = input.targets.iter().map(|t| t.host.as_str()).collect();
    let mut out = FirmwarePlanResult {
        action: Action::NoOp,
        reasons: Vec::new(),
        hosts: Vec::new(),
        create: Vec::new(),
        forget: Vec::new(),
        regenerate: Vec::new(),
        moves: Vec::new(),
        start: Vec::new(),
        status: CampaignStatus::Pending,
        window_open,
        next_window: windows.next_open(input.now),
    };
    for run in input.runs {
        if !targets.contains(run.host.as_str()) && !run.state.is_active() {
            out.forget.push(run.host.clone());
        }
    }

    // Each target's state after this pass's moves, and whether it may be scheduled.
    let mut state: BTreeMap<&str, RunState> = BTreeMap::new();
    let mut checks: BTreeMap<&str, HostCheck> = BTreeMap::new();
    let mut eligible: BTreeSet<&str> = BTreeSet::new();
    let mut waiting: BTreeMap<&str, String> = BTreeMap::new();
    let mut drifted: BTreeSet<&str> = BTreeSet::new();
    for target in input.targets {
        let host = target.host.as_str();
        let check = target
            .observed
            .as_ref()
            .filter(|o| o.reachable)
            .map(|o| host_check(input, o, false));
        let Some(run) = runs.get(host) else {
            out.create.push(target.host.clone());
            if let Some(check) = check {
                checks.insert(host, check);
            }
            continue;
        };
        let mut now_state = run.state;
        let satisfied = check.as_ref().map(HostCheck::satisfied);
        // Without `force` a host at the versions needs nothing; with it, a pending one is
        // flashed once (a completed one is not flashed again).
        let needs_nothing = satisfied == Some(true) && !policy.force;
        if run.generation < input.generation && run.state.is_final() {
            if run.state == RunState::Completed && satisfied == Some(true) {
                out.regenerate.push(target.host.clone());
            } else {
                out.moves.push(RunMove {
                    host: target.host.clone(),
                    from: run.state,
                    to: RunState::Pending,
                    reason: format!("the plan changed (generation {})", input.generation),
                    generation: Some(input.generation),
                });
                now_state = RunState::Pending;
            }
        } else if run.state == RunState::Completed && satisfied == Some(false) {
            // Drift: it completed, and now reports an older version.
            drifted.insert(host);
            let approved_since = !policy.approval_required
                || input.approval.is_some_and(|a| {
                    a.generation == input.generation
                        && run.completed_at.is_none_or(|done| a.at > done)
                });
            if window_open && approved_since {
                out.moves.push(RunMove {
                    host: target.host.clone(),
                    from: RunState::Completed,
                    to: RunState::Pending,
                    reason: "drift: the host reports an older version than the plan".into(),
                    generation: None,
                });
                now_state = RunState::Pending;
            } else {
                let why = if window_open {
                    "drift: waiting for an approval given after the host completed"
                } else {
                    "drift: healed in the next maintenance window"
                };
                waiting.insert(host, why.to_string());
            }
        }
        if now_state == RunState::Pending {
            match &check {
                Some(check) if needs_nothing && check.satisfied() => {
                    out.moves.push(RunMove {
                        host: target.host.clone(),
                        from: RunState::Pending,
                        to: RunState::Completed,
                        reason: "already at the plan's versions; not touched".into(),
                        generation: None,
                    });
                    now_state = RunState::Completed;
                }
                Some(check) if !check.missing.is_empty() => {
                    waiting.insert(host, check.summary());
                }
                _ => {
                    eligible.insert(host);
                }
            }
        }
        state.insert(host, now_state);
        if let Some(check) = check {
            checks.insert(host, check);
        }
    }

    // The scheduler sees the runs as they are after the moves above; a pending run that may
    // not start (incompatible) is idle, so it is shown as not a candidate but still up.
    let views: Vec<RunView> = input
        .targets
        .iter()
        .filter_map(|t| {
            let host = t.host.as_str();
            let s = *state.get(host)?;
            let s = if s == RunState::Pending && !eligible.contains(host) {
                RunState::Completed
            } else {
                s
            };
            let attempts = runs.get(host).map_or(0, |r| {
                if s == RunState::Pending {
                    0
                } else {
                    r.attempts
                }
            });
            Some(RunView {
                host: t.host.clone(),
                state: s,
                attempts,
                priority: t.priority,
            })
        })
        .collect();
    let online: BTreeSet<String> = input
        .targets
        .iter()
        .filter(|t| t.observed.as_ref().is_some_and(HostObservation::is_online))
        .map(|t| t.host.clone())
        .collect();
    let scheduled = schedule(
        &views,
        &Policy {
            max_concurrent: policy.max_concurrent,
            min_hosts_online: policy.min_hosts_online,
            retry_limit: policy.retries,
        },
        &Gate {
            window_open,
            approved,
        },
        &online,
    );
    for host in &scheduled.exhausted {
        let attempts = runs.get(host.as_str()).map_or(0, |r| r.attempts);
        out.moves.push(RunMove {
            host: host.clone(),
            from: RunState::Retrying,
            to: RunState::Failed,
            reason: format!("gave up after {attempts} attempt(s)"),
            generation: None,
        });
        state.insert(host_key(input, host), RunState::Failed);
    }
    for host in &scheduled.start {
        let key = host_key(input, host);
        let from = state.get(key).copied().unwrap_or(RunState::Pending);
        let Some(check) = checks.get(key) else {
            continue;
        };
        // `force` flashes what the host has already; the check above says what it needs.
        let forced = input
            .targets
            .iter()
            .find(|t| t.host == *host)
            .and_then(|t| t.observed.as_ref())
            .filter(|_| policy.force)
            .map(|o| host_check(input, o, true));
        let check = forced.as_ref().unwrap_or(check);
        out.moves.push(RunMove {
            host: host.clone(),
            from,
            to: RunState::Running,
            reason: if from == RunState::Retrying {
                "retrying".into()
            } else {
                check.summary()
            },
            generation: None,
        });
        state.insert(key, RunState::Running);
        let (steps, rollback) = host_steps(spec, check);
        out.start.push(HostStart {
            host: host.clone(),
            steps,
            rollback,
        });
    }
    for (host, why) in &scheduled.waiting {
        waiting
            .entry(host_key(input, host))
            .or_insert_with(|| wait_text(*why, &out));
    }

    for target in input.targets {
        let host = target.host.as_str();
        out.hosts.push(HostPlan {
            host: target.host.clone(),
            priority: target.priority,
            state: state.get(host).map(|s| s.as_str().to_string()),
            check: checks.get(host).cloned(),
            drift: drifted.contains(host),
            waiting: waiting.get(host).cloned(),
        });
    }
    out.hosts
        .sort_by(|a, b| (a.priority, &a.host).cmp(&(b.priority, &b.host)));
    out.status = campaign_status(&out, &state, approved, window_open, input);
    out.reasons = reasons(&out);
    out.action = if input.runs.is_empty() && !input.targets.is_empty() {
        Action::Create
    } else if out
        .hosts
        .iter()
        .all(|h| h.state.as_deref() == Some("completed") && !h.drift)
        && out.moves.is_empty()
        && out.forget.is_empty()
        && out.regenerate.is_empty()
    {
        Action::NoOp
    } else {
        Action::Update
    };
    Ok(out)
}

fn host_check(input: &PlanInput<'_>, observed: &HostObservation, force: bool) -> HostCheck {
    check_host(
        input.spec,
        &observed.inventory,
        observed.model.as_deref(),
        observed.dell_system_id,
        input.catalog,
        force,
    )
}

/// `host` as borrowed from the input's targets (the maps are keyed by those).
fn host_key<'a>(input: &PlanInput<'a>, host: &str) -> &'a str {
    input
        .targets
        .iter()
        .find(|t| t.host == host)
        .map(|t| t.host.as_str())
        .unwrap_or_default()
}

fn wait_text(why: Wait, out: &FirmwarePlanResult) -> String {
    match (why, out.next_window) {
        (Wait::WindowClosed, Some(at)) => format!("{why} (opens {})", at.to_rfc3339()),
        _ => why.to_string(),
    }
}

fn campaign_status(
    out: &FirmwarePlanResult,
    state: &BTreeMap<&str, RunState>,
    approved: bool,
    window_open: bool,
    input: &PlanInput<'_>,
) -> CampaignStatus {
    let states: Vec<RunState> = state.values().copied().collect();
    if !out.create.is_empty() || states.len() < input.targets.len() {
        return CampaignStatus::Pending;
    }
    if states.iter().any(|s| s.is_active()) {
        return CampaignStatus::Running;
    }
    let drift_waiting = out
        .hosts
        .iter()
        .any(|h| h.drift && h.state.as_deref() == Some("completed"));
    if states.contains(&RunState::Pending) || drift_waiting {
        if !approved {
            return CampaignStatus::AwaitingApproval;
        }
        if !window_open {
            return CampaignStatus::WaitingWindow;
        }
        return CampaignStatus::Pending;
    }
    if states.contains(&RunState::Failed) {
        CampaignStatus::Failed
    } else if states.contains(&RunState::Cancelled) {
        CampaignStatus::Cancelled
    } else {
        CampaignStatus::Completed
    }
}

fn reasons(out: &FirmwarePlanResult) -> Vec<String> {
    let mut reasons = Vec::new();
    for host in &out.hosts {
        let needs = host
            .check
            .as_ref()
            .is_none_or(|c| !c.satisfied() || !c.newer.is_empty())
            || host.drift
            || host.waiting.is_some()
            || host.state.as_deref() != Some("completed");
        if needs {
            reasons.push(host.summary());
        }
    }
    for host in &out.forget {
        reasons.push(format!("{host}: no longer a target; its run is forgotten"));
    }
    reasons
}
