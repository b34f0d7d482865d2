//! Tasks: what `GET /nodes/{node}/tasks/{upid}/status` and `…/log` answer, and the pure rules
//! that turn them into a [`TaskState`] a caller can act on.
//!
//! PVE's exit status is `OK`, `WARNINGS: n` (a success with warnings; the log has `WARN: …`
//! lines) or the error message that ended the worker (the log ends with `TASK ERROR: …`).
//! Progress is the last log line (`drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.12%)`), with
//! its percentage when it has one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, classify_message};
use crate::lenient::{de_opt_string, de_opt_u64, de_string, de_u64};

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TaskStatus {
    #[serde(deserialize_with = "de_string")]
    pub upid: String,
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    /// `running` or `stopped`.
    #[serde(deserialize_with = "de_string")]
    pub status: String,
    /// Once stopped: `OK`, `WARNINGS: n`, or the error.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub exitstatus: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "de_opt_string")]
    pub task_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub starttime: Option<u64>,
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// One line of a task log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TaskLogLine {
    /// Line number, from 1.
    #[serde(deserialize_with = "de_u64")]
    pub n: u64,
    #[serde(deserialize_with = "de_string")]
    pub t: String,
}

/// A page of a task log and, when Proxmox says it, the log's total line count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskLog {
    pub lines: Vec<TaskLogLine>,
    pub total: Option<u64>,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Running {
        /// The last log line.
        progress: Option<String>,
        /// The percentage in that line, when it has one.
        percent: Option<f64>,
    },
    Succeeded {
        /// `n` of a `WARNINGS: n` exit status; 0 for `OK`.
        warning_count: u32,
        /// The `WARN: …` lines of the log (without the prefix).
        warnings: Vec<String>,
    },
    Failed(TaskFailure),
}

impl TaskState {
    pub fn is_finished(&self) -> bool {
        !matches!(self, TaskState::Running { .. })
    }
}

/// A task that ended in error.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    pub upid: String,
    /// The exit status: the error that ended the task.
    pub message: String,
    /// The last lines of the log, oldest first (the last is usually `TASK ERROR: …`).
    pub log_tail: Vec<String>,
}

impl TaskFailure {
    /// The failure as an [`Error`], classified by PVE's wording like an HTTP error: a task that
    /// failed on a lock or lost quorum is worth retrying, one refused as stale means re-read,
    /// anything else stops.
    pub fn error(&self) -> Error {
        let context = format!("task {}", self.upid);
        classify_message(&context, &self.message).unwrap_or_else(|| Error::Api {
            context,
            status: 500,
            message: format!("TASK ERROR: {}", self.message),
        })
    }
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task {} failed: TASK ERROR: {}", self.upid, self.message)
    }
}

/// The percentage at the end of a progress line: `… (3.12%)`, `Progress: 45%`.
pub fn parse_percent(line: &str) -> Option<f64> {
    let end = line.rfind('%')?;
    let head = &line[..end];
    let start = head
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    let value: f64 = head[start..].parse().ok()?;
    (0.0..=100.0).contains(&value).then_some(value)
}

/// `WARNINGS: n` → `Some(n)`.
pub fn parse_warnings(exitstatus: &str) -> Option<u32> {
    exitstatus
        .trim()
        .strip_prefix("WARNINGS:")
        .and_then(|n| n.trim().parse().ok())
}

/// The state of a task from its status and the tail of its log.
pub fn task_state(status: &TaskStatus, log_tail: &[TaskLogLine]) -> TaskState {
    if status.is_running() {
        let progress = log_tail
            .iter()
            .rev()
            .map(|l| l.t.trim())
            .find(|t| !t.is_empty())
            .map(str::to_string);
        let percent = progress.as_deref().and_then(parse_percent);
        return TaskState::Running { progress, percent };
    }
    let exit = status
        .exitstatus
        .clone()
        .unwrap_or_else(|| "unknown exit status".to_string());
    if exit.trim() == "OK" {
        return TaskState::Succeeded {
            warning_count: 0,
            warnings: Vec::new(),
        };
    }
    if let Some(count) = parse_warnings(&exit) {
        let warnings = log_tail
            .iter()
            .filter_map(|l| l.t.trim_start().strip_prefix("WARN:"))
            .map(|w| w.trim().to_string())
            .collect();
        return TaskState::Succeeded {
            warning_count: count,
            warnings,
        };
    }
    TaskState::Failed(TaskFailure {
        upid: status.upid.clone(),
        message: exit,
        log_tail: log_tail.iter().map(|l| l.t.clone()).collect(),
    })
}

