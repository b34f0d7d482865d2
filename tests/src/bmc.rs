//! A Redfish BMC emulator for tests: many BMCs in one process, one HTTPS port each (rustls, a
//! certificate from a CA generated per emulator), following the DMTF schemas (the shapes of
//! sushy's sample documents) for what no packaged emulator offers: the UpdateService
//! (`SimpleUpdate`, `MultipartHttpPushUri`), the TaskService with tasks whose `PercentComplete`
//! advances over a configurable time, a `FirmwareInventory` whose new version shows only after a
//! reset, sessions with a limit, and a Dell flavour (iDRAC ids, `Oem.Dell`, the job queue under
//! `Managers/iDRAC.Embedded.1/Jobs`).
//!
//! Faults a test switches on: the next update task fails with an ExtendedInfo message; the BMC
//! stops answering for a while when the system resets (its listener is closed and every open
//! connection dropped); the version is unchanged after the reset; the next N requests get 503
//! with `Retry-After`; every session expires. Counters a test reads: requests per method and
//! path, sessions created / deleted / live / most live at once, and, per emulator, the largest
//! number of BMCs updating at once (from an update's start until its reset applied it or it
//! failed).
//!
//! Nothing here is used by product code.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A CA and a certificate for 127.0.0.1 / localhost signed by it, generated with rcgen.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA and leaf (ECDSA P-256). Each emulator makes its own, so nothing is shared
    /// between test processes.
    pub fn generate() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("generating a CA key: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA parameters: {e}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ballast test BMC CA");
        ca_params.distinguished_name = dn;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("self-signing the CA: {e}"));
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap_or_else(|e| panic!("generating a key: {e}"));
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap_or_else(|e| panic!("leaf parameters: {e}"));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "bmc.test");
        leaf.distinguished_name = dn;
        let cert = leaf
            .signed_by(&leaf_key, &issuer)
            .unwrap_or_else(|e| panic!("signing the BMC certificate: {e}"));
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: leaf_key.serialize_der(),
        }
    }

    /// The SHA-256 fingerprint of the server certificate, `AB:CD:…`.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(&self.cert_der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        };
        (
            write("ca.pem", &self.ca_pem),
            write("cert.pem", &self.cert_pem),
            write("key.pem", &self.key_pem),
        )
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![CertificateDer::from(self.cert_der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
                )
            })
            .unwrap_or_else(|e| panic!("TLS server config: {e}"));
        Arc::new(config)
    }
}

/// Which BMC the emulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// A DMTF-style BMC ("Contoso"): `Systems/1`, `Managers/BMC`, task monitors under
    /// `TaskService/TaskMonitors`.
    Generic,
    /// An iDRAC 9: `Systems/System.Embedded.1`, `Managers/iDRAC.Embedded.1`, `Oem.Dell`, task
    /// ids `JID_…` with the job queue, an 8-session limit.
    Dell,
}

/// One firmware component of the inventory.
#[derive(Debug, Clone)]
pub struct Component {
    /// The inventory id without Dell's `Installed-` prefix (`BIOS`, or Dell's component id `159`).
    pub id: String,
    pub name: String,
    pub version: String,
    /// The BMC's own firmware (its inventory entry relates to the manager).
    pub manager: bool,
}

/// An image the BMC accepts: by file name (the last segment of an `ImageURI`, or the uploaded
/// file's name), for a component, bringing a version.
#[derive(Debug, Clone)]
pub struct Image {
    pub file_name: String,
    pub component: String,
    pub version: String,
}

/// How one BMC is set up.
#[derive(Debug, Clone)]
pub struct BmcSpec {
    pub flavour: Flavour,
    pub username: String,
    pub password: String,
    pub model: String,
    pub serial: String,
    /// Dell's service tag (`SKU`).
    pub sku: String,
    pub components: Vec<Component>,
    pub images: Vec<Image>,
    /// Sessions open at once before logins fail (`SessionLimitExceeded`).
    pub max_sessions: usize,
    /// A session unused this long expires (401 afterwards).
    pub session_timeout: Duration,
    /// Whether the root advertises `$expand` (and collections honour it).
    pub expand: bool,
    /// How long an update task runs (its download and flash) before it completes.
    pub task_duration: Duration,
    /// How long a restart takes (power off → on; a Dell job scheduled for the reset runs this
    /// long after it).
    pub reset_duration: Duration,
}

impl BmcSpec {
    /// A DMTF-style BMC with BIOS 1.0.0 and BMC firmware 1.00, images `bios-1.1.0.bin` (BIOS
    /// 1.1.0) and `bmc-1.10.bin` (BMC 1.10).
    pub fn generic() -> BmcSpec {
        BmcSpec {
            flavour: Flavour::Generic,
            username: "admin".into(),
            password: "emulated-bmc-password".into(),
            model: "3500".into(),
            serial: "437XR1138R2".into(),
            sku: "8675309".into(),
            components: vec![
                Component {
                    id: "BIOS".into(),
                    name: "Contoso BIOS".into(),
                    version: "1.0.0".into(),
                    manager: false,
                },
                Component {
                    id: "BMC".into(),
                    name: "Contoso BMC Firmware".into(),
                    version: "1.00".into(),
                    manager: true,
                },
            ],
            images: vec![
                Image {
                    file_name: "bios-1.1.0.bin".into(),
                    component: "BIOS".into(),
                    version: "1.1.0".into(),
                },
                Image {
                    file_name: "bmc-1.10.bin".into(),
                    component: "BMC".into(),
                    version: "1.10".into(),
                },
            ],
            max_sessions: 16,
            session_timeout: Duration::from_secs(1800),
            expand: true,
            task_duration: Duration::from_millis(600),
            reset_duration: Duration::from_millis(200),
        }
    }

