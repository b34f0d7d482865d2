//! The host-run state machine of a firmware campaign and its scheduler. Pure: the store keeps
//! the runs (every transition a compare-and-set checked with [`can_move`]); the controller asks
//! [`schedule`] which runs may start now.
//!
//! ```text
//!            ┌──────────────► cancelled ◄────────────┐
//!            │                    ▲                  │
//! pending ──►running ──► completed│                  │
//!    │         │  ▲               │                  │
//!    │         │  └──── retrying ─┘ (attempts left)  │
//!    │         └──► retrying ────────────────────────┘
//!    │         └──► failed ◄── retrying (limit reached)
//!    └──► completed (already at the version: nothing to do)
//! completed / failed / cancelled ──► pending (re-opened: drift, a new plan generation)
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A host run's state, with the seed's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunState {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Retrying,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Pending,
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Retrying,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Retrying => "retrying",
        }
    }

    /// Whether the run will not move by itself (only a re-open moves it again).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Cancelled
        )
    }

    /// Whether the run holds one of the plan's `maxConcurrent` slots: it is past `pending`
    /// and not finished (a retrying host is still in the middle of its update).
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Running | RunState::Retrying)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;

    fn from_str(s: &str) -> Result<RunState, String> {
        RunState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a host run state; expected pending, running, completed, failed, cancelled or retrying"
                )
            })
    }
}

/// Where a campaign stands as a whole (the `update_plans.status` of the store, what the plan
/// computes from its runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanStatus {
    /// Nothing started yet (or runs still to be created).
    Pending,
    /// Waiting for an approval of the plan's current generation.
    AwaitingApproval,
    /// Waiting for a maintenance window to open.
    WaitingWindow,
    /// Hosts are being updated.
    Running,
    /// Every host reports the plan's versions.
    Completed,
    /// Nothing is left to do, and at least one host failed.
    Failed,
    Cancelled,
}

impl PlanStatus {
    pub const ALL: [PlanStatus; 7] = [
        PlanStatus::Pending,
        PlanStatus::AwaitingApproval,
        PlanStatus::WaitingWindow,
        PlanStatus::Running,
        PlanStatus::Completed,
        PlanStatus::Failed,
        PlanStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::AwaitingApproval => "awaiting_approval",
            PlanStatus::WaitingWindow => "waiting_window",
            PlanStatus::Running => "running",
            PlanStatus::Completed => "completed",
            PlanStatus::Failed => "failed",
            PlanStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlanStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<PlanStatus, String> {
        PlanStatus::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a plan status"))
    }
}

/// Whether a run may move from `from` to `to`.
pub fn can_move(from: RunState, to: RunState) -> bool {
    use RunState::*;
    matches!(
        (from, to),
        // Start; or nothing to do (already at the version); or cancelled before it started.
        (Pending, Running | Completed | Cancelled)
            // Done; failed for good; failed with attempts left; cancelled.
            | (Running, Completed | Failed | Retrying | Cancelled)
            // Next attempt; limit reached; cancelled while waiting.
            | (Retrying, Running | Failed | Cancelled)
            // Re-opened: drift found, or a new generation of the plan.
            | (Completed | Failed | Cancelled, Pending)
    )
}

/// One run as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub host: String,
    pub state: RunState,
    /// Attempts started so far (the first one included).
    pub attempts: u32,
    /// Lower first (the plan's `priority` order).
    pub priority: i64,
}

/// The plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Runs past `pending` at once, at most.
    pub max_concurrent: u32,
    /// Targets that must stay up; a host being updated counts as down.
    pub min_hosts_online: u32,
    /// Retries after the first attempt.
    pub retry_limit: u32,
}

/// What holds outside the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub window_open: bool,
    /// Approval given, or not required.
    pub approved: bool,
}

/// Why a run does not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    WindowClosed,
    AwaitingApproval,
    /// All `maxConcurrent` slots are taken.
    MaxConcurrent,
    /// Starting it would leave fewer than `minHostsOnline` targets up.
    MinHostsOnline,
    /// The host is not online; it is not started blind.
    HostOffline,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wait::WindowClosed => "outside the maintenance window",
            Wait::AwaitingApproval => "waiting for approval",
            Wait::MaxConcurrent => "maxConcurrent hosts are being updated",
            Wait::MinHostsOnline => "starting it would leave fewer than minHostsOnline hosts up",
            Wait::HostOffline => "the host is offline",
        })
    }
}

