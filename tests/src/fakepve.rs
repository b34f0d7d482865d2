//! A real Proxmox VE API peer for tests: PyPI's `fakepve[crypto]==0.5.0` (the PVE 9 API over
//! TLS, in memory), one instance per test.
//!
//! [`FakePve::start`] makes sure the virtualenv with fakepve exists (created under a
//! cross-process lock when missing, see [`venv_python`]), generates a CA and a leaf certificate
//! for 127.0.0.1 with rcgen (rustls refuses a self-signed certificate that is also a CA as a
//! server certificate, so it is a CA plus a leaf), and runs `support/fakepve/launcher.py`. The
//! launcher starts fakepve with an API token and a user password, seeds it (three nodes,
//! storage, the QEMU template [`TEMPLATE_VMID`], the LXC template [`CT_TEMPLATE`], the pool
//! [`POOL`]) and serves fakepve's scenarios on a loopback control port, which [`Control`] drives:
//! quorum loss, offline nodes, injected failures, locks, slow tasks, and the per-path request
//! log that lets a test count requests.
//!
//! Both ports are picked by the system and reported by the launcher, so parallel test
//! processes never collide. The launcher exits when its stdin closes: dropping the [`FakePve`]
//! (or the test process dying) takes it down.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// What the tests install: fakepve with the `crypto` extra (its certificate support).
pub const FAKEPVE_REQUIREMENT: &str = "fakepve[crypto]==0.5.0";
const FAKEPVE_VERSION: &str = "0.5.0";

/// The seeded QEMU template (on `pve1`): `scsi0` a 4 GiB disk on `local-lvm`, a cloud-init
/// drive on `ide2`, `net0` on `vmbr0`.
pub const TEMPLATE_VMID: u32 = 9000;
/// The seeded LXC OS template volume.
pub const CT_TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
/// The seeded nodes.
pub const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];
/// The seeded pool.
pub const POOL: &str = "homelab";
/// The seeded storages: `local` (dir: iso, vztmpl, backup), `local-lvm` (lvmthin: images,
/// rootdir), `ceph-pool` (rbd, shared: images, rootdir; slowed by [`Control::ceph_slow`]).
pub const STORAGES: [&str; 3] = ["local", "local-lvm", "ceph-pool"];

fn install_hint(venv: &Path) -> String {
    format!(
        "the Proxmox tests need `{FAKEPVE_REQUIREMENT}` from PyPI in the virtualenv {dir}; \
         `bash scripts/test.sh` installs it, or by hand: python3 -m venv {dir} && \
         {dir}/bin/pip install '{FAKEPVE_REQUIREMENT}' (Debian: apt-get install python3 python3-venv)",
        dir = venv.display()
    )
}

/// The virtualenv: `$BALLAST_FAKEPVE_VENV`, or `~/.cache/ballast-test/fakepve-venv` (where
/// `scripts/test.sh` puts it).
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BALLAST_FAKEPVE_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/ballast-test/fakepve-venv")
}

fn venv_ready(python: &Path) -> bool {
    let check = format!(
        "import importlib.metadata as m, aiohttp, cryptography, fakepve\n\
         assert m.version('fakepve') == '{FAKEPVE_VERSION}'"
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_logged(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run it: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        output.status,
        tail.join("\n")
    ))
}

/// The Python of the fakepve virtualenv, creating the virtualenv (under a cross-process lock)
/// when it is missing or holds another version. Panics with an install hint when it cannot.
pub fn venv_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PYTHON.get_or_init(|| {
        let dir = venv_dir();
        let python = dir.join("bin/python");
        if venv_ready(&python) {
            return Ok(python);
        }
        let _lock = crate::shared_lock("ballast-fakepve-venv").map_err(|e| format!("{e:#}"))?;
        // Another process may have made it while this one waited for the lock.
        if venv_ready(&python) {
            return Ok(python);
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
                FAKEPVE_REQUIREMENT,
            ]),
            &format!("pip install {FAKEPVE_REQUIREMENT}"),
        )?;
        if venv_ready(&python) {
            Ok(python)
        } else {
            Err(format!("{} still cannot import fakepve", python.display()))
        }
    });
    match result {
        Ok(python) => python.clone(),
        Err(why) => panic!("{why}\n{}", install_hint(&venv_dir())),
    }
}

