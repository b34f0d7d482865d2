//! `ballast daemon`: keeps reality equal to the manifest directory without anyone typing
//! `apply`. It watches the directory (one reload per burst of changes), reconciles each changed
//! resource through the work queue (never two reconciles of one key at once, per-key backoff),
//! re-checks everything on a timer to find drift, and talks to systemd.
//!
//! A reload that does not validate keeps the last good desired state: nothing is deleted because
//! a file failed to parse. Reconciles are level-triggered: a worker reads the current desired set
//! and observes the engine; the event that queued the key carries no data.

pub mod config;
mod http;
mod metrics;
mod systemd;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use ballast_engine::{Engine, EngineError, Reporter, source_info};
use ballast_model::{DesiredSet, ResourceKey};
use ballast_plan::{Action, plan_set};
use ballast_runtime::{Outcome, WorkQueue};
use ballast_store::{NewEvent, Severity};
use tokio::signal::unix::{SignalKind, signal};

pub use config::{DaemonConfig, DriftPolicy, HttpConfig, default_socket};

/// Annotation choosing what drift does to one resource: `heal` or `report`.
pub const DRIFT_ANNOTATION: &str = "ballast.io/drift";
/// Annotation that suspends reconciling a resource when `"true"`.
pub const SUSPEND_ANNOTATION: &str = "ballast.io/suspend";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot read the API token file {}: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The last good desired state, swapped whole on each successful reload.
#[derive(Default)]
struct Desired {
    set: Arc<DesiredSet>,
    hashes: Arc<HashMap<ResourceKey, String>>,
}

/// What `STATUS=` and (later) `ballast status` report.
#[derive(Default)]
struct Health {
    last_reload_at: Option<chrono::DateTime<chrono::Utc>>,
    last_commit: Option<String>,
    last_dirty: bool,
    last_reload_error: Option<String>,
    /// Drift reported and left alone (policy `report`).
    drifted: HashSet<ResourceKey>,
    /// Resources that failed in a way only a spec change can fix, with the hash that failed.
    terminal: HashMap<ResourceKey, String>,
    /// Drift being repaired through the queue (policy `heal`).
    healing: HashSet<ResourceKey>,
    failing: HashSet<ResourceKey>,
}

struct Shared {
    engine: Engine,
    /// Swapped whole when SIGHUP re-reads the config file.
    config: RwLock<DaemonConfig>,
    manifests: PathBuf,
    desired: RwLock<Desired>,
    health: Mutex<Health>,
    queue: WorkQueue<ResourceKey>,
    metrics: metrics::Metrics,
    /// Set once the first reload is done and the workers run.
    ready: std::sync::atomic::AtomicBool,
    /// Set on SIGTERM: keys still waiting are let go (the next start re-checks them).
    stopping: std::sync::atomic::AtomicBool,
    /// Poked by `POST /v1/reload`.
    reload_requested: tokio::sync::Notify,
    /// Bearer token for the API's actions; `None` turns them off.
    token: Option<String>,
}

/// The daemon's view, for `/v1/status` and `ballast status`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub ready: bool,
    pub resources: usize,
    pub in_sync: usize,
    pub drifted: Vec<String>,
    pub failing: Vec<String>,
    pub queue_depth: usize,
    pub last_reload_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_reload_commit: Option<String>,
    pub last_reload_dirty: bool,
    pub last_reload_error: Option<String>,
}

/// Logs progress through tracing, which goes to the journal under systemd.
struct LogReporter;
impl Reporter for LogReporter {
    fn started(&self, key: &ResourceKey, action: Action) {
        tracing::info!(resource = %key, action = action.verb(), "reconcile started");
    }
    fn step(&self, key: &ResourceKey, message: &str) {
        tracing::info!(resource = %key, "{message}");
    }
    fn finished(&self, key: &ResourceKey, outcome: &Result<(), String>) {
        match outcome {
            Ok(()) => tracing::info!(resource = %key, "reconcile done"),
            Err(e) => tracing::warn!(resource = %key, error = %e, "reconcile failed"),
        }
    }
}

