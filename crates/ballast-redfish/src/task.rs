//! What an asynchronous Redfish operation is doing, from its task monitor, its `Task` resource or
//! Dell's job (`DellJob`): one pure parser, so every shape is tested from samples.

use serde_json::Value;

use crate::error::RedfishMessage;

/// The external id of a running operation: the URI its `Location` header named (a task monitor,
/// a `Task`, or a Dell job). Stored by the caller and polled with
/// [`crate::RedfishClient::poll_task`], possibly by another process after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskMonitor(pub String);

impl TaskMonitor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TaskMonitor {
    fn from(uri: String) -> TaskMonitor {
        TaskMonitor(uri)
    }
}

impl std::fmt::Display for TaskMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an action request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// 202 Accepted: the work goes on; poll this monitor.
    Started(TaskMonitor),
    /// The BMC did it at once (200/204), with its messages if it gave any.
    Done { messages: Vec<String> },
}

/// One poll of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskProgress {
    /// Still going. `state` is the BMC's own word (`Running`, `Downloading`, `New`, …).
    Running {
        state: String,
        percent: Option<u8>,
        message: Option<String>,
    },
    /// The image is staged; nothing more happens until the system is reset (Dell `Scheduled`,
    /// `RebootPending`, "completed, reboot pending", a `ResetRequired` message).
    AwaitingReset { message: Option<String> },
    /// Done; `warnings` are the messages of severity Warning (or any, for a monitor's final
    /// answer).
    Succeeded { warnings: Vec<String> },
    /// Ended in error, with the BMC's messages.
    Failed { messages: Vec<String> },
    /// The BMC no longer knows the task (cleaned up after completion, or lost in a BMC reboot):
    /// the result must be read from the inventory.
    Gone,
}

impl TaskProgress {
    /// Whether the task will change no more by itself.
    pub fn is_final(&self) -> bool {
        !matches!(self, TaskProgress::Running { .. })
    }
}

fn text(m: &RedfishMessage) -> String {
    if m.message.is_empty() {
        m.message_id.clone()
    } else {
        m.message.clone()
    }
}

fn messages(v: &Value) -> Vec<RedfishMessage> {
    v.get("Messages")
        .and_then(|m| serde_json::from_value::<Vec<RedfishMessage>>(m.clone()).ok())
        .unwrap_or_default()
}

fn percent(v: &Value) -> Option<u8> {
    v.get("PercentComplete")
        .and_then(Value::as_u64)
        .map(|p| p.min(100) as u8)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Reads a monitor's answer: `status` is the HTTP status and `body` the JSON (or `Null`).
pub fn parse_task(status: u16, body: &Value) -> TaskProgress {
    // Dell: a DellJob (Managers/iDRAC.Embedded.1/Jobs/JID_…) or a Task carrying one in Oem.
    if let Some(job) = dell_job(body) {
        return parse_dell_job(job);
    }
    if let Some(state) = str_field(body, "TaskState") {
        return parse_dmtf_task(state, body);
    }
    if status == 202 {
        return TaskProgress::Running {
            state: "Accepted".to_string(),
            percent: percent(body),
            message: None,
        };
    }
    // A monitor's final answer is the operation's own response, not a Task.
    let warnings = crate::error::error_messages(body.to_string().as_bytes())
        .iter()
        .map(text)
        .collect();
    TaskProgress::Succeeded { warnings }
}

fn dell_job(body: &Value) -> Option<&Value> {
    if body.get("JobState").is_some() {
        return Some(body);
    }
    body.pointer("/Oem/Dell")
        .filter(|d| d.get("JobState").is_some())
}

fn parse_dmtf_task(state: &str, body: &Value) -> TaskProgress {
    let msgs = messages(body);
    let last = msgs.last().map(text);
    match state {
        "Completed" => {
            let status = str_field(body, "TaskStatus").unwrap_or("OK");
            if status.eq_ignore_ascii_case("Critical") {
                return TaskProgress::Failed {
                    messages: msgs.iter().map(text).collect(),
                };
            }
            if let Some(reset) = msgs.iter().find(|m| m.is("ResetRequired")) {
                return TaskProgress::AwaitingReset {
                    message: Some(text(reset)),
                };
            }
            TaskProgress::Succeeded {
                warnings: msgs
                    .iter()
                    .filter(|m| {
                        m.severity
                            .as_deref()
                            .is_some_and(|s| !s.eq_ignore_ascii_case("OK"))
                    })
                    .map(text)
                    .collect(),
            }
        }
        "Exception" | "Killed" | "Cancelled" => {
            let mut messages: Vec<String> = msgs.iter().map(text).collect();
            if messages.is_empty() {
                messages.push(format!("the task ended in state {state}"));
            }
            TaskProgress::Failed { messages }
        }
        _ => {
            if msgs.iter().any(|m| m.is("ResetRequired")) && state == "Pending" {
                return TaskProgress::AwaitingReset { message: last };
            }
            TaskProgress::Running {
                state: state.to_string(),
                percent: percent(body),
                message: last,
            }
        }
    }
}

fn reboot_pending(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("reboot") || m.contains("restart"))
        && (m.contains("pending") || m.contains("required") || m.contains("needed"))
}

