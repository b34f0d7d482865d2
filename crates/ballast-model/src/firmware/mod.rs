//! The `FirmwarePlan` kind: a firmware campaign over Servers' BMCs, as a manifest. Which servers
//! (by name and/or label selector, in priority order), which packages (given one by one, or the
//! newest of a Dell catalog per host model), how many hosts at a time, when (weekly maintenance
//! windows), with whose approval, and what must hold before and after.
//!
//! - this module: the spec types (serde, strict about unknown fields, spans on the values a
//!   diagnostic points at, JSON Schema);
//! - [`check`]: the checks of one plan on its own, and the entry point that parses one
//!   document text and runs them;
//! - [`targets`]: what needs the whole set (targets name Servers that have a `bmc`), and the
//!   resolution of the targets into hosts with priorities.
//!
//! Not registered as a kind yet: the loader does not dispatch to it. Registration calls
//! [`check::check_firmware_plan`] from the per-resource checks and
//! [`targets::check_plan_targets`] from the set-wide ones.

pub mod check;
pub mod targets;
#[cfg(test)]
mod tests;

use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// The kind's name in manifests.
pub const KIND: &str = "FirmwarePlan";

/// How long one update task may run (download, flash) when `timeouts.task` is not set.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// How long a host may take to power on and its BMC to answer after a reset, when
/// `timeouts.reboot` is not set.
pub const DEFAULT_REBOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Retries of a failed host after its first attempt, when `policy.retries` is not set.
pub const DEFAULT_RETRIES: u32 = 2;

fn is_false(value: &bool) -> bool {
    !*value
}
fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}
fn is_default_retries(n: &u32) -> bool {
    *n == DEFAULT_RETRIES
}

/// A firmware campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FirmwarePlanSpec {
    /// The servers to update: `server: NAME` and/or `selector: {matchLabels: {…}}` entries, each
    /// with an optional `priority` (lower first; default: the entry's position).
    pub targets: Vec<Target>,
    /// The packages to install (`updateMode: SPECIFIC_PACKAGE`). Left out with
    /// `LATEST_FROM_CATALOG`: the catalog names them per host model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// How the campaign runs.
    #[serde(default)]
    pub policy: Policy,
}

/// One entry of `targets`: a server by name, or the servers a label selector matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    /// A Server's `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub server: Option<Spanned<String>>,
    /// The Servers whose `metadata.labels` include all of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Lower goes first; hosts of equal priority go by name. Default: the entry's position in
    /// the list (0, 1, 2, …). A host matched by several entries takes the lowest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i64>")]
    pub priority: Option<Spanned<i64>>,
}

/// A label selector, as Kubernetes writes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// Every label here must be on the Server, with this value.
    pub match_labels: IndexMap<String, String>,
}

/// One firmware package to install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Artifact {
    /// The firmware component, as the BMC's `FirmwareInventory` names it: its `SoftwareId`
    /// (Dell's component id, e.g. `159` for the BIOS), its `Id` (`BIOS`) or its `Name`.
    #[schemars(with = "String")]
    pub component: Spanned<String>,
    /// The version the component must report once updated.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Where the BMC downloads the image from (`SimpleUpdate`): `https://…`, `http://…`,
    /// `nfs://…`, `cifs://…`, `ftp://…`, `sftp://…`, `scp://…`, `tftp://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub image_uri: Option<Spanned<String>>,
    /// A file on the machine running ballast, pushed to the BMC's `MultipartHttpPushUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
    /// The image's SHA-256 (64 hex digits): a `file` is checked before it is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
    /// How the BMC fetches `imageUri`; by default the URI's scheme says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TransferProtocol>")]
    pub transfer_protocol: Option<Spanned<TransferProtocol>>,
    /// The image to go back to when validation after the update fails
    /// (`policy.rollbackOnFailure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
}

/// Redfish's `TransferProtocol` values a BMC may pull an image with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransferProtocol {
    Http,
    Https,
    Nfs,
    Cifs,
    Ftp,
    Sftp,
    Scp,
    Tftp,
}