impl Shared {
    /// Records a system event; a store that cannot take it is logged, never fatal.
    async fn event(
        &self,
        kind: &str,
        severity: Severity,
        message: String,
        resource: Option<&ResourceKey>,
    ) {
        let event = NewEvent {
            kind,
            severity,
            message,
            resource: resource.map(|k| k.to_string()),
        };
        if let Err(e) = self.engine.store().append_event(event).await {
            tracing::warn!(error = %e, "cannot record a system event");
        }
    }

    fn config(&self) -> DaemonConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the config file (SIGHUP). prune, drift, resync-interval and shutdown-grace take
    /// effect at once; workers, debounce and [http] at the next start. A bad file keeps the old.
    fn reload_config(&self, path: Option<&std::path::Path>) -> bool {
        let Some(path) = path else { return false };
        match DaemonConfig::load(Some(path)) {
            Ok(new) => {
                let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
                let resync_changed = config.resync_interval != new.resync_interval;
                config.prune = new.prune;
                config.drift = new.drift;
                config.resync_interval = new.resync_interval;
                config.shutdown_grace = new.shutdown_grace;
                tracing::info!(path = %path.display(), "config re-read; workers, debounce and [http] apply at the next start");
                resync_changed
            }
            Err(e) => {
                tracing::error!(error = %e, "config re-read failed; keeping the running config");
                false
            }
        }
    }

