//! Docker engine for tests.
//!
//! [`engine()`] finds a running engine (`DOCKER_HOST`, else `/var/run/docker.sock`) or starts a
//! `dockerd` of its own (Debian's `docker.io`) with its data under the temp directory, shared by
//! every test process of the run; then it makes the test image offline with `docker import` of a
//! busybox-static rootfs (Debian's `busybox-static`). Nothing is pulled: no registry is needed.
//!
//! [`CallCounter`] is a proxy socket in front of the engine that records every HTTP request a
//! client sends, so tests can count the calls a piece of code makes.
//!
//! Everything that talks to the engine here is plain blocking HTTP/1.0 over the unix socket, so
//! it can be called from sync and async tests alike without nesting runtimes.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// The image every test container runs: busybox applets in `/bin`, `CMD` a shell that sleeps and
/// exits at once on SIGTERM (so `docker stop` is fast).
pub const TEST_IMAGE: &str = "ballast-test/busybox:1";

const INSTALL_HINT: &str = "apt-get install -y docker.io busybox-static";

/// The engine the tests use, with the test image present.
#[derive(Debug)]
pub struct TestEngine {
    socket: PathBuf,
    image: String,
    started_here: bool,
}

impl TestEngine {
    /// `unix:///path/to/docker.sock` of the real engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The offline test image (`ballast-test/busybox:1`).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Whether the engine is the tests' own `dockerd` (started by this or another test process).
    pub fn is_own_dockerd(&self) -> bool {
        self.started_here
    }

    /// A blocking request to the engine: `(status, body)`.
    pub fn request(&self, method: &str, path: &str) -> Result<(u16, Vec<u8>)> {
        http(&self.socket, method, path, None)
    }
}

/// The engine, found or started once per test process (and the test image made once per engine,
/// guarded by a file lock across processes). Panics with an install hint when neither a running
/// engine nor `dockerd` is available.
pub fn engine() -> &'static TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| match init_engine() {
        Ok(engine) => engine,
        Err(e) => panic!("no Docker engine for tests: {e:#}"),
    })
}

fn init_engine() -> Result<TestEngine> {
    let (socket, started_here) = find_or_start_engine()?;
    ensure_test_image(&socket)?;
    let host = format!("unix://{}", socket.display());
    if std::env::var("DOCKER_HOST").ok().as_deref() != Some(host.as_str()) {
        // SAFETY: set once, while the engine is first looked up and before the code under test
        // reads it; tests that spawn threads early should pass `docker_host()` explicitly.
        unsafe { std::env::set_var("DOCKER_HOST", &host) };
    }
    Ok(TestEngine {
        socket,
        image: TEST_IMAGE.to_string(),
        started_here,
    })
}

fn answers_ping(socket: &Path) -> bool {
    matches!(http(socket, "GET", "/_ping", None), Ok((200, _)))
}

/// The directory of the tests' own dockerd, shared by every test process of a run.
fn own_dockerd_dir() -> PathBuf {
    std::env::temp_dir().join("ballast-test-dockerd")
}

