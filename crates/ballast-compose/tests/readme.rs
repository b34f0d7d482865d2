//! The README's "Coming from docker compose" table names only App fields that exist: every
//! ballast field of its second column is looked up in the App's JSON Schema.

use std::path::Path;

use serde_json::Value;

/// The schema of `segment` under `schema`, following `$ref`s into `$defs` (also inside
/// `anyOf`/`oneOf`/`allOf`, as an optional field is written).
fn property<'a>(root: &'a Value, schema: &'a Value, segment: &str) -> Option<&'a Value> {
    let resolve = |s: &'a Value| -> Option<&'a Value> {
        let reference = s.get("$ref")?.as_str()?;
        root.pointer(reference.trim_start_matches('#'))
    };
    let mut candidates = vec![schema];
    if let Some(target) = resolve(schema) {
        candidates.push(target);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for item in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            candidates.push(item);
            if let Some(target) = resolve(item) {
                candidates.push(target);
            }
        }
    }
    candidates
        .into_iter()
        .find_map(|c| c.get("properties")?.get(segment))
}

#[test]
fn every_ballast_field_the_compose_table_names_exists() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("## Coming from docker compose")
        .expect("the README has the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let app = serde_json::to_value(schemars::schema_for!(ballast_model::AppSpec)).unwrap();
    let metadata = serde_json::to_value(schemars::schema_for!(ballast_model::Metadata)).unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').collect();
        let ballast = cells[2];
        for field in ballast.split('`').skip(1).step_by(2) {
            let (root, path) = match field.strip_prefix("metadata.") {
                Some(rest) => (&metadata, rest),
                None => (&app, field),
            };
            let mut at = root;
            let found = path
                .split('.')
                .all(|segment| match property(root, at, segment) {
                    Some(next) => {
                        at = next;
                        true
                    }
                    None => false,
                });
            checked += 1;
            if !found {
                missing.push(format!("{field} (row: {row})"));
            }
        }
    }
    assert!(checked >= 40, "only {checked} fields found in the table");
    assert!(missing.is_empty(), "not App fields: {missing:#?}");
}
