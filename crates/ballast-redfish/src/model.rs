//! Typed views of the Redfish resources the client reads, parsed from JSON by pure functions
//! (so vendor shapes are tested from sample documents). Unknown fields are ignored; a missing
//! optional field is `None`, never an error.

use std::fmt;

use serde_json::Value;

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn odata_id(v: &Value) -> Option<String> {
    s(v, "@odata.id")
}

fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(odata_id)
}

/// The server vendor, as far as the service root tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vendor {
    Dell,
    Hpe,
    Supermicro,
    Lenovo,
    /// Another vendor, by the name the BMC gave (or empty).
    Other(String),
}

impl Vendor {
    /// A manifest's `vendor` hint (`dell`, `hpe`, `supermicro`, `lenovo`, anything else).
    pub fn from_hint(hint: &str) -> Vendor {
        match hint.trim().to_ascii_lowercase().as_str() {
            "dell" | "idrac" => Vendor::Dell,
            "hpe" | "hp" | "ilo" => Vendor::Hpe,
            "supermicro" | "smc" => Vendor::Supermicro,
            "lenovo" | "xcc" => Vendor::Lenovo,
            _ => Vendor::Other(hint.trim().to_string()),
        }
    }

    fn from_text(text: &str) -> Option<Vendor> {
        let t = text.to_ascii_lowercase();
        if t.contains("dell") || t.contains("idrac") {
            Some(Vendor::Dell)
        } else if t.contains("hpe") || t == "hp" || t.contains("ilo") || t.contains("hewlett") {
            Some(Vendor::Hpe)
        } else if t.contains("supermicro") {
            Some(Vendor::Supermicro)
        } else if t.contains("lenovo") || t.contains("xclarity") {
            Some(Vendor::Lenovo)
        } else {
            None
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Vendor::Dell => f.write_str("Dell"),
            Vendor::Hpe => f.write_str("HPE"),
            Vendor::Supermicro => f.write_str("Supermicro"),
            Vendor::Lenovo => f.write_str("Lenovo"),
            Vendor::Other(name) if name.is_empty() => f.write_str("unknown"),
            Vendor::Other(name) => f.write_str(name),
        }
    }
}

/// Which `$expand` form the service accepts, from `ProtocolFeaturesSupported.ExpandQuery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expand {
    /// `$expand=.($levels=1)`: expand members without following links.
    NoLinks,
    /// `$expand=*($levels=1)`.
    All,
    /// No `$expand`: collections are read member by member.
    None,
}

impl Expand {
    /// The query to append to a collection URI.
    pub fn query(self) -> Option<&'static str> {
        match self {
            Expand::NoLinks => Some("$expand=.($levels=1)"),
            Expand::All => Some("$expand=*($levels=1)"),
            Expand::None => None,
        }
    }
}

/// `/redfish/v1/`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRoot {
    pub redfish_version: Option<String>,
    pub product: Option<String>,
    pub uuid: Option<String>,
    pub vendor: Vendor,
    pub expand: Expand,
    pub systems: Option<String>,
    pub managers: Option<String>,
    pub update_service: Option<String>,
    pub task_service: Option<String>,
    /// The sessions collection; `None` when the service offers no sessions (basic auth then).
    pub sessions: Option<String>,
}