fn find_or_start_engine() -> Result<(PathBuf, bool)> {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        let path = host.strip_prefix("unix://").ok_or_else(|| {
            anyhow!(
                "DOCKER_HOST={host}: the test support speaks to unix sockets only (unix:///path)"
            )
        })?;
        let path = PathBuf::from(path);
        if answers_ping(&path) {
            let own = path.starts_with(own_dockerd_dir());
            return Ok((path, own));
        }
        bail!("DOCKER_HOST={host} does not answer /_ping; start that engine, or unset DOCKER_HOST");
    }
    let system = PathBuf::from("/var/run/docker.sock");
    if answers_ping(&system) {
        return Ok((system, false));
    }

    let dir = own_dockerd_dir();
    let socket = dir.join("docker.sock");
    if answers_ping(&socket) {
        return Ok((socket, true));
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = crate::shared_lock("ballast-test-dockerd")?;
    if answers_ping(&socket) {
        return Ok((socket, true));
    }
    start_dockerd(&dir, &socket)?;
    Ok((socket, true))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn start_dockerd(dir: &Path, socket: &Path) -> Result<()> {
    let dockerd = find_program("dockerd").ok_or_else(|| {
        anyhow!("no Docker engine answers at /var/run/docker.sock and `dockerd` is not installed; run `{INSTALL_HINT}`")
    })?;
    let _ = fs::remove_file(socket);
    let log_path = dir.join("dockerd.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    // Its own (empty) config: a host's /etc/docker/daemon.json may set data-root, which dockerd
    // refuses to have both there and as a flag.
    let config = dir.join("daemon.json");
    fs::write(&config, "{}\n").with_context(|| format!("writing {}", config.display()))?;
    let mut child = Command::new(&dockerd)
        .arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: it outlives this test process and serves the others.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} (it needs root)", dockerd.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if answers_ping(socket) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let tail = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "dockerd exited with {status}; last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "dockerd did not answer /_ping within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ensure_test_image(socket: &Path) -> Result<()> {
    let inspect = format!("/images/{TEST_IMAGE}/json");
    if http(socket, "GET", &inspect, None)?.0 == 200 {
        return Ok(());
    }
    let _lock = crate::shared_lock("ballast-test-image")?;
    if http(socket, "GET", &inspect, None)?.0 == 200 {
        return Ok(());
    }
    let tar = busybox_rootfs_tar()?;
    let (repo, tag) = TEST_IMAGE.rsplit_once(':').expect("image has a tag");
    let cmd = r#"CMD ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"]"#;
    let path = format!(
        "/images/create?fromSrc=-&repo={}&tag={}&changes={}&changes={}",
        urlencode(repo),
        urlencode(tag),
        urlencode(cmd),
        urlencode("ENV PATH=/bin"),
    );
    let (status, body) = http(socket, "POST", &path, Some(("application/x-tar", tar)))?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 || text.contains("\"error") {
        bail!("importing {TEST_IMAGE} failed ({status}): {text}");
    }
    if http(socket, "GET", &inspect, None)?.0 != 200 {
        bail!("imported {TEST_IMAGE} but the engine does not list it: {text}");
    }
    Ok(())
}

/// Whether an ELF file asks for a program interpreter (is dynamically linked).
fn is_dynamic_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) || bytes.get(4) != Some(&2) {
        return false; // not a 64-bit ELF: let the import try
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(3)) // PT_INTERP
}

