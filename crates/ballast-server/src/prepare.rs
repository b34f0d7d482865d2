//! Preparing a server: install the requested distribution packages and Docker, and start Docker.
//!
//! [`plan`] is pure: from a [`SystemInfo`] and a [`PrepareSpec`] it decides, for each step in a
//! fixed order, the command to run or why the step is skipped, so `diff` can show it and tests
//! check it from tables. [`run`] gathers the system info (`detect-os`), plans, runs the steps one
//! by one over SSH reporting each to a sink, stops at the first failure, and gathers again
//! (`verify`). Running it on a prepared server skips every step but `detect-os` and `verify`.
//!
//! Commands are the distributions' own package managers, with the distributions' own Docker
//! packages (no vendor repositories are added):
//!
//! | manager | refresh | install | Docker package |
//! |---|---|---|---|
//! | apt (Debian, Ubuntu) | `apt-get update` | `apt-get install -y --no-install-recommends` | `docker.io` |
//! | dnf (Fedora and derivatives) | `dnf -y makecache` | `dnf -y install` | `moby-engine` on Fedora (`ID` or `ID_LIKE` fedora), else `docker` (Amazon Linux); RHEL clones ship no Docker and fail there with dnf's own "No match" |
//! | apk (Alpine) | `apk update` | `apk add` | `docker` |
//!
//! Docker is started with systemd when it is PID 1, else OpenRC, else the `service` command,
//! else as a background `dockerd` under `nohup` (logging to `/var/log/dockerd.log`). A user who
//! is not root runs every command through `sudo -n`; one who cannot sudo without a password is
//! refused before anything runs, but only when there is something to do.

use std::fmt;
use std::time::Duration;

use ballast_ssh::SshConnection;
use serde::{Deserialize, Serialize};

use crate::error::{ServerError, output_is_transient};
use crate::sysinfo::{InitSystem, PackageManager, SystemInfo, gather, last_lines, shell_quote};

/// What preparation installs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareSpec {
    /// Install Docker (the distribution's package) and have it running.
    pub docker: bool,
    /// Distribution packages to install.
    pub packages: Vec<String>,
}

/// The steps of a preparation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    DetectOs,
    RefreshIndex,
    InstallPackages,
    InstallDocker,
    StartDocker,
    Verify,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::DetectOs,
        Step::RefreshIndex,
        Step::InstallPackages,
        Step::InstallDocker,
        Step::StartDocker,
        Step::Verify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::DetectOs => "detect-os",
            Step::RefreshIndex => "refresh-index",
            Step::InstallPackages => "install-packages",
            Step::InstallDocker => "install-docker",
            Step::StartDocker => "start-docker",
            Step::Verify => "verify",
        }
    }

    /// How long the step's command may run before it counts as failed (transiently).
    pub fn timeout(self) -> Duration {
        match self {
            Step::DetectOs | Step::Verify => crate::sysinfo::GATHER_TIMEOUT,
            Step::RefreshIndex => Duration::from_secs(5 * 60),
            Step::InstallPackages | Step::InstallDocker => Duration::from_secs(15 * 60),
            Step::StartDocker => Duration::from_secs(3 * 60),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a planned step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum StepAction {
    /// Run this shell command on the server.
    Run { command: String },
    /// Nothing to do, and why.
    Skip { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub step: Step,
    #[serde(flatten)]
    pub action: StepAction,
}

impl PlannedStep {
    fn run(step: Step, command: String) -> PlannedStep {
        PlannedStep {
            step,
            action: StepAction::Run { command },
        }
    }

    fn skip(step: Step, reason: impl Into<String>) -> PlannedStep {
        PlannedStep {
            step,
            action: StepAction::Skip {
                reason: reason.into(),
            },
        }
    }

    pub fn is_skip(&self) -> bool {
        matches!(self.action, StepAction::Skip { .. })
    }
}

/// Why a server cannot be prepared as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "user {user} is not root and cannot sudo without a password; give it NOPASSWD sudo or \
         connect as root"
    )]
    NoPrivilege { user: String },
    #[error(
        "cannot install {what}: unsupported OS (os-release ID `{os_id}`, {os_name}); ballast \
         installs with apt (Debian, Ubuntu), dnf (Fedora) or apk (Alpine)"
    )]
    UnsupportedOs {
        os_id: String,
        os_name: String,
        what: String,
    },
}

/// How `detect-os` and `verify` show in a plan: they run the system-info script, which is long.
pub const SYSTEM_INFO_COMMAND: &str = "sh -c '<ballast system-info script (read-only)>'";