impl TransferProtocol {
    pub const ALL: [TransferProtocol; 8] = [
        TransferProtocol::Http,
        TransferProtocol::Https,
        TransferProtocol::Nfs,
        TransferProtocol::Cifs,
        TransferProtocol::Ftp,
        TransferProtocol::Sftp,
        TransferProtocol::Scp,
        TransferProtocol::Tftp,
    ];

    /// The Redfish name (`HTTPS`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransferProtocol::Http => "HTTP",
            TransferProtocol::Https => "HTTPS",
            TransferProtocol::Nfs => "NFS",
            TransferProtocol::Cifs => "CIFS",
            TransferProtocol::Ftp => "FTP",
            TransferProtocol::Sftp => "SFTP",
            TransferProtocol::Scp => "SCP",
            TransferProtocol::Tftp => "TFTP",
        }
    }

    /// The protocol a URI scheme names (`smb` is CIFS).
    pub fn from_scheme(scheme: &str) -> Option<TransferProtocol> {
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "smb" {
            return Some(TransferProtocol::Cifs);
        }
        TransferProtocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(&scheme))
    }
}

/// The image a failed validation goes back to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rollback {
    /// The version the component reports after the rollback.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Where the BMC downloads the rollback image from.
    #[schemars(with = "String")]
    pub image_uri: Spanned<String>,
}

/// How packages are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateMode {
    /// The `artifacts` listed, on every target.
    #[default]
    SpecificPackage,
    /// The newest package per component of a Dell catalog (`catalogUri`) that applies to each
    /// host's model.
    LatestFromCatalog,
}

/// What is checked before a host is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PreflightCheck {
    /// The BMC answers and the credentials work.
    Connectivity,
    /// Every artifact's component is in the host's firmware inventory (and, from a catalog, the
    /// package is for the host's model).
    Compatibility,
    /// The system and the BMC report health OK.
    Health,
}

/// What is checked after the update (and the reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PostUpdateCheck {
    /// Every component reports the artifact's version.
    FirmwareVersion,
    /// The system and the BMC report health OK.
    Health,
}

/// `ComputerSystem.Reset` types a plan may restart hosts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum PlanResetType {
    /// The OS shuts down cleanly, then the system restarts.
    #[default]
    GracefulRestart,
    /// Restart without waiting for the OS.
    ForceRestart,
    /// Power off, then on.
    PowerCycle,
}

impl PlanResetType {
    /// The Redfish `ResetType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanResetType::GracefulRestart => "GracefulRestart",
            PlanResetType::ForceRestart => "ForceRestart",
            PlanResetType::PowerCycle => "PowerCycle",
        }
    }
}

/// How the campaign runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// `SPECIFIC_PACKAGE` (default: the `artifacts`) or `LATEST_FROM_CATALOG` (`catalogUri`).
    #[serde(default)]
    pub update_mode: UpdateMode,
    /// A Dell-format `Catalog.xml` or `Catalog.xml.gz`: an `https://`/`http://` URL, or an
    /// absolute path on the machine running ballast. Only with `LATEST_FROM_CATALOG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub catalog_uri: Option<Spanned<String>>,
    /// Hosts being updated at once, at most (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(default = "one")]
    pub max_concurrent: u32,
    /// Targets that must stay up (not being updated, and answering) at any time (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_hosts_online: u32,
    /// When hosts may start updating: weekly windows `DAYS HH:MM-HH:MM ZONE`, e.g.
    /// `sat 01:00-05:00 Europe/Berlin` or `mon-fri 22:00-02:00 UTC`; one text or a list (open
    /// when any is). Left out: any time. A host that started finishes after its window closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindows>,
    /// Nothing starts before `ballast approve firmwareplan/NAME` for this version of the plan.
    #[serde(default, skip_serializing_if = "is_false")]
    pub approval_required: bool,
    /// Checks before a host is touched (default: all of connectivity, compatibility, health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<PreflightCheck>>")]
    pub preflight_checks: Option<Vec<Spanned<PreflightCheck>>>,
    /// Checks after the update (default: both of firmwareVersion, health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<PostUpdateCheck>>")]
    pub post_update_validation: Option<Vec<Spanned<PostUpdateCheck>>>,
    /// When validation fails, flash the artifacts' `rollback` images.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rollback_on_failure: bool,
    /// How a host is restarted to apply firmware (default GracefulRestart).
    #[serde(default)]
    pub reset_type: PlanResetType,
    /// Time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Retries of a failed host after its first attempt, before it is `failed` (default 2).
    #[serde(
        default = "default_retries",
        skip_serializing_if = "is_default_retries"
    )]
    #[schemars(default = "default_retries")]
    pub retries: u32,
    /// Commands run over the Server's SSH connection around the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// Flash the artifacts even on hosts that already report their versions.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            update_mode: UpdateMode::default(),
            catalog_uri: None,
            max_concurrent: 1,
            min_hosts_online: 0,
            maintenance_window: None,
            approval_required: false,
            preflight_checks: None,
            post_update_validation: None,
            rollback_on_failure: false,
            reset_type: PlanResetType::default(),
            timeouts: None,
            retries: DEFAULT_RETRIES,
            maintenance: None,
            force: false,
        }
    }
}

