//! Servers end to end, with the real binary, a real sshd on 127.0.0.1 and the real Docker
//! engine reached through it: connect and prepare a server, run apps on it over the SSH
//! connection (create, update, drift, delete), wait while it is down, host-key policies, and no
//! credential anywhere it should not be.

mod common;

use std::io::Write;
use std::process::Stdio;

use ballast_test_support::sshd::{ClientKey, Sshd};
use common::{Env, Run};

fn set_secret(env: &Env, name: &str, value: &str) -> Run {
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
        .write_all(value.as_bytes())
        .unwrap();
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 0, "secret set: {run}");
    run
}

/// A Server document; `extra` is more `spec` lines, indented two spaces.
fn server(name: &str, sshd: &Sshd, extra: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: {name}\nspec:\n  address: 127.0.0.1\n  port: {}\n  user: {}\n{extra}",
        sshd.port, sshd.user
    )
}

fn key_auth() -> &'static str {
    "  auth:\n    key: {secretRef: {name: ssh-key}}\n"
}

#[test]
fn apps_run_on_a_server_through_its_ssh_connection() {
    let sshd = Sshd::start();
    let env = Env::new("srv-apps");
    let host = env.name("host");
    let key = sshd.client_key(ClientKey::Ed25519);
    set_secret(&env, "ssh-key", &key);
    env.write(
        "server.yaml",
        &server(
            &host,
            &sshd,
            &format!(
                "{}  hostKey: {}\n  labels: {{rack: r1}}\n  prepare:\n    docker: true\n",
                key_auth(),
                sshd.host_key_fingerprint
            ),
        ),
    );
    env.write(
        "web.yaml",
        &env.app(
            "web",
            &format!("  server: {host}\n  env:\n    GREETING: hello\n"),
        ),
    );

    let diff = env.ballast(&["diff"]);
    assert_eq!(diff.code, 1, "{diff}");
    assert!(diff.stdout.contains(&format!("+ Server/{host}")), "{diff}");

    let first = env.apply();
    assert!(first.stdout.contains("2 created"), "{first}");
    // The container exists on the engine the server's sshd reaches (this machine's).
    let web = env.inspect("web").expect("the app's container exists");
    assert_eq!(web["State"]["Status"], "running");
    assert_eq!(web["Config"]["Labels"]["ballast.app"], env.name("web"));

    // The server's row: connected, with the facts read over SSH.
    let servers = env.json(&["get", "servers"]);
    let row = &servers[0];
    assert_eq!(row["name"], host.as_str(), "{servers}");
    assert_eq!(row["status"], "connected", "{servers}");
    assert_eq!(row["hostKey"], sshd.host_key_fingerprint.as_str());
    assert!(row["cpuCount"].as_u64().unwrap_or(0) > 0, "{servers}");
    assert!(row["memoryBytes"].as_u64().unwrap_or(0) > 0, "{servers}");
    assert!(row["diskTotalBytes"].as_u64().unwrap_or(0) > 0, "{servers}");
    assert!(row["dockerVersion"].as_str().is_some(), "{servers}");
    assert!(row["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(row["labels"]["rack"], "r1");
    let table = env.ballast(&["get", "servers"]);
    assert!(table.stdout.contains("connected"), "{table}");

    // Docker is installed and running here: preparation skipped what was already satisfied.
    let logs = env.ballast(&["logs", &format!("server/{host}")]);
    assert_eq!(logs.code, 0, "{logs}");
    for (step, status) in [
        ("detect-os", "succeeded"),
        ("install-docker", "skipped"),
        ("start-docker", "skipped"),
        ("verify", "succeeded"),
    ] {
        assert!(
            logs.stdout
                .lines()
                .any(|l| l.contains(step) && l.contains(status)),
            "{step} {status}:\n{logs}"
        );
    }
    let describe = env.ballast(&["describe", &format!("server/{host}")]);
    assert!(describe.stdout.contains("Docker:"), "{describe}");
    assert!(
        describe.stdout.contains("key from secret:ssh-key"),
        "{describe}"
    );

    // In sync: nothing to do, and a second apply changes nothing.
    let again = env.ballast(&["diff", "--refresh"]);
    assert_eq!(again.code, 0, "{again}");

    // Update: a spec change replaces the container on the server.
    env.write(
        "web.yaml",
        &env.app(
            "web",
            &format!("  server: {host}\n  env:\n    GREETING: bonjour\n"),
        ),
    );
    let update = env.apply();
    assert!(update.stdout.contains("1 replaced"), "{update}");
    let env_vars = env.inspect("web").unwrap()["Config"]["Env"].to_string();
    assert!(env_vars.contains("GREETING=bonjour"), "{env_vars}");

    // Drift: stopped by hand, found through the tunnel and healed.
    assert_eq!(env.docker(&["stop", "-t", "1", &env.name("web")]).code, 0);
    let drift = env.ballast(&["diff", "--refresh"]);
    assert_eq!(drift.code, 1, "{drift}");
    assert!(drift.stdout.contains("want running"), "{drift}");
    env.apply();
    assert_eq!(env.state_of("web").as_deref(), Some("running"));

    // Delete: removed from the manifests and pruned.
    env.remove("web.yaml");
    let prune = env.ballast(&["apply", "--yes", "--prune"]);
    assert_eq!(prune.code, 0, "{prune}");
    assert!(env.inspect("web").is_none(), "the container was removed");

    // The private key appears nowhere: not in the database, not in any output.
    let mut outputs = String::new();
    for run in [
        &diff, &first, &logs, &describe, &update, &drift, &prune, &table,
    ] {
        outputs.push_str(&run.to_string());
    }
    let key_body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    assert!(!key_body.is_empty());
    let db = std::fs::read(env.db_file().unwrap()).unwrap();
    let db_text = String::from_utf8_lossy(&db);
    for line in key_body {
        assert!(!outputs.contains(line), "key material in the output");
        assert!(!db_text.contains(line), "key material in the database");
    }
    for suffix in ["-wal", "-shm"] {
        let path = format!("{}{suffix}", env.db_file().unwrap().display());
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            for line in key
                .lines()
                .filter(|l| l.len() > 20 && !l.starts_with("-----"))
            {
                assert!(!text.contains(line), "key material in {path}");
            }
        }
    }
}

#[test]
fn an_app_waits_while_its_server_is_down_and_converges_when_it_is_back() {
    let mut sshd = Sshd::start();
    let env = Env::new("srv-wait");
    let host = env.name("host");
    set_secret(&env, "ssh-key", &sshd.client_key(ClientKey::Ecdsa));
    env.write(
        "server.yaml",
        &server(
            &host,
            &sshd,
            &format!("{}  hostKey: {}\n", key_auth(), sshd.host_key_fingerprint),
        ),
    );
    env.write("web.yaml", &env.app("web", &format!("  server: {host}\n")));
    sshd.stop();

    let down = env.ballast(&["apply", "--yes"]);
    assert_ne!(down.code, 0, "{down}");
    let text = down.to_string();
    assert!(text.contains(&format!("Server/{host}")), "{down}");
    assert!(
        text.contains(&format!("its dependency Server/{host} failed")),
        "the app waits for its server:\n{down}"
    );
    assert!(env.inspect("web").is_none());
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["status"], "disconnected", "{servers}");

    sshd.restart();
    let back = env.apply();
    assert!(back.stdout.contains("0 failed"), "{back}");
    assert_eq!(env.state_of("web").as_deref(), Some("running"));
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["status"], "connected", "{servers}");
}

