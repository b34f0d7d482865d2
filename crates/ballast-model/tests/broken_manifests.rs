//! The corpus of broken manifests under `tests/corpus/`: each case must fail validation with the
//! expected message at the expected file, line, column and field, and nothing else may pass.

use std::path::Path;

use ballast_model::{LoadError, load_dir};

/// (case, file the error is in, line, column, field path, part of the message)
const CASES: &[(&str, &str, u64, u64, &str, &str)] = &[
    (
        "01-unknown-field.yaml",
        "01-unknown-field.yaml",
        7,
        3,
        "spec.imagee",
        "unknown field `imagee`, expected one of server, image",
    ),
    (
        "02-missing-image.yaml",
        "02-missing-image.yaml",
        6,
        3,
        "spec",
        "missing field `image`",
    ),
    (
        "03-ports-not-a-list.yaml",
        "03-ports-not-a-list.yaml",
        8,
        5,
        "spec.ports",
        "expected a list",
    ),
    (
        "04-port-out-of-range.yaml",
        "04-port-out-of-range.yaml",
        7,
        11,
        "spec.ports[0]",
        "host port 70000 is out of range; expected 1 to 65535",
    ),
    (
        "05-port-not-a-number.yaml",
        "05-port-not-a-number.yaml",
        9,
        7,
        "spec.ports[1]",
        "host port `http` is not a number",
    ),
    (
        "06-unknown-protocol.yaml",
        "06-unknown-protocol.yaml",
        7,
        11,
        "spec.ports[0]",
        "unknown protocol `sctp`",
    ),
    (
        "07-host-ip-not-ip.yaml",
        "07-host-ip-not-ip.yaml",
        7,
        11,
        "spec.ports[0]",
        "`localhost` in `localhost:8080:80` is not an IP address",
    ),
    (
        "08-bad-restart.yaml",
        "08-bad-restart.yaml",
        7,
        12,
        "spec.restart",
        "unknown restart policy `sometimes`; expected no, always, unless-stopped",
    ),
    (
        "09-bad-pull-policy.yaml",
        "09-bad-pull-policy.yaml",
        7,
        15,
        "spec.pullPolicy",
        "unknown variant `Sometimes`, expected one of IfNotPresent, Always, Never",
    ),
    (
        "10-bad-state.yaml",
        "10-bad-state.yaml",
        7,
        10,
        "spec.state",
        "unknown variant `paused`, expected one of running, stopped",
    ),
    (
        "11-bad-memory.yaml",
        "11-bad-memory.yaml",
        8,
        13,
        "spec.resources.memory",
        "`lots` is not a memory size",
    ),
    (
        "12-negative-cpus.yaml",
        "12-negative-cpus.yaml",
        8,
        11,
        "spec.resources.cpus",
        "cpus must be a positive number",
    ),
    (
        "13-bad-duration.yaml",
        "13-bad-duration.yaml",
        9,
        15,
        "spec.healthcheck.interval",
        "`soon` is not a duration",
    ),
    (
        "14-relative-bind.yaml",
        "14-relative-bind.yaml",
        7,
        13,
        "spec.volumes[0]",
        "must be an absolute path (or use a named volume)",
    ),
    (
        "15-bad-volume-mode.yaml",
        "15-bad-volume-mode.yaml",
        7,
        13,
        "spec.volumes[0]",
        "unknown mode `rx`",
    ),
    (
        "16-uppercase-name.yaml",
        "16-uppercase-name.yaml",
        4,
        9,
        "metadata.name",
        "invalid name `Web`; names are DNS-1123 labels",
    ),
    (
        "17-name-too-long.yaml",
        "17-name-too-long.yaml",
        4,
        9,
        "metadata.name",
        "is 64 characters long",
    ),
    (
        "18-missing-api-version.yaml",
        "18-missing-api-version.yaml",
        1,
        1,
        "apiVersion",
        "missing field `apiVersion`; expected `ballast/v1`",
    ),
    (
        "19-wrong-api-version.yaml",
        "19-wrong-api-version.yaml",
        1,
        13,
        "apiVersion",
        "unsupported apiVersion `v1`",
    ),
    (
        "20-missing-kind.yaml",
        "20-missing-kind.yaml",
        1,
        1,
        "kind",
        "missing field `kind`; expected one of: Server, App",
    ),
    (
        "21-unknown-kind.yaml",
        "21-unknown-kind.yaml",
        2,
        7,
        "kind",
        "unknown kind `Ap`",
    ),
    (
        "22-kind-not-yet-supported.yaml",
        "22-kind-not-yet-supported.yaml",
        2,
        7,
        "kind",
        "kind `ProxmoxVm` is not supported by this version of ballast yet",
    ),
    (
        "23-unknown-server.yaml",
        "23-unknown-server.yaml",
        6,
        11,
        "spec.server",
        "unknown server `nas01`",
    ),
    (
        "24-depends-on-unknown.yaml",
        "24-depends-on-unknown.yaml",
        7,
        15,
        "spec.dependsOn[0]",
        "unknown app `db`",
    ),
    (
        "25-depends-on-self.yaml",
        "25-depends-on-self.yaml",
        7,
        15,
        "spec.dependsOn[0]",
        "an app cannot depend on itself",
    ),
    (
        "26-dependency-cycle.yaml",
        "26-dependency-cycle.yaml",
        15,
        15,
        "spec.dependsOn[0]",
        "dependency cycle: web -> api -> web",
    ),
    (
        "27-duplicate-across-files",
        "b.yaml",
        5,
        9,
        "metadata.name",
        "duplicate App: `web` is already defined at",
    ),
    (
        "28-port-clash.yaml",
        "28-port-clash.yaml",
        15,
        11,
        "spec.ports[0]",
        "host port 8080/tcp is already published by App/web",
    ),
    (
        "29-env-unknown-source.yaml",
        "29-env-unknown-source.yaml",
        9,
        7,
        "spec.env.PASSWORD.secret",
        "unknown field `secret`, expected one of secretRef",
    ),
    (
        "30-env-null.yaml",
        "30-env-null.yaml",
        8,
        5,
        "spec.env.PASSWORD",
        "expected a string, number or boolean, or {secretRef: {name: NAME}}",
    ),
    (
        "31-yaml-syntax.yaml",
        "31-yaml-syntax.yaml",
        7,
        10,
        "spec.ports",
        "unclosed bracket",
    ),
    (
        "32-duplicate-key.yaml",
        "32-duplicate-key.yaml",
        7,
        3,
        "spec.image",
        "duplicate mapping key: image",
    ),
    (
        "33-reserved-label.yaml",
        "33-reserved-label.yaml",
        8,
        5,
        "spec.labels.ballast.managed",
        "reserved prefix `ballast.`",
    ),
    (
        "34-metadata-unknown-field.yaml",
        "34-metadata-unknown-field.yaml",
        5,
        3,
        "metadata.namespace",
        "unknown field `namespace`",
    ),
    (
        "35-document-is-a-list.yaml",
        "35-document-is-a-list.yaml",
        1,
        1,
        "",
        "expected a mapping",
    ),
    (
        "36-env-bad-name.yaml",
        "36-env-bad-name.yaml",
        8,
        12,
        "spec.env.A=B",
        "invalid environment variable name `A=B`",
    ),
    (
        "37-bad-network-name.yaml",
        "37-bad-network-name.yaml",
        7,
        14,
        "spec.networks[0]",
        "`my net` is not a network name",
    ),
    (
        "38-memory-too-small.yaml",
        "38-memory-too-small.yaml",
        8,
        13,
        "spec.resources.memory",
        "below Docker's minimum of 6m",
    ),
    (
        "39-unbalanced-quotes.yaml",
        "39-unbalanced-quotes.yaml",
        7,
        3,
        "spec.command",
        "missing closing quote",
    ),
    (
        "40-second-document-broken.yaml",
        "40-second-document-broken.yaml",
        15,
        12,
        "spec.restart",
        "unknown restart policy `never`",
    ),
    (
        "41-name-with-underscore.yaml",
        "41-name-with-underscore.yaml",
        4,
        9,
        "metadata.name",
        "invalid name `my_app`",
    ),
    (
        "42-missing-metadata.yaml",
        "42-missing-metadata.yaml",
        1,
        1,
        "",
        "missing field `metadata`",
    ),
    (
        "43-server-no-auth.yaml",
        "43-server-no-auth.yaml",
        7,
        3,
        "spec.auth",
        "missing credentials; expected `key: {secretRef: {name: NAME}}`",
    ),
    (
        "44-server-bad-host-key.yaml",
        "44-server-bad-host-key.yaml",
        7,
        12,
        "spec.hostKey",
        "`MD5:aa:bb:cc` is not a host-key fingerprint; expected `SHA256:`",
    ),
    (
        "45-server-package-injection.yaml",
        "45-server-package-injection.yaml",
        13,
        9,
        "spec.prepare.packages[1]",
        "is not a package name",
    ),
    (
        "46-server-relative-key-file.yaml",
        "46-server-relative-key-file.yaml",
        9,
        5,
        "spec.auth.key",
        "`keys/id_ed25519` is not an absolute path",
    ),
    (
        "47-server-unknown-field.yaml",
        "47-server-unknown-field.yaml",
        7,
        3,
        "spec.hostkey",
        "unknown field `hostkey`",
    ),
    (
        "48-server-key-and-password.yaml",
        "48-server-key-and-password.yaml",
        8,
        3,
        "spec.auth",
        "give either `key` or `password`, not both",
    ),
    (
        "50-label-without-value.yaml",
        "50-label-without-value.yaml",
        6,
        9,
        "metadata.labels.team",
        "no value; expected text (write \"\" for an empty value",
    ),
    (
        "51-alias-bomb.yaml",
        "51-alias-bomb.yaml",
        16,
        16,
        "spec.labels.g[1]",
        "with its aliases expanded this document grows past 1 MiB here (the limit per document)",
    ),
    (
        // The places inside the message are the file's lines, and the message is whole.
        "52-alias-of-wrong-type.yaml",
        "52-alias-of-wrong-type.yaml",
        14,
        10,
        "spec.ports",
        "expected a list (a YAML sequence) here (defined at line 13, column 17) (used at line 14, column 10)",
    ),
    (
        "53-not-utf8.yaml",
        "53-not-utf8.yaml",
        4,
        12,
        "",
        "the file is not UTF-8 text (byte 0xFF); manifests are UTF-8 YAML",
    ),
    (
        "54-server-port-out-of-range.yaml",
        "54-server-port-out-of-range.yaml",
        7,
        9,
        "spec.port",
        "port 70000 is out of range; expected 1 to 65535",
    ),
    (
        "55-host-network-and-others.yaml",
        "55-host-network-and-others.yaml",
        7,
        21,
        "spec.networks[1]",
        "the `host` network cannot be combined with other networks",
    ),
    (
        "56-ports-on-host-network.yaml",
        "56-ports-on-host-network.yaml",
        8,
        11,
        "spec.ports[0]",
        "ports cannot be published: on the `host` network",
    ),
    (
        "57-relative-working-dir.yaml",
        "57-relative-working-dir.yaml",
        7,
        3,
        "spec.workingDir",
        "`app` is not an absolute path; Docker requires the working directory to be absolute",
    ),
    (
        "58-duplicate-mount-point.yaml",
        "58-duplicate-mount-point.yaml",
        9,
        7,
        "spec.volumes[1]",
        "`/data/` is mounted twice (also spec.volumes[0])",
    ),
    (
        "59-network-twice.yaml",
        "59-network-twice.yaml",
        7,
        27,
        "spec.networks[2]",
        "network `front` is listed twice (also spec.networks[0])",
    ),
    (
        "60-bad-stop-signal.yaml",
        "60-bad-stop-signal.yaml",
        8,
        15,
        "spec.stopSignal",
        "`SIGSTOPP` is not a signal; expected a name such as SIGTERM",
    ),
    (
        "61-bad-stop-grace-period.yaml",
        "61-bad-stop-grace-period.yaml",
        8,
        20,
        "spec.stopGracePeriod",
        "`1500ms` is not a whole number of seconds",
    ),
    (
        "62-healthcheck-under-1ms.yaml",
        "62-healthcheck-under-1ms.yaml",
        9,
        15,
        "spec.healthcheck.interval",
        "shorter than Docker's minimum of 1ms",
    ),
];

