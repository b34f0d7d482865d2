//! Benchmarks of `ballast daemon`, the real release binary against the real engine.
//!
//! - `daemon-latency`: edit-to-reconcile latency of the file watcher (debounce 100ms, the
//!   default): the time between writing a manifest and the daemon's `reconcile started` line for
//!   that resource.
//! - `daemon-1k`: 1,000 in-sync apps (created once with `ballast apply --yes`), then
//!   `daemon-ready-1k` (spawn to `daemon ready`), `daemon-resync-1k` (Docker calls per resync,
//!   counted by a socket proxy, and the daemon's CPU time per resync; `ballast diff --refresh`
//!   wall time as a proxy for one resync's observe + plan) and `daemon-idle-1k` (RSS and CPU of
//!   the idle daemon).
//!
//! Every daemon's log (stderr, `BALLAST_LOG=info`) goes to a file in the benchmark's temp
//! directory; its lines start with an RFC 3339 UTC timestamp.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use ballast_test_support::docker::{Call, CallCounter, engine, unique_name};

use crate::{ballast, docker};

/// The test image's command: exits at once on SIGTERM, so stops are fast.
const COMMAND: &str = r#"[sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

fn app_doc(name: &str, image: &str, value: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  pullPolicy: Never\n  command: {COMMAND}\n  env: {{V: \"{value}\"}}\n"
    )
}

/// A running `ballast daemon` with its log in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
    spawned: Instant,
}