impl ServiceRoot {
    pub fn parse(v: &Value) -> ServiceRoot {
        let oem_keys: Vec<String> = v
            .get("Oem")
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let vendor = s(v, "Vendor")
            .and_then(|t| Vendor::from_text(&t).or(Some(Vendor::Other(t))))
            .filter(|v| !matches!(v, Vendor::Other(_)))
            .or_else(|| oem_keys.iter().find_map(|k| Vendor::from_text(k)))
            .or_else(|| s(v, "Product").and_then(|p| Vendor::from_text(&p)))
            .or_else(|| s(v, "Vendor").map(Vendor::Other))
            .unwrap_or_else(|| Vendor::Other(s(v, "Product").unwrap_or_default()));
        let expand = match v.pointer("/ProtocolFeaturesSupported/ExpandQuery") {
            Some(Value::Object(q)) => {
                let yes = |k: &str| q.get(k).and_then(Value::as_bool).unwrap_or(false);
                let levels = yes("Levels");
                if levels && yes("NoLinks") {
                    Expand::NoLinks
                } else if levels && yes("ExpandAll") {
                    Expand::All
                } else {
                    Expand::None
                }
            }
            _ => Expand::None,
        };
        let sessions = v
            .pointer("/Links/Sessions/@odata.id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                link(v, "SessionService")
                    .map(|svc| format!("{}/Sessions", svc.trim_end_matches('/')))
            });
        ServiceRoot {
            redfish_version: s(v, "RedfishVersion"),
            product: s(v, "Product"),
            uuid: s(v, "UUID"),
            vendor,
            expand,
            systems: link(v, "Systems"),
            managers: link(v, "Managers"),
            update_service: link(v, "UpdateService"),
            task_service: link(v, "Tasks").or_else(|| link(v, "TaskService")),
            sessions,
        }
    }
}

/// `Status` of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `Enabled`, `Disabled`, `StandbyOffline`, `Updating`, …
    pub state: Option<String>,
    /// `OK`, `Warning`, `Critical`.
    pub health: Option<String>,
    pub health_rollup: Option<String>,
}

impl Status {
    fn parse(v: &Value) -> Status {
        let Some(st) = v.get("Status") else {
            return Status::default();
        };
        Status {
            state: s(st, "State"),
            health: s(st, "Health"),
            // The schema says HealthRollup; some services (sushy-tools) write HealthRollUp.
            health_rollup: s(st, "HealthRollup").or_else(|| s(st, "HealthRollUp")),
        }
    }

    /// Whether the resource and everything below it report `OK` (missing health counts as OK:
    /// many services leave it out when nothing is wrong).
    pub fn is_ok(&self) -> bool {
        [&self.health, &self.health_rollup]
            .iter()
            .all(|h| h.as_deref().is_none_or(|h| h.eq_ignore_ascii_case("OK")))
    }
}

/// `PowerState` of a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Paused,
    Unknown(String),
}

impl PowerState {
    pub fn parse(text: &str) -> PowerState {
        match text {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            "Paused" => PowerState::Paused,
            other => PowerState::Unknown(other.to_string()),
        }
    }
}

/// `ResetType` of `ComputerSystem.Reset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    Nmi,
    ForceOn,
    PushPowerButton,
    PowerCycle,
    Other(String),
}

