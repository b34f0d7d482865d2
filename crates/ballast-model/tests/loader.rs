//! The loader on inputs that cannot live in the corpus: generated sizes, symbolic links, a
//! missing directory, and values whose text YAML's type resolution would change.

use std::path::Path;

use ballast_model::app::EnvValue;
use ballast_model::limits::{MAX_DOCUMENT_BYTES, MAX_FILE_BYTES, MAX_SCALAR_BYTES, MAX_SET_BYTES};
use ballast_model::{LoadError, load_dir};

fn app(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: busybox\n{extra}"
    )
}

fn invalid(dir: &Path) -> String {
    match load_dir(dir) {
        Err(LoadError::Invalid(d)) => d.to_string(),
        Ok(_) => panic!("validated, but should have failed"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn env_values_and_labels_are_the_text_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        format!(
            "{}---\n{}",
            app(
                "web",
                "  env:\n    FLT: 1.50\n    OCT: 0o17\n    HEX: 0x1F\n    NO: no\n    YES: yes\n    T: true\n    N: 007\n    BIG: 1e3\n    INF: .inf\n    Q: \"1.50\"\n    ALIAS: &v 2.50\n    AGAIN: *v\n    TAGGED: !!int 0x10\n    SECRET: {secretRef: {name: s}}\n  labels: {version: 1.10, enabled: on}\n",
            )
            .replace(
                "  name: web\n",
                "  name: web\n  labels: {release: 2.0}\n  annotations: {build: 0x0A}\n",
            ),
            "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: nas01\nspec:\n  address: 10.0.0.5\n  auth: {key: {secretRef: {name: k}}}\n  trustOnFirstUse: true\n  labels: {rack: 01, ups: off}\n"
        ),
    )
    .unwrap();
    let set = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let (web, spec) = set.apps().next().unwrap();
    let env: Vec<(&str, String)> = spec
        .env
        .iter()
        .map(|(k, v)| {
            let text = match &v.value {
                EnvValue::Text(t) => t.clone(),
                EnvValue::Secret(r) => format!("secret:{}", r.name),
            };
            (k.as_str(), text)
        })
        .collect();
    let expected = [
        ("FLT", "1.50"),
        ("OCT", "0o17"),
        ("HEX", "0x1F"),
        ("NO", "no"),
        ("YES", "yes"),
        ("T", "true"),
        ("N", "007"),
        ("BIG", "1e3"),
        ("INF", ".inf"),
        ("Q", "1.50"),
        ("ALIAS", "2.50"),
        ("AGAIN", "2.50"),
        ("TAGGED", "0x10"),
        ("SECRET", "secret:s"),
    ];
    let expected: Vec<(&str, String)> = expected.iter().map(|(k, v)| (*k, v.to_string())).collect();
    assert_eq!(env, expected);
    assert_eq!(spec.labels["version"], "1.10");
    assert_eq!(spec.labels["enabled"], "on");
    assert_eq!(web.metadata.labels["release"], "2.0");
    assert_eq!(web.metadata.annotations["build"], "0x0A");
    // The spec as stored and hashed carries the same text.
    assert_eq!(web.spec_json()["env"]["FLT"], "1.50");
    let (_, server) = set.servers().next().unwrap();
    assert_eq!(server.labels["rack"], "01");
    assert_eq!(server.labels["ups"], "off");
}

#[test]
fn a_value_over_the_limit_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(MAX_SCALAR_BYTES + 1);
    std::fs::write(
        dir.path().join("a.yaml"),
        app(
            "web",
            &format!("  env:\n    BIG: {big}\n  restart: never\n"),
        ),
    )
    .unwrap();
    let report = invalid(dir.path());
    assert!(
        report.contains(
            "a.yaml:8:10: spec.env.BIG: the value is 64.0 KiB; the limit is 64 KiB per value"
        ),
        "{report}"
    );
    // The document's other problems are still reported.
    assert!(
        report.contains("unknown restart policy `never`"),
        "{report}"
    );
    // At the limit exactly is fine.
    let fits = "x".repeat(MAX_SCALAR_BYTES);
    std::fs::write(
        dir.path().join("a.yaml"),
        app("web", &format!("  env:\n    BIG: {fits}\n")),
    )
    .unwrap();
    load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_document_over_the_limit_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    // Many small values: no scalar is over its limit, the document is.
    let lines: String = (0..(MAX_DOCUMENT_BYTES / 30))
        .map(|i| format!("    KEY_{i:08}: {}\n", "v".repeat(20)))
        .collect();
    std::fs::write(
        dir.path().join("a.yaml"),
        format!(
            "{}---\n{}",
            app("small", ""),
            app("web", &format!("  env:\n{lines}"))
        ),
    )
    .unwrap();
    let report = invalid(dir.path());
    assert!(
        report.contains("a.yaml:7:1: this document is 1.3 MiB; the limit is 1 MiB per document"),
        "{report}"
    );
    assert!(report.ends_with("1 error in the manifests; nothing was applied"));
}

#[test]
fn a_file_over_the_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), app("web", "")).unwrap();
    // A sparse file: its size says enough; reading it would be the defect.
    let big = std::fs::File::create(dir.path().join("big.yaml")).unwrap();
    big.set_len(50 << 20).unwrap();
    let report = invalid(dir.path());
    assert!(
        report.contains("big.yaml:1:1: the file is 50 MiB; the limit is 4 MiB per manifest file"),
        "{report}"
    );
    big.set_len(MAX_FILE_BYTES).unwrap();
    // At the limit it is read (and is not YAML: NUL bytes are control characters).
    assert!(!invalid(dir.path()).contains("the limit is 4 MiB"));
}

#[test]
fn a_set_over_the_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let files = MAX_SET_BYTES / MAX_FILE_BYTES + 1;
    for i in 0..files {
        let f = std::fs::File::create(dir.path().join(format!("f{i:02}.yaml"))).unwrap();
        f.set_len(MAX_FILE_BYTES).unwrap();
    }
    let report = invalid(dir.path());
    assert!(
        report.contains(&format!(
            "f{:02}.yaml:1:1: the manifest files add up to 68 MiB, past the limit of 64 MiB per set at this file; nothing was read",
            files - 1
        )),
        "{report}"
    );
}

#[test]
fn a_symlink_loop_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("apps");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("a.yaml"), app("web", "")).unwrap();
    std::os::unix::fs::symlink("..", sub.join("loop")).unwrap();
    let err = load_dir(dir.path()).expect_err("a loop is an error");
    let LoadError::SymlinkLoop { path, ancestor } = &err else {
        panic!("expected a symlink loop, got {err}");
    };
    assert_eq!(path, &sub.join("loop"));
    assert_eq!(ancestor, dir.path());
    let message = err.to_string();
    assert_eq!(message.matches("loop").count(), 2, "{message}");
    assert!(message.contains("leads back to"), "{message}");
}

#[test]
fn a_missing_directory_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("manifests");
    let err = load_dir(&missing).expect_err("missing");
    assert!(matches!(err, LoadError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "manifest directory {} does not exist; pass -f DIR or set BALLAST_MANIFESTS",
            missing.display()
        )
    );
}