/// The certificates of one instance.
struct Certs {
    ca_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
    leaf_fingerprint: String,
}

/// A SHA-256 fingerprint as Proxmox shows one: `AA:BB:…`.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn make_certs() -> Certs {
    fn fail<T>(e: rcgen::Error) -> T {
        panic!("generating the fakepve certificates: {e}")
    }
    let ca_key = KeyPair::generate().unwrap_or_else(fail);
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(fail);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ballast test fakepve CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap_or_else(fail);
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().unwrap_or_else(fail);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap_or_else(fail);
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap_or_else(fail);
    Certs {
        ca_pem: ca_cert.pem(),
        leaf_fingerprint: fingerprint(leaf_cert.der()),
        leaf_pem: leaf_cert.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

/// A CA that signed nothing the fake serves: for "wrong CA" tests.
pub fn unrelated_ca_pem() -> String {
    make_certs().ca_pem
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[derive(Deserialize)]
struct Ready {
    api_port: u16,
    control_port: u16,
}

/// A running fakepve on 127.0.0.1, stopped when dropped.
pub struct FakePve {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    pub api_port: u16,
    /// The CA that signed the server certificate (PEM file, and its text).
    pub ca_path: PathBuf,
    pub ca_pem: String,
    /// The SHA-256 fingerprint of the server certificate, `AA:BB:…`.
    pub cert_fingerprint: String,
    /// `root@pam!ballast`.
    pub token_id: String,
    pub token_secret: String,
    /// `root@pam`, for ticket logins.
    pub user: String,
    pub password: String,
    pub control: Control,
    dir: TempDir,
    child: Option<Child>,
}

impl std::fmt::Debug for FakePve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePve")
            .field("endpoint", &self.endpoint)
            .field("token_id", &self.token_id)
            .field("user", &self.user)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl FakePve {
    /// Starts a seeded fakepve. Panics with an install hint when fakepve is missing, and with
    /// the launcher's log when it does not come up.
    pub fn start() -> FakePve {
        let python = venv_python();
        let dir = tempfile::Builder::new()
            .prefix("ballast-fakepve-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory for fakepve: {e}"));
        let certs = make_certs();
        let ca_path = dir.path().join("ca.pem");
        let cert_path = dir.path().join("server.crt");
        let key_path = dir.path().join("server.key");
        write_file(&ca_path, &certs.ca_pem);
        write_file(&cert_path, &certs.leaf_pem);
        write_file(&key_path, &certs.leaf_key_pem);
        let log_path = dir.path().join("launcher.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));

        let token_id = "root@pam!ballast".to_string();
        let token_secret = uuid::Uuid::new_v4().to_string();
        let user = "root@pam".to_string();
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/fakepve/launcher.py");
        let mut child = Command::new(&python)
            .arg(&launcher)
            .arg("--cert")
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            // Secrets go by environment: argv is readable by every user of the machine.
            .env("FAKEPVE_TOKEN_ID", &token_id)
            .env("FAKEPVE_TOKEN_SECRET", &token_secret)
            .env("FAKEPVE_USER", &user)
            .env("FAKEPVE_PASSWORD", &password)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", launcher.display()));
        let ready = match child.stdout.take() {
            Some(out) => read_ready(out, Duration::from_secs(60)),
            None => Err("its stdout was not captured".to_string()),
        };
        let ready = match ready {
            Ok(ready) => ready,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "fakepve did not come up: {why}\n--- launcher log ---\n{log}\n{}",
                    install_hint(&venv_dir())
                );
            }
        };
        FakePve {
            endpoint: format!("https://127.0.0.1:{}", ready.api_port),
            api_port: ready.api_port,
            ca_path,
            ca_pem: certs.ca_pem,
            cert_fingerprint: certs.leaf_fingerprint,
            token_id,
            token_secret,
            user,
            password,
            control: Control::new(ready.control_port),
            dir,
            child: Some(child),
        }
    }

    /// The launcher's stderr so far (fakepve's own log), for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("launcher.log")).unwrap_or_default()
    }
}