fn busybox_rootfs_tar() -> Result<Vec<u8>> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("/bin/busybox is missing; run `{INSTALL_HINT}`"))?;
    let bytes = fs::read(&busybox)?;
    if is_dynamic_elf(&bytes) {
        bail!(
            "{} is dynamically linked; the test image needs the static one: run `{INSTALL_HINT}`",
            busybox.display()
        );
    }
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    if !list.status.success() {
        bail!("busybox --list failed");
    }
    let root = tempfile::tempdir()?;
    let r = root.path();
    for dir in [
        "bin", "etc", "tmp", "proc", "sys", "dev", "root", "data", "var/www", "home",
    ] {
        fs::create_dir_all(r.join(dir))?;
    }
    fs::set_permissions(r.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::write(r.join("bin/busybox"), &bytes)?;
    fs::set_permissions(r.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            symlink("busybox", r.join("bin").join(applet))?;
        }
    }
    fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )?;
    fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let tar = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(r)
        .args(["-cf", "-", "."])
        .output()
        .context("running tar")?;
    if !tar.status.success() {
        bail!("tar failed: {}", String::from_utf8_lossy(&tar.stderr));
    }
    Ok(tar.stdout)
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One blocking HTTP/1.0 request over a unix socket (the engine then answers without chunking
/// and closes the connection).
fn http(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
    if let Some((content_type, bytes)) = &body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    } else if method != "GET" && method != "HEAD" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some((_, bytes)) = &body {
        stream.write_all(bytes)?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = find(&response, b"\r\n\r\n")
        .ok_or_else(|| anyhow!("truncated HTTP response from {}", socket.display()))?;
    let status_line = String::from_utf8_lossy(&response[..split]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line: {status_line}"))?;
    Ok((status, response[split + 4..].to_vec()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A DNS-label name unique across tests and processes: `prefix-` and 6 hex digits.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{}-{:06x}",
        prefix.trim_matches('-'),
        hasher.finish() & 0xff_ffff
    )
}

/// Force-removes every container (and network) labelled `ballast.instance=<instance_id>`.
/// Named volumes are left alone; tests remove the ones they made.
pub fn cleanup_instance(instance_id: &str) {
    let engine = engine();
    let filters = format!(r#"{{"label":["ballast.instance={instance_id}"]}}"#);
    let list = format!("/containers/json?all=1&filters={}", urlencode(&filters));
    if let Ok((200, body)) = engine.request("GET", &list) {
        let containers: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
        for c in containers {
            if let Some(id) = c["Id"].as_str() {
                let _ = engine.request("DELETE", &format!("/containers/{id}?force=1&v=1"));
            }
        }
    }
    let list = format!("/networks?filters={}", urlencode(&filters));
    if let Ok((200, body)) = engine.request("GET", &list) {
        let networks: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
        for n in networks {
            if let Some(id) = n["Id"].as_str() {
                let _ = engine.request("DELETE", &format!("/networks/{id}"));
            }
        }
    }
}

/// One HTTP request seen by a [`CallCounter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    /// Path without the `/v1.xx` prefix and without the query.
    pub path: String,
    /// The raw query string (`all=1&filters=...`), empty when none.
    pub query: String,
}

/// A proxy socket in front of the engine that forwards every byte and records each HTTP request
/// line the clients send.
pub struct CallCounter {
    dir: tempfile::TempDir,
    calls: Arc<Mutex<Vec<Call>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CallCounter {
    /// A proxy in front of [`engine()`].
    pub fn start() -> CallCounter {
        CallCounter::start_for(engine().socket())
    }

    /// A proxy in front of the engine socket `target`.
    pub fn start_for(target: &Path) -> CallCounter {
        let dir = tempfile::Builder::new()
            .prefix("ballast-proxy")
            .tempdir()
            .expect("temp dir for the proxy");
        let socket = dir.path().join("proxy.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("binding the proxy socket");
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy socket");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let target = target.to_path_buf();
        let recorded = calls.clone();
        let thread = std::thread::Builder::new()
            .name("docker-call-counter".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::UnixListener::from_std(listener).expect("proxy listener");
                    tokio::pin!(rx);
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                tokio::spawn(proxy_connection(client, target.clone(), recorded.clone()));
                            }
                        }
                    }
                });
                runtime.shutdown_background();
            })
            .expect("proxy thread");
        CallCounter {
            dir,
            calls,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `unix:///…/proxy.sock`, to hand to the client under test.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("proxy.sock")
    }

    /// Every request so far, in arrival order: `(method, path)`.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .map(|c| (c.method, c.path))
            .collect()
    }

    /// Every request so far with its query string.
    pub fn requests(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The requests other than GET and HEAD.
    pub fn mutating(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter(|(m, _)| m != "GET" && m != "HEAD")
            .collect()
    }

    /// How many requests had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.calls()
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    /// Forgets the requests recorded so far.
    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
    }
}

