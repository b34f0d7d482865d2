//! The steps that update one host, in order, and the rollback steps run when validation after
//! the update fails. Pure: built from the plan's policy and the host's [`HostCheck`].
//!
//! ```text
//! maintenanceBefore → preflight → (simpleUpdate | pushUpdate → waitTask) per package
//!   → reset (when a package needs the system to restart) → waitOnline
//!   → verifyVersions → checkHealth → maintenanceAfter
//! on a failed verify/health, with rollbackOnFailure and rollback images:
//!   (simpleUpdate → waitTask) per rollback image → reset → waitOnline → verifyVersions
//! ```
//!
//! `waitTask` and `waitOnline` are the long ones: the controller returns them as pending
//! operations (the task monitor URI is the external id) and polls them.

use std::collections::BTreeMap;

use ballast_model::firmware::{FirmwarePlanSpec, PostUpdateCheck, PreflightCheck};
use serde::{Deserialize, Serialize};

use super::desired::{HostCheck, ImageSource};

/// One step of a host's update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum FirmwareStep {
    /// Run these commands over the Server's SSH connection (drain the node, stop its apps);
    /// `$BALLAST_SERVER` is the Server's name.
    #[serde(rename_all = "camelCase")]
    MaintenanceBefore { commands: Vec<String> },
    /// Check before touching the host; a failed check fails the attempt without flashing.
    #[serde(rename_all = "camelCase")]
    Preflight { checks: Vec<PreflightCheck> },
    /// `UpdateService.SimpleUpdate`: the BMC downloads the image. With `apply_on_reset` it is
    /// staged (`@Redfish.OperationApplyTime: OnReset`) for the `reset` step.
    #[serde(rename_all = "camelCase")]
    SimpleUpdate {
        component: String,
        version: String,
        image_uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer_protocol: Option<String>,
        apply_on_reset: bool,
    },
    /// Push the file to the BMC's `MultipartHttpPushUri` (its SHA-256 checked first).
    #[serde(rename_all = "camelCase")]
    PushUpdate {
        component: String,
        version: String,
        file: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        apply_on_reset: bool,
    },
    /// Poll the update's task monitor until it is done, or staged awaiting a reset (a BMC that
    /// restarts itself meanwhile is waited for, not failed).
    #[serde(rename_all = "camelCase")]
    WaitTask {
        component: String,
        timeout_secs: u64,
    },
    /// `ComputerSystem.Reset` with the plan's reset type.
    #[serde(rename_all = "camelCase")]
    Reset { reset_type: String },
    /// Wait until the system is powered on and the BMC answers again.
    #[serde(rename_all = "camelCase")]
    WaitOnline { timeout_secs: u64 },
    /// The inventory reports these versions (component → version).
    #[serde(rename_all = "camelCase")]
    VerifyVersions { expected: BTreeMap<String, String> },
    /// The system and the BMC report health OK.
    CheckHealth,
    /// Run these commands over SSH once validation passed (uncordon the node).
    #[serde(rename_all = "camelCase")]
    MaintenanceAfter { commands: Vec<String> },
}

impl FirmwareStep {
    /// The seed's phase a step belongs to: `download`, `install`, `reboot` or `verify`
    /// (maintenance and preflight count as `verify` of the host before and after).
    pub fn phase(&self) -> &'static str {
        match self {
            FirmwareStep::SimpleUpdate { .. } | FirmwareStep::PushUpdate { .. } => "download",
            FirmwareStep::WaitTask { .. } => "install",
            FirmwareStep::Reset { .. } | FirmwareStep::WaitOnline { .. } => "reboot",
            FirmwareStep::MaintenanceBefore { .. }
            | FirmwareStep::Preflight { .. }
            | FirmwareStep::VerifyVersions { .. }
            | FirmwareStep::CheckHealth
            | FirmwareStep::MaintenanceAfter { .. } => "verify",
        }
    }

    /// Whether a failure of this step is a failed validation (which rolls back).
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            FirmwareStep::VerifyVersions { .. } | FirmwareStep::CheckHealth
        )
    }

    /// A short description for progress messages and task logs.
    pub fn describe(&self) -> String {
        match self {
            FirmwareStep::MaintenanceBefore { commands } => {
                format!("maintenance before: {} command(s)", commands.len())
            }
            FirmwareStep::Preflight { checks } => {
                let names: Vec<&str> = checks.iter().map(|c| preflight_name(*c)).collect();
                format!("preflight: {}", names.join(", "))
            }
            FirmwareStep::SimpleUpdate {
                component, version, ..
            } => format!("SimpleUpdate {component} to {version}"),
            FirmwareStep::PushUpdate {
                component, version, ..
            } => format!("push {component} {version}"),
            FirmwareStep::WaitTask { component, .. } => format!("wait for the {component} task"),
            FirmwareStep::Reset { reset_type } => format!("reset ({reset_type})"),
            FirmwareStep::WaitOnline { .. } => "wait for power-on and the BMC".to_string(),
            FirmwareStep::VerifyVersions { expected } => {
                let items: Vec<String> = expected.iter().map(|(c, v)| format!("{c} {v}")).collect();
                format!("verify {}", items.join(", "))
            }
            FirmwareStep::CheckHealth => "check health".to_string(),
            FirmwareStep::MaintenanceAfter { commands } => {
                format!("maintenance after: {} command(s)", commands.len())
            }
        }
    }
}

