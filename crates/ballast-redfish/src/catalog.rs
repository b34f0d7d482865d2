//! Dell update catalogs (`Catalog.xml`, also gzipped, also UTF-16 as Dell publishes it): which
//! packages exist, and the newest one per component for a given system model. Pure: the caller
//! reads the bytes (URL or file).
//!
//! A package applies to a system when one of its `SupportedSystems/Brand/Model` entries has the
//! system's `systemID` (hex in the catalog; Redfish gives it in decimal as
//! `Oem.Dell.DellSystem.SystemID`) or its model name (`R640`, or with the brand,
//! `PowerEdge R640`, as Redfish's `Model` says). A package listing no systems applies to all.
//! A component is a `SupportedDevices/Device@componentID` (or, without one, the component type
//! and the package name without its version).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Read;

use quick_xml::escape::{resolve_predefined_entity, unescape};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// A catalog that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("the catalog is not valid UTF-8 or UTF-16 text")]
    Encoding,
    #[error("the catalog is not valid XML at byte {position}: {reason}")]
    Xml { position: u64, reason: String },
    #[error("the catalog has no <Manifest> root; expected a Dell Catalog.xml")]
    NotACatalog,
}

/// A supported system of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedSystem {
    /// `Brand/Display` (`PowerEdge`).
    pub brand: Option<String>,
    /// `Model@systemID` as written (hex, `0716`).
    pub system_id: Option<String>,
    /// `Model/Display` (`R640`).
    pub model: Option<String>,
}

/// A device a package updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub component_id: String,
    pub name: Option<String>,
}

/// One `SoftwareComponent` of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub package_id: Option<String>,
    /// `Name/Display`.
    pub name: Option<String>,
    /// `vendorVersion` (else `dellVersion`).
    pub version: String,
    /// `path` as written in the catalog.
    pub path: String,
    /// `path` joined to the catalog's `baseLocation` (or to the catalog's own location).
    pub uri: String,
    pub hash_md5: Option<String>,
    /// `Cryptography/Hash[@algorithm=SHA256]` or a `hashSHA256` attribute, lower-case hex.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub reboot_required: bool,
    /// `ComponentType@value` (`BIOS`, `FRMW`, `APAC`, …).
    pub component_type: Option<String>,
    pub date_time: Option<String>,
    pub devices: Vec<Device>,
    pub systems: Vec<SupportedSystem>,
}

/// A system to choose packages for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemModel {
    /// The system id in hex as catalogs write it (`0716`); see [`SystemModel::dell`].
    pub system_id: Option<String>,
    /// The model name (`PowerEdge R640` or `R640`).
    pub model: Option<String>,
}

impl SystemModel {
    /// From Redfish: `Oem.Dell.DellSystem.SystemID` (decimal) and `Model`.
    pub fn dell(system_id: Option<u32>, model: Option<&str>) -> SystemModel {
        SystemModel {
            system_id: system_id.map(|id| format!("{id:04X}")),
            model: model.map(str::to_string),
        }
    }
}

impl Package {
    /// Whether the package is for `system`.
    pub fn applies_to(&self, system: &SystemModel) -> bool {
        if self.systems.is_empty() {
            return true;
        }
        self.systems.iter().any(|s| system_matches(s, system))
    }

    /// The components this package updates.
    pub fn components(&self) -> Vec<String> {
        if !self.devices.is_empty() {
            return self
                .devices
                .iter()
                .map(|d| d.component_id.clone())
                .collect();
        }
        let name = self.name.as_deref().unwrap_or(&self.path);
        // "Dell Server BIOS PowerEdge R640, 2.19.1" → without ", 2.19.1".
        let name = name
            .rsplit_once(',')
            .filter(|(_, v)| v.trim() == self.version)
            .map(|(n, _)| n)
            .unwrap_or(name);
        vec![format!(
            "{}:{}",
            self.component_type.as_deref().unwrap_or(""),
            name.trim()
        )]
    }
}

fn system_id_value(id: &str) -> Option<u32> {
    u32::from_str_radix(id.trim(), 16).ok()
}

