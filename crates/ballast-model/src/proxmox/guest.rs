//! What VMs and containers share: power state, restart policy, where they come from when
//! cloned.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// The power state a guest should be in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestState {
    #[default]
    Running,
    Stopped,
}

impl fmt::Display for GuestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestState::Running => "running",
            GuestState::Stopped => "stopped",
        })
    }
}

/// What ballast does when a change only takes effect at the next boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Apply the change and report the guest as waiting for a reboot (the default).
    #[default]
    Never,
    /// Apply the change and reboot the guest.
    Auto,
}

/// The guest a new one is cloned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloneSpec {
    /// The source: its vmid (`9000`) or its name (`debian-12-template`).
    #[schemars(with = "CloneSource")]
    pub from: Spanned<CloneSource>,
    /// A full copy (default) or a linked clone of a template (`false`).
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub full: bool,
    /// Where a full clone's disks go (default: where the source's are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// A clone source, by vmid or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CloneSource {
    Vmid(i64),
    Name(String),
}

impl fmt::Display for CloneSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloneSource::Vmid(vmid) => write!(f, "{vmid}"),
            CloneSource::Name(name) => f.write_str(name),
        }
    }
}

/// The vmid of a spec, once validated (in range).
pub(crate) fn vmid_of(vmid: &Option<Spanned<i64>>) -> Option<u32> {
    vmid.as_ref().and_then(|v| u32::try_from(v.value).ok())
}
