//! sushy-tools' Redfish emulator (`sushy-emulator --fake`, PyPI `sushy-tools`, the emulator
//! OpenStack Ironic tests against) for tests: systems, managers, power and
//! `ComputerSystem.Reset`, with basic auth from an htpasswd file (bcrypt) and TLS with a
//! certificate from a generated CA.
//!
//! It runs from a venv at `$HOME/.cache/ballast-test/sushy-tools-venv` (`scripts/test.sh`
//! creates it; otherwise the first test creates it with pip, under a cross-process lock). Each
//! emulator gets its own port, config, htpasswd and state directory (the fake driver keeps its
//! systems in SQLite under `SUSHY_EMULATOR_STATE_DIR`, shared through `/tmp/sushy-emulator` if
//! left unset).
//!
//! What it does not offer (checked against its source, version 2.2.0): no SessionService (the
//! client falls back to basic auth), no `$expand`, no FirmwareInventory for the fake driver.
//! Power changes of the fake driver land 1 to 11 s after the request (random).

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bmc::TestCa;

/// The pinned version: its quirks are the ones the tests expect.
pub const SUSHY_TOOLS: &str = "sushy-tools==2.2.0";

/// The system's UUID (the fake driver addresses systems by UUID; the name redirects to it).
pub const SYSTEM_UUID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
/// The system's name.
pub const SYSTEM_NAME: &str = "fake";

/// The venv the emulator runs from.
pub fn venv_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/ballast-test/sushy-tools-venv")
}

fn install_hint() -> String {
    let venv = venv_dir();
    format!(
        "install it with: python3 -m venv {v} && {v}/bin/pip install '{SUSHY_TOOLS}' (scripts/test.sh does this)",
        v = venv.display()
    )
}

/// Creates the venv with sushy-tools unless it is there, under a cross-process lock. Panics
/// with an install hint when python3 or pip fail.
pub fn ensure_venv() -> PathBuf {
    let venv = venv_dir();
    let emulator = venv.join("bin/sushy-emulator");
    if emulator.exists() {
        return venv;
    }
    let _lock = crate::shared_lock("ballast-sushy-tools-venv")
        .unwrap_or_else(|e| panic!("locking the sushy-tools venv: {e:#}"));
    if emulator.exists() {
        return venv;
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    let run = |cmd: &mut Command, what: &str| {
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}; {}", install_hint()));
        if !output.status.success() {
            panic!(
                "{what} failed: {}\n{}; {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                install_hint()
            );
        }
    };
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating a venv for sushy-tools (python3 -m venv)",
    );
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", SUSHY_TOOLS]),
        "installing sushy-tools with pip",
    );
    if !emulator.exists() {
        panic!(
            "pip installed sushy-tools but {} is missing; {}",
            emulator.display(),
            install_hint()
        );
    }
    venv
}

/// A running `sushy-emulator --fake` on 127.0.0.1 over HTTPS with basic auth; stopped when
/// dropped.
pub struct Sushy {
    pub port: u16,
    pub username: String,
    pub password: String,
    ca: TestCa,
    dir: TempDir,
    child: Option<Child>,
}

impl std::fmt::Debug for Sushy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sushy")
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Sushy {
    /// Starts the emulator with one fake system (`fake`, powered on) and one user.
    pub fn start() -> Sushy {
        let venv = ensure_venv();
        let dir = tempfile::Builder::new()
            .prefix("ballast-sushy-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let ca = TestCa::generate();
        let (_, cert, key) = ca.write_to(dir.path());
        let username = "admin".to_string();
        let password = random_password();
        let htpasswd = dir.path().join("htpasswd");
        write_htpasswd(&venv, &htpasswd, &username, &password);
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap_or_else(|e| panic!("creating {}: {e}", state.display()));
        let port = free_port();
        let config = dir.path().join("emulator.conf");
        let text = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = {port}
SUSHY_EMULATOR_SSL_CERT = {cert:?}
SUSHY_EMULATOR_SSL_KEY = {key:?}
SUSHY_EMULATOR_AUTH_FILE = {htpasswd:?}
SUSHY_EMULATOR_STATE_DIR = {state:?}
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_FAKE_SYSTEMS = [
    {{'uuid': '{SYSTEM_UUID}', 'name': '{SYSTEM_NAME}', 'power_state': 'On',
      'nics': [{{'mac': '00:5c:52:31:3a:9c', 'ip': '172.22.0.100'}}]}},
]
"
        );
        fs::write(&config, text).unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let log = fs::File::create(dir.path().join("emulator.log"))
            .unwrap_or_else(|e| panic!("creating the emulator log: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning the log handle: {e}"));
        let child = Command::new(venv.join("bin/sushy-emulator"))
            .arg("--config")
            .arg(&config)
            .env("SUSHY_EMULATOR_CONFIG", &config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting sushy-emulator: {e}; {}", install_hint()));
        let mut sushy = Sushy {
            port,
            username,
            password,
            ca,
            dir,
            child: Some(child),
        };
        sushy.wait_ready();
        sushy
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the emulator's certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca.ca_pem
    }

    /// The CA as a file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The SHA-256 fingerprint of the emulator's certificate (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// What the emulator logged (Flask's request log), for assertion messages and counting.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// Requests whose log line contains `needle` (e.g. `"GET /redfish/v1/Systems "`).
    pub fn logged_requests(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "sushy-emulator exited ({status}) before answering; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "sushy-emulator did not answer on port {} within 30 s; its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An Apache-style htpasswd line with a bcrypt hash (the only kind sushy-tools accepts), made
/// by the venv's own `bcrypt` module; the password goes through stdin, never argv.
fn write_htpasswd(venv: &Path, path: &Path, username: &str, password: &str) {
    let mut child = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(rounds=4)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running the venv's python for bcrypt: {e}; {}", install_hint()));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(password.as_bytes())
            .unwrap_or_else(|e| panic!("writing to python: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for python: {e}"));
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !hash.starts_with("$2") {
        panic!(
            "hashing the password with bcrypt failed: {}; {}",
            String::from_utf8_lossy(&output.stderr),
            install_hint()
        );
    }
    fs::write(path, format!("{username}:{hash}\n"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap_or_else(|e| panic!("reading /dev/urandom: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("binding a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading the bound port: {e}"))
        .port()
}
