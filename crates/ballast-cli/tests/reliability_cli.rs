//! The command line's reliability (issue 8): `get` shows live state (and, with `--cached`, how
//! old the recorded one is), errors say each cause once, `diff --prune` and `apply --prune`
//! agree on an empty directory, the progress on a terminal ends its line, `history` shows specs
//! as YAML, `audit` marks a dirty tree, help texts, `validate` checks secret references, and
//! `--config` finds the daemon's store and socket. The real binary against the real engine.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballast_test_support::sshd::Sshd;
use common::{Env, Run};

fn set_secret(env: &Env, name: &str, value: &str) -> Run {
    let mut child = env
        .command()
        .args(["secret", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ballast secret set");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(value.as_bytes())
        .expect("write the secret");
    let run: Run = child.wait_with_output().expect("secret set").into();
    assert_eq!(run.code, 0, "secret set: {run}");
    run
}

/// The rows of `get apps -o json` (or with more arguments), by name.
fn get_apps(env: &Env, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["get", "apps"];
    args.extend(extra);
    env.json(&args)
        .as_array()
        .cloned()
        .expect("get apps -o json is an array")
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
}

#[test]
fn get_apps_shows_the_live_state_and_cached_says_how_old_the_record_is() {
    let env = Env::new("cli-live");
    env.write("web.yaml", &env.app("web", ""));
    env.apply();
    let web = env.name("web");
    let history_before = env.json(&["history", &format!("app/{web}")]);

    // Stopped by hand: a live `get` sees it at once.
    let stopped = env.docker(&["stop", "-t", "1", &web]);
    assert_eq!(stopped.code, 0, "{stopped}");
    let live = get_apps(&env, &[]);
    assert_eq!(row(&live, &web)["observed"]["state"], "exited", "{live:?}");
    assert_eq!(row(&live, &web)["live"], true, "{live:?}");
    let table = env.ballast(&["get", "apps"]);
    assert_eq!(table.code, 0, "{table}");
    let line = table
        .stdout
        .lines()
        .find(|l| l.contains(&web))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("exited"), "{table}");

    // --cached: the state the apply recorded, and its age.
    let cached = get_apps(&env, &["--cached"]);
    assert_eq!(
        row(&cached, &web)["observed"]["state"],
        "running",
        "{cached:?}"
    );
    assert_eq!(row(&cached, &web)["live"], false, "{cached:?}");
    let age = row(&cached, &web)["age"].as_str().unwrap_or_default();
    assert!(age.ends_with(" ago"), "{cached:?}");
    let table = env.ballast(&["get", "apps", "--cached"]);
    assert!(
        table.stdout.contains("OBSERVED") && table.stdout.contains(" ago"),
        "{table}"
    );

    // The live look wrote nothing: no snapshot, and the record still says running.
    let history_after = env.json(&["history", &format!("app/{web}")]);
    assert_eq!(history_before, history_after, "a live get wrote a snapshot");
}

#[test]
fn an_app_removed_from_the_manifests_but_still_running_is_listed_and_marked() {
    let env = Env::new("cli-removed");
    env.write("keep.yaml", &env.app("keep", ""));
    env.write("gone.yaml", &env.app("gone", ""));
    env.apply();
    env.remove("gone.yaml");
    env.apply();
    assert_eq!(env.state_of("gone").as_deref(), Some("running"));

    let rows = get_apps(&env, &[]);
    let gone = row(&rows, &env.name("gone"));
    assert_eq!(gone["observed"]["state"], "running", "{rows:?}");
    assert!(gone["removedFromManifestsAt"].is_string(), "{rows:?}");
    assert!(
        gone["note"]
            .as_str()
            .is_some_and(|n| n.contains("removed from the manifests")),
        "{rows:?}"
    );
    assert!(row(&rows, &env.name("keep"))["note"].is_null(), "{rows:?}");

    let table = env.ballast(&["get", "apps"]);
    let line = table
        .stdout
        .lines()
        .find(|l| l.contains(&env.name("gone")))
        .unwrap_or_else(|| panic!("the removed app is listed:\n{table}"));
    assert!(line.contains("(removed)"), "{table}");
    assert!(line.contains("kept until `apply --prune`"), "{table}");
}

#[test]
fn get_servers_connects_now_and_cached_shows_the_record() {
    let mut sshd = Sshd::start();
    let env = Env::new("cli-srv");
    let host = env.name("host");
    set_secret(&env, "ssh-password", &sshd.password);
    env.write(
        "server.yaml",
        &format!(
            "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: {host}\nspec:\n  address: 127.0.0.1\n  port: {}\n  user: {}\n  auth:\n    password: {{secretRef: {{name: ssh-password}}}}\n  hostKey: {}\n",
            sshd.port, sshd.user, sshd.host_key_fingerprint
        ),
    );
    env.apply();
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["status"], "connected", "{servers}");

    // Down since the apply: a live `get` finds out.
    sshd.stop();
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["status"], "disconnected", "{servers}");
    assert_eq!(servers[0]["live"], true, "{servers}");
    let cached = env.json(&["get", "servers", "--cached"]);
    assert_eq!(cached[0]["status"], "connected", "{cached}");
    assert!(
        cached[0]["age"]
            .as_str()
            .is_some_and(|a| a.ends_with(" ago")),
        "{cached}"
    );
    // The live look recorded nothing.
    let again = env.json(&["get", "servers", "--cached"]);
    assert_eq!(again[0]["status"], "connected", "{again}");
}

