//! `ballast daemon` end to end: the real binary watching a temp directory, reconciling against
//! the real Docker engine.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(env: &Env, config: &str) -> Daemon {
        let config_path = env.path("ballast.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = env.path(&format!("daemon-{}.log", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = env
            .command()
            .args(["daemon", "--config", config_path.to_str().unwrap()])
            .env("BALLAST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
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

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_daemon_follows_the_manifests_heals_drift_and_stops_cleanly() {
    let env = Env::new("daemon");
    let mut daemon = Daemon::start(&env, "prune = true\nresync-interval = \"1s\"\n");

    env.write("web.yaml", &env.app("web", "  env: {V: one}\n"));
    eventually("the container appears", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
    let first = env.inspect("web").unwrap()["Id"].clone();

    env.write("web.yaml", &env.app("web", "  env: {V: two}\n"));
    eventually("the change recreates it", WAIT, || {
        env.inspect("web")
            .is_some_and(|c| c["Id"] != first && c["Config"]["Env"].to_string().contains("V=two"))
    });

    // A broken file changes nothing and is reported; the last good state stays.
    let before = env.inspect("web").unwrap()["Id"].clone();
    env.write("web.yaml", &env.app("web", "  ports: [\"99999:80\"]\n"));
    eventually("the reload error is logged", WAIT, || {
        daemon.log().contains("manifest reload failed")
    });
    assert!(
        daemon.log().contains("web.yaml:9:11: spec.ports[0]"),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        env.inspect("web").unwrap()["Id"],
        before,
        "nothing changed on a broken file"
    );

    // Drift: removed by hand, healed by the resync.
    env.write("web.yaml", &env.app("web", "  env: {V: two}\n"));
    env.docker(&["rm", "-f", &env.name("web")]);
    eventually("resync heals a removed container", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });

    // With prune on, deleting the file removes the app.
    env.remove("web.yaml");
    eventually("prune removes the app", WAIT, || {
        env.inspect("web").is_none()
    });

    daemon.signal("-TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        daemon.log()
    );
    assert!(daemon.log().contains("stopped cleanly"), "{}", daemon.log());

    // What happened is in the events, as `ballast events` shows them.
    let events = env.ballast(&["events", "--limit", "200"]);
    assert_eq!(events.code, 0, "{events}");
    for kind in [
        "daemon_started",
        "reload ",
        "reload_failed",
        "drift_found",
        "drift_healed",
        "daemon_stopped",
    ] {
        assert!(
            events.stdout.contains(kind),
            "missing {kind} event:\n{}",
            events.stdout
        );
    }
    assert!(
        events.stdout.contains("spec.ports[0]"),
        "the reload error names the field:\n{}",
        events.stdout
    );
}

#[test]
fn kill_9_during_a_batch_then_restart_converges() {
    let env = Env::new("dkill");
    let count = 30;
    let docs: Vec<String> = (0..count)
        .map(|i| env.app(&format!("a{i:02}"), ""))
        .collect();
    let mut daemon = Daemon::start(&env, "workers = 2\n");
    env.write("apps.yaml", &docs.join("---\n"));
    eventually("a few containers exist", WAIT, || {
        env.containers().len() >= 4
    });
    daemon.signal("-KILL");
    let _ = daemon.wait_exit(Duration::from_secs(10));
    assert!(env.containers().len() < count, "killed half-way");

    let _restarted = Daemon::start(&env, "workers = 2\n");
    eventually(
        "all apps converge after the restart",
        Duration::from_secs(90),
        || {
            env.containers().len() == count
                && (0..count)
                    .all(|i| env.state_of(&format!("a{i:02}")).as_deref() == Some("running"))
        },
    );
    assert_eq!(env.containers().len(), count, "no duplicate containers");
    let tasks = env.json(&["tasks", "--limit", "1000"]);
    let stuck: Vec<_> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "running" || t["status"] == "pending")
        .collect();
    assert!(stuck.is_empty(), "no task left running: {stuck:?}");
}

fn curl(socket: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", socket.to_str().unwrap()])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_daemon_api_reports_status_and_metrics_and_guards_actions() {
    let env = Env::new("dapi");
    let socket = env.path("run/ballast.sock");
    let token = env.path("api-token");
    std::fs::write(&token, "t0ken-for-tests\n").unwrap();
    env.write("a.yaml", &env.app("web", ""));
    let daemon = Daemon::start(
        &env,
        &format!(
            "[http]\nsocket = \"{}\"\ntoken-file = \"{}\"\n",
            socket.display(),
            token.display()
        ),
    );
    eventually("the app runs", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });
    eventually("ready", WAIT, || {
        curl(&socket, &["http://d/readyz"]).contains("ready")
    });
    assert_eq!(curl(&socket, &["http://d/healthz"]).trim(), "ok");

    let status = env.ballast(&["status", "--socket", socket.to_str().unwrap()]);
    assert_eq!(status.code, 0, "{status}");
    assert!(
        status.stdout.contains("daemon:      ready") && status.stdout.contains("resources:   1"),
        "{status}"
    );

    let metrics = curl(&socket, &["http://d/metrics"]);
    assert!(
        metrics.contains("ballast_reconciles_total{kind=\"App\",result=\"changed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_reconcile_duration_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_queue_depth 0") && metrics.contains("ballast_resources 1"),
        "{metrics}"
    );

    let tasks = curl(&socket, &["http://d/v1/tasks"]);
    assert!(tasks.contains(&env.name("web")), "{tasks}");
    let denied = curl(
        &socket,
        &[
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://d/v1/reload",
        ],
    );
    assert_eq!(denied, "401");
    let accepted = curl(
        &socket,
        &[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer t0ken-for-tests",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://d/v1/reload",
        ],
    );
    assert_eq!(accepted, "202");

    // A broken manifest shows in `status` with its place, and status exits 1.
    env.write("a.yaml", &env.app("web", "  restart: sometimes\n"));
    eventually("the failed reload shows in status", WAIT, || {
        env.ballast(&["status", "--socket", socket.to_str().unwrap()])
            .stdout
            .contains("spec.restart")
    });
    assert_eq!(
        env.ballast(&["status", "--socket", socket.to_str().unwrap()])
            .code,
        1
    );
    drop(daemon);
    let gone = env.ballast(&[
        "status",
        "--socket",
        env.path("nowhere.sock").to_str().unwrap(),
    ]);
    assert!(gone.stderr.contains("the daemon is not running"), "{gone}");
}

