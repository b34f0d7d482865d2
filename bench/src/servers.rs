//! Benchmarks of the `Server` kind: the release `ballast` binary against real sshds on
//! 127.0.0.1 (`ballast_test_support::sshd`), whose Docker engine is this machine's.
//!
//! - `servers-20`: 20 Servers, each its own sshd, `prepare: {docker: true}` (already satisfied
//!   here), no apps. After one `apply --yes`, the median wall time of `diff --refresh` and of an
//!   in-sync `apply --yes`, and per server and run the SSH connections and the commands it ran,
//!   counted in each sshd's log.
//! - `remote-noop-100`: 100 apps on one Server against the same 100 apps on `server: local`
//!   (separate manifests, databases and name prefixes): the median of a no-op `diff --refresh`
//!   and of a no-op `apply --yes` for each, their ratio, and the Docker calls of each run. The
//!   Server's `dockerSocket` is a counting proxy in front of the engine, so the calls that go
//!   through the SSH tunnel are counted exactly; the tunnel's channels are counted in the sshd's
//!   log.
//!
//! What the sshd logs (`Sshd::log()`, sshd's `-e` stderr) is counted by markers that OpenSSH
//! writes once per event; the LogLevel decides which appear (see the constants).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast_test_support::docker::{Call, CallCounter, engine, unique_name};
use ballast_test_support::sshd::{ClientKey, Sshd};

use crate::median;
use crate::remove_prefixed;

/// Logged (INFO) once per authenticated SSH connection.
const CONNECTION_MARKER: &str = "Accepted publickey for ";
/// Logged (VERBOSE) once per session channel that runs something: an exec request (a command),
/// a shell or a subsystem. ballast only sends exec requests.
const COMMAND_MARKER: &str = "Starting session: ";
/// Logged (DEBUG1) once per `direct-streamlocal` channel open, i.e. per stream to the server's
/// Docker socket (one per HTTP connection of the client's pool).
const STREAMLOCAL_MARKER: &str = "ctype direct-streamlocal@openssh.com";

/// How many timed runs each figure takes the median of.
const RUNS: usize = 5;

/// The test image's command: exits at once on SIGTERM, so removals are fast.
const COMMAND: &str = r#"[sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

/// One `ballast` invocation's outcome.
struct Run {
    wall: Duration,
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:.3} s\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.wall.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// A state directory of its own: SQLite database, key file and manifests.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(tag: &str) -> Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ballast-bench-{tag}-"))
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("manifests"))?;
        Ok(Workspace { dir })
    }

    fn write(&self, file: &str, text: &str) -> Result<()> {
        let path = self.dir.path().join("manifests").join(file);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }

    /// Runs `ballast ARGS` with this workspace's state, `DOCKER_HOST` and optional stdin.
    fn run(
        &self,
        bin: &Path,
        args: &[&str],
        docker_host: &str,
        stdin: Option<&str>,
    ) -> Result<Run> {
        let dir = self.dir.path();
        let start = Instant::now();
        let mut child = Command::new(bin)
            .args(args)
            .env(
                "BALLAST_DATABASE_URL",
                format!("sqlite://{}", dir.join("ballast.db").display()),
            )
            .env("BALLAST_KEY_FILE", dir.join("ballast.key"))
            .env("BALLAST_MANIFESTS", dir.join("manifests"))
            .env("DOCKER_HOST", docker_host)
            .env("NO_COLOR", "1")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", bin.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(Run {
            wall: start.elapsed(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Like [`Workspace::run`], failing unless the exit status is `want`.
    fn run_expect(
        &self,
        bin: &Path,
        args: &[&str],
        docker_host: &str,
        stdin: Option<&str>,
        want: i32,
    ) -> Result<Run> {
        let run = self.run(bin, args, docker_host, stdin)?;
        if run.code != want {
            bail!("ballast {args:?} should exit {want}:\n{run}");
        }
        Ok(run)
    }

    /// Stores a private key as secret `name` (`ballast secret set NAME < key`).
    fn set_secret(&self, bin: &Path, name: &str, value: &str, docker_host: &str) -> Result<()> {
        self.run_expect(bin, &["secret", "set", name], docker_host, Some(value), 0)?;
        Ok(())
    }
}

/// An in-sync `apply --yes` prints no plan and changes nothing.
fn check_noop_apply(run: &Run) -> Result<()> {
    if !run
        .stdout
        .contains("Apply complete: 0 created, 0 updated, 0 replaced, 0 deleted, 0 failed.")
    {
        bail!("an in-sync apply --yes changed something:\n{run}");
    }
    Ok(())
}

fn server_doc(name: &str, sshd: &Sshd, secret: &str, extra: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: {name}\nspec:\n  address: 127.0.0.1\n  port: {}\n  user: {}\n  auth:\n    key: {{secretRef: {{name: {secret}}}}}\n  hostKey: {}\n  prepare: {{docker: true}}\n{extra}---\n",
        sshd.port, sshd.user, sshd.host_key_fingerprint
    )
}

