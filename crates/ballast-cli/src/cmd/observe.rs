//! Live state for `get`: the desired set the store recorded, rebuilt into the form the engine
//! observes, then observed through the engine crate (one container list call per Docker engine,
//! one connection per server). Nothing here writes to the store: `get` is a read, as `diff` is.

use std::path::Path;
use std::time::Duration;

use ballast_model::{DesiredSet, Kind, ResourceKey, parse_source};
use ballast_plan::to_yaml;
use ballast_store::DesiredRow;
use chrono::{DateTime, Utc};

/// The recorded desired rows as a set the engine can observe. Each row holds the whole document
/// it was recorded from, so it parses back as it was written; a row that does not (recorded by
/// another version of ballast) is left out and named in the returned notes.
pub fn recorded_set<'a>(
    rows: impl IntoIterator<Item = &'a DesiredRow>,
) -> (DesiredSet, Vec<String>) {
    let mut set = DesiredSet::default();
    let mut notes = Vec::new();
    for row in rows {
        let Ok(kind) = row.kind.parse::<Kind>() else {
            notes.push(format!(
                "{}/{}: a kind this version does not know; not observed",
                row.kind, row.name
            ));
            continue;
        };
        let key = ResourceKey::new(kind, row.name.clone());
        let (parsed, _) = parse_source(Path::new(&row.source_file), &to_yaml(&row.spec));
        match parsed.into_iter().find(|r| r.key == key) {
            Some(resource) => {
                set.resources.insert(key, resource);
            }
            None => notes.push(format!(
                "{key}: its recorded spec cannot be read back; not observed"
            )),
        }
    }
    (set, notes)
}

/// How long ago `at` was, for people: `5m 12s ago`.
pub fn age(at: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - *at).num_seconds().max(0);
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(seconds.unsigned_abs()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, name: &str, document: serde_json::Value) -> DesiredRow {
        let now = Utc::now();
        DesiredRow {
            id: uuid::Uuid::nil(),
            kind: kind.into(),
            name: name.into(),
            spec: document,
            spec_hash: String::new(),
            generation: 1,
            source_file: "manifests/x.yaml".into(),
            source_line: 1,
            git_commit: None,
            git_dirty: false,
            tombstoned_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn recorded_documents_parse_back_into_the_set() {
        let app = serde_json::json!({
            "apiVersion": "ballast/v1", "kind": "App", "metadata": {"name": "web"},
            "spec": {"server": "nas01", "image": "busybox:1", "env": {"A": {"secretRef": {"name": "s"}}}},
        });
        let server = serde_json::json!({
            "apiVersion": "ballast/v1", "kind": "Server", "metadata": {"name": "nas01"},
            "spec": {"address": "10.0.0.5", "auth": {"key": {"secretRef": {"name": "k"}}}, "trustOnFirstUse": true},
        });
        let broken = serde_json::json!({"apiVersion": "ballast/v1", "kind": "App", "metadata": {"name": "old"}, "spec": {"imagee": "x"}});
        let rows = [
            row("App", "web", app),
            row("Server", "nas01", server),
            row("App", "old", broken),
        ];
        let (set, notes) = recorded_set(&rows);
        let web = set
            .get(&ResourceKey::new(Kind::App, "web"))
            .and_then(|r| r.spec.as_app())
            .expect("the app parses back");
        assert_eq!(web.server.value, "nas01");
        let nas = set
            .get(&ResourceKey::new(Kind::Server, "nas01"))
            .and_then(|r| r.spec.as_server())
            .expect("the server parses back");
        assert_eq!(nas.address.value, "10.0.0.5");
        assert!(nas.trust_on_first_use);
        assert_eq!(set.len(), 2);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("App/old"), "{notes:?}");
    }

    #[test]
    fn ages_read_as_durations() {
        let now = Utc::now();
        assert_eq!(age(&now, now), "0s ago");
        assert_eq!(
            age(&(now - chrono::Duration::seconds(312)), now),
            "5m 12s ago"
        );
        // A clock that went backwards is not a negative age.
        assert_eq!(age(&(now + chrono::Duration::seconds(5)), now), "0s ago");
    }
}