#[test]
fn an_error_says_each_cause_once() {
    let env = Env::new("cli-causes");
    env.write("web.yaml", &env.app("web", ""));
    let run = env.ballast_via(
        "unix:///nonexistent/ballast-test.sock",
        &["diff", "--refresh"],
    );
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stderr.matches("Socket not found").count(),
        1,
        "the cause is printed once:\n{run}"
    );

    // A duplicate names the other definition once, not again as "see also".
    env.write("copy.yaml", &env.app("web", ""));
    let run = env.ballast(&["validate"]);
    assert_eq!(run.code, 1, "{run}");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("duplicate App"))
        .unwrap_or_else(|| panic!("{run}"));
    let place = line
        .split("already defined at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{run}"));
    assert_eq!(line.matches(place).count(), 1, "{run}");
    assert!(!line.contains("see also"), "{run}");
}

#[test]
fn diff_prune_on_an_empty_directory_says_apply_would_refuse() {
    let env = Env::new("cli-prune");
    env.write("web.yaml", &env.app("web", ""));
    env.apply();
    env.remove("web.yaml");
    let diff = env.ballast(&["diff", "--prune"]);
    assert_eq!(diff.code, 2, "diff agrees with apply: an error\n{diff}");
    assert!(
        diff.stderr.contains("holds no resources")
            && diff.stderr.contains("`apply --prune` would refuse"),
        "{diff}"
    );
    assert!(!diff.stdout.contains("will be deleted"), "{diff}");
    let apply = env.ballast(&["apply", "--yes", "--prune"]);
    assert_eq!(apply.code, 1, "{apply}");
    assert!(apply.stderr.contains("refusing to --prune"), "{apply}");
    assert_eq!(env.state_of("web").as_deref(), Some("running"));
}

#[test]
fn on_a_terminal_the_summary_starts_on_its_own_line() {
    let env = Env::new("cli-pty");
    env.write("web.yaml", &env.app("web", ""));
    let command = format!("{} apply --yes", env!("CARGO_BIN_EXE_ballast"));
    // `script` (util-linux) runs the command on a pseudo-terminal, as a person would, with the
    // test's environment.
    let base = env.command();
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let run: Run = match cmd.output() {
        Ok(output) => output.into(),
        Err(e) => panic!("`script` cannot run ({e}); apt-get install -y util-linux"),
    };
    assert_eq!(run.code, 0, "{run}");
    let at = run
        .stdout
        .find("Apply complete")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(
        run.stdout[..at].ends_with('\n'),
        "the last progress line ends before the summary: {:?}",
        &run.stdout[at.saturating_sub(120)..]
    );
    assert!(
        run.stdout
            .contains(&format!("App/{}: done", env.name("web"))),
        "{run}"
    );
}

#[test]
fn history_shows_the_applied_spec_as_yaml() {
    let env = Env::new("cli-history");
    env.write("web.yaml", &env.app("web", "  env: {GREETING: hello}\n"));
    env.apply();
    let run = env.ballast(&["history", &format!("app/{}", env.name("web"))]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stdout.contains("{\\\""), "no escaped JSON:\n{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let spec = lines
        .iter()
        .position(|l| l.trim_end().ends_with("ballast.spec:"))
        .unwrap_or_else(|| panic!("the spec label is a mapping:\n{run}"));
    let rest = lines[spec..].join("\n");
    assert!(rest.contains(&format!("image: {}", env.image())), "{run}");
    assert!(rest.contains("GREETING: hello"), "{run}");
}

#[test]
fn audit_marks_an_apply_from_a_dirty_tree() {
    let env = Env::new("cli-dirty");
    env.write("web.yaml", &env.app("web", ""));
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&env.manifests)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    let head = git(&["rev-parse", "HEAD"]);
    env.apply();
    env.write("web.yaml", &env.app("web", "  env: {CHANGED: \"yes\"}\n"));
    env.apply();

    let audit = env.ballast(&["audit"]);
    assert_eq!(audit.code, 0, "{audit}");
    let rows: Vec<&str> = audit.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{audit}");
    assert!(
        rows[0].contains(&format!("{}+dirty", &head[..10])),
        "the newest entry is marked dirty:\n{audit}"
    );
    assert!(
        rows[1].contains(&head[..10]) && !rows[1].contains("+dirty"),
        "{audit}"
    );
    let json = env.json(&["audit"]);
    assert_eq!(json["entries"][0]["gitCommit"], head.as_str(), "{json}");
    assert_eq!(json["entries"][0]["gitDirty"], true, "{json}");
    assert_eq!(json["entries"][1]["gitDirty"], false, "{json}");
}