fn app_doc(name: &str, server: &str, image: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  server: {server}\n  image: {image}\n  pullPolicy: Never\n  command: {COMMAND}\n  env: {{INDEX: \"{name}\"}}\n---\n"
    )
}

/// What one sshd logged during one run.
#[derive(Debug, Clone, Copy, Default)]
struct SshCounts {
    connections: usize,
    commands: usize,
    streamlocal: usize,
}

/// Remembers where each sshd's log ended, to count only what a run adds.
struct LogMarks(Vec<usize>);

impl LogMarks {
    fn take(sshds: &[&Sshd]) -> LogMarks {
        LogMarks(sshds.iter().map(|s| s.log().len()).collect())
    }

    /// The counts per sshd since [`LogMarks::take`].
    fn counts(&self, sshds: &[&Sshd]) -> Vec<SshCounts> {
        sshds
            .iter()
            .zip(&self.0)
            .map(|(sshd, &from)| {
                let log = sshd.log();
                let added = log.get(from..).unwrap_or("");
                SshCounts {
                    connections: added.matches(CONNECTION_MARKER).count(),
                    commands: added.matches(COMMAND_MARKER).count(),
                    streamlocal: added.matches(STREAMLOCAL_MARKER).count(),
                }
            })
            .collect()
    }
}

/// The 1-, 5- and 15-minute load averages, printed beside the figures: the machine is shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// `n (min a, max b)` over every value, or just `n` when they are all equal.
fn spread(values: &[usize]) -> String {
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0);
    if min == max {
        format!("{min}")
    } else {
        let mean = values.iter().sum::<usize>() as f64 / values.len().max(1) as f64;
        format!("{mean:.2} (min {min}, max {max})")
    }
}