fn system_matches(s: &SupportedSystem, system: &SystemModel) -> bool {
    if let (Some(a), Some(b)) = (&s.system_id, &system.system_id)
        && let (Some(a), Some(b)) = (system_id_value(a), system_id_value(b))
        && a == b
    {
        return true;
    }
    let (Some(wanted), Some(model)) = (&system.model, &s.model) else {
        return false;
    };
    let wanted = wanted.trim().to_ascii_lowercase();
    let model = model.trim().to_ascii_lowercase();
    if wanted == model || wanted.ends_with(&format!(" {model}")) {
        return true;
    }
    s.brand
        .as_deref()
        .is_some_and(|b| format!("{} {model}", b.trim().to_ascii_lowercase()) == wanted)
}

/// A parsed catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub base_location: Option<String>,
    pub version: Option<String>,
    pub date_time: Option<String>,
    pub packages: Vec<Package>,
}

impl Catalog {
    /// Parses a catalog's bytes: gzip or not, UTF-8 or UTF-16 (with BOM). `catalog_uri` is where
    /// it was read from: package paths are joined to it when the catalog has no
    /// `baseLocation` (a local repository made by Dell Repository Manager).
    pub fn parse(bytes: &[u8], catalog_uri: Option<&str>) -> Result<Catalog, CatalogError> {
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(CatalogError::Gzip)?;
            out
        } else {
            bytes.to_vec()
        };
        let text = decode_text(&bytes)?;
        parse_xml(&text, catalog_uri)
    }

    /// The newest applicable package per component for `system`, ordered by component.
    pub fn newest_for(&self, system: &SystemModel) -> Vec<&Package> {
        let mut best: BTreeMap<String, &Package> = BTreeMap::new();
        for package in self.packages.iter().filter(|p| p.applies_to(system)) {
            for component in package.components() {
                let keep = match best.get(&component) {
                    None => true,
                    Some(current) => match compare_versions(&package.version, &current.version) {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        // Same version twice: the later release wins.
                        Ordering::Equal => package.date_time > current.date_time,
                    },
                };
                if keep {
                    best.insert(component, package);
                }
            }
        }
        let mut out: Vec<&Package> = Vec::new();
        for package in best.into_values() {
            // A package for two components appears once.
            if !out.iter().any(|p| std::ptr::eq(*p, package)) {
                out.push(package);
            }
        }
        out
    }
}

/// Compares firmware versions piece by piece: numbers as numbers (`2.10.0` > `2.9.3`), other
/// pieces as text (`A05` > `A04`); a version with more pieces is newer when the rest is equal.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let pieces = |v: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut digit = None;
        for c in v.trim().chars() {
            if !c.is_ascii_alphanumeric() {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                digit = None;
                continue;
            }
            let is_digit = c.is_ascii_digit();
            if digit.is_some_and(|d| d != is_digit) && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            digit = Some(is_digit);
            current.push(c);
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    };
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

fn decode_text(bytes: &[u8]) -> Result<String, CatalogError> {
    let utf16 = |data: &[u8], le: bool| -> Result<String, CatalogError> {
        let units: Vec<u16> = data
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| CatalogError::Encoding)
    };
    match bytes {
        [0xff, 0xfe, rest @ ..] => utf16(rest, true),
        [0xfe, 0xff, rest @ ..] => utf16(rest, false),
        [0xef, 0xbb, 0xbf, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|_| CatalogError::Encoding)
        }
        // UTF-16 without a BOM: "<\0?\0".
        [b'<', 0, ..] => utf16(bytes, true),
        [0, b'<', ..] => utf16(bytes, false),
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| CatalogError::Encoding),
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.as_ref() == name).then(|| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        })
    })
}

fn join_uri(base: &str, protocols: Option<&str>, path: &str) -> String {
    let path = path.trim_start_matches('/');
    if path.contains("://") {
        return path.to_string();
    }
    let base = base.trim_end_matches('/');
    if base.contains("://") {
        return format!("{base}/{path}");
    }
    let scheme = protocols
        .map(|p| {
            let list: Vec<String> = p
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            if list.iter().any(|s| s == "https") {
                "https".to_string()
            } else {
                list.first().cloned().unwrap_or_else(|| "https".into())
            }
        })
        .unwrap_or_else(|| "https".into());
    format!("{scheme}://{base}/{path}")
}