impl Drop for FakePve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The launcher's first stdout line, `{"api_port": …, "control_port": …}`, within `timeout`.
fn read_ready(stdout: ChildStdout, timeout: Duration) -> Result<Ready, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let result = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading its stdout: {e}"))
            .map(|_| line);
        let _ = tx.send(result);
        // Keep draining so the launcher never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = rx
        .recv_timeout(timeout)
        .map_err(|_| format!("no ready line within {timeout:?}"))??;
    if line.trim().is_empty() {
        return Err("it exited before it was ready".to_string());
    }
    serde_json::from_str(line.trim()).map_err(|e| format!("bad ready line {line:?}: {e}"))
}

/// A guest as the fake holds it (what the API shows, and what it does not).
#[derive(Debug, Clone, Deserialize)]
pub struct GuestInfo {
    pub vmid: u32,
    pub node: String,
    pub status: String,
    pub config: Map<String, Value>,
    pub pending: Map<String, Value>,
    pub lock: Option<String>,
    pub pool: Option<String>,
}

/// A request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The full path, `/api2/json/…`.
    pub path: String,
}

/// Per-guest scenario settings ([`Control::guest_settings`]); `None` leaves one unchanged.
#[derive(Debug, Clone, Default)]
pub struct GuestSettings {
    /// The start task fails with this (`TASK ERROR: …`).
    pub start_error: Option<String>,
    /// PVE seconds a start takes (scaled by the time scale).
    pub start_secs: Option<f64>,
    pub shutdown_secs: Option<f64>,
    pub stop_secs: Option<f64>,
}