#[test]
fn a_terminal_error_is_recorded_once_and_retried_only_after_a_spec_change() {
    let env = Env::new("dterm");
    let _daemon = Daemon::start(&env, "resync-interval = \"500ms\"\n");
    let broken = env
        .app("img", "")
        .replace(&env.image(), "ballast-test/no-such-image:1");
    env.write("a.yaml", &broken);
    eventually("the failure is recorded", WAIT, || {
        env.ballast(&["events"])
            .stdout
            .contains("not retried until the spec changes")
    });
    // Several resyncs later, still exactly one attempt.
    std::thread::sleep(Duration::from_secs(3));
    let tasks = env.json(&["tasks", "--failed"]);
    assert_eq!(
        tasks.as_array().unwrap().len(),
        1,
        "retried although terminal: {tasks}"
    );

    env.write("a.yaml", &env.app("img", ""));
    eventually("a fixed spec converges", WAIT, || {
        env.state_of("img").as_deref() == Some("running")
    });
}

#[test]
fn sighup_rereads_the_config_and_report_only_drift_is_left_alone() {
    let env = Env::new("dhup");
    let daemon = Daemon::start(&env, "resync-interval = \"500ms\"\n");
    env.write("a.yaml", &env.app("web", ""));
    eventually("the app runs", WAIT, || {
        env.state_of("web").as_deref() == Some("running")
    });

    std::fs::write(
        env.path("ballast.toml"),
        "resync-interval = \"500ms\"\ndrift = \"report\"\n",
    )
    .unwrap();
    daemon.signal("-HUP");
    eventually("the config is re-read", WAIT, || {
        daemon.log().contains("config re-read")
    });
    env.docker(&["stop", "-t", "0", &env.name("web")]);
    eventually("drift is reported", WAIT, || {
        env.ballast(&["events"]).stdout.contains("report only")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.state_of("web").as_deref(),
        Some("exited"),
        "report-only drift is not healed"
    );
}

#[test]
fn an_app_on_a_down_server_waits_and_the_daemon_converges_when_it_is_back() {
    use ballast_test_support::sshd::{ClientKey, Sshd};
    use std::io::Write;
    let mut sshd = Sshd::start();
    let env = Env::new("daemon-srv");
    let host = env.name("host");
    let mut child = env
        .command()
        .args(["secret", "set", "ssh-key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sshd.client_key(ClientKey::Ed25519).as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    sshd.stop();

    env.write(
        "server.yaml",
        &format!(
            "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: {host}\nspec:\n  address: 127.0.0.1\n  port: {}\n  auth:\n    key: {{secretRef: {{name: ssh-key}}}}\n  hostKey: {}\n",
            sshd.port, sshd.host_key_fingerprint
        ),
    );
    env.write("web.yaml", &env.app("web", &format!("  server: {host}\n")));
    let daemon = Daemon::start(&env, "resync-interval = \"1s\"\n");

    // The app waits for its server, saying why, instead of failing for good.
    eventually("the app reports it is waiting", WAIT, || {
        daemon.log().contains(&format!("waiting for Server/{host}"))
    });
    assert!(env.inspect("web").is_none());

    sshd.restart();
    eventually(
        "the app runs once the server is back",
        Duration::from_secs(60),
        || env.state_of("web").as_deref() == Some("running"),
    );
    let servers = env.json(&["get", "servers"]);
    assert_eq!(servers[0]["status"], "connected", "{servers}");
}