fn catalog_dir(uri: &str) -> &str {
    uri.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

#[derive(Default)]
struct Draft {
    package: Option<Package>,
    device: Option<Device>,
    brand: Option<String>,
    system: Option<SupportedSystem>,
    hash_algorithm: Option<String>,
}

struct Parser<'a> {
    catalog_uri: Option<&'a str>,
    stack: Vec<String>,
    catalog: Option<Catalog>,
    protocols: Option<String>,
    draft: Draft,
}

impl Parser<'_> {
    fn parent(&self, depth_up: usize) -> Option<&str> {
        self.stack
            .len()
            .checked_sub(depth_up + 1)
            .and_then(|i| self.stack.get(i))
            .map(String::as_str)
    }

    fn start(&mut self, name: &str, e: &BytesStart<'_>) {
        match name {
            "Manifest" if self.catalog.is_none() => {
                self.protocols = attr(e, "baseLocationAccessProtocols");
                self.catalog = Some(Catalog {
                    base_location: attr(e, "baseLocation").filter(|b| !b.is_empty()),
                    version: attr(e, "version"),
                    date_time: attr(e, "dateTime"),
                    packages: Vec::new(),
                });
            }
            "SoftwareComponent" => {
                let path = attr(e, "path").unwrap_or_default();
                self.draft.package = Some(Package {
                    package_id: attr(e, "packageID"),
                    name: None,
                    version: attr(e, "vendorVersion")
                        .or_else(|| attr(e, "dellVersion"))
                        .unwrap_or_default(),
                    uri: String::new(),
                    hash_md5: attr(e, "hashMD5").map(|h| h.to_ascii_lowercase()),
                    sha256: attr(e, "hashSHA256").map(|h| h.to_ascii_lowercase()),
                    size: attr(e, "size").and_then(|s| s.parse().ok()),
                    reboot_required: attr(e, "rebootRequired")
                        .is_some_and(|r| r.eq_ignore_ascii_case("true")),
                    component_type: None,
                    date_time: attr(e, "dateTime"),
                    devices: Vec::new(),
                    systems: Vec::new(),
                    path,
                });
            }
            "ComponentType" => {
                if let Some(p) = self.draft.package.as_mut() {
                    p.component_type = attr(e, "value");
                }
            }
            "Device" if self.draft.package.is_some() => {
                self.draft.device = attr(e, "componentID").map(|id| Device {
                    component_id: id,
                    name: None,
                });
            }
            "Brand" if self.draft.package.is_some() => self.draft.brand = None,
            "Model" if self.draft.package.is_some() => {
                self.draft.system = Some(SupportedSystem {
                    brand: self.draft.brand.clone(),
                    system_id: attr(e, "systemID"),
                    model: None,
                });
            }
            "Hash" => self.draft.hash_algorithm = attr(e, "algorithm"),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let here = self.parent(0);
        let up = self.parent(1);
        match (here, up) {
            (Some("Display"), Some("Name")) if self.parent(2) == Some("SoftwareComponent") => {
                if let Some(p) = self.draft.package.as_mut() {
                    p.name = Some(text.to_string());
                }
            }
            (Some("Display"), Some("Device")) => {
                if let Some(d) = self.draft.device.as_mut() {
                    d.name = Some(text.to_string());
                }
            }
            (Some("Display"), Some("Brand")) => {
                self.draft.brand = Some(text.to_string());
            }
            (Some("Display"), Some("Model")) => {
                if let Some(s) = self.draft.system.as_mut() {
                    s.model = Some(text.to_string());
                }
            }
            (Some("Hash"), _) => {
                let sha256 = self
                    .draft
                    .hash_algorithm
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case("SHA256"));
                if sha256 && let Some(p) = self.draft.package.as_mut() {
                    p.sha256 = Some(text.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &str) {
        match name {
            "SoftwareComponent" => {
                if let (Some(mut package), Some(catalog)) =
                    (self.draft.package.take(), self.catalog.as_mut())
                {
                    package.uri = match (&catalog.base_location, self.catalog_uri) {
                        (Some(base), _) => join_uri(base, self.protocols.as_deref(), &package.path),
                        (None, Some(uri)) => {
                            format!(
                                "{}/{}",
                                catalog_dir(uri),
                                package.path.trim_start_matches('/')
                            )
                        }
                        (None, None) => package.path.clone(),
                    };
                    catalog.packages.push(package);
                }
            }
            "Device" => {
                if let (Some(device), Some(p)) =
                    (self.draft.device.take(), self.draft.package.as_mut())
                {
                    p.devices.push(device);
                }
            }
            "Model" => {
                if let (Some(system), Some(p)) =
                    (self.draft.system.take(), self.draft.package.as_mut())
                {
                    p.systems.push(system);
                }
            }
            "Brand" => self.draft.brand = None,
            _ => {}
        }
    }
}

fn parse_xml(text: &str, catalog_uri: Option<&str>) -> Result<Catalog, CatalogError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut parser = Parser {
        catalog_uri,
        stack: Vec::new(),
        catalog: None,
        protocols: None,
        draft: Draft::default(),
    };
    // Text arrives in pieces (text, CDATA, entity references): gathered until the next tag.
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| CatalogError::Xml {
            position: reader.buffer_position(),
            reason: e.to_string(),
        })?;
        if matches!(
            event,
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof
        ) {
            parser.text(&std::mem::take(&mut text));
        }
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                parser.start(&name, &e);
                parser.stack.push(name);
            }
            Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                parser.start(&name, &e);
                parser.stack.push(name.clone());
                parser.end(&name);
                parser.stack.pop();
            }
            Event::End(e) => {
                let name = e.name().as_ref().to_string();
                parser.end(&name);
                parser.stack.pop();
            }
            Event::Text(t) => {
                let raw: &str = t.as_ref();
                text.push_str(&unescape(raw).unwrap_or(std::borrow::Cow::Borrowed(raw)));
            }
            Event::CData(c) => text.push_str(c.as_ref()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) = resolve_predefined_entity(r.as_ref()) {
                    text.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    parser.catalog.ok_or(CatalogError::NotACatalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/data/Catalog.xml");

    fn sample() -> Catalog {
        Catalog::parse(SAMPLE.as_bytes(), None).unwrap()
    }

    #[test]
    fn header_and_packages() {
        let c = sample();
        assert_eq!(c.base_location.as_deref(), Some("downloads.dell.com"));
        assert_eq!(c.version.as_deref(), Some("24.03.00"));
        assert_eq!(c.packages.len(), 7);
        let bios = &c.packages[1];
        assert_eq!(bios.version, "2.19.1");
        assert_eq!(
            bios.uri,
            "https://downloads.dell.com/FOLDER10883374M/1/BIOS_8X4GR_LN64_2.19.1.BIN"
        );
        assert_eq!(
            bios.hash_md5.as_deref(),
            Some("8f2b6c3a0f9e4d1c7b5a3e2d1f0c9b8a")
        );
        assert_eq!(bios.size, Some(33_554_432));
        assert!(bios.reboot_required);
        assert_eq!(bios.component_type.as_deref(), Some("BIOS"));
        assert_eq!(
            bios.devices,
            [Device {
                component_id: "159".into(),
                name: Some("BIOS".into())
            }]
        );
        assert_eq!(bios.systems.len(), 2);
        assert_eq!(bios.systems[0].brand.as_deref(), Some("PowerEdge"));
        let perc = c
            .packages
            .iter()
            .find(|p| {
                p.component_type.as_deref() == Some("FRMW")
                    && p.name.as_deref().is_some_and(|n| n.contains("PERC"))
            })
            .unwrap();
        assert_eq!(
            perc.sha256.as_deref(),
            Some("4f1c0d6e7a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5")
        );
        assert!(!perc.reboot_required);
        assert_eq!(
            perc.name.as_deref(),
            Some("PERC H730P Mini Controller Firmware & Utilities, 51.16.0-4076")
        );
    }

    #[test]
    fn newest_per_component_for_models() {
        let c = sample();
        // (model, expected component → version)
        let cases: Vec<(SystemModel, Vec<(&str, &str)>)> = vec![
            (
                SystemModel {
                    system_id: None,
                    model: Some("PowerEdge R640".into()),
                },
                vec![
                    ("BIOS_8X4GR", "2.19.1"),
                    ("iDRAC", "7.00.00.171"),
                    ("SAS-RAID", "51.16.0-4076"),
                ],
            ),
            (
                // By system id only (Redfish's decimal 1814 = 0x0716).
                SystemModel::dell(Some(1814), None),
                vec![
                    ("BIOS_8X4GR", "2.19.1"),
                    ("iDRAC", "7.00.00.171"),
                    ("SAS-RAID", "51.16.0-4076"),
                ],
            ),
            (
                SystemModel {
                    system_id: None,
                    model: Some("R740".into()),
                },
                vec![
                    ("BIOS_8X4GR", "2.19.1"),
                    ("iDRAC", "7.00.00.171"),
                    ("NIC", "22.31.6"),
                ],
            ),
            (
                SystemModel {
                    system_id: Some("0A2B".into()),
                    model: Some("PowerEdge R750".into()),
                },
                vec![("BIOS_R750", "1.13.2"), ("iDRAC", "7.00.00.171")],
            ),
            (
                SystemModel {
                    system_id: None,
                    model: Some("OptiPlex 7090".into()),
                },
                vec![],
            ),
        ];
        for (model, expected) in cases {
            let chosen = c.newest_for(&model);
            let got: Vec<(String, String)> = chosen
                .iter()
                .map(|p| (p.path.clone(), p.version.clone()))
                .collect();
            assert_eq!(chosen.len(), expected.len(), "{model:?}: {got:?}");
            for (needle, version) in expected {
                assert!(
                    got.iter()
                        .any(|(path, v)| path.contains(needle) && v == version),
                    "{model:?}: expected {needle} {version} in {got:?}"
                );
            }
        }
    }

    #[test]
    fn gzip_and_utf16_give_the_same_catalog() {
        let plain = sample();
        let mut utf16 = vec![0xff, 0xfe];
        for unit in SAMPLE
            .replace("encoding=\"utf-8\"", "encoding=\"utf-16\"")
            .encode_utf16()
        {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(Catalog::parse(&utf16, None).unwrap(), plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &utf16).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Catalog::parse(&gz, None).unwrap(), plain);
    }

    #[test]
    fn local_repository_paths_join_the_catalog_location() {
        let xml = r#"<Manifest baseLocation="" version="1.0"><SoftwareComponent path="fw/BIOS_1.bin" vendorVersion="1.0"/></Manifest>"#;
        let c = Catalog::parse(xml.as_bytes(), Some("https://repo.lab/dell/Catalog.xml")).unwrap();
        assert_eq!(c.packages[0].uri, "https://repo.lab/dell/fw/BIOS_1.bin");
        let xml = r#"<Manifest baseLocation="downloads.dell.com" baseLocationAccessProtocols="HTTP"><SoftwareComponent path="/a/b.bin" vendorVersion="1"/></Manifest>"#;
        assert_eq!(
            Catalog::parse(xml.as_bytes(), None).unwrap().packages[0].uri,
            "http://downloads.dell.com/a/b.bin"
        );
    }

    #[test]
    fn bad_input() {
        assert!(matches!(
            Catalog::parse(b"<Other/>", None),
            Err(CatalogError::NotACatalog)
        ));
        let err = Catalog::parse(b"<Manifest><SoftwareComponent></Manifest>", None).unwrap_err();
        assert!(matches!(err, CatalogError::Xml { .. }), "{err}");
        assert!(matches!(
            Catalog::parse(&[0x1f, 0x8b, 1, 2], None),
            Err(CatalogError::Gzip(_))
        ));
    }

    #[test]
    fn version_order() {
        let cases = [
            ("2.19.1", "2.18.1", Ordering::Greater),
            ("2.10.0", "2.9.3", Ordering::Greater),
            ("7.00.00.171", "7.00.00.171", Ordering::Equal),
            ("A05", "A04", Ordering::Greater),
            ("1.2", "1.2.1", Ordering::Less),
            ("22.31.6", "22.5.7", Ordering::Greater),
            ("51.16.0-4076", "51.16.0-3900", Ordering::Greater),
            ("1.0a", "1.0b", Ordering::Less),
        ];
        for (a, b, ord) in cases {
            assert_eq!(compare_versions(a, b), ord, "{a} vs {b}");
        }
    }
}
