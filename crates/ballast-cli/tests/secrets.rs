//! Secrets end to end: stored encrypted, resolved into the container, never shown anywhere else.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::Env;

const VALUE: &str = "s3cr3t-Value-7f2b9c1e";

fn set_secret(env: &Env, name: &str, value: &str) -> common::Run {
    let mut child = env
        .command()
        .args(["secret", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn secret_values_reach_the_container_and_nothing_else() {
    let env = Env::new("secret");
    let app = env.app(
        "db",
        "  env:\n    PLAIN: visible\n    PASSWORD: {secretRef: {name: db-password}}\n",
    );
    env.write("a.yaml", &app);

    // A reference to a secret that does not exist is a validation error with its place.
    let missing = env.ballast(&["apply", "--yes"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing
            .stderr
            .contains("a.yaml:11:15: spec.env.PASSWORD: secret `db-password` does not exist"),
        "{missing}"
    );
    assert!(env.containers().is_empty());

    let set = set_secret(&env, "db-password", VALUE);
    assert_eq!(set.code, 0, "{set}");
    let key_mode = std::fs::metadata(&env.key_file)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(key_mode.unwrap(), 0o600, "key file is private");

    let mut seen = String::new();
    for args in [
        &["diff"][..],
        &["apply", "--yes"],
        &["get", "apps", "-o", "yaml"],
        &["tasks", "-o", "json"],
        &["secret", "list"],
    ] {
        let run = env.ballast(args);
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    let describe = env.ballast(&["describe", &format!("app/{}", env.name("db")), "-o", "json"]);
    seen.push_str(&describe.stdout);
    let history = env.ballast(&["history", &format!("app/{}", env.name("db"))]);
    seen.push_str(&history.stdout);
    let inspect = env.inspect("db").expect("container");
    let envs = inspect["Config"]["Env"].to_string();
    assert!(
        envs.contains(&format!("PASSWORD={VALUE}")),
        "the container gets the value: {envs}"
    );
    assert!(!seen.contains(VALUE), "a secret value was printed:\n{seen}");
    assert!(seen.contains("db-password"), "references are shown by name");
    let labels = inspect["Config"]["Labels"].to_string();
    assert!(
        !labels.contains(VALUE),
        "the spec label holds the reference, not the value"
    );
    for file in std::fs::read_dir(env.path("state")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "secret value found in the state files"
        );
    }

    // A new value recreates the app that uses it, and the diff says why without the value.
    assert_eq!(set_secret(&env, "db-password", "another-value-123").code, 0);
    let diff = env.ballast(&["diff", "--refresh"]);
    assert!(
        diff.stdout.contains("a secret it uses was changed"),
        "{diff}"
    );
    env.apply();
    let envs = env.inspect("db").unwrap()["Config"]["Env"].to_string();
    assert!(envs.contains("PASSWORD=another-value-123"));
}

#[test]
fn a_wrong_key_is_a_clear_error() {
    let env = Env::new("wrongkey");
    assert_eq!(set_secret(&env, "token", VALUE).code, 0);
    env.write(
        "a.yaml",
        &env.app("x", "  env:\n    TOKEN: {secretRef: {name: token}}\n"),
    );
    std::fs::write(&env.key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("was encrypted with key"), "{run}");
    assert!(
        !run.stdout.contains("panicked") && !run.stderr.contains("panicked"),
        "{run}"
    );
}

#[test]
fn rotate_key_re_encrypts_every_secret() {
    let env = Env::new("rotate");
    assert_eq!(set_secret(&env, "one", "first-value").code, 0);
    let old_key = std::fs::read_to_string(&env.key_file).unwrap();
    let run = env.ballast(&["secret", "rotate-key"]);
    assert_eq!(run.code, 0, "{run}");
    assert_ne!(std::fs::read_to_string(&env.key_file).unwrap(), old_key);
    env.write(
        "a.yaml",
        &env.app("x", "  env:\n    ONE: {secretRef: {name: one}}\n"),
    );
    env.apply();
    assert!(
        env.inspect("x").unwrap()["Config"]["Env"]
            .to_string()
            .contains("ONE=first-value")
    );
    let rm = env.ballast(&["secret", "rm", "one"]);
    assert_eq!(rm.code, 0, "{rm}");
    assert!(
        env.ballast(&["secret", "list"])
            .stdout
            .contains("no secrets")
    );
}