/// The scheduler's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Runs to move to `running` now (from `pending` or `retrying`), in order.
    pub start: Vec<String>,
    /// Retrying runs that used up their retries: to move to `failed`.
    pub exhausted: Vec<String>,
    /// Runs that wait, and why.
    pub waiting: Vec<(String, Wait)>,
}

/// Which pending or retrying runs may start now. Rules:
/// - nothing starts outside the window or without approval (running runs are not touched: they
///   finish);
/// - never more than `max_concurrent` runs past `pending` (running or retrying): a retrying run
///   already holds its slot, so it goes first;
/// - never fewer than `min_hosts_online` targets up, counting the runs past `pending` as down
///   (a host must be online to start);
/// - a retrying run whose retries are used up is not started but reported `exhausted`.
///
/// `online` are the targets that are up now (all targets are the runs' hosts).
pub fn schedule(
    runs: &[RunView],
    policy: &Policy,
    gate: &Gate,
    online: &BTreeSet<String>,
) -> Schedule {
    let mut out = Schedule::default();
    let mut candidates: Vec<&RunView> = Vec::new();
    for run in runs {
        match run.state {
            RunState::Retrying if run.attempts > policy.retry_limit => {
                out.exhausted.push(run.host.clone())
            }
            RunState::Pending | RunState::Retrying => candidates.push(run),
            _ => {}
        }
    }
    // Retrying first (they hold slots), then priority, then name for a stable order.
    candidates.sort_by(|a, b| {
        (a.state != RunState::Retrying, a.priority, &a.host).cmp(&(
            b.state != RunState::Retrying,
            b.priority,
            &b.host,
        ))
    });
    if !gate.window_open || !gate.approved {
        let why = if gate.window_open {
            Wait::AwaitingApproval
        } else {
            Wait::WindowClosed
        };
        out.waiting = candidates.iter().map(|r| (r.host.clone(), why)).collect();
        return out;
    }
    let exhausted: BTreeSet<&str> = out.exhausted.iter().map(String::as_str).collect();
    // Slots held: running, and retrying ones still in the campaign (exhausted ones are about to
    // become failed and free theirs).
    let mut active = runs
        .iter()
        .filter(|r| r.state.is_active() && !exhausted.contains(r.host.as_str()))
        .count() as u32;
    let updating: BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.state.is_active())
        .map(|r| r.host.as_str())
        .collect();
    let mut up = runs
        .iter()
        .filter(|r| online.contains(&r.host) && !updating.contains(r.host.as_str()))
        .count() as u32;
    for run in candidates {
        if !online.contains(&run.host) {
            out.waiting.push((run.host.clone(), Wait::HostOffline));
            continue;
        }
        match run.state {
            RunState::Retrying => {
                // Already holds a slot and already counted as down.
                out.start.push(run.host.clone());
            }
            _ => {
                if active >= policy.max_concurrent {
                    out.waiting.push((run.host.clone(), Wait::MaxConcurrent));
                } else if up <= policy.min_hosts_online {
                    out.waiting.push((run.host.clone(), Wait::MinHostsOnline));
                } else {
                    active += 1;
                    up -= 1;
                    out.start.push(run.host.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    #[test]
    fn transitions() {
        let allowed = [
            (Pending, Running),
            (Pending, Completed),
            (Pending, Cancelled),
            (Running, Completed),
            (Running, Failed),
            (Running, Retrying),
            (Running, Cancelled),
            (Retrying, Running),
            (Retrying, Failed),
            (Retrying, Cancelled),
            (Completed, Pending),
            (Failed, Pending),
            (Cancelled, Pending),
        ];
        for from in RunState::ALL {
            for to in RunState::ALL {
                assert_eq!(
                    can_move(from, to),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
        // Notably: no finished run jumps back to running, nothing skips running to failed.
        assert!(!can_move(Completed, Running));
        assert!(!can_move(Pending, Failed));
        assert!(!can_move(Pending, Retrying));
    }

    #[test]
    fn names_round_trip() {
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>(), Ok(s));
        }
        for s in PlanStatus::ALL {
            assert_eq!(s.as_str().parse::<PlanStatus>(), Ok(s));
        }
        assert!(
            "done"
                .parse::<RunState>()
                .unwrap_err()
                .contains("expected pending")
        );
    }

    fn run(host: &str, state: RunState, attempts: u32, priority: i64) -> RunView {
        RunView {
            host: host.into(),
            state,
            attempts,
            priority,
        }
    }

    fn all_online(runs: &[RunView]) -> BTreeSet<String> {
        runs.iter().map(|r| r.host.clone()).collect()
    }

    const OPEN: Gate = Gate {
        window_open: true,
        approved: true,
    };

    fn policy(max_concurrent: u32, min_hosts_online: u32, retry_limit: u32) -> Policy {
        Policy {
            max_concurrent,
            min_hosts_online,
            retry_limit,
        }
    }

    #[test]
    fn scheduler_rules() {
        struct Case {
            name: &'static str,
            runs: Vec<RunView>,
            policy: Policy,
            gate: Gate,
            offline: &'static [&'static str],
            start: &'static [&'static str],
            exhausted: &'static [&'static str],
            waiting: &'static [(&'static str, Wait)],
        }
        let six = |states: [RunState; 6]| -> Vec<RunView> {
            states
                .iter()
                .enumerate()
                .map(|(i, s)| run(&format!("h{i}"), *s, u32::from(*s != Pending), i as i64))
                .collect()
        };
        let cases = vec![
            Case {
                name: "maxConcurrent 2 of 6 pending starts the first two by priority",
                runs: six([Pending; 6]),
                policy: policy(2, 0, 0),
                gate: OPEN,
                offline: &[],
                start: &["h0", "h1"],
                exhausted: &[],
                waiting: &[
                    ("h2", Wait::MaxConcurrent),
                    ("h3", Wait::MaxConcurrent),
                    ("h4", Wait::MaxConcurrent),
                    ("h5", Wait::MaxConcurrent),
                ],
            },
            Case {
                name: "a running run holds a slot",
                runs: six([Running, Completed, Pending, Pending, Pending, Pending]),
                policy: policy(2, 0, 0),
                gate: OPEN,
                offline: &[],
                start: &["h2"],
                exhausted: &[],
                waiting: &[
                    ("h3", Wait::MaxConcurrent),
                    ("h4", Wait::MaxConcurrent),
                    ("h5", Wait::MaxConcurrent),
                ],
            },
            Case {
                name: "a retrying run holds its slot and goes first",
                runs: six([Pending, Retrying, Running, Pending, Pending, Pending]),
                policy: policy(2, 0, 3),
                gate: OPEN,
                offline: &[],
                start: &["h1"],
                exhausted: &[],
                waiting: &[
                    ("h0", Wait::MaxConcurrent),
                    ("h3", Wait::MaxConcurrent),
                    ("h4", Wait::MaxConcurrent),
                    ("h5", Wait::MaxConcurrent),
                ],
            },
            Case {
                name: "retries used up: exhausted, its slot freed",
                runs: vec![run("a", Retrying, 3, 0), run("b", Pending, 0, 1)],
                policy: policy(1, 0, 2),
                gate: OPEN,
                offline: &[],
                start: &["b"],
                exhausted: &["a"],
                waiting: &[],
            },
            Case {
                name: "retries left: started again",
                runs: vec![run("a", Retrying, 2, 0)],
                policy: policy(1, 0, 2),
                gate: OPEN,
                offline: &[],
                start: &["a"],
                exhausted: &[],
                waiting: &[],
            },
            Case {
                name: "window closed: nothing starts, running ones untouched",
                runs: six([Running, Pending, Pending, Retrying, Pending, Completed]),
                policy: policy(5, 0, 3),
                gate: Gate {
                    window_open: false,
                    approved: true,
                },
                offline: &[],
                start: &[],
                exhausted: &[],
                waiting: &[
                    ("h3", Wait::WindowClosed),
                    ("h1", Wait::WindowClosed),
                    ("h2", Wait::WindowClosed),
                    ("h4", Wait::WindowClosed),
                ],
            },
            Case {
                name: "no approval: nothing starts",
                runs: six([Pending; 6]),
                policy: policy(6, 0, 0),
                gate: Gate {
                    window_open: true,
                    approved: false,
                },
                offline: &[],
                start: &[],
                exhausted: &[],
                waiting: &[
                    ("h0", Wait::AwaitingApproval),
                    ("h1", Wait::AwaitingApproval),
                    ("h2", Wait::AwaitingApproval),
                    ("h3", Wait::AwaitingApproval),
                    ("h4", Wait::AwaitingApproval),
                    ("h5", Wait::AwaitingApproval),
                ],
            },
            Case {
                name: "minHostsOnline 4 of 6: two may go down",
                runs: six([Pending; 6]),
                policy: policy(6, 4, 0),
                gate: OPEN,
                offline: &[],
                start: &["h0", "h1"],
                exhausted: &[],
                waiting: &[
                    ("h2", Wait::MinHostsOnline),
                    ("h3", Wait::MinHostsOnline),
                    ("h4", Wait::MinHostsOnline),
                    ("h5", Wait::MinHostsOnline),
                ],
            },
            Case {
                name: "minHostsOnline counts hosts being updated and hosts offline as down",
                runs: six([Running, Pending, Pending, Pending, Pending, Pending]),
                policy: policy(6, 3, 0),
                gate: OPEN,
                offline: &["h5"],
                // up: h1..h4 = 4; one more may go → 3 left.
                start: &["h1"],
                exhausted: &[],
                waiting: &[
                    ("h2", Wait::MinHostsOnline),
                    ("h3", Wait::MinHostsOnline),
                    ("h4", Wait::MinHostsOnline),
                    ("h5", Wait::HostOffline),
                ],
            },
            Case {
                name: "an offline host is not started",
                runs: vec![run("a", Pending, 0, 0), run("b", Pending, 0, 1)],
                policy: policy(2, 0, 0),
                gate: OPEN,
                offline: &["a"],
                start: &["b"],
                exhausted: &[],
                waiting: &[("a", Wait::HostOffline)],
            },
            Case {
                name: "priority, then name",
                runs: vec![
                    run("z", Pending, 0, 0),
                    run("b", Pending, 0, 5),
                    run("a", Pending, 0, 5),
                ],
                policy: policy(2, 0, 0),
                gate: OPEN,
                offline: &[],
                start: &["z", "a"],
                exhausted: &[],
                waiting: &[("b", Wait::MaxConcurrent)],
            },
            Case {
                name: "finished runs neither start nor hold slots",
                runs: six([Completed, Failed, Cancelled, Completed, Failed, Pending]),
                policy: policy(1, 0, 0),
                gate: OPEN,
                offline: &[],
                start: &["h5"],
                exhausted: &[],
                waiting: &[],
            },
            Case {
                name: "maxConcurrent 0 starts nothing",
                runs: vec![run("a", Pending, 0, 0)],
                policy: policy(0, 0, 0),
                gate: OPEN,
                offline: &[],
                start: &[],
                exhausted: &[],
                waiting: &[("a", Wait::MaxConcurrent)],
            },
        ];
        for case in cases {
            let mut online = all_online(&case.runs);
            for h in case.offline {
                online.remove(*h);
            }
            let got = schedule(&case.runs, &case.policy, &case.gate, &online);
            let expected = Schedule {
                start: case.start.iter().map(|s| s.to_string()).collect(),
                exhausted: case.exhausted.iter().map(|s| s.to_string()).collect(),
                waiting: case
                    .waiting
                    .iter()
                    .map(|(h, w)| (h.to_string(), *w))
                    .collect(),
            };
            assert_eq!(got, expected, "{}", case.name);
        }
    }

    /// Driving a whole campaign with the scheduler never puts more than maxConcurrent runs past
    /// pending, nor fewer than minHostsOnline hosts up.
    #[test]
    fn a_whole_campaign_respects_the_limits() {
        let mut runs: Vec<RunView> = (0..9)
            .map(|i| run(&format!("h{i}"), Pending, 0, i))
            .collect();
        let online = all_online(&runs);
        let policy = policy(3, 5, 1);
        let mut rounds = 0;
        while runs.iter().any(|r| !r.state.is_final()) {
            rounds += 1;
            assert!(rounds < 100, "the campaign does not finish");
            let plan = schedule(&runs, &policy, &OPEN, &online);
            for host in &plan.exhausted {
                let r = runs.iter_mut().find(|r| &r.host == host).unwrap();
                assert!(can_move(r.state, Failed));
                r.state = Failed;
            }
            for host in &plan.start {
                let r = runs.iter_mut().find(|r| &r.host == host).unwrap();
                assert!(can_move(r.state, Running));
                r.state = Running;
                r.attempts += 1;
            }
            let active = runs.iter().filter(|r| r.state.is_active()).count();
            assert!(active <= 3, "{active} past pending");
            assert!(runs.len() - active >= 5, "fewer than 5 up");
            // Every running host finishes; h4 always fails.
            for r in runs.iter_mut().filter(|r| r.state == Running) {
                r.state = if r.host == "h4" { Retrying } else { Completed };
            }
        }
        let failed: Vec<&str> = runs
            .iter()
            .filter(|r| r.state == Failed)
            .map(|r| r.host.as_str())
            .collect();
        assert_eq!(failed, ["h4"]);
        assert_eq!(runs.iter().find(|r| r.host == "h4").unwrap().attempts, 2);
    }
}
