//! The FirmwarePlan checks from a corpus of broken manifests (`tests/corpus-firmware/`): each
//! case must report the expected message at the expected line, column and field. `NN-*.yaml` are
//! plans on their own (through [`parse_firmware_plan`]), `set-*/` a plan against the Servers
//! beside it (the set-wide checks), `bmc-*.yaml` Servers with a `bmc` block (through the loader,
//! as `ballast validate` reads them). The examples validate, and targets resolve by priority.

use std::path::{Path, PathBuf};

use super::check::parse_firmware_plan;
use super::targets::{ResolvedTarget, ServerRef, resolve_targets};
use crate::diagnostic::Diagnostic;
use crate::{LoadError, load_dir};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-firmware")
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// (case, line, column, field path, part of the message)
type Case = (&'static str, u64, u64, &'static str, &'static str);

const PLAN_CASES: &[Case] = &[
    (
        "01-unknown-field.yaml",
        8,
        3,
        "spec.artifact",
        "unknown field `artifact`, expected one of targets, artifacts, policy",
    ),
    (
        "02-missing-targets.yaml",
        6,
        3,
        "spec",
        "missing field `targets`",
    ),
    (
        "03-target-server-and-selector.yaml",
        7,
        7,
        "spec.targets[0]",
        "give either `server` or `selector` in one target, not both",
    ),
    (
        "04-target-neither.yaml",
        7,
        7,
        "spec.targets[0]",
        "expected `server: NAME` or `selector: {matchLabels: {KEY: VALUE}}`",
    ),
    (
        "05-target-bad-name.yaml",
        7,
        15,
        "spec.targets[0].server",
        "invalid name `R640_01`; names are DNS-1123 labels",
    ),
    (
        "06-target-listed-twice.yaml",
        9,
        15,
        "spec.targets[2].server",
        "server `r1` is listed twice (also spec.targets[0])",
    ),
    (
        "07-empty-selector.yaml",
        7,
        18,
        "spec.targets[0].selector.matchLabels",
        "an empty selector would match every Server",
    ),
    (
        "08-negative-priority.yaml",
        8,
        17,
        "spec.targets[0].priority",
        "priority -1 is negative; expected 0 or more",
    ),
    (
        "09-no-artifacts.yaml",
        5,
        1,
        "spec.artifacts",
        "expected at least one artifact",
    ),
    (
        "10-artifacts-with-catalog.yaml",
        8,
        3,
        "spec.artifacts",
        "with LATEST_FROM_CATALOG the catalog names the packages",
    ),
    (
        "11-catalog-without-uri.yaml",
        8,
        3,
        "spec.policy.catalogUri",
        "LATEST_FROM_CATALOG needs `catalogUri`",
    ),
    (
        "12-catalog-uri-with-specific.yaml",
        13,
        17,
        "spec.policy.catalogUri",
        "a catalog is read only with `updateMode: LATEST_FROM_CATALOG`",
    ),
    (
        "13-bad-catalog-uri.yaml",
        10,
        17,
        "spec.policy.catalogUri",
        "`Catalog.xml` is not a catalog location; expected an https:// or http:// URL, or an absolute path",
    ),
    (
        "14-uri-and-file.yaml",
        9,
        7,
        "spec.artifacts[0]",
        "give either `imageUri` (the BMC downloads it) or `file` (ballast pushes it), not both",
    ),
    (
        "15-neither-uri-nor-file.yaml",
        9,
        7,
        "spec.artifacts[0]",
        "expected `imageUri: URL` (the BMC downloads it) or `file: /path`",
    ),
    (
        "16-uri-without-scheme.yaml",
        11,
        17,
        "spec.artifacts[0].imageUri",
        "`repo.example/bios.bin` is not a URL",
    ),
    (
        "17-relative-file.yaml",
        11,
        13,
        "spec.artifacts[0].file",
        "`firmware/bios.bin` is not an absolute path",
    ),
    (
        "18-bad-sha256.yaml",
        12,
        15,
        "spec.artifacts[0].sha256",
        "`abc123` is not a SHA-256; expected 64 hex digits",
    ),
    (
        "19-protocol-with-file.yaml",
        12,
        25,
        "spec.artifacts[0].transferProtocol",
        "a `file` is pushed by ballast",
    ),
    (
        "20-protocol-mismatch.yaml",
        12,
        25,
        "spec.artifacts[0].transferProtocol",
        "transferProtocol NFS does not match imageUri's scheme (HTTPS)",
    ),
    (
        "21-rollback-same-version.yaml",
        12,
        27,
        "spec.artifacts[0].rollback.version",
        "the rollback is to 1.1.0, the version being installed",
    ),
    (
        "22-duplicate-component.yaml",
        12,
        18,
        "spec.artifacts[1].component",
        "component `bios` has two artifacts (also spec.artifacts[0])",
    ),
    (
        "23-max-concurrent-zero.yaml",
        13,
        5,
        "spec.policy.maxConcurrent",
        "maxConcurrent 0 would never update a host; expected 1 or more",
    ),
    (
        "24-bad-window-zone.yaml",
        13,
        5,
        "spec.policy.maintenanceWindow",
        "`Mars/Olympus` is not a time zone; expected an IANA name",
    ),
    (
        "25-bad-window-in-list.yaml",
        15,
        9,
        "spec.policy.maintenanceWindow[1]",
        "`25:00` is not a start time; expected HH:MM from 00:00 to 23:59",
    ),
    (
        "26-bad-reset-type.yaml",
        13,
        16,
        "spec.policy.resetType",
        "unknown variant `Reboot`, expected one of GracefulRestart, ForceRestart, PowerCycle",
    ),
    (
        "27-bad-update-mode.yaml",
        13,
        17,
        "spec.policy.updateMode",
        "unknown variant `NEWEST`, expected one of SPECIFIC_PACKAGE, LATEST_FROM_CATALOG",
    ),
    (
        "28-rollback-without-image.yaml",
        13,
        5,
        "spec.policy.rollbackOnFailure",
        "rollbackOnFailure needs an artifact with `rollback: {version, imageUri}`",
    ),
    (
        "29-bad-timeout.yaml",
        14,
        13,
        "spec.policy.timeouts.task",
        "`soon` is not a duration",
    ),
    (
        "29-bad-timeout.yaml",
        15,
        15,
        "spec.policy.timeouts.reboot",
        "`0s` is no time at all",
    ),
    (
        "30-empty-maintenance-command.yaml",
        14,
        38,
        "spec.policy.maintenance.before[1]",
        "expected a shell command line",
    ),
    (
        "31-bad-preflight.yaml",
        13,
        37,
        "spec.policy.preflightChecks[1]",
        "unknown variant `smoke`, expected one of connectivity, compatibility, health",
    ),
    (
        "32-wrong-kind.yaml",
        2,
        7,
        "kind",
        "kind `App` is not a FirmwarePlan",
    ),
    (
        "33-window-not-text.yaml",
        13,
        24,
        "spec.policy.maintenanceWindow",
        "expected a window such as `sat 01:00-05:00 Europe/Berlin`, or a list of them",
    ),
    (
        "34-empty-version.yaml",
        10,
        16,
        "spec.artifacts[0].version",
        "expected the version the component reports once updated",
    ),
    (
        "35-bad-protocol-name.yaml",
        12,
        25,
        "spec.artifacts[0].transferProtocol",
        "unknown variant `HTTPX`, expected one of HTTP, HTTPS, NFS, CIFS, FTP, SFTP, SCP, TFTP",
    ),
    (
        "36-empty-window-list.yaml",
        13,
        5,
        "spec.policy.maintenanceWindow",
        "an empty list of windows never opens",
    ),
    (
        "37-uppercase-plan-name.yaml",
        4,
        9,
        "metadata.name",
        "invalid name `BIOS-Plan`",
    ),
];

/// Set-wide cases: the plan in `plan.yaml` against the Servers in `servers.yaml`.
const SET_CASES: &[Case] = &[
    (
        "set-01-unknown-server",
        8,
        15,
        "spec.targets[1].server",
        "unknown server `r9`: no Server by that name in the manifests",
    ),
    (
        "set-02-server-without-bmc",
        8,
        15,
        "spec.targets[1].server",
        "Server `nas` has no `bmc`; a firmware plan reaches hosts through their BMC",
    ),
    (
        "set-03-selector-matches-none",
        8,
        7,
        "spec.targets[1].selector",
        "the selector rack=r7 matches no Server",
    ),
    (
        "set-04-selector-without-bmc",
        7,
        7,
        "spec.targets[0].selector",
        "Server `nas` has no `bmc`",
    ),
    (
        "set-05-min-hosts-online",
        14,
        5,
        "spec.policy.minHostsOnline",
        "minHostsOnline 2 leaves no host to update: the plan has 2 host(s); expected at most 1",
    ),
    (
        "set-06-maintenance-without-ssh",
        14,
        5,
        "spec.policy.maintenance",
        "maintenance commands run over SSH, but Server `r2` has no `address`",
    ),
];

/// Servers with a `bmc` block, read by the loader as `ballast validate` reads them.
const BMC_CASES: &[Case] = &[
    (
        "bmc-01-address-is-url.yaml",
        7,
        14,
        "spec.bmc.address",
        "`https://10.0.0.20` is a URL; expected the BMC's host name or IP address alone",
    ),
    (
        "bmc-02-two-trusts.yaml",
        10,
        5,
        "spec.bmc.tls",
        "give one of `caFile`, `fingerprint` or `insecureSkipVerify`, not several",
    ),
    (
        "bmc-03-bad-fingerprint.yaml",
        10,
        24,
        "spec.bmc.tls.fingerprint",
        "certificate fingerprint `AB:CD` has 2 bytes; expected the 32 bytes of a SHA-256 digest",
    ),
    (
        "bmc-04-relative-ca-file.yaml",
        11,
        15,
        "spec.bmc.tls.caFile",
        "`certs/ca.pem` is not an absolute path",
    ),
    (
        "bmc-05-unknown-vendor.yaml",
        10,
        13,
        "spec.bmc.vendor",
        "unknown vendor `acme`; expected dell, hpe, supermicro, lenovo or generic",
    ),
    (
        "bmc-06-old-credentials-block.yaml",
        8,
        5,
        "spec.bmc.credentials",
        "unknown field `credentials`, expected one of address, port, username, password, tls, vendor",
    ),
    (
        "bmc-07-neither-address-nor-bmc.yaml",
        5,
        1,
        "spec",
        "missing field `address`",
    ),
    (
        "bmc-08-auth-without-address.yaml",
        5,
        1,
        "spec",
        "missing field `address`; expected the server's host name or IP address (a Server without one needs a `bmc` and no `auth`)",
    ),
    (
        "bmc-09-port-zero.yaml",
        8,
        11,
        "spec.bmc.port",
        "port 0 is out of range; expected 1 to 65535 (default 443)",
    ),
    (
        "bmc-10-password-inline.yaml",
        9,
        15,
        "spec.bmc.password",
        "expected a mapping",
    ),
    (
        "bmc-11-empty-tls.yaml",
        9,
        5,
        "spec.bmc.password",
        "the secret needs a name",
    ),
    (
        "bmc-11-empty-tls.yaml",
        10,
        5,
        "spec.bmc.tls",
        "expected one of `caFile: PATH`, `fingerprint: SHA256` or `insecureSkipVerify: true`",
    ),
];

fn plan_diagnostics(path: &Path) -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_firmware_plan(path, 1, &text).1
}