/// Cases with several errors in one document: every one must be reported, and nothing more.
/// (case, [(line, column, field, part of the message)])
type Expected = (u64, u64, &'static str, &'static str);
const MULTI: &[(&str, &[Expected])] = &[
    (
        // An unknown field used to hide the document's other errors.
        "49-unknown-field-and-other-errors.yaml",
        &[
            (7, 3, "spec.envv", "unknown field `envv`"),
            (8, 11, "spec.ports[0]", "host port 70000 is out of range"),
            (9, 15, "spec.dependsOn[0]", "unknown app `db`"),
        ],
    ),
    (
        "63-every-key-problem.yaml",
        &[
            (5, 3, "metadata.label", "unknown field `label`"),
            (8, 3, "spec.image", "duplicate mapping key: image"),
            (10, 13, "spec.env.TOKEN.secret", "unknown field `secret`"),
            (11, 12, "spec.restart", "unknown restart policy `never`"),
            (
                12,
                23,
                "spec.resources.memory",
                "`lots` is not a memory size",
            ),
            (12, 29, "spec.resources.cpu", "unknown field `cpu`"),
        ],
    ),
];

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[test]
fn every_broken_manifest_reports_its_error_where_it_is() {
    let mut failures = Vec::new();
    for (case, file, line, column, field, message) in CASES {
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
            d.pos.file.ends_with(file)
                && d.pos.line == *line
                && d.pos.column == *column
                && d.field == *field
                && d.message.contains(message)
        });
        if !found {
            failures.push(format!(
                "{case}: expected {file}:{line}:{column} {field}: …{message}…, got:\n{diagnostics}"
            ));
        }
        // The rendered report names the file, the place and the field, as a user reads it.
        let rendered = diagnostics.to_string();
        if !rendered.contains(&format!("{file}:{line}:{column}"))
            || !rendered.ends_with("nothing was applied")
        {
            failures.push(format!("{case}: rendered as:\n{rendered}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_of_a_document_is_reported() {
    let mut failures = Vec::new();
    for (case, expected) in MULTI {
        let diagnostics = match load_dir(&corpus().join(case)) {
            Err(LoadError::Invalid(d)) => d,
            Ok(_) => {
                failures.push(format!("{case}: validated, but should have failed"));
                continue;
            }
            Err(other) => {
                failures.push(format!("{case}: unexpected error {other}"));
                continue;
            }
        };
        for (line, column, field, message) in *expected {
            let found = diagnostics.iter().any(|d| {
                d.pos.line == *line
                    && d.pos.column == *column
                    && d.field == *field
                    && d.message.contains(message)
            });
            if !found {
                failures.push(format!(
                    "{case}: expected {line}:{column} {field}: …{message}…, got:\n{diagnostics}"
                ));
            }
        }
        if diagnostics.len() != expected.len() {
            failures.push(format!(
                "{case}: expected {} errors, got:\n{diagnostics}",
                expected.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_corpus_has_every_case_listed() {
    let on_disk = std::fs::read_dir(corpus()).unwrap().count();
    assert_eq!(
        on_disk,
        CASES.len() + MULTI.len(),
        "a corpus file has no expectation, or an expectation has no file"
    );
    assert!(CASES.len() >= 30);
}

#[test]
fn all_errors_of_a_set_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    for case in [
        "04-port-out-of-range.yaml",
        "08-bad-restart.yaml",
        "21-unknown-kind.yaml",
    ] {
        let text = std::fs::read_to_string(corpus().join(case)).unwrap();
        // Distinct names so the three documents do not also collide as duplicates.
        let text = text.replace("name: web", &format!("name: app-{}", &case[..2]));
        std::fs::write(dir.path().join(case), text).unwrap();
    }
    let Err(LoadError::Invalid(diagnostics)) = load_dir(dir.path()) else {
        panic!("should fail")
    };
    assert_eq!(diagnostics.len(), 3, "{diagnostics}");
}