#[test]
fn host_keys_are_pinned_or_trusted_on_first_use_and_never_ignored() {
    let sshd = Sshd::start();
    let other = Sshd::start();
    let env = Env::new("srv-keys");
    let host = env.name("host");
    set_secret(&env, "ssh-password", &sshd.password);

    // No pin and no trust on first use: refused, with the fingerprint to pin.
    let password_auth = "  auth:\n    password: {secretRef: {name: ssh-password}}\n";
    env.write("server.yaml", &server(&host, &sshd, password_auth));
    let refused = env.ballast(&["apply", "--yes"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused.to_string().contains(&sshd.host_key_fingerprint),
        "the message shows the fingerprint to pin:\n{refused}"
    );

    // A wrong pin: refused, showing both fingerprints.
    env.write(
        "server.yaml",
        &server(
            &host,
            &sshd,
            &format!("{password_auth}  hostKey: {}\n", other.host_key_fingerprint),
        ),
    );
    let mismatch = env.ballast(&["apply", "--yes"]);
    assert_ne!(mismatch.code, 0, "{mismatch}");
    let text = mismatch.to_string();
    assert!(text.contains(&sshd.host_key_fingerprint), "{mismatch}");
    assert!(text.contains(&other.host_key_fingerprint), "{mismatch}");

    // Trust on first use: the first key is recorded...
    env.write(
        "server.yaml",
        &server(
            &host,
            &sshd,
            &format!("{password_auth}  trustOnFirstUse: true\n"),
        ),
    );
    let tofu = env.apply();
    assert!(tofu.stdout.contains("0 failed"), "{tofu}");
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["hostKey"], sshd.host_key_fingerprint.as_str());

    // ...and a different key later (another machine at the address) is refused.
    env.write(
        "server.yaml",
        &server(
            &host,
            &other,
            &format!("{password_auth}  trustOnFirstUse: true\n"),
        ),
    );
    let changed = env.ballast(&["apply", "--yes"]);
    assert_ne!(changed.code, 0, "{changed}");
    let text = changed.to_string();
    assert!(text.contains(&sshd.host_key_fingerprint), "{changed}");
    assert!(text.contains(&other.host_key_fingerprint), "{changed}");

    // The password is nowhere in the outputs or the database.
    let db = std::fs::read(env.db_file().unwrap()).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&sshd.password));
    for run in [&refused, &mismatch, &tofu, &changed] {
        assert!(!run.to_string().contains(&sshd.password));
    }
}