impl ResetType {
    pub fn as_str(&self) -> &str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::Nmi => "Nmi",
            ResetType::ForceOn => "ForceOn",
            ResetType::PushPowerButton => "PushPowerButton",
            ResetType::PowerCycle => "PowerCycle",
            ResetType::Other(s) => s,
        }
    }

    pub fn parse(text: &str) -> ResetType {
        match text {
            "On" => ResetType::On,
            "ForceOff" => ResetType::ForceOff,
            "GracefulShutdown" => ResetType::GracefulShutdown,
            "GracefulRestart" => ResetType::GracefulRestart,
            "ForceRestart" => ResetType::ForceRestart,
            "Nmi" => ResetType::Nmi,
            "ForceOn" => ResetType::ForceOn,
            "PushPowerButton" => ResetType::PushPowerButton,
            "PowerCycle" => ResetType::PowerCycle,
            other => ResetType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `ComputerSystem`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputerSystem {
    pub uri: String,
    pub id: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub sku: Option<String>,
    pub power_state: Option<PowerState>,
    pub status: Status,
    pub bios_version: Option<String>,
    /// `Actions.#ComputerSystem.Reset.target`.
    pub reset_target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`; empty when the BMC does not list them.
    pub reset_types: Vec<ResetType>,
    /// Dell's `Oem.Dell.DellSystem.SystemID` (decimal), the key of Dell catalogs (`systemID`,
    /// hex there).
    pub dell_system_id: Option<u32>,
}

impl ComputerSystem {
    pub fn parse(v: &Value) -> ComputerSystem {
        let reset = v.pointer("/Actions/#ComputerSystem.Reset");
        ComputerSystem {
            uri: odata_id(v).unwrap_or_default(),
            id: s(v, "Id").unwrap_or_default(),
            manufacturer: s(v, "Manufacturer"),
            model: s(v, "Model"),
            serial_number: s(v, "SerialNumber"),
            sku: s(v, "SKU"),
            power_state: s(v, "PowerState").map(|p| PowerState::parse(&p)),
            status: Status::parse(v),
            bios_version: s(v, "BiosVersion"),
            reset_target: reset.and_then(|r| s(r, "target")),
            reset_types: reset
                .and_then(|r| r.get("ResetType@Redfish.AllowableValues"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(ResetType::parse)
                        .collect()
                })
                .unwrap_or_default(),
            dell_system_id: v
                .pointer("/Oem/Dell/DellSystem/SystemID")
                .and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok()))
                .and_then(|id| u32::try_from(id).ok()),
        }
    }

    /// The tag people know the machine by: Dell puts the service tag in `SKU`, the others the
    /// serial number in `SerialNumber`.
    pub fn service_tag(&self, vendor: &Vendor) -> Option<&str> {
        match vendor {
            Vendor::Dell => self.sku.as_deref().or(self.serial_number.as_deref()),
            _ => self.serial_number.as_deref().or(self.sku.as_deref()),
        }
    }

    /// Whether the BMC accepts `reset` (a BMC that lists no values is given the benefit of the
    /// doubt).
    pub fn allows_reset(&self, reset: &ResetType) -> bool {
        self.reset_types.is_empty() || self.reset_types.contains(reset)
    }
}

/// A `Manager` (the BMC itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub uri: String,
    pub id: String,
    pub model: Option<String>,
    pub manager_type: Option<String>,
    pub firmware_version: Option<String>,
    pub status: Status,
}

impl Manager {
    pub fn parse(v: &Value) -> Manager {
        Manager {
            uri: odata_id(v).unwrap_or_default(),
            id: s(v, "Id").unwrap_or_default(),
            model: s(v, "Model"),
            manager_type: s(v, "ManagerType"),
            firmware_version: s(v, "FirmwareVersion"),
            status: Status::parse(v),
        }
    }
}

/// Where an inventory entry stands. Dell lists installed, previous (rollback) and available
/// (staged) images side by side, told apart by the id's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryState {
    Installed,
    Previous,
    Available,
}

/// One `SoftwareInventory` entry of `FirmwareInventory`.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareComponent {
    pub uri: String,
    pub id: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub updateable: Option<bool>,
    pub software_id: Option<String>,
    pub state: InventoryState,
    pub status: Status,
    /// `RelatedItem[]`: the resources this firmware runs on (a Manager for the BMC's own).
    pub related: Vec<String>,
}

impl FirmwareComponent {
    pub fn parse(v: &Value) -> FirmwareComponent {
        let id = s(v, "Id").unwrap_or_default();
        let state = if id.starts_with("Previous-") {
            InventoryState::Previous
        } else if id.starts_with("Available-") {
            InventoryState::Available
        } else {
            InventoryState::Installed
        };
        FirmwareComponent {
            uri: odata_id(v).unwrap_or_default(),
            state,
            name: s(v, "Name"),
            version: s(v, "Version"),
            updateable: v.get("Updateable").and_then(Value::as_bool),
            software_id: s(v, "SoftwareId"),
            status: Status::parse(v),
            related: v
                .get("RelatedItem")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(odata_id).collect())
                .unwrap_or_default(),
            id,
        }
    }

    /// Whether this entry is the firmware of a manager (the BMC).
    pub fn is_manager_firmware(&self) -> bool {
        self.related.iter().any(|r| r.contains("/Managers/"))
    }
}

/// When an update takes effect (`@Redfish.OperationApplyTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTime {
    Immediate,
    OnReset,
}

impl ApplyTime {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTime::Immediate => "Immediate",
            ApplyTime::OnReset => "OnReset",
        }
    }
}

/// `/redfish/v1/UpdateService`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateService {
    pub uri: String,
    pub service_enabled: Option<bool>,
    pub firmware_inventory: Option<String>,
    /// `Actions.#UpdateService.SimpleUpdate.target`.
    pub simple_update: Option<String>,
    /// `TransferProtocol@Redfish.AllowableValues` (empty: not listed).
    pub transfer_protocols: Vec<String>,
    /// `@Redfish.OperationApplyTimeSupport.SupportedValues` of SimpleUpdate (empty: not listed).
    pub apply_times: Vec<String>,
    pub multipart_push_uri: Option<String>,
    pub http_push_uri: Option<String>,
}

