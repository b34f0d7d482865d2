//! The shipped manifests and examples stay valid, the examples show every field, and the schema
//! describes them: the docs never rot.

mod common;

use std::path::Path;

use common::Env;

fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
        .display()
        .to_string()
}

/// Examples of kinds that are not registered yet: `ballast validate` cannot read them, so the
/// model's own tests validate them (`ballast-model`'s `firmware::tests`). Registering a kind
/// removes its example from here.
const NOT_YET_REGISTERED: &[&str] = &[
    "firmware-plan.yaml",
    "proxmox-cluster.yaml",
    "proxmox-vm.yaml",
    "proxmox-container.yaml",
];

#[test]
fn sample_manifests_and_every_example_validate() {
    let env = Env::new("docs");
    let run = env.ballast(&["validate", "-f", &repo("manifests")]);
    assert_eq!(run.code, 0, "manifests:\n{run}");
    // The examples as one set, without the ones `validate` cannot read yet.
    let examples = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(repo("examples")).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if NOT_YET_REGISTERED.contains(&name.as_str()) {
            continue;
        }
        // `app/` holds the files `app.yaml` delivers into its container.
        if path.is_dir() {
            copy_dir(&path, &examples.path().join(&name));
            continue;
        }
        std::fs::copy(&path, examples.path().join(&name)).unwrap();
        let run = env.ballast(&["validate", "-f", &path.display().to_string()]);
        assert_eq!(run.code, 0, "{}:\n{run}", path.display());
    }
    let run = env.ballast(&["validate", "-f", &examples.path().display().to_string()]);
    assert_eq!(run.code, 0, "examples:\n{run}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Every `spec` field of `kind` in the schema must appear in `example` as a top-level spec key.
fn example_shows_every_spec_field(kind: &str, example: &str, at_least: usize) {
    let env = Env::new("schema");
    let schema = env.ballast(&["schema"]);
    assert_eq!(schema.code, 0, "{schema}");
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    let spec_ref = schema["$defs"][kind]["properties"]["spec"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let fields: Vec<String> = schema["$defs"][&spec_ref]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(fields.len() >= at_least, "{fields:?}");
    let text = std::fs::read_to_string(repo(example)).unwrap();
    for field in fields {
        assert!(
            text.contains(&format!("\n  {field}:")),
            "{example} does not show `{field}`"
        );
    }
}

#[test]
fn the_app_example_shows_every_field_of_the_schema() {
    example_shows_every_spec_field("App", "examples/app.yaml", 17);
}

#[test]
fn the_committed_schema_file_is_current() {
    let env = Env::new("schemafile");
    let printed = env.ballast(&["schema"]);
    let committed = std::fs::read_to_string(repo("ballast.schema.json")).unwrap();
    assert_eq!(
        printed.stdout, committed,
        "ballast.schema.json is stale: run `ballast schema > ballast.schema.json`"
    );
}

#[test]
fn the_server_example_shows_every_field_of_the_schema() {
    example_shows_every_spec_field("Server", "examples/server.yaml", 10);
}