    fn snapshot(&self) -> (Arc<DesiredSet>, Arc<HashMap<ResourceKey, String>>) {
        let desired = self.desired.read().unwrap_or_else(|e| e.into_inner());
        (desired.set.clone(), desired.hashes.clone())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> Status {
        let (set, _) = self.snapshot();
        let health = self.health();
        let sorted = |keys: &HashSet<ResourceKey>| {
            let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        Status {
            ready: self.ready.load(std::sync::atomic::Ordering::SeqCst),
            resources: set.len(),
            in_sync: set
                .len()
                .saturating_sub(health.failing.len() + health.drifted.len()),
            drifted: sorted(&health.drifted),
            failing: sorted(&health.failing),
            queue_depth: self.queue.len() + self.queue.processing_len(),
            last_reload_at: health.last_reload_at,
            last_reload_commit: health.last_commit.clone(),
            last_reload_dirty: health.last_dirty,
            last_reload_error: health.last_reload_error.clone(),
        }
    }

    /// Gauges are read at scrape time rather than kept in step with every change.
    fn refresh_gauges(&self) {
        let status = self.status();
        self.metrics.queue_depth.set(status.queue_depth as i64);
        self.metrics.resources.set(status.resources as i64);
        self.metrics.drifted.set(status.drifted.len() as i64);
        self.metrics.failing.set(status.failing.len() as i64);
        self.metrics
            .last_reload_ok
            .set(i64::from(status.last_reload_error.is_none()));
    }

    fn status_line(&self) -> String {
        let status = self.status();
        let mut line = format!(
            "{} resources, {} in sync, {} drifted, {} failing",
            status.resources,
            status.in_sync,
            status.drifted.len(),
            status.failing.len()
        );
        if let Some(e) = &status.last_reload_error {
            line.push_str(&format!(
                "; last reload failed: {}",
                e.lines().next().unwrap_or_default()
            ));
        }
        line
    }

    /// Reads and validates the manifests; on success records them and queues what changed.
    async fn reload(&self) {
        let set = match ballast_model::load_dir(&self.manifests) {
            Ok(set) => set,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let hashes = match self.engine.hashes(&set).await {
            Ok(h) => h,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let source = source_info(&self.manifests);
        let outcome = match self.engine.record_desired(&set, &source).await {
            Ok(o) => o,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let mut queued: Vec<ResourceKey> = outcome
            .created
            .iter()
            .chain(&outcome.changed)
            .chain(&outcome.restored)
            .filter_map(|k| Some(ResourceKey::new(k.kind.parse().ok()?, k.name.clone())))
            .collect();
        if self.config().prune {
            queued.extend(
                outcome
                    .tombstoned
                    .iter()
                    .filter_map(|k| Some(ResourceKey::new(k.kind.parse().ok()?, k.name.clone()))),
            );
        }
        tracing::info!(
            resources = set.len(),
            queued = queued.len(),
            commit = source.commit.as_deref().unwrap_or("-"),
            dirty = source.dirty,
            "manifests reloaded"
        );
        {
            let mut desired = self.desired.write().unwrap_or_else(|e| e.into_inner());
            *desired = Desired {
                set: Arc::new(set),
                hashes: Arc::new(hashes),
            };
        }
        {
            let mut health = self.health();
            health.last_reload_error = None;
            health.last_reload_at = Some(chrono::Utc::now());
            health.last_commit = source.commit.clone();
            health.last_dirty = source.dirty;
        }
        let commit = source
            .commit
            .as_deref()
            .map(|c| &c[..c.len().min(12)])
            .unwrap_or("no commit");
        self.event(
            "reload",
            Severity::Info,
            format!(
                "loaded {} resources from {} ({commit}{}); {} to reconcile",
                self.snapshot().0.len(),
                self.manifests.display(),
                if source.dirty { ", dirty" } else { "" },
                queued.len()
            ),
            None,
        )
        .await;
        for key in queued {
            self.queue.add(key);
        }
        systemd::status(&self.status_line());
    }

    async fn reload_failed(&self, error: &str) {
        tracing::error!("manifest reload failed; keeping the last good desired state:\n{error}");
        {
            let mut health = self.health();
            health.last_reload_error = Some(error.to_string());
            health.last_reload_at = Some(chrono::Utc::now());
        }
        self.event(
            "reload_failed",
            Severity::Error,
            format!("kept the last good desired state: {error}"),
            None,
        )
        .await;
        systemd::status(&self.status_line());
    }

    /// Whether the key failed terminally with the spec it still has.
    fn failed_for_good(&self, key: &ResourceKey, hashes: &HashMap<ResourceKey, String>) -> bool {
        let health = self.health();
        match (health.terminal.get(key), hashes.get(key)) {
            (Some(failed), Some(current)) => failed == current,
            _ => false,
        }
    }

    fn drift_policy(&self, set: &DesiredSet, key: &ResourceKey) -> (DriftPolicy, bool) {
        let Some(resource) = set.get(key) else {
            return (self.config().drift, false);
        };
        let annotations = &resource.metadata.annotations;
        let suspended = annotations
            .get(SUSPEND_ANNOTATION)
            .is_some_and(|v| v == "true");
        let policy = match annotations.get(DRIFT_ANNOTATION).map(String::as_str) {
            Some("report") => DriftPolicy::Report,
            Some("heal") => DriftPolicy::Heal,
            _ => self.config().drift,
        };
        (policy, suspended)
    }

    /// One observation of the engine (one list call), planned against the desired set: drifted
    /// resources are healed through the queue or reported, per their policy.
    /// `announce` is false for the check right after start or SIGHUP, where a difference is
    /// work left over rather than drift worth an event.
    async fn resync(&self, announce: bool) {
        let (set, hashes) = self.snapshot();
        let observation = match self.engine.observe(&set).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "resync could not observe the engine");
                return;
            }
        };
        if let Err(e) = self
            .engine
            .record_observations(&observation, &HashSet::new())
            .await
        {
            tracing::warn!(error = %e, "resync could not record observations");
        }
        let plan = plan_set(
            &set,
            &hashes,
            &observation.observed,
            self.config().prune,
            &[],
        );
        let mut drifted = HashSet::new();
        for change in plan.changes() {
            let (policy, suspended) = self.drift_policy(&set, &change.key);
            if suspended || self.failed_for_good(&change.key, &hashes) {
                continue;
            }
            match policy {
                DriftPolicy::Heal => {
                    tracing::info!(resource = %change.key, reasons = ?change.reasons, "drift found; healing");
                    self.health().healing.insert(change.key.clone());
                    self.queue.add(change.key.clone());
                }
                DriftPolicy::Report => {
                    tracing::warn!(resource = %change.key, reasons = ?change.reasons, "drift found; reporting only");
                    drifted.insert(change.key.clone());
                }
            }
            let already_reported = self.health().drifted.contains(&change.key);
            if announce && !already_reported {
                let message = format!(
                    "drift found: {} ({})",
                    change.reasons.join("; "),
                    match policy {
                        DriftPolicy::Heal => "healing",
                        DriftPolicy::Report => "report only",
                    }
                );
                self.event("drift_found", Severity::Warning, message, Some(&change.key))
                    .await;
            }
        }
        self.health().drifted = drifted;
        systemd::status(&self.status_line());
    }

    /// The queue's handler: reconcile one key from the current desired set and a fresh look.
    async fn reconcile(&self, key: ResourceKey) -> Outcome {
        let (set, hashes) = self.snapshot();
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst)
            || self.drift_policy(&set, &key).1
            || self.failed_for_good(&key, &hashes)
        {
            return Outcome::Success;
        }
        let observed = match self.engine.observe_key(&set, &key).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "cannot observe; will retry");
                return Outcome::Retry;
            }
        };
        let started = Instant::now();
        let result = self
            .engine
            .reconcile(
                &set,
                &hashes,
                &key,
                &observed,
                self.config().prune,
                &LogReporter,
            )
            .await;
        let outcome = match &result {
            Ok(Action::NoOp) => "unchanged",
            Ok(_) => "changed",
            Err(_) => "failed",
        };
        let kind = key.kind.as_str().to_string();
        self.metrics
            .reconciles
            .get_or_create(&metrics::ReconcileLabels {
                kind: kind.clone(),
                result: outcome.into(),
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&metrics::KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(action) => {
                let healed = {
                    let mut health = self.health();
                    health.terminal.remove(&key);
                    health.failing.remove(&key);
                    health.drifted.remove(&key);
                    health.healing.remove(&key)
                };
                if healed && action != Action::NoOp {
                    self.event(
                        "drift_healed",
                        Severity::Info,
                        format!("drift healed: {}", action.verb()),
                        Some(&key),
                    )
                    .await;
                }
                Outcome::Success
            }
            Err(e) if e.terminal => {
                tracing::warn!(resource = %key, error = %e, "reconcile failed; not retried until the spec changes");
                let hash = hashes.get(&key).cloned().unwrap_or_default();
                {
                    let mut health = self.health();
                    health.failing.insert(key.clone());
                    health.terminal.insert(key.clone(), hash);
                }
                let message = format!("{e} (not retried until the spec changes)");
                self.event("reconcile_failed", Severity::Error, message, Some(&key))
                    .await;
                Outcome::Terminal
            }
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "reconcile failed; will retry with backoff");
                let first_failure = self.health().failing.insert(key.clone());
                if first_failure {
                    self.event("reconcile_failed", Severity::Error, e.message, Some(&key))
                        .await;
                }
                Outcome::Retry
            }
        }
    }
}

