//! What one host needs: the plan's packages (its `artifacts`, or the newest catalog packages for
//! the host's model) against the host's firmware inventory. Pure; this is the check mode `diff`
//! shows per host: what would be flashed, from which version to which, and whether the system
//! must restart for it.

use std::cmp::Ordering;

use ballast_model::firmware::{FirmwarePlanSpec, UpdateMode};
use ballast_redfish::catalog::{Catalog, SystemModel, compare_versions};
use serde::{Deserialize, Serialize};

/// One entry of a host's firmware inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// The inventory `Id` (Dell: `Installed-159-2.18.1`).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `SoftwareId` (Dell's component id, `159`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The BMC's own firmware: the BMC restarts itself to apply it, the system does not.
    #[serde(default)]
    pub manager: bool,
}

impl Component {
    /// Whether an artifact's `component` names this entry: its `SoftwareId`, its `Id` (also
    /// without Dell's `Installed-…-VERSION` decoration) or its `Name`, ignoring case.
    pub fn is(&self, wanted: &str) -> bool {
        let wanted = wanted.trim();
        let eq = |s: &str| s.trim().eq_ignore_ascii_case(wanted);
        self.software_id.as_deref().is_some_and(eq)
            || eq(&self.id)
            || dell_component_id(&self.id).is_some_and(eq)
            || self.name.as_deref().is_some_and(eq)
    }
}

/// `159` of Dell's `Installed-159-2.18.1`.
fn dell_component_id(id: &str) -> Option<&str> {
    id.strip_prefix("Installed-")?.split('-').next()
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ImageSource {
    /// The BMC downloads it (`SimpleUpdate`).
    Uri {
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer_protocol: Option<String>,
    },
    /// ballast pushes it (`MultipartHttpPushUri`).
    File { path: String },
}

/// The image a failed validation goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackImage {
    pub version: String,
    pub image_uri: String,
}

/// One package to flash on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flash {
    /// As the plan (or the catalog) names it.
    pub component: String,
    /// The installed version, if the inventory shows one.
    pub from: Option<String>,
    pub to: String,
    pub image: ImageSource,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// The system must restart to apply it (not the BMC's own firmware).
    pub reboot: bool,
    pub rollback: Option<RollbackImage>,
}

/// What a host needs, from its inventory. Serializes for `diff -o json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostCheck {
    /// The packages to flash.
    pub flashes: Vec<Flash>,
    /// Components already at the version: (component, version).
    pub at_version: Vec<(String, String)>,
    /// Components at a newer version than the plan's: (component, installed, planned). Not
    /// downgraded (unless `force`).
    pub newer: Vec<(String, String, String)>,
    /// Components the plan names that the host's inventory does not have.
    pub missing: Vec<String>,
}

impl HostCheck {
    /// Whether the host reports every version the plan asks for (newer counts).
    pub fn satisfied(&self) -> bool {
        self.flashes.is_empty() && self.missing.is_empty()
    }

    /// Whether applying the flashes needs a system restart.
    pub fn reboot(&self) -> bool {
        self.flashes.iter().any(|f| f.reboot)
    }

    /// The versions to verify after the update: component → version.
    pub fn expected(&self) -> Vec<(String, String)> {
        self.flashes
            .iter()
            .map(|f| (f.component.clone(), f.to.clone()))
            .collect()
    }

    /// One line for `diff`: what would be flashed and whether it reboots.
    pub fn summary(&self) -> String {
        if !self.missing.is_empty() {
            return format!(
                "not in its firmware inventory: {} (incompatible; not updated)",
                self.missing.join(", ")
            );
        }
        if self.flashes.is_empty() {
            return "at the plan's versions; nothing to flash".to_string();
        }
        let items: Vec<String> = self
            .flashes
            .iter()
            .map(|f| {
                format!(
                    "{} {} → {}",
                    f.component,
                    f.from.as_deref().unwrap_or("?"),
                    f.to
                )
            })
            .collect();
        let reboot = if self.reboot() {
            "reboot needed"
        } else {
            "no system reboot"
        };
        format!("would flash {} ({reboot})", items.join(", "))
    }
}