impl Policy {
    /// The window texts, whichever form they were written in.
    pub fn window_texts(&self) -> Vec<&str> {
        match &self.maintenance_window {
            None => Vec::new(),
            Some(w) => w.items(),
        }
    }

    /// The preflight checks to run (all when not given).
    pub fn preflight(&self) -> Vec<PreflightCheck> {
        match &self.preflight_checks {
            None => vec![
                PreflightCheck::Connectivity,
                PreflightCheck::Compatibility,
                PreflightCheck::Health,
            ],
            Some(list) => dedup(list.iter().map(|c| c.value)),
        }
    }

    /// The post-update checks to run (both when not given).
    pub fn validation(&self) -> Vec<PostUpdateCheck> {
        match &self.post_update_validation {
            None => vec![PostUpdateCheck::FirmwareVersion, PostUpdateCheck::Health],
            Some(list) => dedup(list.iter().map(|c| c.value)),
        }
    }

    /// The task time limit (validated to parse).
    pub fn task_timeout(&self) -> Duration {
        self.timeouts
            .as_ref()
            .and_then(|t| t.task.as_ref())
            .and_then(|t| crate::app::parse_duration(&t.value).ok())
            .unwrap_or(DEFAULT_TASK_TIMEOUT)
    }

    /// The reboot time limit (validated to parse).
    pub fn reboot_timeout(&self) -> Duration {
        self.timeouts
            .as_ref()
            .and_then(|t| t.reboot.as_ref())
            .and_then(|t| crate::app::parse_duration(&t.value).ok())
            .unwrap_or(DEFAULT_REBOOT_TIMEOUT)
    }

    /// The commands to run before the update and after validation.
    pub fn maintenance_commands(&self) -> (Vec<String>, Vec<String>) {
        let texts = |list: &[Spanned<String>]| list.iter().map(|c| c.value.clone()).collect();
        match &self.maintenance {
            None => (Vec::new(), Vec::new()),
            Some(m) => (texts(&m.before), texts(&m.after)),
        }
    }
}

fn dedup<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// One window text, or a list of them. Diagnostics find a window by its path.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MaintenanceWindows {
    One(String),
    Many(Vec<String>),
}

/// By hand rather than `untagged`, whose error ("data did not match any variant") would not
/// say what was expected.
impl<'de> Deserialize<'de> for MaintenanceWindows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MaintenanceWindows;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a window such as `sat 01:00-05:00 Europe/Berlin`, or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaintenanceWindows::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(MaintenanceWindows::Many(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl MaintenanceWindows {
    /// Every window text.
    pub fn items(&self) -> Vec<&str> {
        match self {
            MaintenanceWindows::One(one) => vec![one.as_str()],
            MaintenanceWindows::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// Time limits of a host's update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    /// How long one update task may run (download and flash), e.g. `90m` (default 2h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub task: Option<Spanned<String>>,
    /// How long the host may take to power on and its BMC to answer after a reset, e.g. `20m`
    /// (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub reboot: Option<Spanned<String>>,
}

/// Commands run with `sh -c` over the Server's SSH connection (the seed's
/// "requireMaintenanceMode"): `before` ahead of the update and its reset (drain the node, stop
/// its apps), `after` once validation passed. `$BALLAST_SERVER` is the Server's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Maintenance {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub before: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub after: Vec<Spanned<String>>,
}

impl Maintenance {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}