/// The steps that prepare the server described by `info` as `spec` asks, in order. Steps with
/// nothing to do are `Skip`s saying why ("already satisfied: …").
pub fn plan(info: &SystemInfo, spec: &PrepareSpec) -> Result<Vec<PlannedStep>, PlanError> {
    let install_docker = spec.docker && !info.docker.installed;
    let start_docker = spec.docker && !info.docker.running;
    let missing = &info.missing_packages;

    let mut to_install = Vec::new();
    if !missing.is_empty() {
        to_install.push(format!("packages {}", missing.join(", ")));
    }
    if install_docker {
        to_install.push("docker".to_string());
    }
    let manager = match info.package_manager {
        Some(manager) => Some(manager),
        None if to_install.is_empty() => None,
        None => {
            return Err(PlanError::UnsupportedOs {
                os_id: info.os_id.clone(),
                os_name: info.os_name.clone(),
                what: to_install.join(" and "),
            });
        }
    };
    if (!to_install.is_empty() || start_docker) && !info.is_root && !info.sudo_ok {
        return Err(PlanError::NoPrivilege {
            user: info.user.clone(),
        });
    }

    let mut steps = vec![PlannedStep::run(
        Step::DetectOs,
        SYSTEM_INFO_COMMAND.to_string(),
    )];

    steps.push(match manager {
        Some(manager) if !to_install.is_empty() => PlannedStep::run(
            Step::RefreshIndex,
            privileged(info, refresh_command(manager)),
        ),
        _ => PlannedStep::skip(Step::RefreshIndex, "nothing to install"),
    });

    steps.push(match manager {
        _ if spec.packages.is_empty() => {
            PlannedStep::skip(Step::InstallPackages, "no packages requested")
        }
        Some(manager) if !missing.is_empty() => PlannedStep::run(
            Step::InstallPackages,
            privileged(info, install_command(manager, missing)),
        ),
        _ => PlannedStep::skip(
            Step::InstallPackages,
            format!("already satisfied: {} installed", spec.packages.join(", ")),
        ),
    });

    steps.push(match manager {
        _ if !spec.docker => PlannedStep::skip(Step::InstallDocker, "docker not requested"),
        Some(manager) if install_docker => PlannedStep::run(
            Step::InstallDocker,
            privileged(
                info,
                install_command(manager, &[docker_package(manager, info).to_string()]),
            ),
        ),
        _ => PlannedStep::skip(
            Step::InstallDocker,
            format!(
                "already satisfied: docker is installed{}",
                version_suffix(info)
            ),
        ),
    });

    steps.push(if !spec.docker {
        PlannedStep::skip(Step::StartDocker, "docker not requested")
    } else if start_docker {
        PlannedStep::run(Step::StartDocker, start_command(info))
    } else {
        PlannedStep::skip(
            Step::StartDocker,
            format!(
                "already satisfied: docker is running{}",
                version_suffix(info)
            ),
        )
    });

    steps.push(PlannedStep::run(
        Step::Verify,
        SYSTEM_INFO_COMMAND.to_string(),
    ));
    Ok(steps)
}

/// What preparation would change, for people ("docker is not installed", "packages missing: jq,
/// htop"); empty when the server is prepared as `spec` asks.
pub fn needs_work(info: &SystemInfo, spec: &PrepareSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    if !info.missing_packages.is_empty() {
        reasons.push(format!(
            "packages missing: {}",
            info.missing_packages.join(", ")
        ));
    }
    if spec.docker {
        if !info.docker.installed {
            reasons.push("docker is not installed".to_string());
        } else if !info.docker.running {
            reasons.push("docker is not running".to_string());
        }
    }
    reasons
}

/// What `verify` still finds wrong after the steps ran: like [`needs_work`], but Docker must
/// also answer (a `dockerd` process that does not answer is not ready).
fn unsatisfied(info: &SystemInfo, spec: &PrepareSpec) -> Vec<String> {
    let mut reasons = needs_work(info, spec);
    if spec.docker && info.docker.running && !info.docker.answers() {
        reasons.push("docker is running but does not answer `docker version`".to_string());
    }
    reasons
}