fn preflight_name(check: PreflightCheck) -> &'static str {
    match check {
        PreflightCheck::Connectivity => "connectivity",
        PreflightCheck::Compatibility => "compatibility",
        PreflightCheck::Health => "health",
    }
}

/// The steps that update a host as `check` says, and the rollback steps (empty when the plan
/// does not roll back or no flashed package names a rollback image).
pub fn host_steps(
    spec: &FirmwarePlanSpec,
    check: &HostCheck,
) -> (Vec<FirmwareStep>, Vec<FirmwareStep>) {
    let policy = &spec.policy;
    let (before, after) = policy.maintenance_commands();
    let task_timeout = policy.task_timeout().as_secs();
    let reboot_timeout = policy.reboot_timeout().as_secs();
    let reboot = check.reboot();
    let mut steps = Vec::new();
    if !before.is_empty() {
        steps.push(FirmwareStep::MaintenanceBefore { commands: before });
    }
    let preflight = policy.preflight();
    if !preflight.is_empty() {
        steps.push(FirmwareStep::Preflight { checks: preflight });
    }
    for flash in &check.flashes {
        steps.push(match &flash.image {
            ImageSource::Uri {
                uri,
                transfer_protocol,
            } => FirmwareStep::SimpleUpdate {
                component: flash.component.clone(),
                version: flash.to.clone(),
                image_uri: uri.clone(),
                transfer_protocol: transfer_protocol.clone(),
                apply_on_reset: flash.reboot,
            },
            ImageSource::File { path } => FirmwareStep::PushUpdate {
                component: flash.component.clone(),
                version: flash.to.clone(),
                file: path.clone(),
                sha256: flash.sha256.clone(),
                apply_on_reset: flash.reboot,
            },
        });
        steps.push(FirmwareStep::WaitTask {
            component: flash.component.clone(),
            timeout_secs: task_timeout,
        });
    }
    if reboot {
        steps.push(FirmwareStep::Reset {
            reset_type: policy.reset_type.as_str().to_string(),
        });
    }
    // Also without a system reset: the BMC restarts itself to apply its own firmware.
    steps.push(FirmwareStep::WaitOnline {
        timeout_secs: reboot_timeout,
    });
    let validation = policy.validation();
    if validation.contains(&PostUpdateCheck::FirmwareVersion) {
        steps.push(FirmwareStep::VerifyVersions {
            expected: check.expected().into_iter().collect(),
        });
    }
    if validation.contains(&PostUpdateCheck::Health) {
        steps.push(FirmwareStep::CheckHealth);
    }
    if !after.is_empty() {
        steps.push(FirmwareStep::MaintenanceAfter { commands: after });
    }

    let mut rollback = Vec::new();
    if policy.rollback_on_failure {
        let mut expected = BTreeMap::new();
        let mut rollback_reboot = false;
        for flash in &check.flashes {
            let Some(image) = &flash.rollback else {
                continue;
            };
            rollback.push(FirmwareStep::SimpleUpdate {
                component: flash.component.clone(),
                version: image.version.clone(),
                image_uri: image.image_uri.clone(),
                transfer_protocol: None,
                apply_on_reset: flash.reboot,
            });
            rollback.push(FirmwareStep::WaitTask {
                component: flash.component.clone(),
                timeout_secs: task_timeout,
            });
            expected.insert(flash.component.clone(), image.version.clone());
            rollback_reboot |= flash.reboot;
        }
        if !rollback.is_empty() {
            if rollback_reboot {
                rollback.push(FirmwareStep::Reset {
                    reset_type: policy.reset_type.as_str().to_string(),
                });
            }
            rollback.push(FirmwareStep::WaitOnline {
                timeout_secs: reboot_timeout,
            });
            rollback.push(FirmwareStep::VerifyVersions { expected });
        }
    }
    (steps, rollback)
}
