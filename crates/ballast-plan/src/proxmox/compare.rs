//! Comparing a desired value with what Proxmox has, the way Proxmox means it: tags as a sorted
//! lower-case set, booleans from `1`/`0`/`on`, absent keys as Proxmox's defaults, sizes as
//! bytes, property strings by the options ballast manages (the others are kept as they are).

use std::collections::BTreeMap;

use ballast_proxmox::{PropertyString, lenient};
use serde::Serialize;
use serde_json::Value;

use super::steps::SecretParam;

/// When a change takes effect on a running guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Apply {
    /// At once (Proxmox hot-plugs it, or it is only a setting).
    Live,
    /// At the next boot of the guest.
    NextBoot,
}

/// One managed value that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Where it is in the spec: `cpu.cores`, `disks[1]`, `network[0].bridge`.
    pub path: String,
    /// The config key it is written to (`cores`, `scsi1`, `net0`).
    pub key: String,
    /// What Proxmox has, as the manifest would write it (`None`: absent).
    pub from: Option<Value>,
    /// What the manifest wants (`None`: removed).
    pub to: Option<Value>,
    pub apply: Apply,
}

fn shown(value: &Option<Value>) -> String {
    match value {
        None => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => serde_json::to_string(other).unwrap_or_default(),
    }
}

impl FieldChange {
    /// `cpu.cores: 2 → 4 (at the next boot)`.
    pub fn reason(&self) -> String {
        let when = match self.apply {
            Apply::Live => "",
            Apply::NextBoot => " (at the next boot)",
        };
        match (&self.from, &self.to) {
            (None, Some(_)) => format!("{} added{when}", self.path),
            (Some(_), None) => format!("{} removed{when}", self.path),
            _ => format!(
                "{}: {} → {}{when}",
                self.path,
                shown(&self.from),
                shown(&self.to)
            ),
        }
    }
}

/// What comparing one guest's spec with its config found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Compared {
    pub changes: Vec<FieldChange>,
    /// Config keys to set, and to remove.
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
    pub secrets: Vec<SecretParam>,
    /// Disks to grow: (key, bytes now, bytes wanted).
    pub resizes: Vec<(String, Option<u64>, u64)>,
    pub refusals: Vec<String>,
    pub notes: Vec<String>,
}

impl Compared {
    /// Records a change of one config key.
    pub fn change(
        &mut self,
        path: impl Into<String>,
        key: &str,
        from: Option<Value>,
        to: Option<Value>,
        write: Option<String>,
        apply: Apply,
    ) {
        match write {
            Some(value) => {
                self.set.insert(key.to_string(), value);
            }
            None => self.delete.push(key.to_string()),
        }
        self.changes.push(FieldChange {
            path: path.into(),
            key: key.to_string(),
            from,
            to,
            apply,
        });
    }

    /// A change shown in the diff whose config write is already recorded (several fields of
    /// one property string).
    pub fn shown_change(
        &mut self,
        path: impl Into<String>,
        key: &str,
        from: Option<Value>,
        to: Option<Value>,
        apply: Apply,
    ) {
        self.changes.push(FieldChange {
            path: path.into(),
            key: key.to_string(),
            from,
            to,
            apply,
        });
    }

    pub fn next_boot_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.apply == Apply::NextBoot)
            .map(|c| c.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty() && self.secrets.is_empty()
    }
}

/// Tags as compared: lower case, sorted, each once.
pub(crate) fn tag_set<'a>(tags: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut set: Vec<String> = tags
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    set.sort();
    set.dedup();
    set
}

/// A boolean as Proxmox writes one (`1`, `0`, `on`, `true`), absent as `default`.
pub(crate) fn flag(value: Option<&str>, default: bool) -> bool {
    value
        .and_then(|v| lenient::to_bool(&Value::String(v.to_string())).ok())
        .unwrap_or(default)
}

/// A number as Proxmox writes one (`4`, `"4"`), absent or unreadable as `None`.
pub(crate) fn number(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| lenient::to_u64(&Value::String(v.trim().to_string())).ok())
}