fn version_suffix(info: &SystemInfo) -> String {
    info.docker
        .version
        .as_ref()
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

fn refresh_command(manager: PackageManager) -> Command {
    match manager {
        PackageManager::Apt => Command::apt("apt-get update".to_string()),
        PackageManager::Dnf => Command::plain("dnf -y makecache".to_string()),
        PackageManager::Apk => Command::plain("apk update".to_string()),
    }
}

fn install_command(manager: PackageManager, packages: &[String]) -> Command {
    // Names passed `valid_package_name` when the info was gathered; quote them all the same.
    let names = packages
        .iter()
        .map(|p| quote_if_needed(p))
        .collect::<Vec<_>>()
        .join(" ");
    match manager {
        PackageManager::Apt => Command::apt(format!(
            "apt-get install -y --no-install-recommends {names}"
        )),
        PackageManager::Dnf => Command::plain(format!("dnf -y install {names}")),
        PackageManager::Apk => Command::plain(format!("apk add {names}")),
    }
}

fn docker_package(manager: PackageManager, info: &SystemInfo) -> &'static str {
    match manager {
        PackageManager::Apt => "docker.io",
        PackageManager::Dnf
            if info.os_id == "fedora" || info.os_id_like.iter().any(|l| l == "fedora") =>
        {
            "moby-engine"
        }
        PackageManager::Dnf | PackageManager::Apk => "docker",
    }
}

fn start_command(info: &SystemInfo) -> String {
    match info.init_system {
        InitSystem::Systemd => {
            privileged(info, Command::plain("systemctl enable --now docker".into()))
        }
        InitSystem::OpenRc => privileged_shell(
            info,
            "rc-update add docker default && rc-service docker start",
        ),
        InitSystem::Service => privileged(info, Command::plain("service docker start".into())),
        InitSystem::None => privileged_shell(
            info,
            "nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &",
        ),
    }
}

/// A simple command, and whether it is apt's (which must not ask questions).
struct Command {
    argv: String,
    apt: bool,
}

impl Command {
    fn plain(argv: String) -> Command {
        Command { argv, apt: false }
    }
    fn apt(argv: String) -> Command {
        Command { argv, apt: true }
    }
}

/// `command` as the login user runs it: as is for root, through `sudo -n` otherwise (`env` sets
/// apt's variable, since sudo drops the caller's environment).
fn privileged(info: &SystemInfo, command: Command) -> String {
    match (info.is_root, command.apt) {
        (true, false) => command.argv,
        (true, true) => format!("DEBIAN_FRONTEND=noninteractive {}", command.argv),
        (false, false) => format!("sudo -n {}", command.argv),
        (false, true) => format!(
            "sudo -n env DEBIAN_FRONTEND=noninteractive {}",
            command.argv
        ),
    }
}

/// A shell snippet (with `&&` or redirections) run as root.
fn privileged_shell(info: &SystemInfo, snippet: &str) -> String {
    if info.is_root {
        snippet.to_string()
    } else {
        format!("sudo -n sh -c {}", shell_quote(snippet))
    }
}

fn quote_if_needed(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'))
    {
        word.to_string()
    } else {
        shell_quote(word)
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    Succeeded,
    Skipped,
    Failed,
}

/// What [`run`] reports while it works, for the preparation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum StepEvent {
    Started {
        step: Step,
        /// The command, or what the step checks.
        message: String,
    },
    Finished {
        step: Step,
        status: StepStatus,
        /// Why it was skipped, why it failed, or what it found.
        message: String,
        /// The last [`OUTPUT_LIMIT`] bytes of the command's output.
        stdout: String,
        stderr: String,
    },
}