impl UpdateService {
    pub fn parse(v: &Value) -> UpdateService {
        let action = v.pointer("/Actions/#UpdateService.SimpleUpdate");
        let strings = |a: Option<&Value>| -> Vec<String> {
            a.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        UpdateService {
            uri: odata_id(v).unwrap_or_default(),
            service_enabled: v.get("ServiceEnabled").and_then(Value::as_bool),
            firmware_inventory: link(v, "FirmwareInventory"),
            simple_update: action.and_then(|a| s(a, "target")),
            transfer_protocols: strings(
                action.and_then(|a| a.get("TransferProtocol@Redfish.AllowableValues")),
            ),
            apply_times: strings(
                action
                    .and_then(|a| a.pointer("/@Redfish.OperationApplyTimeSupport/SupportedValues")),
            ),
            multipart_push_uri: s(v, "MultipartHttpPushUri"),
            http_push_uri: s(v, "HttpPushUri"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vendor_detection_from_service_roots() {
        let cases = [
            (json!({"Vendor": "Dell", "Oem": {"Dell": {}}}), Vendor::Dell),
            (
                json!({"Oem": {"Dell": {"ServiceTag": "ABC1234"}}, "Product": "Integrated Dell Remote Access Controller"}),
                Vendor::Dell,
            ),
            (
                json!({"Oem": {"Hpe": {"Manager": []}}, "Product": "ProLiant DL360 Gen10"}),
                Vendor::Hpe,
            ),
            (json!({"Oem": {"Hp": {}}}), Vendor::Hpe),
            (json!({"Vendor": "HPE"}), Vendor::Hpe),
            (json!({"Oem": {"Supermicro": {}}}), Vendor::Supermicro),
            (
                json!({"Vendor": "Supermicro", "Product": ""}),
                Vendor::Supermicro,
            ),
            (json!({"Vendor": "Lenovo"}), Vendor::Lenovo),
            (
                json!({"Product": "Lenovo XClarity Controller"}),
                Vendor::Lenovo,
            ),
            (
                json!({"Vendor": "Contoso"}),
                Vendor::Other("Contoso".into()),
            ),
            (
                json!({"Product": "Redvirt"}),
                Vendor::Other("Redvirt".into()),
            ),
            (json!({}), Vendor::Other(String::new())),
        ];
        for (root, vendor) in cases {
            assert_eq!(ServiceRoot::parse(&root).vendor, vendor, "{root}");
        }
    }

    #[test]
    fn expand_support() {
        let cases = [
            (json!({}), Expand::None),
            (
                json!({"ProtocolFeaturesSupported": {"ExpandQuery": false}}),
                Expand::None,
            ),
            (
                // iDRAC 9
                json!({"ProtocolFeaturesSupported": {"ExpandQuery": {"ExpandAll": true, "Levels": true, "Links": true, "MaxLevels": 1, "NoLinks": true}}}),
                Expand::NoLinks,
            ),
            (
                json!({"ProtocolFeaturesSupported": {"ExpandQuery": {"ExpandAll": true, "Levels": true, "NoLinks": false}}}),
                Expand::All,
            ),
            (
                json!({"ProtocolFeaturesSupported": {"ExpandQuery": {"ExpandAll": true, "Levels": false}}}),
                Expand::None,
            ),
        ];
        for (root, expand) in cases {
            assert_eq!(ServiceRoot::parse(&root).expand, expand, "{root}");
        }
    }

    #[test]
    fn sessions_link() {
        let root = ServiceRoot::parse(
            &json!({"Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}}),
        );
        assert_eq!(
            root.sessions.as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        let root = ServiceRoot::parse(
            &json!({"SessionService": {"@odata.id": "/redfish/v1/SessionService/"}}),
        );
        assert_eq!(
            root.sessions.as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        // sushy-tools' root: no sessions at all.
        let root = ServiceRoot::parse(&json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}}));
        assert_eq!(root.sessions, None);
    }

    #[test]
    fn system_fields() {
        let v = json!({
            "@odata.id": "/redfish/v1/Systems/System.Embedded.1", "Id": "System.Embedded.1",
            "Manufacturer": "Dell Inc.", "Model": "PowerEdge R640", "SKU": "7XK2QR2", "SerialNumber": "CNIVC0099U0042",
            "PowerState": "On", "Status": {"State": "Enabled", "Health": "OK", "HealthRollUp": "Warning"},
            "Oem": {"Dell": {"DellSystem": {"SystemID": 1814}}},
            "Actions": {"#ComputerSystem.Reset": {"target": "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulRestart", "PowerCycle"]}}
        });
        let sys = ComputerSystem::parse(&v);
        assert_eq!(sys.service_tag(&Vendor::Dell), Some("7XK2QR2"));
        assert_eq!(sys.service_tag(&Vendor::Hpe), Some("CNIVC0099U0042"));
        assert_eq!(sys.power_state, Some(PowerState::On));
        assert_eq!(sys.status.health_rollup.as_deref(), Some("Warning"));
        assert!(!sys.status.is_ok());
        assert_eq!(sys.dell_system_id, Some(1814));
        assert!(sys.allows_reset(&ResetType::PowerCycle));
        assert!(!sys.allows_reset(&ResetType::ForceRestart));
    }

    #[test]
    fn update_service_fields() {
        let v = json!({"@odata.id": "/redfish/v1/UpdateService", "ServiceEnabled": true,
            "FirmwareInventory": {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory"},
            "MultipartHttpPushUri": "/redfish/v1/UpdateService/MultipartUpload",
            "Actions": {"#UpdateService.SimpleUpdate": {"target": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
                "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
                "@Redfish.OperationApplyTimeSupport": {"SupportedValues": ["Immediate", "OnReset"]}}}});
        let u = UpdateService::parse(&v);
        assert_eq!(
            u.simple_update.as_deref(),
            Some("/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate")
        );
        assert_eq!(u.transfer_protocols, ["HTTP", "HTTPS"]);
        assert_eq!(u.apply_times, ["Immediate", "OnReset"]);
        assert_eq!(
            u.multipart_push_uri.as_deref(),
            Some("/redfish/v1/UpdateService/MultipartUpload")
        );
    }

    #[test]
    fn dell_inventory_prefixes() {
        let c =
            FirmwareComponent::parse(&json!({"Id": "Previous-159-2.18.1", "Version": "2.18.1"}));
        assert_eq!(c.state, InventoryState::Previous);
        let c = FirmwareComponent::parse(
            &json!({"Id": "Installed-25227-7.00.00.171", "Version": "7.00.00.171",
            "RelatedItem": [{"@odata.id": "/redfish/v1/Managers/iDRAC.Embedded.1"}]}),
        );
        assert_eq!(c.state, InventoryState::Installed);
        assert!(c.is_manager_firmware());
    }
}