/// `GET /containers/json ×1, …`: the calls of one run grouped by method and path.
fn breakdown(calls: &[Call]) -> String {
    let mut grouped: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls {
        *grouped
            .entry(format!("{} {}", call.method, call.path))
            .or_default() += 1;
    }
    if grouped.is_empty() {
        return "none".to_string();
    }
    grouped
        .iter()
        .map(|(call, n)| format!("{call} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_list(call: &Call) -> bool {
    call.method == "GET" && call.path == "/containers/json"
}

fn is_mutating(call: &Call) -> bool {
    call.method != "GET" && call.method != "HEAD"
}

/// Makes the sshd log at DEBUG1, where OpenSSH reports each `direct-streamlocal` channel open
/// (VERBOSE, the test support's level, does not), by rewriting its config and restarting it on
/// the same port with the same keys.
fn log_channel_opens(sshd: &mut Sshd) -> Result<()> {
    let path = sshd.dir().join("sshd_config");
    let config = std::fs::read_to_string(&path)?;
    if !config.contains("LogLevel VERBOSE") {
        bail!(
            "{} has no `LogLevel VERBOSE` line to raise:\n{config}",
            path.display()
        );
    }
    std::fs::write(&path, config.replace("LogLevel VERBOSE", "LogLevel DEBUG1"))?;
    sshd.restart();
    Ok(())
}

pub fn servers_20(bin: &Path) -> Result<()> {
    const SERVERS: usize = 20;
    // The sshds' Docker is this machine's engine: have it (and its socket) up first.
    engine();
    let started = Instant::now();
    let sshds: Vec<Sshd> = (0..SERVERS).map(|_| Sshd::start()).collect();
    eprintln!(
        "servers-20: started {SERVERS} sshds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let sshd_refs: Vec<&Sshd> = sshds.iter().collect();
    let ws = Workspace::new("servers")?;
    // No apps: a local Docker call would be a surprise, so the proxy shows there are none.
    let local = CallCounter::start();
    let local_host = local.docker_host();
    let mut manifest = String::new();
    for (i, sshd) in sshds.iter().enumerate() {
        let name = format!("s{:02}", i + 1);
        let secret = format!("ssh-key-{name}");
        ws.set_secret(
            bin,
            &secret,
            &sshd.client_key(ClientKey::Ed25519),
            &local_host,
        )?;
        manifest.push_str(&server_doc(&name, sshd, &secret, ""));
    }
    ws.write("servers.yaml", &manifest)?;

    let marks = LogMarks::take(&sshd_refs);
    let first = ws.run_expect(bin, &["apply", "--yes"], &local_host, None, 0)?;
    let first_counts = marks.counts(&sshd_refs);
    if !first
        .stdout
        .contains(&format!("Apply complete: {SERVERS} created"))
    {
        bail!("the first apply should create {SERVERS} servers:\n{first}");
    }
    if first_counts.iter().any(|c| c.connections == 0) {
        bail!(
            "an sshd logged no `{CONNECTION_MARKER}` during the first apply; the log markers do not fit this OpenSSH. A log:\n{}",
            sshds[0].log()
        );
    }

    let mut figures = Vec::new();
    for (label, args, want) in [
        ("diff --refresh", &["diff", "--refresh"][..], 0),
        ("apply --yes (in sync)", &["apply", "--yes"][..], 0),
    ] {
        let mut times = Vec::new();
        let mut connections = Vec::new();
        let mut commands = Vec::new();
        local.reset();
        for _ in 0..RUNS {
            let marks = LogMarks::take(&sshd_refs);
            let run = ws.run_expect(bin, args, &local_host, None, want)?;
            if args[0] == "apply" {
                check_noop_apply(&run)?;
            }
            times.push(run.wall);
            for c in marks.counts(&sshd_refs) {
                connections.push(c.connections);
                commands.push(c.commands);
            }
        }
        let local_calls = local.requests();
        figures.push(format!(
            "servers-20: {label}: median wall {:.3} s over {RUNS} runs; per server per run: {} SSH connection(s), {} command(s); local Docker calls over the {RUNS} runs: {} ({})",
            median(&times),
            spread(&connections),
            spread(&commands),
            local_calls.len(),
            breakdown(&local_calls),
        ));
    }
    println!(
        "servers-20: first apply --yes (connect + prepare, already satisfied): {:.3} s; per server: {} SSH connection(s), {} command(s)",
        first.wall.as_secs_f64(),
        spread(
            &first_counts
                .iter()
                .map(|c| c.connections)
                .collect::<Vec<_>>()
        ),
        spread(&first_counts.iter().map(|c| c.commands).collect::<Vec<_>>()),
    );
    for line in figures {
        println!("{line} (target: 1 connection, a small constant number of commands)");
    }
    println!("servers-20: load average at the end: {}", load_average());
    Ok(())
}

/// The figures of one case (remote or local) for one command.
struct CaseRuns {
    times: Vec<Duration>,
    /// Docker calls per run, as the case's counting proxy saw them.
    calls: Vec<Vec<Call>>,
    /// The sshd's counts per run (remote case only).
    ssh: Vec<SshCounts>,
}

fn measure_case(
    bin: &Path,
    ws: &Workspace,
    args: &[&str],
    docker_host: &str,
    counter: &CallCounter,
    sshd: Option<&Sshd>,
) -> Result<CaseRuns> {
    let mut out = CaseRuns {
        times: Vec::new(),
        calls: Vec::new(),
        ssh: Vec::new(),
    };
    let sshds: Vec<&Sshd> = sshd.into_iter().collect();
    for _ in 0..RUNS {
        counter.reset();
        let marks = LogMarks::take(&sshds);
        let run = ws.run_expect(bin, args, docker_host, None, 0)?;
        if args[0] == "apply" {
            check_noop_apply(&run)?;
        }
        out.times.push(run.wall);
        out.calls.push(counter.requests());
        out.ssh.extend(marks.counts(&sshds));
    }
    Ok(out)
}

fn describe_calls(runs: &CaseRuns) -> String {
    let totals: Vec<usize> = runs.calls.iter().map(Vec::len).collect();
    let lists: Vec<usize> = runs
        .calls
        .iter()
        .map(|c| c.iter().filter(|c| is_list(c)).count())
        .collect();
    let mutating: Vec<usize> = runs
        .calls
        .iter()
        .map(|c| c.iter().filter(|c| is_mutating(c)).count())
        .collect();
    format!(
        "{} Docker call(s) per run ({} container list, {} mutating; last run: {})",
        spread(&totals),
        spread(&lists),
        spread(&mutating),
        breakdown(runs.calls.last().map(Vec::as_slice).unwrap_or(&[]))
    )
}

pub fn remote_noop_100(bin: &Path) -> Result<()> {
    const APPS: usize = 100;
    let test_engine = engine();
    let host = test_engine.docker_host();
    let mut sshd = Sshd::start();
    log_channel_opens(&mut sshd)?;
    // The server's Docker socket: a counting proxy in front of the engine, reached through the
    // SSH tunnel like /var/run/docker.sock would be.
    let remote_engine = CallCounter::start_for(test_engine.socket());
    // DOCKER_HOST of the remote case: it should see nothing.
    let remote_local = CallCounter::start_for(test_engine.socket());
    // DOCKER_HOST of the local case.
    let local_engine = CallCounter::start_for(test_engine.socket());

    let remote_prefix = unique_name("rnoop");
    let local_prefix = unique_name("lnoop");
    let remote = Workspace::new("remote")?;
    let local = Workspace::new("local")?;
    remote.set_secret(
        bin,
        "ssh-key",
        &sshd.client_key(ClientKey::Ed25519),
        &remote_local.docker_host(),
    )?;
    remote.write(
        "server.yaml",
        &server_doc(
            "srv",
            &sshd,
            "ssh-key",
            &format!("  dockerSocket: {}\n", remote_engine.socket().display()),
        ),
    )?;
    let names =
        |prefix: &str| -> Vec<String> { (0..APPS).map(|i| format!("{prefix}-{i:03}")).collect() };
    let remote_apps: String = names(&remote_prefix)
        .iter()
        .map(|n| app_doc(n, "srv", test_engine.image()))
        .collect();
    let local_apps: String = names(&local_prefix)
        .iter()
        .map(|n| app_doc(n, "local", test_engine.image()))
        .collect();
    remote.write("apps.yaml", &remote_apps)?;
    local.write("apps.yaml", &local_apps)?;

    let result = (|| -> Result<()> {
        let remote_host = remote_local.docker_host();
        let local_host = local_engine.docker_host();
        let remote_first = remote.run_expect(bin, &["apply", "--yes"], &remote_host, None, 0)?;
        let local_first = local.run_expect(bin, &["apply", "--yes"], &local_host, None, 0)?;
        for (run, want) in [(&remote_first, APPS + 1), (&local_first, APPS)] {
            if !run
                .stdout
                .contains(&format!("Apply complete: {want} created"))
            {
                bail!("the first apply should create {want} resources:\n{run}");
            }
        }
        let running = |prefix: &str| -> Result<usize> {
            let out = crate::docker(
                &host,
                &[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("name=^{prefix}-"),
                    "--filter",
                    "status=running",
                ],
            )?;
            Ok(out.split_whitespace().count())
        };
        for prefix in [&remote_prefix, &local_prefix] {
            let n = running(prefix)?;
            if n != APPS {
                bail!("{n} of {APPS} containers named {prefix}-* run after the first apply");
            }
        }
        eprintln!(
            "remote-noop-100: first apply (from scratch) remote {:.2} s, local {:.2} s",
            remote_first.wall.as_secs_f64(),
            local_first.wall.as_secs_f64()
        );

        for (label, args) in [
            ("no-op diff --refresh", &["diff", "--refresh"][..]),
            ("no-op apply --yes", &["apply", "--yes"][..]),
        ] {
            remote_local.reset();
            let r = measure_case(
                bin,
                &remote,
                args,
                &remote_host,
                &remote_engine,
                Some(&sshd),
            )?;
            let l = measure_case(bin, &local, args, &local_host, &local_engine, None)?;
            let (rm, lm) = (median(&r.times), median(&l.times));
            println!(
                "remote-noop-100: {label}: median wall remote {rm:.3} s vs local {lm:.3} s over {RUNS} runs (ratio {:.2})",
                rm / lm
            );
            let conns: Vec<usize> = r.ssh.iter().map(|c| c.connections).collect();
            let cmds: Vec<usize> = r.ssh.iter().map(|c| c.commands).collect();
            let chans: Vec<usize> = r.ssh.iter().map(|c| c.streamlocal).collect();
            let remote_local_calls = remote_local.requests();
            println!(
                "remote-noop-100: {label}: remote per run: {} SSH connection(s), {} command(s), {} direct-streamlocal channel(s); through the tunnel {}; local Docker calls of the remote case over the {RUNS} runs: {} ({}) (target: 1 list call over the tunnel)",
                spread(&conns),
                spread(&cmds),
                spread(&chans),
                describe_calls(&r),
                remote_local_calls.len(),
                breakdown(&remote_local_calls),
            );
            println!(
                "remote-noop-100: {label}: local per run: {}",
                describe_calls(&l)
            );
        }
        println!(
            "remote-noop-100: load average at the end: {}",
            load_average()
        );
        Ok(())
    })();
    let cleanup_remote = remove_prefixed(&host, &remote_prefix);
    let cleanup_local = remove_prefixed(&host, &local_prefix);
    drop(sshd);
    result?;
    cleanup_remote?;
    cleanup_local?;
    Ok(())
}