    /// An iDRAC 9 on a PowerEdge R640 (system id 1814 = 0x0716) with BIOS 2.18.1 and iDRAC
    /// 6.10.30.00; images `BIOS_8X4GR_LN64_2.19.1.BIN` and the iDRAC 7.00.00.171 package (the
    /// packages of the crate's sample catalog).
    pub fn dell() -> BmcSpec {
        BmcSpec {
            flavour: Flavour::Dell,
            username: "root".into(),
            password: "emulated-idrac-password".into(),
            model: "PowerEdge R640".into(),
            serial: "CNIVC0099U0042".into(),
            sku: "7XK2QR2".into(),
            components: vec![
                Component {
                    id: "159".into(),
                    name: "BIOS".into(),
                    version: "2.18.1".into(),
                    manager: false,
                },
                Component {
                    id: "25227".into(),
                    name: "Integrated Dell Remote Access Controller".into(),
                    version: "6.10.30.00".into(),
                    manager: true,
                },
            ],
            images: vec![
                Image {
                    file_name: "BIOS_8X4GR_LN64_2.19.1.BIN".into(),
                    component: "159".into(),
                    version: "2.19.1".into(),
                },
                Image {
                    file_name:
                        "iDRAC-with-Lifecycle-Controller_Firmware_F4W1K_LN64_7.00.00.171_A00.BIN"
                            .into(),
                    component: "25227".into(),
                    version: "7.00.00.171".into(),
                },
            ],
            max_sessions: 8,
            ..BmcSpec::generic()
        }
    }
}

/// What a multipart push delivered.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub bytes: usize,
    pub sha256: String,
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Downloading and flashing.
    Running,
    /// Flashed; waits for a reset (Dell: job `Scheduled`).
    AwaitingReset,
    /// The reset came; Dell's job runs during the restart until `until`.
    Applying {
        until: Instant,
    },
    Completed,
    Failed(String),
}

#[derive(Debug, Clone)]
struct Task {
    id: String,
    component: String,
    version: String,
    started: Instant,
    duration: Duration,
    fail: Option<String>,
    phase: Phase,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    last_used: Instant,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    requests: BTreeMap<String, u64>,
    sessions_created: u64,
    sessions_deleted: u64,
    sessions_peak: usize,
    logins_refused: u64,
}

struct State {
    spec: BmcSpec,
    power_on: bool,
    /// When a restart in progress powers the system on again.
    powering_on_at: Option<Instant>,
    versions: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    session_seq: u64,
    tasks: Vec<Task>,
    uploads: Vec<Upload>,
    counters: Counters,
    updating: bool,
    // Faults.
    fail_next_task: Option<String>,
    down_on_reset: Option<Duration>,
    keep_version_on_reset: bool,
    busy: u32,
    busy_retry_after: u64,
}

struct Bmc {
    index: usize,
    port: u16,
    state: Mutex<State>,
    emulator: Arc<Shared>,
    /// Cancelled to take the BMC off the network (listener and connections).
    generation: Mutex<CancellationToken>,
}

struct Shared {
    updating_now: Mutex<(usize, usize)>,
    tls: tokio_rustls::TlsAcceptor,
    seq: AtomicU64,
}

/// A running emulator: `specs.len()` BMCs on 127.0.0.1, each on its own port.
pub struct BmcEmulator {
    bmcs: Vec<Arc<Bmc>>,
    shared: Arc<Shared>,
    ca: TestCa,
    dir: TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BmcEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcEmulator")
            .field(
                "ports",
                &self.bmcs.iter().map(|b| b.port).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take the whole emulator down with a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BmcEmulator {
    /// Starts one BMC per spec, on its own runtime (so it keeps serving whatever the test's
    /// runtime does).
    pub fn start(specs: Vec<BmcSpec>) -> BmcEmulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bmc-emulator")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("starting the emulator's runtime: {e}"));
        let ca = TestCa::generate();
        let dir = tempfile::Builder::new()
            .prefix("ballast-bmc-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temporary directory: {e}"));
        ca.write_to(dir.path());
        let shared = Arc::new(Shared {
            updating_now: Mutex::new((0, 0)),
            tls: tokio_rustls::TlsAcceptor::from(ca.server_config()),
            seq: AtomicU64::new(1),
        });
        let mut bmcs = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            // Bound with std and handed to the emulator's runtime: `start` may be called from
            // inside a test's runtime, where `block_on` is not allowed.
            let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .unwrap_or_else(|e| panic!("binding a port for a BMC: {e}"));
            let listener = {
                let _enter = runtime.enter();
                TcpListener::from_std(std_listener)
                    .unwrap_or_else(|e| panic!("registering a BMC's port: {e}"))
            };
            let port = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("reading the bound port: {e}"))
                .port();
            let versions = spec
                .components
                .iter()
                .map(|c| (c.id.clone(), c.version.clone()))
                .collect();
            let bmc = Arc::new(Bmc {
                index,
                port,
                state: Mutex::new(State {
                    spec,
                    power_on: true,
                    powering_on_at: None,
                    versions,
                    sessions: HashMap::new(),
                    session_seq: 0,
                    tasks: Vec::new(),
                    uploads: Vec::new(),
                    counters: Counters::default(),
                    updating: false,
                    fail_next_task: None,
                    down_on_reset: None,
                    keep_version_on_reset: false,
                    busy: 0,
                    busy_retry_after: 0,
                }),
                emulator: shared.clone(),
                generation: Mutex::new(CancellationToken::new()),
            });
            let token = lock(&bmc.generation).clone();
            runtime.spawn(serve(bmc.clone(), listener, token));
            bmcs.push(bmc);
        }
        // Tasks advance with time, also when nobody polls.
        let ticking: Vec<Arc<Bmc>> = bmcs.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                for bmc in &ticking {
                    bmc.tick();
                }
            }
        });
        BmcEmulator {
            bmcs,
            shared,
            ca,
            dir,
            runtime: Some(runtime),
        }
    }

    /// The number of BMCs.
    pub fn len(&self) -> usize {
        self.bmcs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bmcs.is_empty()
    }

    /// The BMC at `index`.
    pub fn bmc(&self, index: usize) -> BmcHandle<'_> {
        BmcHandle {
            bmc: &self.bmcs[index],
            emulator: self,
        }
    }

    /// The CA that signed every BMC's certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca.ca_pem
    }

    /// The CA as a file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The SHA-256 fingerprint of the BMCs' certificate (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// The most BMCs of this emulator updating at once so far.
    pub fn max_updating_at_once(&self) -> usize {
        lock(&self.shared.updating_now).1
    }

    /// BMCs updating now.
    pub fn updating_now(&self) -> usize {
        lock(&self.shared.updating_now).0
    }
}

