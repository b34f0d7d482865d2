//! Issue 8, the daemon: defects found by breaking `ballast daemon`, each pinned end to end with
//! the real binary, the real Docker engine and (for the shared-database case) a real PostgreSQL.
//!
//! - one daemon per database: a second one refuses to start, names the first, and leaves its
//!   socket alone;
//! - a manifest directory that is a git repository does not make the daemon reload in a loop;
//! - a manifest edit is reported as the desired state changing, not as drift;
//! - `ballast secret set` reaches a running daemon without touching the manifests;
//! - an API listening on the network needs the token file, and the token guards it there.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;

const WAIT: Duration = Duration::from_secs(30);

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `ballast daemon` with `config` written to `config_file` (relative to the test's
    /// directory), logging at info level into its own file.
    fn start_named(env: &Env, config_file: &str, config: &str, cwd: Option<&Path>) -> Daemon {
        let config_path = env.path(config_file);
        std::fs::write(&config_path, config).unwrap();
        let log = env.path(&format!("{config_file}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = env.command();
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let child = command
            .args(["daemon", "--config", config_path.to_str().unwrap()])
            .env("BALLAST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    fn start(env: &Env, config: &str) -> Daemon {
        Daemon::start_named(env, "ballast.toml", config, None)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn curl(socket: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", socket.to_str().unwrap()])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// HTTP status code of a request through curl (`args` are extra curl arguments and the URL).
fn http_code(socket: Option<&Path>, args: &[&str]) -> String {
    let mut command = std::process::Command::new("curl");
    command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    if let Some(socket) = socket {
        command.args(["--unix-socket", socket.to_str().unwrap()]);
    }
    let out = command.args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The recorded events, oldest first, as JSON objects.
fn events(env: &Env) -> Vec<serde_json::Value> {
    let run = env.ballast(&["events", "--limit", "5000", "-o", "json"]);
    assert_eq!(run.code, 0, "{run}");
    run.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn count_events(env: &Env, kind: &str) -> usize {
    events(env).iter().filter(|e| e["type"] == kind).count()
}

/// The sum of a Prometheus counter's samples whose line starts with `name` (all label sets).
fn counter_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn socket_config(env: &Env) -> (PathBuf, String) {
    let socket = env.path("run/ballast.sock");
    let config = format!("[http]\nsocket = \"{}\"\n", socket.display());
    (socket, config)
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=ballast-test",
            "-c",
            "user.email=test@ballast.invalid",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_secret(env: &Env, name: &str, value: &str) {
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
    let out: common::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn a_second_daemon_on_the_same_database_refuses_and_names_the_first() {
    let env = Env::new("dtwo");
    env.write("a.yaml", &env.app("web", ""));
    let first = Daemon::start(&env, "");
    eventually("the first daemon is ready", WAIT, || {
        env.ballast(&["status"])
            .stdout
            .contains("daemon:      ready")
    });

    // Same working directory, same database, same (default) socket.
    let mut second = Daemon::start_named(&env, "second.toml", "", None);
    let status = second
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the second daemon keeps running:\n{}", second.log()));
    assert!(!status.success(), "the second daemon exits non-zero");
    let said = second.log();
    assert!(
        said.contains(&format!("pid {}", first.pid())),
        "the refusal names the first daemon's pid {}:\n{said}",
        first.pid()
    );
    assert!(
        !said.contains("daemon ready"),
        "the second daemon did no work:\n{said}"
    );

    // The first still answers on its socket.
    let status = env.ballast(&["status"]);
    assert_eq!(status.code, 0, "{status}");
    assert!(status.stdout.contains("daemon:      ready"), "{status}");

    // A stale socket (no one answers) does not stop a daemon from starting once the first is
    // gone: its lock and lease are released with it.
    drop(first);
    let _third = Daemon::start_named(&env, "third.toml", "", None);
    eventually("a daemon starts once the first is gone", WAIT, || {
        env.ballast(&["status"])
            .stdout
            .contains("daemon:      ready")
    });
}

#[test]
fn two_daemons_on_one_postgresql_database_from_different_directories_refuse() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(ballast_test_support::postgres::postgres_url());
    let env = Env::new("dpg2").with_database(url);
    env.write("a.yaml", &env.app("web", ""));
    let first = Daemon::start(&env, "");
    eventually("the first daemon is ready", WAIT, || {
        env.ballast(&["status"])
            .stdout
            .contains("daemon:      ready")
    });
    // Another working directory: another socket and another state directory, as on another
    // machine; only the database is shared.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut second = Daemon::start_named(&env, "second.toml", "", Some(&elsewhere));
    let status = second
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the second daemon keeps running:\n{}", second.log()));
    assert!(!status.success());
    let said = second.log();
    assert!(
        said.contains(&format!("daemon {}@", first.pid())),
        "the refusal names the lease holder (the first daemon, pid {}):\n{said}",
        first.pid()
    );
    let status = env.ballast(&["status"]);
    assert_eq!(status.code, 0, "{status}");
}

#[test]
fn a_git_manifest_directory_does_not_make_the_daemon_reload_in_a_loop() {
    let env = Env::new("dgit");
    env.write("web.yaml", &env.app("web", "  env: {V: one}\n"));
    git(&env.manifests, &["init", "-q"]);
    git(&env.manifests, &["add", "."]);
    git(&env.manifests, &["commit", "-q", "-m", "first"]);
    let (socket, config) = socket_config(&env);
    let daemon = Daemon::start(&env, &config);
    eventually("the app runs", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
    eventually("ready", WAIT, || {
        curl(&socket, &["http://d/readyz"]).contains("ready")
    });
    std::thread::sleep(Duration::from_millis(500));

    let reloads = |metrics: &str| counter_sum(metrics, "ballast_reloads_total");
    let metrics = curl(&socket, &["http://d/metrics"]);
    let (events_before, metric_before) = (count_events(&env, "reload"), reloads(&metrics));
    // No edits for five seconds: nothing to reload.
    std::thread::sleep(Duration::from_secs(5));
    let metrics = curl(&socket, &["http://d/metrics"]);
    let (events_after, metric_after) = (count_events(&env, "reload"), reloads(&metrics));
    assert!(
        events_after - events_before <= 1,
        "{} reload events in 5 s without an edit",
        events_after - events_before,
    );
    assert!(
        metrics.contains("ballast_reloads_total{result=\"ok\"}"),
        "reloads are counted by result:\n{metrics}"
    );
    assert!(
        metric_after - metric_before <= 1.0,
        "{} reloads in 5 s without an edit:\n{metrics}",
        metric_after - metric_before
    );

    // Files the loader ignores change nothing either.
    std::fs::write(env.manifests.join("README.md"), "notes\n").unwrap();
    std::fs::write(env.manifests.join(".web.yaml.swp"), "editor state\n").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count_events(&env, "reload"),
        events_after,
        "{}",
        daemon.log()
    );

    // A committed edit is still one reload, and it is applied.
    env.write("web.yaml", &env.app("web", "  env: {V: two}\n"));
    git(&env.manifests, &["commit", "-q", "-am", "second"]);
    eventually("the edit is applied", WAIT, || {
        env.inspect("web")
            .is_some_and(|c| c["Config"]["Env"].to_string().contains("V=two"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let after_edit = count_events(&env, "reload");
    assert!(
        (1..=2).contains(&(after_edit - events_after)),
        "an edit and its commit are one or two reloads, not {}",
        after_edit - events_after
    );
}

#[test]
fn a_manifest_edit_is_a_desired_change_not_drift() {
    let env = Env::new("dedit");
    // A short resync, so a resync lands while the edit is being applied.
    let daemon = Daemon::start(&env, "resync-interval = \"150ms\"\n");
    env.write("web.yaml", &env.app("web", "  env: {V: one}\n"));
    eventually("the app runs", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
    std::thread::sleep(Duration::from_millis(500));
    for value in ["two", "three"] {
        env.write(
            "web.yaml",
            &env.app("web", &format!("  env: {{V: {value}}}\n")),
        );
        eventually("the edit is applied", WAIT, || {
            env.inspect("web").is_some_and(|c| {
                c["State"]["Status"] == "running"
                    && c["Config"]["Env"]
                        .to_string()
                        .contains(&format!("V={value}"))
            })
        });
        std::thread::sleep(Duration::from_millis(500));
    }

    let app = format!("App/{}", env.name("web"));
    let all = events(&env);
    let of = |kind: &str| {
        all.iter()
            .filter(|e| e["type"] == kind && e["resource"] == app.as_str())
            .count()
    };
    let log = daemon.log();
    assert!(!log.contains("drift found"), "an edit is not drift:\n{log}");
    assert_eq!(of("drift_found"), 0, "an edit is not drift:\n{all:#?}");
    assert_eq!(of("drift_healed"), 0, "an edit is not drift:\n{all:#?}");
    assert!(
        of("desired_changed") >= 2,
        "edits are desired changes:\n{all:#?}"
    );
    assert!(log.contains("manifest changed"), "{log}");

    // Reality moving is still drift.
    env.docker(&["stop", "-t", "0", &env.name("web")]);
    eventually("a container stopped by hand is drift", WAIT, || {
        events(&env)
            .iter()
            .any(|e| e["type"] == "drift_found" && e["resource"] == app.as_str())
    });
    eventually("and it is healed", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
}

#[test]
fn a_secret_set_while_the_daemon_runs_converges_the_app_that_uses_it() {
    let env = Env::new("dsecret");
    env.write(
        "db.yaml",
        &env.app(
            "db",
            "  env:\n    PASSWORD: {secretRef: {name: db-password}}\n",
        ),
    );
    let (socket, config) = socket_config(&env);
    let _daemon = Daemon::start(&env, &config);
    eventually("the daemon reports the missing secret", WAIT, || {
        env.ballast(&["status", "--socket", socket.to_str().unwrap()])
            .stdout
            .contains("secret `db-password` does not exist")
    });
    assert!(env.inspect("db").is_none());

    set_secret(&env, "db-password", "first-value");
    eventually(
        "the app converges without a manifest change",
        Duration::from_secs(10),
        || {
            env.inspect("db").is_some_and(|c| {
                c["State"]["Status"] == "running"
                    && c["Config"]["Env"]
                        .to_string()
                        .contains("PASSWORD=first-value")
            })
        },
    );
    let status = env.ballast(&["status", "--socket", socket.to_str().unwrap()]);
    assert_eq!(status.code, 0, "the reload error is gone: {status}");

    // A new value replaces the app, again without a manifest change or a resync.
    set_secret(&env, "db-password", "second-value");
    eventually(
        "the new value reaches the app",
        Duration::from_secs(10),
        || {
            env.inspect("db").is_some_and(|c| {
                c["State"]["Status"] == "running"
                    && c["Config"]["Env"]
                        .to_string()
                        .contains("PASSWORD=second-value")
            })
        },
    );
    let all = events(&env);
    assert!(
        all.iter().any(|e| e["type"] == "desired_changed"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("a secret it uses was changed"))),
        "{all:#?}"
    );
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains("first-value") && !text.contains("second-value"),
        "no secret value in the events"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_api_on_the_network_needs_the_token_file_and_the_token() {
    let env = Env::new("dnet");
    env.write("a.yaml", &env.app("web", ""));
    let port = free_port();

    // Without a token file, listening on every interface is refused at start.
    let mut refused = Daemon::start_named(
        &env,
        "open.toml",
        &format!("[http]\nlisten = \"0.0.0.0:{port}\"\n"),
        None,
    );
    let status = refused
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("started without a token file:\n{}", refused.log()));
    assert!(!status.success());
    let said = refused.log();
    assert!(
        said.contains("0.0.0.0") && said.contains("token-file"),
        "the refusal says why and what to set:\n{said}"
    );
    assert!(env.inspect("web").is_none(), "nothing was applied");

    // With one, it starts, warns, and the token guards everything but health on that port.
    let token = env.path("api-token");
    std::fs::write(&token, "t0ken-for-tests\n").unwrap();
    let socket = env.path("run/ballast.sock");
    let daemon = Daemon::start_named(
        &env,
        "guarded.toml",
        &format!(
            "[http]\nlisten = \"0.0.0.0:{port}\"\ntoken-file = \"{}\"\nsocket = \"{}\"\n",
            token.display(),
            socket.display()
        ),
        None,
    );
    eventually("the app runs", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
    let base = format!("http://127.0.0.1:{port}");
    eventually("the TCP listener answers", WAIT, || {
        http_code(None, &[&format!("{base}/healthz")]) == "200"
    });
    assert!(
        daemon.log().contains("reachable from the network"),
        "{}",
        daemon.log()
    );
    assert_eq!(http_code(None, &[&format!("{base}/v1/status")]), "401");
    assert_eq!(http_code(None, &[&format!("{base}/metrics")]), "401");
    assert_eq!(
        http_code(
            None,
            &[
                "-H",
                "Authorization: bearer t0ken-for-tests",
                &format!("{base}/v1/status")
            ]
        ),
        "200",
        "the scheme is case-insensitive"
    );
    assert_eq!(
        http_code(
            None,
            &[
                "-H",
                "Authorization: Bearer wrong",
                &format!("{base}/v1/status")
            ]
        ),
        "401"
    );
    // On the unix socket reads stay open, and actions take the token in any case of the scheme.
    assert_eq!(http_code(Some(&socket), &["http://d/v1/status"]), "200");
    assert_eq!(
        http_code(
            Some(&socket),
            &[
                "-X",
                "POST",
                "-H",
                "Authorization: BEARER t0ken-for-tests",
                "http://d/v1/reload"
            ]
        ),
        "202"
    );
}
