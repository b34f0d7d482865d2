//! The manifest model end to end, through the real binary and a real Docker engine: values reach
//! the container as written, oversized manifests are refused before anything is created, the
//! stop settings reach the container, and a missing manifest directory reads the same everywhere.

mod common;

use common::Env;

fn config_env(container: &serde_json::Value) -> Vec<String> {
    container["Config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn env_values_reach_the_container_as_written() {
    let env = Env::new("envtext");
    env.write(
        "app.yaml",
        &env.app(
            "web",
            "  env:\n    FLT: 1.50\n    OCT: 0o17\n    HEX: 0x1F\n    NO: no\n    ON: on\n    QUOTED: \"1.50\"\n",
        ),
    );
    env.apply();
    let web = env.inspect("web").expect("web container");
    let vars = config_env(&web);
    for expected in [
        "FLT=1.50",
        "OCT=0o17",
        "HEX=0x1F",
        "NO=no",
        "ON=on",
        "QUOTED=1.50",
    ] {
        assert!(
            vars.iter().any(|v| v == expected),
            "{expected} not in {vars:?}"
        );
    }
    // The diff after apply agrees: the spec recorded is the text too, so nothing changes.
    let diff = env.ballast(&["diff", "--refresh"]);
    assert_eq!(diff.code, 0, "{diff}");
}

#[test]
fn a_50_mib_value_is_refused_before_anything_is_created() {
    let env = Env::new("hugeval");
    let huge = "x".repeat(50 << 20);
    env.write(
        "app.yaml",
        &env.app("web", &format!("  env:\n    BIG: {huge}\n")),
    );
    drop(huge);
    for args in [&["validate"][..], &["apply", "--yes"][..]] {
        let run = env.ballast(args);
        assert_eq!(run.code, 1, "{args:?}: {run}");
        assert!(
            run.stderr.contains(
                "app.yaml:1:1: the file is 50.0 MiB; the limit is 4 MiB per manifest file"
            ),
            "{args:?}: {run}"
        );
        assert!(
            run.stderr
                .ends_with("1 error in the manifests; nothing was applied\n"),
            "{args:?}: {run}"
        );
        // The report is the error, not the value.
        assert!(
            run.stderr.len() < 4096,
            "{args:?}: {} bytes",
            run.stderr.len()
        );
    }
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    if let Some(db) = env.db_file()
        && let Ok(meta) = std::fs::metadata(db)
    {
        assert!(
            meta.len() < 1 << 20,
            "database grew to {} bytes",
            meta.len()
        );
    }
}

#[test]
fn init_stop_signal_and_grace_period_reach_the_container() {
    let env = Env::new("stopping");
    env.write(
        "app.yaml",
        &env.app(
            "web",
            "  init: true\n  stopSignal: SIGINT\n  stopGracePeriod: 3s\n",
        ),
    );
    env.apply();
    let web = env.inspect("web").expect("web container");
    assert_eq!(web["HostConfig"]["Init"], true, "{}", web["HostConfig"]);
    assert_eq!(web["Config"]["StopSignal"], "SIGINT", "{}", web["Config"]);
    assert_eq!(web["Config"]["StopTimeout"], 3, "{}", web["Config"]);
    // A changed grace period is a spec change: the container is replaced with the new one.
    env.write(
        "app.yaml",
        &env.app(
            "web",
            "  init: true\n  stopSignal: SIGINT\n  stopGracePeriod: 1m\n",
        ),
    );
    let diff = env.ballast(&["diff"]);
    assert_eq!(diff.code, 1, "{diff}");
    assert!(diff.stdout.contains("stopGracePeriod"), "{diff}");
    env.apply();
    let web = env.inspect("web").expect("web container");
    assert_eq!(web["Config"]["StopTimeout"], 60, "{}", web["Config"]);
}

#[test]
fn a_missing_manifest_directory_reads_the_same_for_validate_and_apply() {
    let env = Env::new("nodir");
    let missing = env.path("nowhere");
    let missing = missing.display().to_string();
    let validate = env.ballast(&["validate", "-f", &missing]);
    let apply = env.ballast(&["apply", "--yes", "-f", &missing]);
    let expected = format!(
        "error: manifest directory {missing} does not exist; pass -f DIR or set BALLAST_MANIFESTS\n"
    );
    assert_eq!(validate.code, 1, "{validate}");
    assert_eq!(apply.code, 1, "{apply}");
    assert_eq!(validate.stderr, expected, "{validate}");
    assert_eq!(apply.stderr, expected, "{apply}");
}