/// The launcher's control port: fakepve's scenarios. Every call panics with the launcher's
/// reason when it fails (a test cannot go on without its scenario).
#[derive(Debug, Clone)]
pub struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    fn new(port: u16) -> Control {
        Control {
            base: format!("http://127.0.0.1:{port}/control"),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, action: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/{action}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("fakepve control `{action}`: {e}"));
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("fakepve control `{action}`: bad answer: {e}"));
        if !status.is_success() {
            panic!("fakepve control `{action}` failed ({status}): {answer}");
        }
        answer.get("result").cloned().unwrap_or(Value::Null)
    }

    /// Real seconds per PVE second; 0 (the start) ends every task before its request returns.
    pub async fn set_time_scale(&self, scale: f64) {
        self.call("time_scale", json!({"value": scale})).await;
    }

    /// `/etc/pve` goes read-only: writes fail with `cluster not ready - no quorum?`.
    pub async fn lose_quorum(&self) {
        self.call("lose_quorum", json!({})).await;
    }

    pub async fn regain_quorum(&self) {
        self.call("regain_quorum", json!({})).await;
    }

    /// Requests for the node get HTTP 595 (`No route to host`).
    pub async fn set_node_offline(&self, node: &str, offline: bool) {
        self.call("node_offline", json!({"node": node, "offline": offline}))
            .await;
    }

    /// Requests of `method` whose path ends with `suffix` fail with `status` and `message`,
    /// `times` times (every time when `None`).
    pub async fn fail(
        &self,
        method: &str,
        suffix: &str,
        status: u16,
        message: &str,
        times: Option<u32>,
    ) {
        self.call(
            "fail",
            json!({"method": method, "suffix": suffix, "status": status, "message": message,
                   "times": times}),
        )
        .await;
    }

    /// The same with one of PVE's own errors by name (fakepve's catalogue: `no_quorum`,
    /// `config_lock_timeout`, …); one raised in a worker ends a task with `TASK ERROR`.
    pub async fn fail_with(&self, method: &str, suffix: &str, error: &str, times: Option<u32>) {
        self.call(
            "fail",
            json!({"method": method, "suffix": suffix, "error": error, "times": times}),
        )
        .await;
    }

    pub async fn clear_failures(&self) {
        self.call("clear_failures", json!({})).await;
    }

    /// Leaves the guest locked (`snapshot`, `backup`, `clone`, …), as an interrupted
    /// operation does.
    pub async fn lock_guest(&self, vmid: u32, lock: &str) {
        self.call("snapshot_lock", json!({"vmid": vmid, "lock": lock}))
            .await;
    }

    pub async fn unlock_guest(&self, vmid: u32) {
        self.call("unlock", json!({"vmid": vmid})).await;
    }

    /// Another task holds the guest's config lock for `secs` PVE seconds (until
    /// [`Control::release_config_lock`] when `None`); writes time out on it.
    pub async fn hold_config_lock(&self, vmid: u32, secs: Option<f64>) {
        self.call("hold_config_lock", json!({"vmid": vmid, "secs": secs}))
            .await;
    }

    pub async fn release_config_lock(&self, vmid: u32) {
        self.call("release_config_lock", json!({"vmid": vmid}))
            .await;
    }

    /// A vzdump of the guest: lock `backup` for `secs` PVE seconds. Returns its UPID.
    pub async fn backup(&self, vmid: u32, secs: f64) -> String {
        let upid = self
            .call("backup", json!({"vmid": vmid, "secs": secs}))
            .await;
        upid.as_str()
            .unwrap_or_else(|| panic!("backup answered {upid}"))
            .to_string()
    }

    pub async fn guest_settings(&self, vmid: u32, settings: GuestSettings) {
        let mut body = json!({"vmid": vmid});
        let fields = [
            ("start_error", settings.start_error.map(Value::from)),
            ("start_secs", settings.start_secs.map(Value::from)),
            ("shutdown_secs", settings.shutdown_secs.map(Value::from)),
            ("stop_secs", settings.stop_secs.map(Value::from)),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        self.call("guest_settings", body).await;
    }

    /// Changes a config key behind the API's back (another admin, the web UI): the digest
    /// changes.
    pub async fn set_guest_config(&self, vmid: u32, key: &str, value: Value) {
        self.call(
            "set_config",
            json!({"vmid": vmid, "key": key, "value": value}),
        )
        .await;
    }

    /// PVE seconds a container task takes (`create`, `clone`, `resize`, `destroy`, …).
    pub async fn set_ct_secs(&self, op: &str, secs: f64) {
        self.call("ct_secs", json!({"op": op, "secs": secs})).await;
    }

    /// Every operation on `ceph-pool` volumes takes `secs` PVE seconds longer.
    pub async fn ceph_slow(&self, secs: f64) {
        self.call("ceph_slow", json!({"secs": secs})).await;
    }

    pub async fn ceph_recover(&self) {
        self.call("ceph_recover", json!({})).await;
    }

    /// Forgets every login ticket: the next ticket request gets 401.
    pub async fn revoke_tickets(&self) {
        self.call("revoke_tickets", json!({})).await;
    }

    /// The lifetime of new tickets, in real seconds (PVE: 7200).
    pub async fn set_ticket_ttl(&self, secs: f64) {
        self.call("ticket_ttl", json!({"secs": secs})).await;
    }

    /// Adds a VM directly (no task). `config` as PVE stores it.
    pub async fn add_vm(
        &self,
        vmid: u32,
        name: &str,
        node: &str,
        status: &str,
        config: Value,
    ) -> GuestInfo {
        let info = self
            .call(
                "add_vm",
                json!({"vmid": vmid, "name": name, "node": node, "status": status, "config": config}),
            )
            .await;
        serde_json::from_value(info).unwrap_or_else(|e| panic!("add_vm answer: {e}"))
    }

    /// Adds a container directly (no task).
    pub async fn add_ct(
        &self,
        vmid: u32,
        hostname: &str,
        node: &str,
        status: &str,
        config: Value,
    ) -> GuestInfo {
        let info = self
            .call(
                "add_ct",
                json!({"vmid": vmid, "name": hostname, "node": node, "status": status,
                       "config": config}),
            )
            .await;
        serde_json::from_value(info).unwrap_or_else(|e| panic!("add_ct answer: {e}"))
    }

    /// The guest as the fake holds it.
    pub async fn guest(&self, vmid: u32) -> GuestInfo {
        let info = self.call("guest_info", json!({"vmid": vmid})).await;
        serde_json::from_value(info).unwrap_or_else(|e| panic!("guest_info answer: {e}"))
    }

    /// Every request answered since the start (or the last [`Control::clear_requests`]).
    pub async fn requests(&self) -> Vec<RecordedRequest> {
        let list = self.call("requests", json!({})).await;
        serde_json::from_value(list).unwrap_or_else(|e| panic!("requests answer: {e}"))
    }

    pub async fn clear_requests(&self) {
        self.call("clear_requests", json!({})).await;
    }
}
