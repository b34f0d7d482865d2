//! PostgreSQL for tests.
//!
//! [`postgres_url`] returns the URL of a fresh, empty database. The server is
//! `BALLAST_TEST_POSTGRES_URL` if that is set (any PostgreSQL the tests may create databases
//! on); otherwise one server per test process, started from Debian's `postgresql` package:
//!
//! - `initdb` runs once per PostgreSQL version and user into a template directory under the
//!   temp dir (created under a staging name and renamed into place, so concurrent test
//!   processes agree on one); each server copies it, which is much faster than `initdb`.
//! - The server listens on 127.0.0.1 at a free port with trust authentication, its socket and
//!   data in a directory of its own, and durability off (`fsync=off`): test data is disposable.
//! - PostgreSQL refuses to run as root, so under root it runs as the `postgres` user (or
//!   `nobody`) through `setpriv`, with its directories chowned to that user.
//! - It is started by a small shell wrapper whose stdin is a pipe from the test process. When
//!   the test process exits, however it exits, the pipe closes; the wrapper then stops the
//!   server (fast shutdown) and deletes its directory. Should the wrapper itself be killed, the
//!   next test process finds the orphaned server (its owner process is gone) and stops it.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use sea_orm::{ConnectionTrait, Database};

/// Set this to use an existing server instead of starting one.
pub const POSTGRES_URL_ENV: &str = "BALLAST_TEST_POSTGRES_URL";

const NOT_INSTALLED: &str = "PostgreSQL is not installed: run `apt-get install -y postgresql` (the .ci/run script does this)";

/// Prefix of the per-server directories in the temp dir.
const INSTANCE_PREFIX: &str = "ballast-pg-run-";

/// Stops the server and removes its directory once stdin reaches end of file, i.e. when the
/// test process that holds the other end exits.
const WRAPPER: &str = r#"
dir="$1"; shift
"$@" </dev/null >>"$dir/postgres.log" 2>&1 &
pg=$!
echo "$pg" >"$dir/postgres.pid"
cat >/dev/null
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$dir"
"#;

/// A PostgreSQL server started by this process.
struct Server {
    /// URL of the `postgres` database, for creating test databases.
    admin_url: String,
    /// Keeps the wrapper waiting; closed (and the server stopped) when this process exits.
    _lifeline: ChildStdin,
    _wrapper: Child,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The URL of a new, empty database for one test (`postgres://…/test_<uuid>`).
///
/// Panics with instructions if PostgreSQL is not installed or cannot be started.
pub async fn postgres_url() -> String {
    let admin_url = match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => tokio::task::spawn_blocking(|| match SERVER.get_or_init(start_server) {
            Ok(server) => server.admin_url.clone(),
            Err(message) => panic!("{message}"),
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
    };

    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url.as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
    with_database(&admin_url, &name)
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A user PostgreSQL may run as.
#[derive(Debug, Clone)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn start_server() -> Result<Server, String> {
    let bin = find_bin_dir().ok_or_else(|| NOT_INSTALLED.to_string())?;
    let run_as = if effective_uid() == Some(0) {
        Some(unprivileged_user()?)
    } else {
        None
    };
    sweep_orphans();
    let template = ensure_template(&bin, run_as.as_ref())?;

    let mut last_error = String::new();
    for _ in 0..5 {
        match start_instance(&bin, run_as.as_ref(), &template) {
            Ok(server) => return Ok(server),
            Err(Retry::Port(e)) => last_error = e,
            Err(Retry::No(e)) => return Err(e),
        }
    }
    Err(format!(
        "could not start PostgreSQL for the tests: {last_error}"
    ))
}

enum Retry {
    /// The port was taken between choosing it and binding it: try another.
    Port(String),
    No(String),
}

fn start_instance(bin: &Path, run_as: Option<&RunAs>, template: &Path) -> Result<Server, Retry> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Retry::No(format!("{what}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix(INSTANCE_PREFIX)
        .tempdir()
        .map_err(|e| fail("cannot create a directory for PostgreSQL", &e))?
        .keep();
    let data = dir.join("data");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&data)
        .status()
        .map_err(|e| fail("cannot run cp", &e))?;
    if !copied.success() {
        let _ = fs::remove_dir_all(&dir);
        return Err(Retry::No(format!(
            "cannot copy the PostgreSQL template {} to {}",
            template.display(),
            data.display()
        )));
    }
    fs::write(dir.join("owner.pid"), std::process::id().to_string())
        .map_err(|e| fail("cannot write owner.pid", &e))?;
    if let Some(user) = run_as {
        chown(&dir, user).map_err(|e| fail("cannot chown the PostgreSQL directory", &e))?;
    }

    let port = free_port().map_err(|e| fail("cannot find a free port", &e))?;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("sh")
        .arg(&dir)
        .args(run_as_prefix(run_as))
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut wrapper = command
        .spawn()
        .map_err(|e| fail("cannot start the PostgreSQL wrapper (sh)", &e))?;
    let Some(lifeline) = wrapper.stdin.take() else {
        return Err(Retry::No("the wrapper has no stdin pipe".to_string()));
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return Ok(Server {
                admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                _lifeline: lifeline,
                _wrapper: wrapper,
            });
        }
        let log = fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        let postmaster_gone = fs::read_to_string(dir.join("postgres.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if postmaster_gone || Instant::now() > deadline {
            // Closing the lifeline makes the wrapper clean up the directory.
            drop(lifeline);
            let _ = wrapper.wait();
            let message = format!("PostgreSQL on 127.0.0.1:{port} did not start; its log:\n{log}");
            return Err(if log.contains("Address already in use") {
                Retry::Port(message)
            } else {
                Retry::No(message)
            });
        }
        sleep(Duration::from_millis(100));
    }
}

/// The template data directory for this PostgreSQL version and user, made by `initdb` on
/// first use.
fn ensure_template(bin: &Path, run_as: Option<&RunAs>) -> Result<PathBuf, String> {
    let version = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.join("postgres").display()))?;
    let version = String::from_utf8_lossy(&version.stdout);
    let version: String = version
        .split_whitespace()
        .nth(2)
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let owner = run_as.map_or_else(|| effective_uid().unwrap_or(0), |u| u.uid);
    let parent = std::env::temp_dir().join(format!("ballast-pg-template-{version}-{owner}"));
    let template = parent.join("data");
    if template.join("PG_VERSION").is_file() && template.join("global/pg_control").is_file() {
        return Ok(template);
    }