impl Drop for CallCounter {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn proxy_connection(
    client: tokio::net::UnixStream,
    target: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(engine) = tokio::net::UnixStream::connect(&target).await else {
        return; // dropping the client connection reports the failure to it
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut engine_read, mut engine_write) = engine.into_split();
    let upstream = async move {
        let mut scanner = RequestScanner::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for call in scanner.feed(&buf[..n]) {
                calls.lock().unwrap().push(call);
            }
            if engine_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = engine_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut engine_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Finds HTTP/1.1 request heads in a client's byte stream, skipping bodies by Content-Length
/// or chunked framing. After an `Upgrade` request (attach) the stream is raw and not scanned.
#[derive(Default)]
struct RequestScanner {
    state: ScanState,
    line: Vec<u8>,
}

#[derive(Default)]
enum ScanState {
    /// Collecting a request head (kept in `line` until the empty line).
    #[default]
    Head,
    /// Skipping `n` body bytes.
    Body(usize),
    /// Reading a chunk-size line (in `line`).
    ChunkSize,
    /// Skipping chunk data and its CRLF.
    ChunkData(usize),
    /// Skipping trailer lines up to the empty line.
    Trailer,
    /// Upgraded connection: no more HTTP.
    Raw,
}

impl RequestScanner {
    fn feed(&mut self, mut data: &[u8]) -> Vec<Call> {
        let mut out = Vec::new();
        while !data.is_empty() {
            match self.state {
                ScanState::Raw => return out,
                ScanState::Body(n) | ScanState::ChunkData(n) => {
                    let take = n.min(data.len());
                    data = &data[take..];
                    let left = n - take;
                    if left == 0 {
                        self.state = match self.state {
                            ScanState::ChunkData(_) => ScanState::ChunkSize,
                            _ => ScanState::Head,
                        };
                    } else {
                        self.state = match self.state {
                            ScanState::ChunkData(_) => ScanState::ChunkData(left),
                            _ => ScanState::Body(left),
                        };
                    }
                }
                ScanState::Head => {
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    self.line.push(byte);
                    if self.line.ends_with(b"\r\n\r\n") {
                        let head = std::mem::take(&mut self.line);
                        if let Some((call, next)) = parse_head(&head) {
                            out.push(call);
                            self.state = next;
                        }
                    } else if self.line == b"\r\n" {
                        self.line.clear(); // stray CRLF between requests
                    }
                }
                ScanState::ChunkSize => {
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    self.line.push(byte);
                    if self.line.ends_with(b"\r\n") {
                        let text = String::from_utf8_lossy(&self.line).to_string();
                        self.line.clear();
                        let size = text.trim().split(';').next().unwrap_or("0");
                        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                        self.state = if size == 0 {
                            ScanState::Trailer
                        } else {
                            ScanState::ChunkData(size + 2)
                        };
                    }
                }
                ScanState::Trailer => {
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    self.line.push(byte);
                    if self.line.ends_with(b"\r\n") {
                        let empty = self.line == b"\r\n";
                        self.line.clear();
                        if empty {
                            self.state = ScanState::Head;
                        }
                    }
                }
            }
        }
        out
    }
}

fn parse_head(head: &[u8]) -> Option<(Call, ScanState)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = strip_version(path).to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut upgrade = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (
            name.trim().to_ascii_lowercase(),
            value.trim().to_ascii_lowercase(),
        );
        match name.as_str() {
            "content-length" => content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "upgrade" => upgrade = true,
            _ => {}
        }
    }
    let next = if upgrade {
        ScanState::Raw
    } else if chunked {
        ScanState::ChunkSize
    } else if content_length > 0 {
        ScanState::Body(content_length)
    } else {
        ScanState::Head
    };
    Some((
        Call {
            method,
            path,
            query: query.to_string(),
        },
        next,
    ))
}

/// `/v1.41/containers/json` -> `/containers/json`.
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        if !version.is_empty()
            && version.chars().all(|c| c.is_ascii_digit() || c == '.')
            && version.contains('.')
        {
            return if end == rest.len() { "/" } else { &rest[end..] };
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_requests_across_bodies_and_chunks() {
        let stream = b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: x\r\n\r\n\
POST /v1.41/containers/create?name=web HTTP/1.1\r\ncontent-length: 17\r\n\r\n{\"Image\":\"GET /\"}\
POST /v1.41/images/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n\
DELETE /v1.41/containers/abc?v=false HTTP/1.1\r\n\r\n\
POST /v1.41/containers/abc/attach HTTP/1.1\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\nGET /not-a-request HTTP/1.1\r\n\r\n";
        // Feed in awkward pieces to exercise the state carried between reads.
        let mut scanner = RequestScanner::default();
        let mut calls = Vec::new();
        for piece in stream.chunks(7) {
            calls.extend(scanner.feed(piece));
        }
        let seen: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c.method.as_str(), c.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("GET", "/containers/json"),
                ("POST", "/containers/create"),
                ("POST", "/images/create"),
                ("DELETE", "/containers/abc"),
                ("POST", "/containers/abc/attach"),
            ]
        );
        assert_eq!(calls[0].query, "all=1");
    }

    #[test]
    fn versions_are_stripped_from_paths() {
        assert_eq!(strip_version("/v1.41/containers/json"), "/containers/json");
        assert_eq!(strip_version("/_ping"), "/_ping");
        assert_eq!(strip_version("/volumes/v1.2"), "/volumes/v1.2");
        assert_eq!(strip_version("/version"), "/version");
    }

    #[test]
    fn unique_names_are_dns_labels() {
        let a = unique_name("Web_App");
        let b = unique_name("Web_App");
        assert_ne!(a, b);
        assert!(
            a.starts_with("web-app-") && a.len() == "web-app-".len() + 6,
            "{a}"
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