pub(crate) fn bool_text(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

/// Removes an option from a property string.
pub(crate) fn remove(props: &mut PropertyString, key: &str) {
    props.pairs.retain(|(k, _)| k != key);
}

/// Percent-encodes text as Proxmox wants SSH keys (`sshkeys` is URL-encoded).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes percent-encoding (`+` stays a `+`: Proxmox keys are not form-encoded).
pub(crate) fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SSH keys as compared: one per line, trimmed.
pub(crate) fn ssh_key_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a secret parameter is set from, with the secret's version (`secret:NAME#3`): what the
/// controller records in `RecordedGuest::secret_versions` after setting it; a new version is a
/// change.
pub fn secret_token(
    source: &ballast_model::server::CredentialSource,
    versions: &BTreeMap<String, String>,
) -> String {
    let version = source
        .secret_ref
        .as_ref()
        .and_then(|r| versions.get(&r.name));
    match version {
        Some(v) => format!("{}#{v}", source.describe()),
        None => source.describe(),
    }
}

/// Sets (or, with `None`, removes) the value at a spec path such as `disks[1].size` in a JSON
/// document; used to show the live side of a diff.
pub(crate) fn set_path(doc: &mut Value, path: &str, value: Option<Value>) {
    let mut segments: Vec<Segment> = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            segments.push(Segment::Key(name.to_string()));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                segments.push(Segment::Index(i));
            }
        }
    }
    set_in(doc, &segments, value);
}

enum Segment {
    Key(String),
    Index(usize),
}

fn set_in(node: &mut Value, path: &[Segment], value: Option<Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match first {
        Segment::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Default::default());
            }
            let Some(map) = node.as_object_mut() else {
                return;
            };
            if rest.is_empty() {
                match value {
                    Some(v) => {
                        map.insert(key.clone(), v);
                    }
                    None => {
                        map.remove(key);
                    }
                }
            } else {
                let child = map.entry(key.clone()).or_insert(Value::Null);
                set_in(child, rest, value);
            }
        }
        Segment::Index(i) => {
            let Some(items) = node.as_array_mut() else {
                return;
            };
            if rest.is_empty() {
                match value {
                    Some(v) if *i < items.len() => items[*i] = v,
                    Some(v) => items.push(v),
                    // Removed entries are marked and dropped afterwards, so the indexes of the
                    // other changes stay right.
                    None if *i < items.len() => items[*i] = Value::String(REMOVED.into()),
                    None => {}
                }
            } else if let Some(child) = items.get_mut(*i) {
                set_in(child, rest, value);
            }
        }
    }
}

const REMOVED: &str = "\u{0}removed";

/// Drops the entries [`set_path`] marked as removed.
pub(crate) fn drop_removed(node: &mut Value) {
    match node {
        Value::Array(items) => {
            items.retain(|v| v.as_str() != Some(REMOVED));
            items.iter_mut().for_each(drop_removed);
        }
        Value::Object(map) => map.values_mut().for_each(drop_removed),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_booleans_numbers_and_keys() {
        assert_eq!(tag_set(["Web", "prod", "web"].into_iter()), ["prod", "web"]);
        assert!(flag(Some("1"), false) && flag(Some("on"), false) && !flag(Some("0"), true));
        assert!(flag(None, true) && !flag(None, false));
        assert_eq!(number(Some("4")), Some(4));
        assert_eq!(number(Some("x")), None);
        let keys = "ssh-ed25519 AAAA a@b\nssh-rsa BBBB c@d\n";
        let encoded = url_encode(keys);
        assert!(!encoded.contains(' ') && encoded.contains("%20") && encoded.contains("%0A"));
        assert_eq!(url_decode(&encoded), keys);
        assert_eq!(ssh_key_lines(&url_decode(&encoded)).len(), 2);
        assert_eq!(url_decode("a+b%2"), "a+b%2");
    }

    #[test]
    fn paths_are_set_and_removed() {
        let mut doc =
            json!({"spec": {"cpu": {"cores": 4}, "disks": [{"size": "8GiB"}, {"size": "4GiB"}]}});
        set_path(&mut doc, "spec.cpu.cores", Some(json!(2)));
        set_path(&mut doc, "spec.disks[0].size", Some(json!("4GiB")));
        set_path(&mut doc, "spec.disks[1]", None);
        set_path(&mut doc, "spec.memory.dedicated", Some(json!("1GiB")));
        drop_removed(&mut doc);
        assert_eq!(
            doc,
            json!({"spec": {"cpu": {"cores": 2}, "disks": [{"size": "4GiB"}],
                             "memory": {"dedicated": "1GiB"}}})
        );
    }
}