/// `period` ± 10 %, so several daemons (or kinds) started together do not resync in lockstep.
fn jittered(period: std::time::Duration) -> std::time::Duration {
    let span = period.as_millis() as u64 / 5;
    if span == 0 {
        return period;
    }
    // Sub-second clock noise is random enough to spread timers; no RNG needed.
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    period - std::time::Duration::from_millis(span / 2)
        + std::time::Duration::from_millis(noise % span)
}

/// Runs the daemon until SIGTERM or SIGINT. SIGHUP re-reads the config file (`config_path`) and
/// the manifests.
pub async fn run(
    engine: Engine,
    manifests: PathBuf,
    config: DaemonConfig,
    config_path: Option<PathBuf>,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let (_watcher, mut changes) =
        watch::watch(&manifests, config.debounce).map_err(|source| DaemonError::Watch {
            path: manifests.clone(),
            source,
        })?;

    let token = match &config.http.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| DaemonError::TokenFile {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let socket = config.http.socket.clone().unwrap_or_else(default_socket);
    let listen = config.http.listen;
    let shared = Arc::new(Shared {
        queue: WorkQueue::new(),
        engine,
        config: RwLock::new(config),
        manifests,
        desired: RwLock::new(Desired::default()),
        health: Mutex::new(Health::default()),
        metrics: metrics::Metrics::new(),
        ready: std::sync::atomic::AtomicBool::new(false),
        stopping: std::sync::atomic::AtomicBool::new(false),
        reload_requested: tokio::sync::Notify::new(),
        token,
    });
    // The API answers from the start, so /readyz can say "not yet" while the first reload runs.
    let router = http::router(shared.clone());
    {
        let router = router.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve_unix(&socket, router).await {
                tracing::error!(socket = %socket.display(), error = %e, "the API socket failed");
            }
        });
    }
    if let Some(addr) = listen {
        tokio::spawn(async move {
            if let Err(e) = http::serve_tcp(addr, router).await {
                tracing::error!(%addr, error = %e, "the API listener failed");
            }
        });
    }

    // Tasks a crash left running are re-examined by observing, never replayed.
    let observed = shared
        .engine
        .observe(&ballast_model::DesiredSet::default())
        .await?;
    let interrupted = shared
        .engine
        .recover_interrupted(&observed.observed)
        .await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "tasks left running by an earlier process were marked interrupted"
        );
    }
    // Record the manifests, then one observation decides what needs work: one list call
    // however many resources there are, and nothing queued that is already in sync.
    shared.reload().await;
    shared.resync(false).await;

    let workers = {
        let shared = shared.clone();
        let queue = shared.queue.clone();
        let count = shared.config().workers;
        tokio::spawn(async move {
            ballast_runtime::run_workers(queue, count, move |key| {
                let shared = shared.clone();
                async move { shared.reconcile(key).await }
            })
            .await
        })
    };
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    systemd::ready(&shared.status_line());
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "daemon ready"
    );
    shared
        .event(
            "daemon_started",
            Severity::Info,
            format!("ready: {}", shared.status_line()),
            None,
        )
        .await;

    let mut resync = Box::pin(tokio::time::sleep(jittered(
        shared.config().resync_interval,
    )));
    let mut watchdog = systemd::watchdog_period().map(tokio::time::interval);
    loop {
        tokio::select! {
            Some(()) = changes.recv() => shared.reload().await,
            _ = shared.reload_requested.notified() => shared.reload().await,
            _ = resync.as_mut() => {
                shared.resync(true).await;
                resync.as_mut().reset(tokio::time::Instant::now() + jittered(shared.config().resync_interval));
            }
            _ = sighup.recv() => {
                systemd::reloading();
                if shared.reload_config(config_path.as_deref()) {
                    resync.as_mut().reset(tokio::time::Instant::now() + jittered(shared.config().resync_interval));
                }
                shared.reload().await;
                shared.resync(false).await;
                systemd::ready(&shared.status_line());
            }
            _ = async { match watchdog.as_mut() { Some(w) => { w.tick().await; } None => std::future::pending().await } } => {
                systemd::watchdog();
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    // Stop taking work; let running steps finish within the grace period.
    systemd::stopping();
    tracing::info!("stopping: no new work; waiting for running reconciles");
    shared
        .stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    shared.queue.shut_down();
    let grace = shared.config().shutdown_grace;
    let message = match tokio::time::timeout(grace, workers).await {
        Ok(_) => {
            tracing::info!("stopped cleanly");
            "stopped cleanly".to_string()
        }
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "running reconciles did not finish in time; their tasks stay `running` and are re-examined at the next start"
            );
            format!(
                "stopped; reconciles still running after {}s were cut short",
                grace.as_secs()
            )
        }
    };
    shared
        .event("daemon_stopped", Severity::Info, message, None)
        .await;
    Ok(())
}