#[test]
fn limits_and_names_have_help_text() {
    let env = Env::new("cli-help");
    for (args, option) in [
        (&["tasks", "--help"][..], "--limit <LIMIT>"),
        (&["audit", "--help"], "--limit <LIMIT>"),
        (&["get", "--help"], "[NAME]"),
    ] {
        let run = env.ballast(args);
        assert_eq!(run.code, 0, "{run}");
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(option))
            .unwrap_or_else(|| panic!("{args:?}: no {option}:\n{run}"));
        // What is left once clap's own `[default: …]` is taken away.
        let help = line.trim_start()[option.len()..]
            .split('[')
            .next()
            .unwrap_or_default()
            .trim();
        assert!(
            help.chars().any(char::is_alphabetic),
            "{args:?}: {option} has no help text: {line:?}"
        );
    }
}

#[test]
fn validate_checks_secret_references_against_the_store_it_names() {
    let env = Env::new("cli-validate");
    env.write(
        "web.yaml",
        &env.app(
            "web",
            "  env:\n    PASSWORD: {secretRef: {name: web-password}}\n",
        ),
    );
    // No store yet: valid, and said not to be checked; no database is left behind.
    let run = env.ballast(&["validate"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("secret references were not checked"),
        "{run}"
    );
    assert!(
        !env.db_file().expect("sqlite").exists(),
        "validate created a database"
    );

    // A store without the secret: the reference is an error at its place, naming the store.
    assert_eq!(env.ballast(&["init"]).code, 0);
    let run = env.ballast(&["validate"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("web.yaml:10:15: spec.env.PASSWORD: secret `web-password` does not exist"),
        "{run}"
    );
    assert!(run.stderr.contains(&env.database_url), "{run}");

    set_secret(&env, "web-password", "hunter2-and-more");
    let run = env.ballast(&["validate"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("valid") && run.stdout.contains(&env.database_url),
        "{run}"
    );
}

/// The daemon started from a config file only (no database, key or manifest flags), killed
/// when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_config_file_leads_every_command_to_the_daemons_store_and_socket() {
    let env = Env::new("cli-config");
    env.write("web.yaml", &env.app("web", ""));
    env.apply();
    let socket = env.path("api.sock");
    let config = env.path("ballast.toml");
    std::fs::write(
        &config,
        format!(
            "database-url = \"{}\"\nkey-file = \"{}\"\nmanifests = \"{}\"\nresync-interval = \"1h\"\n\n[http]\nsocket = \"{}\"\n",
            env.database_url,
            env.key_file.display(),
            env.manifests.display(),
            socket.display()
        ),
    )
    .expect("write the config");
    // Somewhere else, with nothing but the config file to go by.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let bare = |args: &[&str]| -> Command {
        let mut cmd = env.command();
        cmd.env_remove("BALLAST_DATABASE_URL")
            .env_remove("BALLAST_KEY_FILE")
            .env_remove("BALLAST_MANIFESTS")
            .current_dir(elsewhere.path())
            .args(args);
        cmd
    };
    let run: Run = bare(&["--config", config.to_str().expect("utf-8"), "get", "apps"])
        .output()
        .expect("get apps")
        .into();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains(&env.name("web")), "{run}");
    let run: Run = bare(&["tasks"])
        .env("BALLAST_CONFIG", &config)
        .output()
        .expect("tasks")
        .into();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains(&env.name("web")), "{run}");

    let _daemon = Daemon(
        bare(&["daemon", "--config", config.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let run: Run = bare(&["--config", config.to_str().expect("utf-8"), "status"])
            .output()
            .expect("status")
            .into();
        if run.stdout.contains("daemon:      ready") || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code, 0, "{status}");
    assert!(status.stdout.contains("daemon:      ready"), "{status}");
    assert!(
        !elsewhere.path().join(".ballast").exists(),
        "nothing was created where the commands ran"
    );
}
