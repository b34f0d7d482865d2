//! The App fields with docker compose's meaning: a corpus of broken manifests under
//! `tests/corpus-compose/` (each fails at the expected file, line, column and field, with the
//! expected message), and the `files`/`envFile` sources read at load time into the spec hash.

use std::path::{Path, PathBuf};

use ballast_model::{LoadError, ResourceKey, load_dir};

/// (case, line, column, field path, part of the message); the error is in the case's file.
const CASES: &[(&str, u64, u64, &str, &str)] = &[
    (
        "01-cap-add.yaml",
        7,
        23,
        "spec.capAdd[1]",
        "`NET_ADMINS` is not a Linux capability",
    ),
    (
        "02-network-mode-with-ports.yaml",
        8,
        11,
        "spec.ports[0]",
        "ports cannot be published with networkMode `host`",
    ),
    (
        "03-network-mode-with-networks.yaml",
        8,
        14,
        "spec.networks[0]",
        "networkMode `host` and networks cannot be combined",
    ),
    (
        "04-relative-tmpfs.yaml",
        7,
        17,
        "spec.tmpfs[1]",
        "tmpfs path `tmp` must be absolute",
    ),
    (
        "05-host-net-sysctl.yaml",
        9,
        5,
        "spec.sysctls.net.core.somaxconn",
        "cannot be set on the host's network",
    ),
    (
        "06-bad-expose.yaml",
        7,
        12,
        "spec.expose[0]",
        "unknown protocol `icmp`",
    ),
    (
        "07-bad-dns.yaml",
        7,
        9,
        "spec.dns[0]",
        "is not an IP address",
    ),
    (
        "08-bad-extra-host.yaml",
        7,
        16,
        "spec.extraHosts[0]",
        "`ten` in `nas:ten` is not an IP address",
    ),
    (
        "09-ulimit-soft-above-hard.yaml",
        8,
        5,
        "spec.ulimits.nofile",
        "soft limit 8192 is above the hard limit 1024",
    ),
    (
        "10-seccomp-file.yaml",
        7,
        17,
        "spec.securityOpt[0]",
        "a seccomp profile is a file",
    ),
    (
        "11-container-mode-hostname.yaml",
        8,
        3,
        "spec.hostname",
        "`hostname` cannot be set with networkMode `container:vpn`",
    ),
    (
        "12-app-mode-without-depends.yaml",
        7,
        16,
        "spec.networkMode",
        "add `vpn` to dependsOn",
    ),
    (
        "13-app-mode-unknown.yaml",
        7,
        16,
        "spec.networkMode",
        "unknown app `nothere`",
    ),
    (
        "14-aliases-without-networks.yaml",
        7,
        3,
        "spec.aliases",
        "list a network in `networks`",
    ),
    (
        "15-bad-device.yaml",
        7,
        13,
        "spec.devices[0]",
        "device path `dri` in `dri` must be absolute",
    ),
    (
        "16-bad-gpus.yaml",
        7,
        9,
        "spec.gpus",
        "unknown key `vendor`",
    ),
    (
        "17-swap-without-memory.yaml",
        8,
        17,
        "spec.resources.memorySwap",
        "memorySwap needs a memory limit",
    ),
    (
        "18-missing-file-source.yaml",
        8,
        15,
        "spec.files[0].source",
        "does not exist; `source` is relative to this manifest's directory",
    ),
    (
        "19-relative-file-target.yaml",
        9,
        15,
        "spec.files[0].target",
        "`etc/app.ini` is not an absolute path",
    ),
    (
        "20-bad-file-mode.yaml",
        10,
        13,
        "spec.files[0].mode",
        "is not a file mode",
    ),
    (
        "21-missing-env-file.yaml",
        8,
        7,
        "spec.envFile[0]",
        "missing.env does not exist",
    ),
    (
        "22-env-file-undefined-var.yaml",
        7,
        13,
        "spec.envFile[0]",
        "undefined.env:2:3: `NOPE` is not defined above",
    ),
    (
        "23-file-on-read-only.yaml",
        10,
        15,
        "spec.files[0].target",
        "read-only root filesystem",
    ),
    (
        "24-negative-pids-limit.yaml",
        7,
        14,
        "spec.pidsLimit",
        "-5 is not a process limit",
    ),
    (
        "25-bad-shm-size.yaml",
        7,
        12,
        "spec.shmSize",
        "`lots` is not a size",
    ),
    (
        "26-bad-hostname.yaml",
        7,
        13,
        "spec.hostname",
        "`web_1` is not a valid name",
    ),
    (
        "27-sha256-by-hand.yaml",
        10,
        7,
        "spec.files[0].sha256",
        "written by ballast",
    ),
    (
        "28-file-under-tmpfs.yaml",
        10,
        15,
        "spec.files[0].target",
        "under the tmpfs `/run`",
    ),
    (
        "29-unknown-network-mode.yaml",
        7,
        16,
        "spec.networkMode",
        "unknown network mode `overlay`",
    ),
    (
        "30-ulimit-name.yaml",
        8,
        5,
        "spec.ulimits.files",
        "`files` is not a resource limit",
    ),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-compose")
}