impl Drop for BmcEmulator {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One BMC of an emulator: its address and credentials, faults and counters.
pub struct BmcHandle<'a> {
    bmc: &'a Arc<Bmc>,
    emulator: &'a BmcEmulator,
}

impl BmcHandle<'_> {
    pub fn port(&self) -> u16 {
        self.bmc.port
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.bmc.port)
    }

    pub fn username(&self) -> String {
        lock(&self.bmc.state).spec.username.clone()
    }

    pub fn password(&self) -> String {
        lock(&self.bmc.state).spec.password.clone()
    }

    /// The system's URI.
    pub fn system_uri(&self) -> String {
        system_uri(lock(&self.bmc.state).spec.flavour).to_string()
    }

    /// The version the inventory shows for a component.
    pub fn version(&self, component: &str) -> Option<String> {
        lock(&self.bmc.state).versions.get(component).cloned()
    }

    /// Whether the system is powered on.
    pub fn power_on(&self) -> bool {
        lock(&self.bmc.state).power_on
    }

    /// Requests per `METHOD /path` (without the query).
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.bmc.state).counters.requests.clone()
    }

    /// Requests of `method` to `path` (without the query).
    pub fn request_count(&self, method: &str, path: &str) -> u64 {
        lock(&self.bmc.state)
            .counters
            .requests
            .get(&format!("{method} {path}"))
            .copied()
            .unwrap_or(0)
    }

    /// All requests so far.
    pub fn total_requests(&self) -> u64 {
        lock(&self.bmc.state).counters.requests.values().sum()
    }

    /// Forgets the request counts.
    pub fn reset_request_counts(&self) {
        lock(&self.bmc.state).counters.requests.clear();
    }

    pub fn sessions_created(&self) -> u64 {
        lock(&self.bmc.state).counters.sessions_created
    }

    /// Sessions deleted by a logout.
    pub fn sessions_deleted(&self) -> u64 {
        lock(&self.bmc.state).counters.sessions_deleted
    }

    /// Sessions open now (expired ones excluded).
    pub fn live_sessions(&self) -> usize {
        let mut state = lock(&self.bmc.state);
        expire_idle(&mut state);
        state.sessions.len()
    }

    /// The most sessions open at once so far.
    pub fn max_live_sessions(&self) -> usize {
        lock(&self.bmc.state).counters.sessions_peak
    }

    /// Logins refused because the sessions ran out.
    pub fn logins_refused(&self) -> u64 {
        lock(&self.bmc.state).counters.logins_refused
    }

    /// What multipart pushes delivered.
    pub fn uploads(&self) -> Vec<Upload> {
        lock(&self.bmc.state).uploads.clone()
    }

    /// Fault: the next update task fails at its end with this message (ExtendedInfo).
    pub fn fail_next_task(&self, message: &str) {
        lock(&self.bmc.state).fail_next_task = Some(message.to_string());
    }

    /// Fault: a system reset takes the BMC off the network for `downtime`.
    pub fn go_down_on_reset(&self, downtime: Duration) {
        lock(&self.bmc.state).down_on_reset = Some(downtime);
    }

    /// Fault: a reset does not apply the flashed version.
    pub fn keep_version_on_reset(&self, keep: bool) {
        lock(&self.bmc.state).keep_version_on_reset = keep;
    }

    /// Fault: the next `count` requests get 503 with `Retry-After: retry_after_secs`.
    pub fn busy(&self, count: u32, retry_after_secs: u64) {
        let mut state = lock(&self.bmc.state);
        state.busy = count;
        state.busy_retry_after = retry_after_secs;
    }

    /// Fault: every open session expires (the next use answers 401).
    pub fn expire_sessions(&self) {
        lock(&self.bmc.state).sessions.clear();
    }

    /// Takes the BMC off the network for `downtime` now (as during its own reboot).
    pub fn go_down_for(&self, downtime: Duration) {
        let bmc = self.bmc.clone();
        if let Some(rt) = &self.emulator.runtime {
            rt.spawn(async move { bmc.down_for(downtime).await });
        }
    }
}

fn system_uri(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Generic => "/redfish/v1/Systems/1",
        Flavour::Dell => "/redfish/v1/Systems/System.Embedded.1",
    }
}

fn manager_uri(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Generic => "/redfish/v1/Managers/BMC",
        Flavour::Dell => "/redfish/v1/Managers/iDRAC.Embedded.1",
    }
}

fn inventory_id(flavour: Flavour, component: &Component, version: &str) -> String {
    match flavour {
        Flavour::Generic => component.id.clone(),
        Flavour::Dell => format!("Installed-{}-{}", component.id, version),
    }
}

fn expire_idle(state: &mut State) {
    let timeout = state.spec.session_timeout;
    state
        .sessions
        .retain(|_, s| s.last_used.elapsed() < timeout);
}