/// How much of a step's stdout and stderr an event keeps (the end, where errors are).
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// How long `verify` waits for a just-started Docker daemon to answer.
const DOCKER_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Prepares the server on `conn` as `spec` asks, reporting each step to `sink`, and returns the
/// system info gathered at the end. Stops at the first failing step. Retrying is the caller's
/// business ([`ServerError::is_transient`] says whether a retry may help).
pub async fn run(
    conn: &SshConnection,
    spec: &PrepareSpec,
    sink: &mut (dyn FnMut(StepEvent) + Send),
) -> Result<SystemInfo, ServerError> {
    let server = conn.server();
    sink(StepEvent::Started {
        step: Step::DetectOs,
        message: "gathering system info (OS, resources, sudo, Docker, packages)".to_string(),
    });
    let info = match gather(conn, spec).await {
        Ok(info) => info,
        Err(e) => {
            sink(failed(Step::DetectOs, e.to_string(), "", ""));
            return Err(e);
        }
    };
    sink(finished(
        Step::DetectOs,
        StepStatus::Succeeded,
        describe(&info),
    ));

    let steps = plan(&info, spec).map_err(|source| ServerError::Plan {
        server: server.to_string(),
        source,
    })?;

    for planned in steps
        .iter()
        .filter(|s| !matches!(s.step, Step::DetectOs | Step::Verify))
    {
        let step = planned.step;
        match &planned.action {
            StepAction::Skip { reason } => {
                sink(StepEvent::Started {
                    step,
                    message: reason.clone(),
                });
                sink(finished(step, StepStatus::Skipped, reason.clone()));
            }
            StepAction::Run { command } => {
                sink(StepEvent::Started {
                    step,
                    message: command.clone(),
                });
                tracing::info!(server, %step, command, "preparation step");
                let output = match conn.exec(command, Some(step.timeout())).await {
                    Ok(output) => output,
                    Err(source) => {
                        let e = ServerError::Ssh {
                            server: server.to_string(),
                            during: format!("step {step} (`{command}`)"),
                            source,
                        };
                        sink(failed(step, e.to_string(), "", ""));
                        return Err(e);
                    }
                };
                if output.success() {
                    sink(StepEvent::Finished {
                        step,
                        status: StepStatus::Succeeded,
                        message: format!("`{command}` succeeded"),
                        stdout: tail(&output.stdout),
                        stderr: tail(&output.stderr),
                    });
                } else {
                    let reason = if output.stderr.trim().is_empty() {
                        last_lines(&output.stdout, 3)
                    } else {
                        last_lines(&output.stderr, 3)
                    };
                    let e = ServerError::StepFailed {
                        server: server.to_string(),
                        step,
                        exit: output.exit_status,
                        transient: output_is_transient(&output.stdout, &output.stderr),
                        reason,
                    };
                    sink(failed(step, e.to_string(), &output.stdout, &output.stderr));
                    return Err(e);
                }
            }
        }
    }

    sink(StepEvent::Started {
        step: Step::Verify,
        message: "gathering system info again".to_string(),
    });
    let started_docker = steps
        .iter()
        .any(|s| s.step == Step::StartDocker && !s.is_skip());
    let deadline = verify_deadline(started_docker);
    loop {
        let info = match gather(conn, spec).await {
            Ok(info) => info,
            Err(e) => {
                sink(failed(Step::Verify, e.to_string(), "", ""));
                return Err(e);
            }
        };
        let wrong = unsatisfied(&info, spec);
        if wrong.is_empty() {
            sink(finished(
                Step::Verify,
                StepStatus::Succeeded,
                describe(&info),
            ));
            return Ok(info);
        }
        // A daemon started in the background (no init system) takes a moment to answer.
        let waiting_for_docker = wrong.iter().all(|w| w.contains("docker"));
        if waiting_for_docker && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let e = ServerError::StepFailed {
            server: server.to_string(),
            step: Step::Verify,
            exit: None,
            reason: format!("still not prepared: {}", wrong.join("; ")),
            transient: false,
        };
        sink(failed(Step::Verify, e.to_string(), "", ""));
        return Err(e);
    }
}

fn verify_deadline(started_docker: bool) -> std::time::Instant {
    let wait = if started_docker {
        DOCKER_ANSWER_WAIT
    } else {
        Duration::ZERO
    };
    std::time::Instant::now() + wait
}

/// One line about the server, for the log.
fn describe(info: &SystemInfo) -> String {
    let docker = match (
        &info.docker.version,
        info.docker.installed,
        info.docker.running,
    ) {
        (Some(v), _, _) => format!("docker {v}"),
        (None, true, true) => "docker running (not answering this user)".to_string(),
        (None, true, false) => "docker installed, not running".to_string(),
        (None, false, _) => "no docker".to_string(),
    };
    format!(
        "{} ({}, {} {}), {} CPUs, {} MiB RAM, {} MiB free on /, {}, user {}{}",
        info.hostname,
        info.os_name,
        info.kernel,
        info.arch,
        info.cpu_count,
        info.memory_bytes / (1024 * 1024),
        info.disk_free_bytes / (1024 * 1024),
        docker,
        info.user,
        if info.missing_packages.is_empty() {
            String::new()
        } else {
            format!(", packages missing: {}", info.missing_packages.join(", "))
        }
    )
}

fn finished(step: Step, status: StepStatus, message: String) -> StepEvent {
    StepEvent::Finished {
        step,
        status,
        message,
        stdout: String::new(),
        stderr: String::new(),
    }
}

fn failed(step: Step, message: String, stdout: &str, stderr: &str) -> StepEvent {
    StepEvent::Finished {
        step,
        status: StepStatus::Failed,
        message,
        stdout: tail(stdout),
        stderr: tail(stderr),
    }
}

/// The last [`OUTPUT_LIMIT`] bytes of `text`, cut at a character boundary.
fn tail(text: &str) -> String {
    if text.len() <= OUTPUT_LIMIT {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests;