/// True when the status alone does not settle the state (a running task needs its last line,
/// a warning or failure its log).
pub(crate) fn needs_log(status: &TaskStatus) -> bool {
    status.is_running() || status.exitstatus.as_deref().map(str::trim) != Some("OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, exit: Option<&str>) -> TaskStatus {
        TaskStatus {
            upid: "UPID:pve1:000003E8:00001B58:6B0CFAB4:qmclone:9000:root@pam:".into(),
            node: "pve1".into(),
            status: state.into(),
            exitstatus: exit.map(str::to_string),
            task_type: Some("qmclone".into()),
            id: Some("9000".into()),
            user: Some("root@pam".into()),
            starttime: None,
        }
    }

    fn log(lines: &[&str]) -> Vec<TaskLogLine> {
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| TaskLogLine {
                n: i as u64 + 1,
                t: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn percentages_come_from_the_end_of_a_progress_line() {
        let cases = [
            (
                "drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.12%) in 5s",
                Some(3.12),
            ),
            ("Progress: 45%", Some(45.0)),
            ("100% done", Some(100.0)),
            ("creating a clone of VM 9000 with ID 101", None),
            ("odd 250%", None),
            ("%", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_percent(line), want, "{line}");
        }
    }

    #[test]
    fn a_running_task_reports_its_last_line() {
        let s = task_state(
            &status("running", None),
            &log(&[
                "create full clone of drive scsi0",
                "drive-scsi0: transferred 8.0 GiB of 32.0 GiB (25.00%) in 9s",
                "",
            ]),
        );
        assert_eq!(
            s,
            TaskState::Running {
                progress: Some(
                    "drive-scsi0: transferred 8.0 GiB of 32.0 GiB (25.00%) in 9s".into()
                ),
                percent: Some(25.0)
            }
        );
        assert!(!s.is_finished());
        assert!(needs_log(&status("running", None)));
    }

    #[test]
    fn ok_is_a_success_and_needs_no_log() {
        let st = status("stopped", Some("OK"));
        assert!(!needs_log(&st));
        assert_eq!(
            task_state(&st, &[]),
            TaskState::Succeeded {
                warning_count: 0,
                warnings: vec![]
            }
        );
    }

    #[test]
    fn warnings_are_a_success_with_the_warning_lines() {
        let st = status("stopped", Some("WARNINGS: 2"));
        assert!(needs_log(&st));
        let s = task_state(
            &st,
            &log(&[
                "starting",
                "WARN: no efidisk configured! Using temporary efivars disk.",
                "WARN: old cpu type",
                "TASK WARNINGS: 2",
            ]),
        );
        assert_eq!(
            s,
            TaskState::Succeeded {
                warning_count: 2,
                warnings: vec![
                    "no efidisk configured! Using temporary efivars disk.".into(),
                    "old cpu type".into()
                ]
            }
        );
    }

    #[test]
    fn an_error_exit_is_a_failure_with_the_log_tail() {
        let st = status("stopped", Some("clone failed: out of space"));
        let s = task_state(
            &st,
            &log(&["creating a clone", "TASK ERROR: clone failed: out of space"]),
        );
        let TaskState::Failed(failure) = s else {
            panic!("expected a failure, got {s:?}");
        };
        assert_eq!(failure.message, "clone failed: out of space");
        assert_eq!(
            failure.log_tail.last().map(String::as_str),
            Some("TASK ERROR: clone failed: out of space")
        );
        assert!(failure.to_string().contains("TASK ERROR: clone failed"));
    }

    #[test]
    fn a_task_failure_is_classified_by_its_wording() {
        let failure = |m: &str| TaskFailure {
            upid: "UPID:pve1:1:2:3:qmconfig:101:root@pam:".into(),
            message: m.into(),
            log_tail: vec![],
        };
        assert!(matches!(
            failure("checksum mismatch (file change by other user?)").error(),
            Error::StaleDigest { .. }
        ));
        assert!(matches!(
            failure("can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout").error(),
            Error::Locked { .. }
        ));
        assert!(matches!(
            failure("cluster not ready - no quorum?").error(),
            Error::NoQuorum { .. }
        ));
        let other = failure("start failed: QEMU exited with code 1").error();
        assert!(matches!(other, Error::Api { .. }), "{other:?}");
        assert!(!other.is_retryable());
    }
}