async fn serve(bmc: Arc<Bmc>, listener: TcpListener, token: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            continue;
        };
        let bmc = bmc.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let acceptor = bmc.emulator.tls.clone();
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let handler_bmc = bmc.clone();
            let service = tower_service(handler_bmc);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
            tokio::select! {
                _ = token.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

fn tower_service(bmc: Arc<Bmc>) -> axum::Router {
    axum::Router::new().fallback(move |req: Request<Body>| {
        let bmc = bmc.clone();
        async move { bmc.handle(req).await }
    })
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

fn error_response(status: StatusCode, id: &str, message: &str, fields: &[&str]) -> Response<Body> {
    json_response(
        status,
        json!({"error": {
            "code": "Base.1.8.GeneralError",
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{
                "@odata.type": "#Message.v1_1_1.Message",
                "MessageId": id,
                "Message": message,
                "RelatedProperties": fields.iter().map(|f| format!("#/{f}")).collect::<Vec<_>>(),
                "Severity": "Critical",
                "Resolution": "See the message."
            }]
        }}),
    )
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn link(uri: &str) -> Value {
    json!({ "@odata.id": uri })
}

impl Bmc {
    async fn down_for(self: &Arc<Self>, downtime: Duration) {
        // Closing the listener refuses new connections; cancelling the token drops the open
        // ones, as a rebooting BMC does.
        let old = std::mem::replace(&mut *lock(&self.generation), CancellationToken::new());
        old.cancel();
        tokio::time::sleep(downtime).await;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 200 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("BMC {} could not listen on {addr} again: {e}", self.index),
            }
        };
        let token = lock(&self.generation).clone();
        tokio::spawn(serve(self.clone(), listener, token));
    }

    fn set_updating(&self, state: &mut State, updating: bool) {
        if state.updating == updating {
            return;
        }
        state.updating = updating;
        let mut now = lock(&self.emulator.updating_now);
        if updating {
            now.0 += 1;
            now.1 = now.1.max(now.0);
        } else {
            now.0 = now.0.saturating_sub(1);
        }
    }

    /// Advances tasks and restarts with time.
    fn tick(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        let now = Instant::now();
        if let Some(at) = state.powering_on_at
            && now >= at
        {
            state.power_on = true;
            state.powering_on_at = None;
        }
        let mut finished_bmc_update = false;
        let flavour = state.spec.flavour;
        let mut changed = Vec::new();
        for (i, task) in state.tasks.iter().enumerate() {
            match &task.phase {
                Phase::Running if now >= task.started + task.duration => changed.push(i),
                Phase::Applying { until } if now >= *until => changed.push(i),
                _ => {}
            }
        }
        for i in changed {
            let task = state.tasks[i].clone();
            let is_manager = state
                .spec
                .components
                .iter()
                .any(|c| c.id == task.component && c.manager);
            let next = match (&task.phase, &task.fail) {
                (Phase::Running, Some(message)) => Phase::Failed(message.clone()),
                (Phase::Running, None) if is_manager => {
                    // The BMC's own firmware: it activates it by rebooting itself.
                    state
                        .versions
                        .insert(task.component.clone(), task.version.clone());
                    finished_bmc_update = true;
                    Phase::Completed
                }
                (Phase::Running, None) => {
                    // Flashed; the new version shows after the system's next reset, whatever
                    // the apply time asked (as BIOS updates do). The task keeps the version.
                    Phase::AwaitingReset
                }
                (Phase::Applying { .. }, _) => {
                    if !state.keep_version_on_reset {
                        state
                            .versions
                            .insert(task.component.clone(), task.version.clone());
                    }
                    Phase::Completed
                }
                (other, _) => other.clone(),
            };
            state.tasks[i].phase = next;
        }
        let busy = state.tasks.iter().any(|t| {
            matches!(
                t.phase,
                Phase::Running | Phase::AwaitingReset | Phase::Applying { .. }
            )
        });
        self.set_updating(&mut state, busy);
        drop(state);
        if finished_bmc_update && flavour == Flavour::Dell {
            let me = self.clone();
            tokio::spawn(async move { me.down_for(Duration::from_millis(300)).await });
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_string();
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let query = req.uri().query().unwrap_or("").to_string();
        {
            let mut state = lock(&self.state);
            *state
                .counters
                .requests
                .entry(format!("{method} {path}"))
                .or_default() += 1;
            if state.busy > 0 {
                state.busy -= 1;
                let mut response = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Base.1.8.ServiceTemporarilyUnavailable",
                    "The service is temporarily unavailable.",
                    &[],
                );
                if let Ok(v) = HeaderValue::from_str(&state.busy_retry_after.to_string()) {
                    response.headers_mut().insert("Retry-After", v);
                }
                return response;
            }
        }
        // The root and the login are open; everything else needs a session or basic auth.
        let open = (method == Method::GET && (path == "/redfish/v1" || path == "/redfish"))
            || (method == Method::POST && path == "/redfish/v1/SessionService/Sessions");
        if !open && !self.authorized(req.headers()) {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "Base.1.8.NoValidSession",
                "There is no valid session established with the implementation.",
                &[],
            );
        }
        let expanded = query.contains("$expand=");
        match (method.clone(), path.as_str()) {
            (Method::GET, "/redfish/v1") => self.root(),
            (Method::POST, "/redfish/v1/SessionService/Sessions") => {
                let body = read_json(req).await;
                self.login(&body)
            }
            (Method::DELETE, p) if p.starts_with("/redfish/v1/SessionService/Sessions/") => {
                self.logout(p.rsplit('/').next().unwrap_or(""))
            }
            (Method::GET, "/redfish/v1/SessionService") => json_response(
                StatusCode::OK,
                json!({"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService",
                    "Id": "SessionService", "ServiceEnabled": true, "SessionTimeout": lock(&self.state).spec.session_timeout.as_secs(),
                    "Sessions": link("/redfish/v1/SessionService/Sessions")}),
            ),
            (Method::GET, "/redfish/v1/Systems") => {
                self.collection("/redfish/v1/Systems", vec![self.system()], expanded)
            }
            (Method::GET, "/redfish/v1/Managers") => {
                self.collection("/redfish/v1/Managers", vec![self.manager()], expanded)
            }
            (Method::GET, "/redfish/v1/UpdateService") => self.update_service(),
            (Method::GET, "/redfish/v1/UpdateService/FirmwareInventory") => {
                let members = self.inventory();
                self.collection(
                    "/redfish/v1/UpdateService/FirmwareInventory",
                    members,
                    expanded,
                )
            }
            (Method::GET, p) if p == system_uri(self.flavour()) => {
                json_response(StatusCode::OK, self.system())
            }
            (Method::GET, p) if p == manager_uri(self.flavour()) => {
                json_response(StatusCode::OK, self.manager())
            }
            (Method::GET, p) if p.starts_with("/redfish/v1/UpdateService/FirmwareInventory/") => {
                let id = p.rsplit('/').next().unwrap_or("");
                match self.inventory().into_iter().find(|m| m["Id"] == id) {
                    Some(m) => json_response(StatusCode::OK, m),
                    None => not_found(p),
                }
            }
            (Method::POST, p)
                if p == format!(
                    "{}/Actions/ComputerSystem.Reset",
                    system_uri(self.flavour())
                ) =>
            {
                let body = read_json(req).await;
                self.reset(&body)
            }
            (Method::POST, "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate") => {
                let body = read_json(req).await;
                self.simple_update(&body)
            }
            (Method::POST, p) if p == self.multipart_uri() => self.multipart(req).await,
            (Method::GET, p) if p.starts_with("/redfish/v1/TaskService/TaskMonitors/") => {
                self.task_view(p.rsplit('/').next().unwrap_or(""), true)
            }
            (Method::GET, p) if p.starts_with("/redfish/v1/TaskService/Tasks/") => {
                self.task_view(p.rsplit('/').next().unwrap_or(""), false)
            }
            (Method::GET, p)
                if p.starts_with("/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/")
                    && self.flavour() == Flavour::Dell =>
            {
                self.dell_job_view(p.rsplit('/').next().unwrap_or(""))
            }
            (_, p) => not_found(p),
        }
    }

    fn flavour(&self) -> Flavour {
        lock(&self.state).spec.flavour
    }

    fn multipart_uri(&self) -> &'static str {
        match self.flavour() {
            Flavour::Generic => "/redfish/v1/UpdateService/upload",
            Flavour::Dell => "/redfish/v1/UpdateService/MultipartUpload",
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let mut state = lock(&self.state);
        expire_idle(&mut state);
        if let Some(token) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
            return match state.sessions.get_mut(token) {
                Some(session) => {
                    session.last_used = Instant::now();
                    true
                }
                None => false,
            };
        }
        if let Some(basic) = headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            return decoded.is_some_and(|d| {
                d.split_once(':')
                    .is_some_and(|(u, p)| u == state.spec.username && p == state.spec.password)
            });
        }
        false
    }

    fn login(&self, body: &Value) -> Response<Body> {
        let mut state = lock(&self.state);
        expire_idle(&mut state);
        let user = body.get("UserName").and_then(Value::as_str).unwrap_or("");
        let password = body.get("Password").and_then(Value::as_str).unwrap_or("");
        if user != state.spec.username || password != state.spec.password {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "Base.1.8.ResourceAtUriUnauthorized",
                "While accessing the resource at /redfish/v1/SessionService/Sessions, the service received an authorization error: invalid user name or password.",
                &[],
            );
        }
        if state.sessions.len() >= state.spec.max_sessions {
            state.counters.logins_refused += 1;
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.",
                &[],
            );
        }
        state.session_seq += 1;
        let id = format!("{}", state.session_seq);
        let token = random_token(&self.emulator);
        state.sessions.insert(
            token.clone(),
            Session {
                id: id.clone(),
                last_used: Instant::now(),
            },
        );
        state.counters.sessions_created += 1;
        state.counters.sessions_peak = state.counters.sessions_peak.max(state.sessions.len());
        let location = format!("/redfish/v1/SessionService/Sessions/{id}");
        let mut response = json_response(
            StatusCode::CREATED,
            json!({"@odata.id": location, "@odata.type": "#Session.v1_3_0.Session", "Id": id, "Name": "User Session", "UserName": user}),
        );
        if let (Ok(t), Ok(l)) = (
            HeaderValue::from_str(&token),
            HeaderValue::from_str(&location),
        ) {
            response.headers_mut().insert("X-Auth-Token", t);
            response.headers_mut().insert("Location", l);
        }
        response
    }

    fn logout(&self, id: &str) -> Response<Body> {
        let mut state = lock(&self.state);
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.id != id);
        if state.sessions.len() < before {
            state.counters.sessions_deleted += 1;
            empty(StatusCode::NO_CONTENT)
        } else {
            not_found(&format!("/redfish/v1/SessionService/Sessions/{id}"))
        }
    }

    fn root(&self) -> Response<Body> {
        let state = lock(&self.state);
        let expand = if state.spec.expand {
            json!({"ExpandAll": true, "Levels": true, "Links": true, "MaxLevels": 1, "NoLinks": true})
        } else {
            json!(false)
        };
        let mut root = json!({
            "@odata.id": "/redfish/v1", "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
            "Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.17.0",
            "UUID": format!("92384634-2938-2342-8820-{:012}", self.index),
            "ProtocolFeaturesSupported": {"ExpandQuery": expand, "FilterQuery": false, "SelectQuery": false, "OnlyMemberQuery": true},
            "Systems": link("/redfish/v1/Systems"), "Managers": link("/redfish/v1/Managers"),
            "UpdateService": link("/redfish/v1/UpdateService"), "Tasks": link("/redfish/v1/TaskService"),
            "SessionService": link("/redfish/v1/SessionService"),
            "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")},
        });
        match state.spec.flavour {
            Flavour::Generic => {
                root["Vendor"] = json!("Contoso");
                root["Product"] = json!("Contoso BMC");
                root["Oem"] = json!({});
            }
            Flavour::Dell => {
                root["Vendor"] = json!("Dell");
                root["Product"] = json!("Integrated Dell Remote Access Controller");
                root["Oem"] = json!({"Dell": {"@odata.type": "#DellServiceRoot.v1_0_0.DellServiceRoot", "IsBranded": 0, "ManagerMACAddress": "d0:94:66:00:00:01", "ServiceTag": state.spec.sku}});
            }
        }
        json_response(StatusCode::OK, root)
    }

    fn system(&self) -> Value {
        let state = lock(&self.state);
        let uri = system_uri(state.spec.flavour);
        let power = if state.power_on {
            "On"
        } else if state.powering_on_at.is_some() {
            "PoweringOn"
        } else {
            "Off"
        };
        let bios = state
            .spec
            .components
            .iter()
            .find(|c| !c.manager)
            .and_then(|c| state.versions.get(&c.id))
            .cloned();
        let mut system = json!({
            "@odata.id": uri, "@odata.type": "#ComputerSystem.v1_16_0.ComputerSystem",
            "Id": uri.rsplit('/').next(), "Name": "System", "SystemType": "Physical",
            "Manufacturer": if state.spec.flavour == Flavour::Dell { "Dell Inc." } else { "Contoso" },
            "Model": state.spec.model, "SerialNumber": state.spec.serial, "SKU": state.spec.sku,
            "PowerState": power, "BiosVersion": bios,
            "Status": {"State": "Enabled", "Health": "OK", "HealthRollup": "OK"},
            "Links": {"ManagedBy": [link(manager_uri(state.spec.flavour))]},
            "Actions": {"#ComputerSystem.Reset": {
                "target": format!("{uri}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PowerCycle"]
            }},
        });
        if state.spec.flavour == Flavour::Dell {
            system["Oem"] = json!({"Dell": {"DellSystem": {"SystemID": 1814, "@odata.type": "#DellSystem.v1_3_0.DellSystem"}}});
        }
        system
    }

    fn manager(&self) -> Value {
        let state = lock(&self.state);
        let uri = manager_uri(state.spec.flavour);
        let firmware = state
            .spec
            .components
            .iter()
            .find(|c| c.manager)
            .and_then(|c| state.versions.get(&c.id))
            .cloned();
        json!({"@odata.id": uri, "@odata.type": "#Manager.v1_10_0.Manager", "Id": uri.rsplit('/').next(),
            "ManagerType": "BMC", "Model": if state.spec.flavour == Flavour::Dell { "14G Monolithic" } else { "Joo Janta 200" },
            "FirmwareVersion": firmware, "Status": {"State": "Enabled", "Health": "OK"}})
    }

    fn inventory(&self) -> Vec<Value> {
        let state = lock(&self.state);
        let flavour = state.spec.flavour;
        state
            .spec
            .components
            .iter()
            .map(|c| {
                let version = state.versions.get(&c.id).cloned().unwrap_or_default();
                let id = inventory_id(flavour, c, &version);
                let mut item = json!({
                    "@odata.id": format!("/redfish/v1/UpdateService/FirmwareInventory/{id}"),
                    "@odata.type": "#SoftwareInventory.v1_2_3.SoftwareInventory",
                    "Id": id, "Name": c.name, "Version": version, "Updateable": true,
                    "SoftwareId": c.id, "Status": {"State": "Enabled", "Health": "OK"},
                });
                if c.manager {
                    item["RelatedItem"] = json!([link(manager_uri(flavour))]);
                } else {
                    item["RelatedItem"] = json!([link(system_uri(flavour))]);
                }
                item
            })
            .collect()
    }

    fn collection(&self, uri: &str, members: Vec<Value>, expanded: bool) -> Response<Body> {
        let expand_ok = lock(&self.state).spec.expand;
        let count = members.len();
        let members: Vec<Value> = if expanded && expand_ok {
            members
        } else {
            members
                .iter()
                .map(|m| link(m["@odata.id"].as_str().unwrap_or("")))
                .collect()
        };
        json_response(
            StatusCode::OK,
            json!({"@odata.id": uri, "@odata.type": "#Collection.Collection", "Name": "Collection",
                "Members": members, "Members@odata.count": count}),
        )
    }

    fn update_service(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            json!({
                "@odata.id": "/redfish/v1/UpdateService", "@odata.type": "#UpdateService.v1_11_0.UpdateService",
                "Id": "UpdateService", "Name": "Update Service", "ServiceEnabled": true,
                "Status": {"State": "Enabled", "Health": "OK"},
                "FirmwareInventory": link("/redfish/v1/UpdateService/FirmwareInventory"),
                "MultipartHttpPushUri": self.multipart_uri(),
                "Actions": {"#UpdateService.SimpleUpdate": {
                    "target": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
                    "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
                    "@Redfish.OperationApplyTimeSupport": {"@odata.type": "#Settings.v1_3_3.OperationApplyTimeSupport", "SupportedValues": ["Immediate", "OnReset"]}
                }}
            }),
        )
    }

    fn reset(self: &Arc<Self>, body: &Value) -> Response<Body> {
        let reset = body.get("ResetType").and_then(Value::as_str).unwrap_or("");
        let allowed = [
            "On",
            "ForceOff",
            "ForceRestart",
            "GracefulRestart",
            "GracefulShutdown",
            "PowerCycle",
        ];
        if !allowed.contains(&reset) {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterNotSupported",
                &format!(
                    "The parameter {reset} for the action ComputerSystem.Reset is not supported on the target resource."
                ),
                &["ResetType"],
            );
        }
        let mut state = lock(&self.state);
        let now = Instant::now();
        match reset {
            "On" => state.power_on = true,
            "ForceOff" | "GracefulShutdown" => {
                state.power_on = false;
                state.powering_on_at = None;
            }
            _ => {
                // A restart: flashed firmware is applied while the system comes back.
                state.power_on = false;
                state.powering_on_at = Some(now + state.spec.reset_duration);
                let until = now + state.spec.reset_duration;
                for task in state.tasks.iter_mut() {
                    if task.phase == Phase::AwaitingReset {
                        task.phase = Phase::Applying { until };
                    }
                }
            }
        }
        let downtime = state.down_on_reset;
        drop(state);
        if let Some(downtime) = downtime {
            let me = self.clone();
            tokio::spawn(async move {
                // Answer the reset first, then drop off the network.
                tokio::time::sleep(Duration::from_millis(30)).await;
                me.down_for(downtime).await;
            });
        }
        empty(StatusCode::NO_CONTENT)
    }

    fn start_task(&self, state: &mut State, image: &Image) -> String {
        let seq = self.emulator.seq.fetch_add(1, Ordering::Relaxed);
        let id = match state.spec.flavour {
            Flavour::Generic => format!("{seq}"),
            Flavour::Dell => format!("JID_{:012}", 467_696_000_000 + seq),
        };
        let fail = state.fail_next_task.take();
        state.tasks.push(Task {
            id: id.clone(),
            component: image.component.clone(),
            version: image.version.clone(),
            started: Instant::now(),
            duration: state.spec.task_duration,
            fail,
            phase: Phase::Running,
        });
        self.set_updating(state, true);
        id
    }

    fn accepted(&self, flavour: Flavour, id: &str) -> Response<Body> {
        let location = match flavour {
            Flavour::Generic => format!("/redfish/v1/TaskService/TaskMonitors/{id}"),
            Flavour::Dell => format!("/redfish/v1/TaskService/Tasks/{id}"),
        };
        let body = self.task_json(id).unwrap_or(Value::Null);
        let mut response = json_response(StatusCode::ACCEPTED, body);
        if let Ok(l) = HeaderValue::from_str(&location) {
            response.headers_mut().insert("Location", l);
        }
        response
    }

    /// The error response for an apply time the BMC does not support, if it is one.
    fn bad_apply_time(body: &Value) -> Option<Response<Body>> {
        match body
            .get("@Redfish.OperationApplyTime")
            .and_then(Value::as_str)
        {
            None | Some("Immediate") | Some("OnReset") => None,
            Some(other) => Some(error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.PropertyValueNotInList",
                &format!(
                    "The value {other} for the property @Redfish.OperationApplyTime is not in the list of acceptable values."
                ),
                &["@Redfish.OperationApplyTime"],
            )),
        }
    }

    fn simple_update(&self, body: &Value) -> Response<Body> {
        let Some(uri) = body.get("ImageURI").and_then(Value::as_str) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterMissing",
                "The action UpdateService.SimpleUpdate requires the parameter ImageURI to be present in the request body.",
                &["ImageURI"],
            );
        };
        if let Some(proto) = body.get("TransferProtocol").and_then(Value::as_str)
            && !["HTTP", "HTTPS"].contains(&proto)
        {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterNotSupported",
                &format!("The parameter TransferProtocol with the value {proto} is not supported."),
                &["TransferProtocol"],
            );
        }
        if let Some(r) = Self::bad_apply_time(body) {
            return r;
        }
        let file = uri.rsplit('/').next().unwrap_or("");
        let mut state = lock(&self.state);
        let Some(image) = state
            .spec
            .images
            .iter()
            .find(|i| i.file_name == file)
            .cloned()
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterValueFormatError",
                &format!(
                    "The value {uri} for the parameter ImageURI in the action UpdateService.SimpleUpdate is not a valid update package."
                ),
                &["ImageURI"],
            );
        };
        if let Some(targets) = body.get("Targets").and_then(Value::as_array) {
            let known = self.known_targets(&state);
            if let Some(bad) = targets
                .iter()
                .filter_map(Value::as_str)
                .find(|t| !known.iter().any(|k| k == t))
            {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Base.1.8.ActionParameterValueError",
                    &format!(
                        "The value {bad} for the parameter Targets is not a resource of this service."
                    ),
                    &["Targets"],
                );
            }
        }
        let flavour = state.spec.flavour;
        let id = self.start_task(&mut state, &image);
        drop(state);
        self.accepted(flavour, &id)
    }

    fn known_targets(&self, state: &State) -> Vec<String> {
        let flavour = state.spec.flavour;
        let mut known = vec![
            system_uri(flavour).to_string(),
            manager_uri(flavour).to_string(),
        ];
        for c in &state.spec.components {
            let version = state.versions.get(&c.id).cloned().unwrap_or_default();
            known.push(format!(
                "/redfish/v1/UpdateService/FirmwareInventory/{}",
                inventory_id(flavour, c, &version)
            ));
        }
        known
    }

    async fn multipart(&self, req: Request<Body>) -> Response<Body> {
        let mut multipart = match Multipart::from_request(req, &()).await {
            Ok(m) => m,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Base.1.8.UnrecognizedRequestBody",
                    &format!("The service detected a malformed request body: {e}"),
                    &[],
                );
            }
        };
        let mut parameters = Value::Null;
        let mut file: Option<(String, Bytes)> = None;
        loop {
            match multipart.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or("").to_string();
                    let file_name = field.file_name().map(str::to_string);
                    let Ok(data) = field.bytes().await else {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            "Base.1.8.UnrecognizedRequestBody",
                            "The upload was cut short.",
                            &[],
                        );
                    };
                    match name.as_str() {
                        "UpdateParameters" => {
                            parameters = serde_json::from_slice(&data).unwrap_or(Value::Null);
                        }
                        "UpdateFile" => file = Some((file_name.unwrap_or_default(), data)),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "Base.1.8.UnrecognizedRequestBody",
                        &format!("The upload is malformed: {e}"),
                        &[],
                    );
                }
            }
        }
        if parameters.is_null() {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterMissing",
                "The multipart request requires the part UpdateParameters.",
                &["UpdateParameters"],
            );
        }
        let Some((file_name, data)) = file else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Base.1.8.ActionParameterMissing",
                "The multipart request requires the part UpdateFile.",
                &["UpdateFile"],
            );
        };
        if let Some(r) = Self::bad_apply_time(&parameters) {
            return r;
        }
        let mut state = lock(&self.state);
        state.uploads.push(Upload {
            file_name: file_name.clone(),
            bytes: data.len(),
            sha256: Sha256::digest(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            parameters: parameters.clone(),
        });
        let Some(image) = state
            .spec
            .images
            .iter()
            .find(|i| i.file_name == file_name)
            .cloned()
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Update.1.0.InvalidImage",
                &format!("The image {file_name} is not a valid update package for this system."),
                &["UpdateFile"],
            );
        };
        let flavour = state.spec.flavour;
        let id = self.start_task(&mut state, &image);
        drop(state);
        self.accepted(flavour, &id)
    }

    /// The task as a DMTF `Task` (Dell: with its job in `Oem.Dell`).
    fn task_json(&self, id: &str) -> Option<Value> {
        let state = lock(&self.state);
        let task = state.tasks.iter().find(|t| t.id == id)?;
        let percent = task_percent(task);
        let (task_state, status, messages) = match &task.phase {
            Phase::Running => (
                "Running",
                "OK",
                vec![
                    json!({"MessageId": "Update.1.0.TransferringToComponent", "Message": format!("Image is being transferred to {}.", task.component), "Severity": "OK"}),
                ],
            ),
            Phase::AwaitingReset => (
                "Completed",
                "OK",
                vec![
                    json!({"MessageId": "Update.1.0.UpdateSuccessful", "Message": format!("Device {} successfully updated with image.", task.component), "Severity": "OK"}),
                    json!({"MessageId": "Base.1.8.ResetRequired", "Message": format!("In order to complete the operation, a component reset is required with the Reset action URI '{}/Actions/ComputerSystem.Reset' and ResetType 'ForceRestart'.", system_uri(state.spec.flavour)), "Severity": "Warning"}),
                ],
            ),
            Phase::Applying { .. } => (
                "Running",
                "OK",
                vec![
                    json!({"MessageId": "Update.1.0.ApplyingOnComponent", "Message": format!("Image is being applied on {}.", task.component), "Severity": "OK"}),
                ],
            ),
            Phase::Completed => (
                "Completed",
                "OK",
                vec![
                    json!({"MessageId": "Update.1.0.UpdateSuccessful", "Message": format!("Device {} successfully updated with image.", task.component), "Severity": "OK"}),
                ],
            ),
            Phase::Failed(message) => (
                "Exception",
                "Critical",
                vec![
                    json!({"MessageId": "Update.1.0.ApplyFailed", "Message": message, "Severity": "Critical", "Resolution": "Retry the update."}),
                ],
            ),
        };
        let mut body = json!({
            "@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"), "@odata.type": "#Task.v1_5_1.Task",
            "Id": id, "Name": format!("Task {id}"), "TaskState": task_state, "TaskStatus": status,
            "PercentComplete": percent, "Messages": messages,
            "TaskMonitor": format!("/redfish/v1/TaskService/TaskMonitors/{id}"),
        });
        if state.spec.flavour == Flavour::Dell {
            body["Oem"] = json!({"Dell": dell_job(task)});
        }
        Some(body)
    }

    fn task_view(&self, id: &str, monitor: bool) -> Response<Body> {
        let Some(body) = self.task_json(id) else {
            return not_found(id);
        };
        // A monitor answers 202 while the task runs.
        let running = body["TaskState"] == "Running";
        let status = if monitor && running {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        json_response(status, body)
    }

    fn dell_job_view(&self, id: &str) -> Response<Body> {
        let state = lock(&self.state);
        match state.tasks.iter().find(|t| t.id == id) {
            Some(task) => json_response(StatusCode::OK, dell_job(task)),
            None => not_found(id),
        }
    }
}