#[test]
fn every_broken_compose_field_reports_its_error_where_it_is() {
    let mut failures = Vec::new();
    for (case, line, column, field, message) in CASES {
        let diagnostics = match load_dir(&corpus().join(case)) {
            Ok(_) => {
                failures.push(format!("{case}: validated, but should have failed"));
                continue;
            }
            Err(LoadError::Invalid(d)) => d,
            Err(other) => {
                failures.push(format!("{case}: unexpected error {other}"));
                continue;
            }
        };
        let found = diagnostics.iter().any(|d| {
            d.pos.file.ends_with(case)
                && d.pos.line == *line
                && d.pos.column == *column
                && d.field == *field
                && d.message.contains(message)
        });
        if !found {
            failures.push(format!(
                "{case}: expected {line}:{column} {field}: …{message}…, got:\n{diagnostics}"
            ));
        }
        if diagnostics.len() != 1 {
            failures.push(format!("{case}: expected one error, got:\n{diagnostics}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_compose_corpus_has_every_case_listed() {
    let on_disk = std::fs::read_dir(corpus())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(on_disk, CASES.len());
}

fn app_hash(dir: &Path) -> String {
    let set = load_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    set.get(&ResourceKey::new(ballast_model::Kind::App, "web"))
        .expect("the app")
        .spec_hash()
}

#[test]
fn editing_a_file_or_an_env_file_changes_the_spec_hash_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/app.ini"), "port = 80\n").unwrap();
    std::fs::write(dir.path().join("app.env"), "A=1\nPASSWORD=hunter2\n").unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        "apiVersion: ballast/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: busybox:1\n  envFile: [./app.env, {path: ./optional.env, required: false}]\n  files:\n    - {source: ./conf/app.ini, target: /etc/app/app.ini, mode: \"0640\", uid: 1000}\n",
    )
    .unwrap();
    let first = app_hash(dir.path());
    assert_eq!(app_hash(dir.path()), first, "loading twice gives one hash");

    let set = load_dir(dir.path()).unwrap();
    let resource = set
        .get(&ResourceKey::new(ballast_model::Kind::App, "web"))
        .unwrap();
    let app = resource.spec.as_app().unwrap();
    let file = &app.files[0];
    assert_eq!(file.content.as_ref().unwrap().0.as_slice(), b"port = 80\n");
    assert_eq!(file.sha256.as_deref().map(str::len), Some(64));
    let vars = app.env_file[0].vars.as_ref().unwrap();
    assert_eq!(vars.0[1], ("PASSWORD".to_string(), "hunter2".to_string()));
    assert!(
        app.env_file[1].vars.is_none(),
        "a missing optional file is skipped"
    );
    // The spec as stored and labelled holds the hashes, never the content.
    let json = resource.spec_json().to_string();
    assert!(json.contains("sha256"), "{json}");
    assert!(
        !json.contains("hunter2") && !json.contains("port = 80"),
        "{json}"
    );
    assert!(!format!("{app:?}").contains("hunter2"));

    std::fs::write(dir.path().join("conf/app.ini"), "port = 81\n").unwrap();
    let edited_file = app_hash(dir.path());
    assert_ne!(edited_file, first, "an edited file changes the hash");
    std::fs::write(dir.path().join("app.env"), "A=2\nPASSWORD=hunter2\n").unwrap();
    let edited_env = app_hash(dir.path());
    assert_ne!(
        edited_env, edited_file,
        "an edited env file changes the hash"
    );
    std::fs::write(dir.path().join("optional.env"), "B=1\n").unwrap();
    assert_ne!(
        app_hash(dir.path()),
        edited_env,
        "an optional env file appearing changes the hash"
    );
}

#[test]
fn the_example_app_shows_every_field_and_validates() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/app.yaml");
    load_dir(&examples).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&examples).unwrap();
    let schema = serde_json::to_value(schemars::schema_for!(ballast_model::AppSpec)).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let missing: Vec<&String> = properties
        .keys()
        .filter(|k| !text.contains(&format!("\n  {k}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "examples/app.yaml does not show {missing:?}"
    );
}
