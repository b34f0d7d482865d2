//! Firmware plans, with the iDRAC update orchestrator's tables and vocabulary:
//!
//! - [`hosts`](Store::upsert_host): what each target's BMC showed (model, service tag, vendor,
//!   BMC firmware, the firmware inventory), and whether it answers; a change of that is
//!   `host_disconnected` / `host_reconnected`;
//! - [`update_plans`](Store::record_update_plan) with their [`plan_targets`](Store::set_plan_targets)
//!   and [`artifacts`](Store::set_plan_artifacts): the policy, status, window, generation and
//!   approval (who, when, for which generation);
//! - [`host_runs`](Store::move_host_run): one run per plan and host. **Every transition is a
//!   compare-and-set**: `UPDATE … WHERE id = ? AND state = from`, false when another actor moved
//!   the run first, refused before any SQL when [`can_move`] says the transition is illegal;
//!   `started_at`, `completed_at` and `attempts` are set by the transition itself;
//! - [`redfish_sessions`](Store::put_redfish_session): one session token per BMC, sealed by the
//!   caller with the store's key under [`redfish_session_name`] (ciphertext only, like
//!   `server_credentials`), re-encrypted by `ballast secret rotate-key`;
//! - events through [`Store::append_event`] ([`FirmwareEvent`]).
//!
//! Times are UTC, ids UUID v7, JSON is TEXT, as everywhere in the store.

mod hosts;
mod plans;
mod runs;
mod sessions;

pub use ballast_redfish::hostrun::{PlanStatus, RunState, can_move};
pub use hosts::{HostRecord, HostStatus, InventoryEntry};
pub use plans::{Approval, ArtifactRecord, PlanTarget, UpdatePlanRecord};
pub use runs::{HostRun, Phase, Progress, RunChange, RunCtx, RunId, Timing};
pub use sessions::{RedfishSession, redfish_session_name};

use crate::{NewEvent, Severity};

/// The resource string events carry for a plan: `FirmwarePlan/NAME`.
pub fn plan_resource(plan: &str) -> String {
    format!("FirmwarePlan/{plan}")
}

/// The system events of firmware plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareEvent {
    UpdateStarted,
    UpdateCompleted,
    UpdateFailed,
    MaintenanceWindowStarted,
    MaintenanceWindowEnded,
    HostDisconnected,
    HostReconnected,
}

impl FirmwareEvent {
    pub const ALL: [FirmwareEvent; 7] = [
        FirmwareEvent::UpdateStarted,
        FirmwareEvent::UpdateCompleted,
        FirmwareEvent::UpdateFailed,
        FirmwareEvent::MaintenanceWindowStarted,
        FirmwareEvent::MaintenanceWindowEnded,
        FirmwareEvent::HostDisconnected,
        FirmwareEvent::HostReconnected,
    ];

    /// The event type as `system_events` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            FirmwareEvent::UpdateStarted => "update_started",
            FirmwareEvent::UpdateCompleted => "update_completed",
            FirmwareEvent::UpdateFailed => "update_failed",
            FirmwareEvent::MaintenanceWindowStarted => "maintenance_window_started",
            FirmwareEvent::MaintenanceWindowEnded => "maintenance_window_ended",
            FirmwareEvent::HostDisconnected => "host_disconnected",
            FirmwareEvent::HostReconnected => "host_reconnected",
        }
    }

    /// How much it matters.
    pub fn severity(self) -> Severity {
        match self {
            FirmwareEvent::UpdateFailed => Severity::Error,
            FirmwareEvent::HostDisconnected => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The event for [`Store::append_event`](crate::Store::append_event), about `plan` (the
    /// resource) with `message` (which names the host when there is one).
    pub fn event(self, plan: &str, message: impl Into<String>) -> NewEvent<'static> {
        NewEvent {
            kind: self.as_str(),
            severity: self.severity(),
            message: message.into(),
            resource: Some(plan_resource(plan)),
        }
    }

    /// The event about a host itself (`Server/NAME`): disconnected or reconnected.
    pub fn host_event(self, host: &str, message: impl Into<String>) -> NewEvent<'static> {
        NewEvent {
            kind: self.as_str(),
            severity: self.severity(),
            message: message.into(),
            resource: Some(format!("Server/{host}")),
        }
    }
}