fn task_percent(task: &Task) -> u64 {
    match task.phase {
        Phase::Running => {
            let done =
                task.started.elapsed().as_secs_f64() / task.duration.as_secs_f64().max(0.001);
            ((done * 100.0) as u64).min(99)
        }
        _ => 100,
    }
}

/// The task as Dell's `DellJob`.
fn dell_job(task: &Task) -> Value {
    let percent = task_percent(task);
    let (state, message, message_id) = match &task.phase {
        Phase::Running if percent < 50 => (
            "Downloading",
            "Package is being downloaded.".to_string(),
            "RED003",
        ),
        Phase::Running => ("Running", "Job in progress.".to_string(), "PR36"),
        Phase::AwaitingReset => (
            "Scheduled",
            "Task successfully scheduled.".to_string(),
            "JCP001",
        ),
        Phase::Applying { .. } => ("Running", "Job in progress.".to_string(), "PR36"),
        Phase::Completed => (
            "Completed",
            "Job completed successfully.".to_string(),
            "RED001",
        ),
        Phase::Failed(m) => ("Failed", m.clone(), "RED007"),
    };
    let percent = match task.phase {
        Phase::AwaitingReset => 34,
        Phase::Applying { .. } => 60,
        _ => percent,
    };
    json!({
        "@odata.id": format!("/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/{}", task.id),
        "@odata.type": "#DellJob.v1_5_0.DellJob",
        "Id": task.id, "Name": "Firmware Update: BIOS", "JobType": "FirmwareUpdate",
        "JobState": state, "Message": message, "MessageId": message_id,
        "PercentComplete": percent, "StartTime": "TIME_NOW", "EndTime": "TIME_NA",
    })
}

fn not_found(path: &str) -> Response<Body> {
    error_response(
        StatusCode::NOT_FOUND,
        "Base.1.8.ResourceMissingAtURI",
        &format!("The resource at the URI {path} was not found."),
        &[],
    )
}

async fn read_json(req: Request<Body>) -> Value {
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn random_token(shared: &Shared) -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        // Unique is enough for a test BMC.
        let n = shared.seq.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