fn set_diagnostics(dir: &Path) -> Vec<Diagnostic> {
    let set = load_dir(&dir.join("servers.yaml"))
        .unwrap_or_else(|e| panic!("{}: the servers must be valid: {e}", dir.display()));
    let path = dir.join("plan.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (plan, own) = parse_firmware_plan(&path, 1, &text);
    assert!(
        own.is_empty(),
        "{}: the plan alone must be valid: {own:?}",
        dir.display()
    );
    plan.expect("a plan").check_targets(&ServerRef::all(&set))
}

fn loader_diagnostics(path: &Path) -> Vec<Diagnostic> {
    match load_dir(path) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(d)) => d.0,
        Err(other) => panic!("{}: {other}", path.display()),
    }
}

fn check_cases(cases: &[Case], diagnostics: impl Fn(&Path) -> Vec<Diagnostic>) {
    let mut failures = Vec::new();
    for (case, line, column, field, message) in cases {
        let path = corpus().join(case);
        let found = diagnostics(&path);
        let hit = found.iter().any(|d| {
            d.pos.line == *line
                && d.pos.column == *column
                && d.field == *field
                && d.message.contains(message)
        });
        if !hit {
            let got: Vec<String> = found
                .iter()
                .map(|d| {
                    format!(
                        "{}:{} [{}] {}",
                        d.pos.line, d.pos.column, d.field, d.message
                    )
                })
                .collect();
            failures.push(format!(
                "{case}: expected {line}:{column} [{field}] …{message}…; got {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_broken_plan_reports_its_error_where_it_is() {
    check_cases(PLAN_CASES, plan_diagnostics);
}

#[test]
fn every_broken_set_reports_its_error_where_it_is() {
    check_cases(SET_CASES, set_diagnostics);
}

#[test]
fn every_broken_bmc_reports_its_error_where_it_is() {
    check_cases(BMC_CASES, loader_diagnostics);
}

/// Every file of the corpus is a case, so none is left untested.
#[test]
fn the_corpus_has_no_untested_file() {
    let named: Vec<&str> = PLAN_CASES
        .iter()
        .chain(SET_CASES)
        .chain(BMC_CASES)
        .map(|c| c.0)
        .collect();
    for entry in std::fs::read_dir(corpus()).expect("the corpus") {
        let name = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        assert!(
            named.contains(&name.as_str()),
            "{name} has no expected error"
        );
    }
}

/// A whole plan reports each problem once, and nothing else.
#[test]
fn a_document_with_several_problems_reports_each_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plan.yaml");
    let text = "apiVersion: ballast/v1\nkind: FirmwarePlan\nmetadata:\n  name: p1\nspec:\n  targets:\n    - server: r1\n  artifacts:\n    - component: BIOS\n      version: 1.1.0\n      file: bios.bin\n      sha256: xyz\n  policy:\n    maxConcurrent: 0\n    maintenanceWindow: sat 01:00 UTC\n    resetType: Reboot\n";
    let (plan, found) = parse_firmware_plan(&path, 10, text);
    assert!(plan.is_some());
    let got: Vec<(u64, u64, &str)> = found
        .iter()
        .map(|d| (d.pos.line, d.pos.column, d.field.as_str()))
        .collect();
    // Lines are the file's: the document starts on line 10.
    assert_eq!(
        got,
        [
            (25, 16, "spec.policy.resetType"),
            (20, 13, "spec.artifacts[0].file"),
            (21, 15, "spec.artifacts[0].sha256"),
            (23, 5, "spec.policy.maxConcurrent"),
            (24, 5, "spec.policy.maintenanceWindow"),
        ],
        "{found:#?}"
    );
}

#[test]
fn the_examples_validate_and_show_every_field() {
    let servers = load_dir(&repo("examples/server.yaml")).expect("examples/server.yaml");
    let path = repo("examples/firmware-plan.yaml");
    let text = std::fs::read_to_string(&path).expect("examples/firmware-plan.yaml");
    let (plan, own) = parse_firmware_plan(&path, 1, &text);
    assert!(own.is_empty(), "{own:#?}");
    let plan = plan.expect("the example plan");
    let set_wide = plan.check_targets(&ServerRef::all(&servers));
    assert!(set_wide.is_empty(), "{set_wide:#?}");
    // Every field of the schema is written in the example.
    let schema =
        serde_json::to_value(schemars::schema_for!(super::FirmwarePlanSpec)).expect("schema");
    let defs = &schema["$defs"];
    let mut fields: Vec<String> = Vec::new();
    for def in [
        "Policy",
        "Artifact",
        "Target",
        "Rollback",
        "Timeouts",
        "Maintenance",
        "Selector",
    ] {
        let props = defs[def]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{def}"));
        fields.extend(props.keys().cloned());
    }
    fields.extend(
        schema["properties"]
            .as_object()
            .expect("spec")
            .keys()
            .cloned(),
    );
    for field in fields {
        assert!(
            text.contains(&format!("{field}:")),
            "the example does not show `{field}`"
        );
    }
    // The BMC-only server of the server example has no SSH.
    let r640 = servers
        .servers()
        .find(|(r, _)| r.key.name == "r640-07")
        .expect("r640-07")
        .1;
    assert!(!r640.has_ssh() && r640.bmc.is_some());
}

#[test]
fn targets_resolve_once_each_by_priority_then_name() {
    let yaml = "apiVersion: ballast/v1\nkind: Server\nmetadata: {name: a, labels: {rack: r1}}\nspec: {bmc: {address: 10.0.0.1, username: root, password: {env: P}}}\n---\napiVersion: ballast/v1\nkind: Server\nmetadata: {name: b, labels: {rack: r1}}\nspec: {bmc: {address: 10.0.0.2, username: root, password: {env: P}}}\n---\napiVersion: ballast/v1\nkind: Server\nmetadata: {name: c, labels: {rack: r2}}\nspec: {bmc: {address: 10.0.0.3, username: root, password: {env: P}}}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("s.yaml"), yaml).expect("write");
    let set = load_dir(dir.path()).expect("servers");
    let servers = ServerRef::all(&set);
    let plan = |targets: &str| -> Vec<ResolvedTarget> {
        let text = format!(
            "apiVersion: ballast/v1\nkind: FirmwarePlan\nmetadata: {{name: p}}\nspec:\n  targets:\n{targets}  artifacts: [{{component: BIOS, version: '1', imageUri: 'https://r/b.bin'}}]\n"
        );
        let (plan, d) = parse_firmware_plan(Path::new("p.yaml"), 1, &text);
        assert!(d.is_empty(), "{d:?}");
        resolve_targets(&plan.expect("plan").spec, &servers)
    };
    let t = |server: &str, priority: i64| ResolvedTarget {
        server: server.into(),
        priority,
    };
    // Positions are the default priorities; a host named twice takes the lowest.
    assert_eq!(
        plan("    - selector: {matchLabels: {rack: r1}}\n    - server: c\n    - server: a\n"),
        [t("a", 0), t("b", 0), t("c", 1)]
    );
    assert_eq!(
        plan(
            "    - server: c\n      priority: 0\n    - selector: {matchLabels: {rack: r1}}\n      priority: 5\n    - server: b\n      priority: 1\n"
        ),
        [t("c", 0), t("b", 1), t("a", 5)]
    );
}

/// The spec reads back from its own JSON (what the store keeps and hashes) unchanged.
#[test]
fn the_spec_round_trips_through_json() {
    let path = repo("examples/firmware-plan.yaml");
    let text = std::fs::read_to_string(&path).expect("example");
    let plan = parse_firmware_plan(&path, 1, &text).0.expect("plan");
    let json = serde_json::to_value(&plan.spec).expect("json");
    let back: super::FirmwarePlanSpec =
        serde_json::from_value(json.clone()).expect("the JSON reads back");
    assert_eq!(serde_json::to_value(&back).expect("json"), json);
    assert_eq!(
        json["policy"]["maintenanceWindow"][1],
        "sun 01:00-03:00 Europe/Berlin"
    );
    assert_eq!(plan.spec.policy.task_timeout().as_secs(), 90 * 60);
    assert_eq!(plan.spec.policy.reboot_timeout().as_secs(), 20 * 60);
}
