//! A real sshd for tests (Debian's `openssh-server`).
//!
//! [`Sshd::start`] generates a host key and client keys with `ssh-keygen` into a temporary
//! directory, writes an `sshd_config` for 127.0.0.1 on a free port, and runs `sshd -D -e` until
//! the port answers with an SSH banner. The clients log in as root with any of the keys in
//! [`ClientKey`] (all but [`ClientKey::NotAuthorized`] are in `authorized_keys`) or with the
//! generated [`Sshd::password`].
//!
//! sshd runs inside `unshare --mount --pid --fork`:
//! - the mount namespace lets a copy of `/etc/shadow`, in which root's hash is replaced by one
//!   for the generated password, be bind-mounted over `/etc/shadow` for this sshd only, so
//!   password logins work without touching the machine's users;
//! - the PID namespace makes [`Sshd::stop`] take every connection down with the listener (sshd
//!   puts each connection in its own session, so killing the listener alone would leave them
//!   running), as a server that goes away would. Its first process is a shell that waits on a
//!   pipe from the test process, so the namespace also goes away when the test process dies
//!   however it dies.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";
const INSTALL_HINT: &str = "apt-get install -y openssh-server openssl util-linux";

/// The passphrase of [`ClientKey::Ed25519WithPassphrase`].
pub const KEY_PASSPHRASE: &str = "ballast test passphrase";

/// The client keys an [`Sshd`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKey {
    Ed25519,
    /// ECDSA on NIST P-256.
    Ecdsa,
    /// RSA in OpenSSH's format.
    Rsa,
    /// RSA in the older PEM (PKCS#1) format, as `ssh-keygen -m PEM` writes it.
    RsaPem,
    /// Ed25519, encrypted with [`KEY_PASSPHRASE`].
    Ed25519WithPassphrase,
    /// A valid key that is not in `authorized_keys`.
    NotAuthorized,
}

impl ClientKey {
    pub const ALL: [ClientKey; 6] = [
        ClientKey::Ed25519,
        ClientKey::Ecdsa,
        ClientKey::Rsa,
        ClientKey::RsaPem,
        ClientKey::Ed25519WithPassphrase,
        ClientKey::NotAuthorized,
    ];

    fn file_name(self) -> &'static str {
        match self {
            ClientKey::Ed25519 => "id_ed25519",
            ClientKey::Ecdsa => "id_ecdsa",
            ClientKey::Rsa => "id_rsa",
            ClientKey::RsaPem => "id_rsa_pem",
            ClientKey::Ed25519WithPassphrase => "id_ed25519_passphrase",
            ClientKey::NotAuthorized => "id_not_authorized",
        }
    }

    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            ClientKey::Ed25519 | ClientKey::Ed25519WithPassphrase | ClientKey::NotAuthorized => {
                &["-t", "ed25519"]
            }
            ClientKey::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            ClientKey::Rsa => &["-t", "rsa", "-b", "2048"],
            ClientKey::RsaPem => &["-t", "rsa", "-b", "2048", "-m", "PEM"],
        }
    }

    fn passphrase(self) -> &'static str {
        match self {
            ClientKey::Ed25519WithPassphrase => KEY_PASSPHRASE,
            _ => "",
        }
    }
}

/// A running sshd on 127.0.0.1, stopped when dropped.
pub struct Sshd {
    pub port: u16,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub host_key_fingerprint: String,
    /// The user to log in as (`root`).
    pub user: String,
    /// The user's password for this sshd only (see the module docs).
    pub password: String,
    dir: TempDir,
    child: Option<Child>,
}