    let staging = tempfile::Builder::new()
        .prefix("ballast-pg-staging-")
        .tempdir()
        .map_err(|e| format!("cannot create a staging directory for initdb: {e}"))?;
    if let Some(user) = run_as {
        chown(staging.path(), user).map_err(|e| format!("cannot chown for initdb: {e}"))?;
    }
    let output = command_as(run_as, &bin.join("initdb"))
        .arg("-D")
        .arg(staging.path().join("data"))
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .current_dir(staging.path())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Another test process may have won the race (or left a broken template): only a complete
    // template is ever put in place, and an existing one is replaced only if it is incomplete.
    if parent.exists() && !template.join("global/pg_control").is_file() {
        let _ = fs::remove_dir_all(&parent);
    }
    match fs::rename(staging.path(), &parent) {
        Ok(()) => {
            let _ = staging.keep();
        }
        Err(_) if template.join("global/pg_control").is_file() => {}
        Err(e) => {
            return Err(format!(
                "cannot move the initdb template to {}: {e}",
                parent.display()
            ));
        }
    }
    Ok(template)
}

/// A command running `program` as `run_as` (directly when not root).
fn command_as(run_as: Option<&RunAs>, program: &Path) -> Command {
    let prefix = run_as_prefix(run_as);
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Arguments that run the following command as `run_as` (nothing when not root).
fn run_as_prefix(run_as: Option<&RunAs>) -> Vec<std::ffi::OsString> {
    match run_as {
        None => Vec::new(),
        Some(user) => vec![
            "setpriv".into(),
            format!("--reuid={}", user.uid).into(),
            format!("--regid={}", user.gid).into(),
            "--clear-groups".into(),
            "--".into(),
        ],
    }
}

/// Stops servers whose test process is gone but whose wrapper was killed before it could
/// stop them, and removes their directories.
fn sweep_orphans() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_instance = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(INSTANCE_PREFIX));
        if !is_instance {
            continue;
        }
        let read_pid = |file: &str| {
            fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
        };
        let Some(owner) = read_pid("owner.pid") else {
            // Not fully set up yet, or set up by someone else: leave it unless it is old.
            if is_older_than(&dir, Duration::from_secs(3600)) {
                let _ = fs::remove_dir_all(&dir);
            }
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        if let Some(pid) = read_pid("postgres.pid") {
            // Only signal the process if it is still this directory's postmaster.
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let data = dir.join("data");
            if String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy()) {
                let _ = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                    sleep(Duration::from_millis(100));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn is_older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// The directory of the newest PostgreSQL server binaries: Debian's
/// `/usr/lib/postgresql/<version>/bin`, else wherever `pg_config --bindir` points.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            let complete = ["initdb", "postgres", "pg_isready"]
                .iter()
                .all(|b| bin.join(b).is_file());
            complete.then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        bin.join("initdb").is_file().then_some(bin)
    })
}

/// The effective uid of this process, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let mut status = String::new();
    fs::File::open("/proc/self/status")
        .ok()?
        .read_to_string(&mut status)
        .ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The user to run PostgreSQL as when the tests run as root: `postgres` (made by the Debian
/// package), else `nobody`.
fn unprivileged_user() -> Result<RunAs, String> {
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd to find a user for PostgreSQL: {e}"))?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4
                && fields[0] == wanted
                && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
                && uid != 0
            {
                return Ok(RunAs { uid, gid });
            }
        }
    }
    Err(
        "the tests run as root and there is no `postgres` or `nobody` user to run PostgreSQL as"
            .to_string(),
    )
}

fn chown(path: &Path, user: &RunAs) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "test_x"),
            "postgres://u:p@h:5432/test_x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "test_x"),
            "postgres://u@h/test_x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t"), "postgres://h:1/t");
    }
}