/// What the plan asks of one host's components. `catalog` is needed (and read) only with
/// `LATEST_FROM_CATALOG`; `None` then means no package applies. With `force` every package is
/// flashed whatever the host reports (what `policy.force` asks for the steps); without it the
/// check says what the host really needs.
pub fn check_host(
    spec: &FirmwarePlanSpec,
    inventory: &[Component],
    model: Option<&str>,
    dell_system_id: Option<u32>,
    catalog: Option<&Catalog>,
    force: bool,
) -> HostCheck {
    let mut check = HostCheck::default();
    match spec.policy.update_mode {
        UpdateMode::SpecificPackage => {
            for artifact in &spec.artifacts {
                let component = artifact.component.value.trim();
                let Some(found) = inventory.iter().find(|c| c.is(component)) else {
                    check.missing.push(component.to_string());
                    continue;
                };
                let image = match (&artifact.image_uri, &artifact.file) {
                    (Some(uri), _) => ImageSource::Uri {
                        uri: uri.value.clone(),
                        transfer_protocol: artifact
                            .transfer_protocol
                            .as_ref()
                            .map(|p| p.value.as_str().to_string()),
                    },
                    (None, Some(file)) => ImageSource::File {
                        path: file.value.clone(),
                    },
                    // Validation guarantees one of them.
                    (None, None) => continue,
                };
                let flash = Flash {
                    component: component.to_string(),
                    from: found.version.clone(),
                    to: artifact.version.value.trim().to_string(),
                    image,
                    sha256: artifact
                        .sha256
                        .as_ref()
                        .map(|s| s.value.to_ascii_lowercase()),
                    size: None,
                    reboot: !found.manager,
                    rollback: artifact.rollback.as_ref().map(|r| RollbackImage {
                        version: r.version.value.clone(),
                        image_uri: r.image_uri.value.clone(),
                    }),
                };
                weigh(&mut check, flash, force);
            }
        }
        UpdateMode::LatestFromCatalog => {
            let Some(catalog) = catalog else {
                return check;
            };
            let system = SystemModel::dell(dell_system_id, model);
            for package in catalog.newest_for(&system) {
                // A catalog lists devices a host may not have (NICs, RAID controllers): only
                // the packages for components in its inventory apply.
                let found = package
                    .components()
                    .into_iter()
                    .find_map(|id| inventory.iter().find(|c| c.is(&id)).map(|c| (id, c)));
                let Some((id, found)) = found else { continue };
                let flash = Flash {
                    component: id,
                    from: found.version.clone(),
                    to: package.version.clone(),
                    image: ImageSource::Uri {
                        uri: package.uri.clone(),
                        transfer_protocol: None,
                    },
                    sha256: package.sha256.clone(),
                    size: package.size,
                    reboot: package.reboot_required && !found.manager,
                    rollback: None,
                };
                weigh(&mut check, flash, force);
            }
        }
    }
    check
}

/// Files `flash` under what the host needs: to flash (older, unknown, or `force`), at the
/// version, or newer (kept: never downgraded unless `force`).
fn weigh(check: &mut HostCheck, flash: Flash, force: bool) {
    let installed = flash.from.as_deref().map(str::trim);
    let order = installed.map(|v| {
        if v.eq_ignore_ascii_case(&flash.to) {
            Ordering::Equal
        } else {
            compare_versions(v, &flash.to)
        }
    });
    match (order, force) {
        (Some(Ordering::Equal), false) => {
            check.at_version.push((flash.component, flash.to));
        }
        (Some(Ordering::Greater), false) => {
            let installed = installed.unwrap_or_default().to_string();
            check.newer.push((flash.component, installed, flash.to));
        }
        _ => check.flashes.push(flash),
    }
}