impl std::fmt::Debug for Sshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sshd")
            .field("port", &self.port)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .field("user", &self.user)
            .field("dir", &self.dir.path())
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl Sshd {
    /// Generates the keys and the config and starts sshd. Panics with an install hint when
    /// openssh-server (or `ssh-keygen`, `openssl`, `unshare`) is missing, and with sshd's log
    /// when it does not come up.
    pub fn start() -> Sshd {
        if !Path::new(SSHD).exists() {
            panic!("{SSHD} is missing; the SSH tests need a real sshd: {INSTALL_HINT}");
        }
        let dir = tempfile::Builder::new()
            .prefix("ballast-sshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory for sshd: {e}"));
        let path = dir.path();

        keygen(&path.join("host_ed25519"), &["-t", "ed25519"], "");
        let host_key_fingerprint = fingerprint(&path.join("host_ed25519.pub"));
        let mut authorized = String::new();
        for key in ClientKey::ALL {
            let file = path.join(key.file_name());
            keygen(&file, key.keygen_args(), key.passphrase());
            if key != ClientKey::NotAuthorized {
                authorized.push_str(&read(&file.with_extension("pub")));
            }
        }
        write(&path.join("authorized_keys"), &authorized);

        let password = random_password();
        write_shadow(&path.join("shadow"), &password);

        let port = free_port();
        write(&path.join("sshd_config"), &config(path, port));

        let mut sshd = Sshd {
            port,
            host_key_fingerprint,
            user: "root".to_string(),
            password,
            dir,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    /// The private key text (OpenSSH or PEM format).
    pub fn client_key(&self, which: ClientKey) -> String {
        read(&self.dir.path().join(which.file_name()))
    }

    /// The public key line (`ssh-ed25519 AAAA… comment`).
    pub fn client_public_key(&self, which: ClientKey) -> String {
        read(
            &self
                .dir
                .path()
                .join(which.file_name())
                .with_extension("pub"),
        )
        .trim()
        .to_string()
    }

    /// The host's public key line.
    pub fn host_public_key(&self) -> String {
        read(&self.dir.path().join("host_ed25519.pub"))
            .trim()
            .to_string()
    }

    /// The directory holding the keys, the config and `sshd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd wrote to stderr so far (`-e`), for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills sshd and every connection it serves, and waits until the port is closed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // unshare passes SIGKILL on to the namespace's first process (--kill-child); when that
        // one dies the kernel kills everything else in the PID namespace.
        let _ = child.kill();
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
            if Instant::now() > deadline {
                panic!(
                    "sshd on port {} still accepts connections after being killed",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts sshd again on the same port with the same keys and password.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        fs::create_dir_all("/run/sshd").unwrap_or_else(|e| {
            panic!("creating /run/sshd (sshd's privilege separation dir): {e}")
        });
        let path = self.dir.path();
        let log = path.join("sshd.log");
        let config = path.join("sshd_config");
        let shadow = path.join("shadow");
        // `cat` holds the namespace open until the test process closes the pipe (or dies).
        let script = r#"
mount --bind "$1" /etc/shadow || exit 97
"$2" -D -e -f "$3" </dev/null >>"$4" 2>&1 &
cat >/dev/null
"#;
        let child = Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--kill-child", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg(&shadow)
            .arg(SSHD)
            .arg(&config)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running unshare to start sshd: {e}; {INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if banner(self.port) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let mut stderr = String::new();
                if let Some(mut child) = self.child.take()
                    && let Some(mut err) = child.stderr.take()
                {
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!(
                    "sshd did not start ({status}); unshare said: {}; sshd log:\n{}\n(needs root for unshare --mount --pid; {INSTALL_HINT})",
                    stderr.trim(),
                    self.log()
                );
            }
            if Instant::now() > deadline {
                self.stop();
                panic!(
                    "sshd did not answer on 127.0.0.1:{} within 15 s; log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether something on the port greets like an SSH server.
fn banner(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    let ok = stream.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-");
    // Say goodbye politely so sshd does not log a protocol error for every probe.
    let _ = stream.write_all(b"SSH-2.0-probe\r\n");
    ok
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "ListenAddress 127.0.0.1
Port {port}
HostKey {d}/host_ed25519
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
"
    )
}

fn keygen(file: &Path, args: &[&str], passphrase: &str) {
    let output = Command::new("ssh-keygen")
        .args(args)
        .arg("-q")
        .arg("-N")
        .arg(passphrase)
        .arg("-C")
        .arg("ballast-test")
        .arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ssh-keygen: {e}; {INSTALL_HINT}"));
    if !output.status.success() {
        panic!(
            "ssh-keygen {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn fingerprint(public_key: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public_key)
        .output()
        .unwrap_or_else(|e| panic!("running ssh-keygen -l: {e}; {INSTALL_HINT}"));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(1)
        .filter(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -l output: {text}"))
        .to_string()
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap_or_else(|e| panic!("reading /dev/urandom: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A copy of /etc/shadow in which root's hash is one for `password`.
fn write_shadow(target: &Path, password: &str) {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running openssl passwd: {e}; {INSTALL_HINT}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing to openssl passwd: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for openssl passwd: {e}"));
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !hash.starts_with("$6$") {
        panic!("openssl passwd -6 failed");
    }
    let shadow = read(Path::new("/etc/shadow"));
    let mut found = false;
    let mut lines: Vec<String> = shadow
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields.first() == Some(&"root") && fields.len() > 2 {
                found = true;
                fields[1] = &hash;
                // An empty "last changed" or an expiry could make sshd refuse the login.
                fields[2] = "19000";
                for f in fields.iter_mut().skip(3) {
                    *f = "";
                }
                fields.join(":")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        lines.push(format!("root:{hash}:19000:0:99999:7:::"));
    }
    write(target, &(lines.join("\n") + "\n"));
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("binding a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading the bound port: {e}"))
        .port()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