impl Daemon {
    /// Starts the daemon on `dir` (the layout `crate::ballast` uses) with this config text.
    fn start(bin: &Path, dir: &Path, host: &str, config: &str, tag: &str) -> Result<Daemon> {
        let config_path = dir.join(format!("daemon-{tag}.toml"));
        std::fs::write(&config_path, config)?;
        let log = dir.join(format!("daemon-{tag}.log"));
        let log_file = File::create(&log)?;
        let spawned = Instant::now();
        let child = Command::new(bin)
            .arg("daemon")
            .arg("--config")
            .arg(&config_path)
            .env(
                "BALLAST_DATABASE_URL",
                format!("sqlite://{}", dir.join("ballast.db").display()),
            )
            .env("BALLAST_KEY_FILE", dir.join("ballast.key"))
            .env("BALLAST_MANIFESTS", dir.join("manifests"))
            .env("DOCKER_HOST", host)
            .env("BALLAST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("start ballast daemon")?;
        Ok(Daemon {
            child,
            log,
            spawned,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn tail(&self) -> Result<LogTail> {
        LogTail::open(&self.log)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails when the daemon has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the daemon exited ({status}):\n{}",
                last_lines(&self.log_text(), 30)
            );
        }
        Ok(())
    }

    /// Waits for a log line containing `needle` (from the start of the log); returns the line
    /// and when this process first saw it.
    fn wait_for(&mut self, needle: &str, within: Duration) -> Result<(String, Instant)> {
        let mut tail = self.tail()?;
        let deadline = Instant::now() + within;
        loop {
            for line in tail.new_lines()? {
                if line.contains(needle) {
                    return Ok((line, Instant::now()));
                }
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for `{needle}` in the daemon's log:\n{}",
                    last_lines(&self.log_text(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then waits for the exit; returns how long the stop took.
    fn stop(&mut self, within: Duration) -> Result<Duration> {
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the daemon exited {status} after SIGTERM:\n{}",
                        last_lines(&self.log_text(), 30)
                    );
                }
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("the daemon did not exit within {within:?} of SIGTERM")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads the complete lines appended to a log file since the last call.
struct LogTail {
    file: File,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn open(path: &Path) -> Result<LogTail> {
        Ok(LogTail {
            file: File::open(path).with_context(|| format!("open {}", path.display()))?,
            offset: 0,
            partial: String::new(),
        })
    }

    fn new_lines(&mut self) -> Result<Vec<String>> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            lines.push(strip_ansi(line.trim_end()));
        }
        Ok(lines)
    }
}

/// Drops ANSI escape sequences (`ESC [ ... letter`), in case the log is coloured.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the RFC 3339 UTC timestamp at the start of a log line
/// (`2025-06-02T10:11:12.123456Z`, `Z` or `+00:00`).
fn line_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let y: i64 = date_parts.next()?.parse().ok()?;
    let mo: i64 = date_parts.next()?.parse().ok()?;
    let d: i64 = date_parts.next()?.parse().ok()?;
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let mut time_parts = time.splitn(3, ':');
    let h: i64 = time_parts.next()?.parse().ok()?;
    let mi: i64 = time_parts.next()?.parse().ok()?;
    let sec = time_parts.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let s: i64 = whole.parse().ok()?;
    let mut nanos: u64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += u64::from(c.to_digit(10)?) * 10u64.pow(8 - i as u32);
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?) + Duration::from_nanos(nanos))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Force-removes the containers whose names start with `prefix`, 100 at a time.
fn remove_prefixed_batched(host: &str, prefix: &str) -> Result<usize> {
    let ids = docker(host, &["ps", "-aq", "--filter", &format!("name=^{prefix}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for chunk in ids.chunks(100) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk);
        docker(host, &args)?;
    }
    Ok(ids.len())
}

// ---------------------------------------------------------------------------------------------
// daemon-latency

const EDITS: usize = 100;
const LATENCY_APPS: usize = 5;

pub fn daemon_latency(bin: &Path) -> Result<()> {
    let test_engine = engine();
    let host = test_engine.docker_host();
    let image = test_engine.image().to_string();
    let work = tempfile::tempdir()?;
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let prefix = unique_name("dlat");
    let names: Vec<String> = (0..LATENCY_APPS).map(|i| format!("{prefix}-{i}")).collect();
    for name in &names {
        std::fs::write(
            manifests.join(format!("{name}.yaml")),
            app_doc(name, &image, "0"),
        )?;
    }
    let result = (|| -> Result<()> {
        ballast(bin, work.path(), &host, &["apply", "--yes"])?;
        let mut daemon = Daemon::start(
            bin,
            work.path(),
            &host,
            "resync-interval = \"1h\"\ndebounce = \"100ms\"\n",
            "latency",
        )?;
        daemon.wait_for("daemon ready", Duration::from_secs(30))?;
        // Let the start-up re-check of the 5 apps finish.
        std::thread::sleep(Duration::from_secs(2));
        let mut tail = daemon.tail()?;
        tail.new_lines()?;
        let mut latencies = Vec::with_capacity(EDITS);
        for edit in 0..EDITS {
            let name = &names[edit % names.len()];
            let path = manifests.join(format!("{name}.yaml"));
            let text = app_doc(name, &image, &format!("{}", edit + 1));
            tail.new_lines()?;
            std::fs::write(&path, text)?;
            let written = SystemTime::now();
            let started = format!("resource=App/{name} ");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut seen_start = None;
            // Wait for `reconcile started`, then for the reconcile to end, so edits never overlap.
            'wait: loop {
                for line in tail.new_lines()? {
                    let ours =
                        line.contains(&started) || line.ends_with(&started[..started.len() - 1]);
                    if !ours {
                        continue;
                    }
                    if seen_start.is_none() && line.contains("reconcile started") {
                        let at = line_time(&line)
                            .ok_or_else(|| anyhow!("no timestamp on the log line: {line}"))?;
                        seen_start = Some(at);
                    }
                    if seen_start.is_some()
                        && (line.contains("reconcile done") || line.contains("reconcile failed"))
                    {
                        break 'wait;
                    }
                }
                daemon.check_alive()?;
                if Instant::now() > deadline {
                    bail!(
                        "edit {edit} of {name}: no complete reconcile within 20 s:\n{}",
                        last_lines(&daemon.log_text(), 30)
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let at = seen_start.expect("set before the loop ends");
            let latency = match at.duration_since(written) {
                Ok(d) => d.as_secs_f64() * 1000.0,
                Err(e) => -(e.duration().as_secs_f64() * 1000.0),
            };
            latencies.push(latency);
        }
        daemon.stop(Duration::from_secs(60))?;
        let failed = daemon.log_text().matches("reconcile failed").count();
        latencies.sort_by(f64::total_cmp);
        println!(
            "daemon-latency: {EDITS} edits over {LATENCY_APPS} apps, debounce 100ms (default): write -> `reconcile started` p50 {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0}; {failed} reconciles failed) (target: p50 <= 150 ms, p99 <= 500 ms)",
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies[0],
            latencies[latencies.len() - 1],
        );
        Ok(())
    })();
    remove_prefixed_batched(&host, &prefix)?;
    result
}

// ---------------------------------------------------------------------------------------------
// daemon-1k: ready, resync and idle figures on 1,000 in-sync apps

const APPS_1K: usize = 1000;

/// `utime + stime` of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad stat: {stat}"))? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let utime: u64 = fields
        .get(11)
        .ok_or_else(|| anyhow!("short stat"))?
        .parse()?;
    let stime: u64 = fields
        .get(12)
        .ok_or_else(|| anyhow!("short stat"))?
        .parse()?;
    Ok(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("bad line {line}"))?
        .parse()?)
}

fn is_list(call: &Call) -> bool {
    call.method == "GET" && call.path == "/containers/json"
}

/// Waits until the proxy has seen no request for `quiet` (the start-up re-check of every key is
/// over); returns how many requests it saw and when the last one arrived.
fn wait_quiet(
    counter: &CallCounter,
    daemon: &mut Daemon,
    quiet: Duration,
    within: Duration,
) -> Result<(usize, Instant)> {
    let deadline = Instant::now() + within;
    let mut seen = counter.requests().len();
    let mut last_change = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = counter.requests().len();
        if now != seen {
            seen = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return Ok((seen, last_change));
        }
        daemon.check_alive()?;
        if Instant::now() > deadline {
            bail!("the daemon's Docker calls did not settle within {within:?}");
        }
    }
}

pub fn daemon_1k(bin: &Path) -> Result<()> {
    let test_engine = engine();
    let host = test_engine.docker_host();
    let image = test_engine.image().to_string();
    let work = tempfile::tempdir()?;
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let prefix = unique_name("d1k");
    let names: Vec<String> = (0..APPS_1K).map(|i| format!("{prefix}-{i:04}")).collect();
    for (chunk_index, chunk) in names.chunks(100).enumerate() {
        let text: String = chunk
            .iter()
            .map(|n| app_doc(n, &image, n) + "---\n")
            .collect();
        std::fs::write(manifests.join(format!("apps-{chunk_index:02}.yaml")), text)?;
    }
    let result = (|| -> Result<()> {
        eprintln!("daemon-1k: creating {APPS_1K} containers with `ballast apply --yes` ...");
        let took = ballast(bin, work.path(), &host, &["apply", "--yes"])?;
        eprintln!("daemon-1k: created in {:.0} s", took.as_secs_f64());
        let running = docker(
            &host,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("name=^{prefix}"),
                "--filter",
                "status=running",
            ],
        )?
        .split_whitespace()
        .count();
        if running != APPS_1K {
            bail!("{running} of {APPS_1K} containers running after apply");
        }
        ready_1k(bin, work.path(), &host)?;
        resync_1k(bin, work.path())?;
        idle_1k(bin, work.path())?;
        diff_refresh_1k(bin, work.path(), &host)?;
        Ok(())
    })();
    eprintln!("daemon-1k: removing the containers ...");
    let removed = remove_prefixed_batched(&host, &prefix)?;
    eprintln!("daemon-1k: removed {removed}");
    result
}

/// Spawn to `daemon ready`, median of 3 starts, each stopped with SIGTERM.
fn ready_1k(bin: &Path, dir: &Path, host: &str) -> Result<()> {
    let mut runs = Vec::new();
    let mut reported = Vec::new();
    let mut stops = Vec::new();
    for run in 0..3 {
        let mut daemon = Daemon::start(
            bin,
            dir,
            host,
            "resync-interval = \"5m\"\n",
            &format!("ready-{run}"),
        )?;
        let (line, seen) = daemon.wait_for("daemon ready", Duration::from_secs(120))?;
        runs.push(seen - daemon.spawned);
        if let Some(ms) = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("elapsed_ms="))
        {
            reported.push(ms.to_string());
        }
        stops.push(daemon.stop(Duration::from_secs(120))?);
    }
    let mut sorted = runs.clone();
    sorted.sort();
    println!(
        "daemon-ready-1k: spawn -> `daemon ready` median {:.2} s of 3 starts ({}; daemon's own elapsed_ms {}; SIGTERM -> exit {}) (target: <= 2 s)",
        sorted[1].as_secs_f64(),
        runs.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        reported.join(", "),
        stops
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(())
}

/// Docker calls per resync (resync-interval 2s) through the counting proxy, after the start-up
/// re-check has settled; the daemon's CPU time over exactly two resyncs.
fn resync_1k(bin: &Path, dir: &Path) -> Result<()> {
    let counter = CallCounter::start();
    let mut daemon = Daemon::start(
        bin,
        dir,
        &counter.docker_host(),
        "resync-interval = \"2s\"\n",
        "resync",
    )?;
    daemon.wait_for("daemon ready", Duration::from_secs(120))?;
    let ready = Instant::now();
    // Wait until the start-up check (one observation, then only what differs) is over.
    let (startup_calls, last) = wait_quiet(
        &counter,
        &mut daemon,
        Duration::from_millis(1500),
        Duration::from_secs(600),
    )?;
    let startup_secs = (last - ready).as_secs_f64();
    // Count from the first list call after the reset (resync A) up to the second one after it
    // (resync C): exactly two resyncs, A and B.
    let wait_list = |from: usize, within: Duration| -> Result<(usize, Instant, u64)> {
        let deadline = Instant::now() + within;
        loop {
            let calls = counter.requests();
            if let Some(i) = calls[from.min(calls.len())..].iter().position(is_list) {
                let ticks = cpu_ticks(daemon.pid())?;
                return Ok((from + i + 1, Instant::now(), ticks));
            }
            if Instant::now() > deadline {
                bail!("no resync list call within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    counter.reset();
    let (after_a, at_a, ticks_a) = wait_list(0, Duration::from_secs(10))?;
    let (after_b, at_b, _) = wait_list(after_a, Duration::from_secs(10))?;
    let (after_c, at_c, ticks_c) = wait_list(after_b, Duration::from_secs(10))?;
    let calls = counter.requests();
    // Calls of resyncs A and B: from A's list call up to (not including) C's.
    let window = &calls[after_a - 1..after_c - 1];
    let lists = window.iter().filter(|c| is_list(c)).count();
    let mutating = window
        .iter()
        .filter(|c| c.method != "GET" && c.method != "HEAD")
        .count();
    let cpu_per_resync = (ticks_c - ticks_a) as f64 / clock_ticks_per_sec() / 2.0;
    let drift_lines = daemon.log_text().matches("drift found").count();
    daemon.stop(Duration::from_secs(120))?;
    println!(
        "daemon-resync-1k: {APPS_1K} in-sync apps, resync-interval 2s: Docker calls per resync {:.1} ({:.1} container list, {:.1} mutating), daemon CPU per resync {:.0} ms, resync starts {:.2} s and {:.2} s apart, {drift_lines} drift lines (after start-up re-check of every key: {startup_calls} calls over {startup_secs:.1} s after ready) (target: 1 list, 0 mutating)",
        window.len() as f64 / 2.0,
        lists as f64 / 2.0,
        mutating as f64 / 2.0,
        cpu_per_resync * 1000.0,
        (at_b - at_a).as_secs_f64(),
        (at_c - at_b).as_secs_f64(),
    );
    Ok(())
}

/// RSS and CPU of the idle daemon (resync 5m) over 20 s, from 10 s after the start-up re-check.
fn idle_1k(bin: &Path, dir: &Path) -> Result<()> {
    // The proxy only tells when the start-up re-check is over; it is not in the daemon's process.
    let counter = CallCounter::start();
    let mut daemon = Daemon::start(
        bin,
        dir,
        &counter.docker_host(),
        "resync-interval = \"5m\"\n",
        "idle",
    )?;
    daemon.wait_for("daemon ready", Duration::from_secs(120))?;
    let ready = Instant::now();
    wait_quiet(
        &counter,
        &mut daemon,
        Duration::from_millis(1500),
        Duration::from_secs(600),
    )?;
    let settled = ready.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let pid = daemon.pid();
    let ticks_start = cpu_ticks(pid)?;
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(20) {
        rss.push(status_kib(pid, "VmRSS:")?);
        std::thread::sleep(Duration::from_secs(1));
    }
    let ticks_end = cpu_ticks(pid)?;
    let wall = start.elapsed().as_secs_f64();
    rss.push(status_kib(pid, "VmRSS:")?);
    let hwm = status_kib(pid, "VmHWM:")?;
    let idle_calls = counter.requests().len();
    daemon.check_alive()?;
    daemon.stop(Duration::from_secs(120))?;
    let cpu_pct = (ticks_end - ticks_start) as f64 / clock_ticks_per_sec() / wall * 100.0;
    println!(
        "daemon-idle-1k: {APPS_1K} apps, resync-interval 5m, sampled 20 s from 10 s after the start-up re-check settled ({:.1} s after ready): RSS {:.1} MiB (max {:.1}, peak since start {:.1}), CPU {:.2} % ({} ticks) (target: <= 40 MiB, < 1 %); {idle_calls} Docker calls since start",
        settled.as_secs_f64(),
        *rss.last().unwrap_or(&0) as f64 / 1024.0,
        *rss.iter().max().unwrap_or(&0) as f64 / 1024.0,
        hwm as f64 / 1024.0,
        cpu_pct,
        ticks_end - ticks_start,
    );
    Ok(())
}

/// `ballast diff --refresh` (observe the engine and plan) of the 1,000 apps: a proxy for one
/// resync's observe + plan, median of 3.
fn diff_refresh_1k(bin: &Path, dir: &Path, host: &str) -> Result<()> {
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(ballast(bin, dir, host, &["diff", "--refresh"])?);
    }
    times.sort();
    println!(
        "daemon-resync-1k (proxy): `ballast diff --refresh` of the {APPS_1K} in-sync apps, a stand-in for one resync's observe + plan (plus process start and manifest load): median {:.3} s of 3",
        times[1].as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_log_timestamp() {
        let t =
            line_time("2025-06-02T10:11:12.123456Z  INFO ballast_daemon: daemon ready").unwrap();
        let since = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since.as_secs(), 1_748_859_072);
        assert_eq!(since.subsec_micros(), 123_456);
        assert_eq!(
            strip_ansi("\u{1b}[2m2025-06-02T10:11:12Z\u{1b}[0m x"),
            "2025-06-02T10:11:12Z x"
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
    }
}