fn parse_dell_job(job: &Value) -> TaskProgress {
    let state = str_field(job, "JobState").unwrap_or("Unknown");
    let message = str_field(job, "Message").map(str::to_string);
    match state {
        "Completed" => {
            if message.as_deref().is_some_and(reboot_pending) {
                TaskProgress::AwaitingReset { message }
            } else {
                TaskProgress::Succeeded { warnings: vec![] }
            }
        }
        "Scheduled" | "RebootPending" | "PendingActivation" => {
            TaskProgress::AwaitingReset { message }
        }
        "Failed" | "CompletedWithErrors" | "RebootFailed" => TaskProgress::Failed {
            messages: vec![message.unwrap_or_else(|| format!("the job ended in state {state}"))],
        },
        _ => TaskProgress::Running {
            state: state.to_string(),
            percent: percent(job),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running(state: &str, percent: Option<u8>, message: Option<&str>) -> TaskProgress {
        TaskProgress::Running {
            state: state.into(),
            percent,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn dmtf_tasks() {
        let cases = [
            (202, json!(null), running("Accepted", None, None)),
            (
                202,
                json!({"TaskState": "Running", "PercentComplete": 40, "Messages": [{"MessageId": "Update.1.0.TransferringToComponent", "Message": "Image is being transferred to BIOS."}]}),
                running(
                    "Running",
                    Some(40),
                    Some("Image is being transferred to BIOS."),
                ),
            ),
            // sushy's task2.json sample.
            (
                200,
                json!({"TaskState": "Pending", "TaskStatus": "OK", "PercentComplete": 55}),
                running("Pending", Some(55), None),
            ),
            // sushy's task.json sample: completed with a warning.
            (
                200,
                json!({"TaskState": "Completed", "TaskStatus": "OK", "PercentComplete": 100,
                    "Messages": [{"MessageId": "Base.1.0.PropertyNotWriteable", "Message": "Property %1 is read only.", "Severity": "Warning"}]}),
                TaskProgress::Succeeded {
                    warnings: vec!["Property %1 is read only.".into()],
                },
            ),
            (
                200,
                json!({"TaskState": "Completed", "TaskStatus": "OK", "Messages": [{"MessageId": "Update.1.0.UpdateSuccessful", "Message": "Done.", "Severity": "OK"}]}),
                TaskProgress::Succeeded { warnings: vec![] },
            ),
            (
                200,
                json!({"TaskState": "Completed", "TaskStatus": "OK", "Messages": [
                    {"MessageId": "Update.1.0.UpdateSuccessful", "Message": "Staged.", "Severity": "OK"},
                    {"MessageId": "Base.1.8.ResetRequired", "Message": "A reset is required.", "Severity": "Warning"}]}),
                TaskProgress::AwaitingReset {
                    message: Some("A reset is required.".into()),
                },
            ),
            (
                200,
                json!({"TaskState": "Exception", "TaskStatus": "Critical", "Messages": [{"MessageId": "Update.1.0.VerificationFailed", "Message": "Verification of image 'bios.bin' at 'BIOS' failed."}]}),
                TaskProgress::Failed {
                    messages: vec!["Verification of image 'bios.bin' at 'BIOS' failed.".into()],
                },
            ),
            (
                200,
                json!({"TaskState": "Killed"}),
                TaskProgress::Failed {
                    messages: vec!["the task ended in state Killed".into()],
                },
            ),
            (
                200,
                json!({"TaskState": "Completed", "TaskStatus": "Critical", "Messages": [{"Message": "Flash failed"}]}),
                TaskProgress::Failed {
                    messages: vec!["Flash failed".into()],
                },
            ),
            // A monitor's final answer that is the operation's response, not a Task.
            (
                204,
                json!(null),
                TaskProgress::Succeeded { warnings: vec![] },
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(parse_task(status, &body), expected, "{status} {body}");
        }
    }

    #[test]
    fn dell_jobs() {
        let job = |state: &str, msg: &str, pct: u64| {
            json!({"@odata.type": "#DellJob.v1_5_0.DellJob", "Id": "JID_467696564186", "JobState": state,
                "JobType": "FirmwareUpdate", "Message": msg, "PercentComplete": pct})
        };
        let cases = [
            (
                job("New", "Job created.", 0),
                running("New", Some(0), Some("Job created.")),
            ),
            (
                job("Downloading", "Package is being downloaded.", 30),
                running(
                    "Downloading",
                    Some(30),
                    Some("Package is being downloaded."),
                ),
            ),
            (
                job("Scheduled", "Task successfully scheduled.", 34),
                TaskProgress::AwaitingReset {
                    message: Some("Task successfully scheduled.".into()),
                },
            ),
            (
                job("RebootPending", "Reboot pending.", 50),
                TaskProgress::AwaitingReset {
                    message: Some("Reboot pending.".into()),
                },
            ),
            (
                job(
                    "Completed",
                    "Job completed successfully, reboot pending.",
                    100,
                ),
                TaskProgress::AwaitingReset {
                    message: Some("Job completed successfully, reboot pending.".into()),
                },
            ),
            (
                job("Running", "Job in progress.", 60),
                running("Running", Some(60), Some("Job in progress.")),
            ),
            (
                job("Completed", "Job completed successfully.", 100),
                TaskProgress::Succeeded { warnings: vec![] },
            ),
            (
                job("Failed", "Unable to verify Update Package signature.", 100),
                TaskProgress::Failed {
                    messages: vec!["Unable to verify Update Package signature.".into()],
                },
            ),
            (
                job("CompletedWithErrors", "Some components failed.", 100),
                TaskProgress::Failed {
                    messages: vec!["Some components failed.".into()],
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_task(200, &body), expected, "{body}");
        }
        // A Task that carries the job in Oem: the job's state wins (it knows "Scheduled").
        let task = json!({"TaskState": "Running", "PercentComplete": 34,
            "Oem": {"Dell": {"JobState": "Scheduled", "Message": "Task successfully scheduled.", "PercentComplete": 34}}});
        assert_eq!(
            parse_task(202, &task),
            TaskProgress::AwaitingReset {
                message: Some("Task successfully scheduled.".into())
            }
        );
    }
}
