//! `ballast daemon`: keeps reality equal to the manifest directory without anyone typing
//! `apply`. It watches the directory (one reload per burst of changes), reconciles each changed
//! resource through the work queue (never two reconciles of one key at once, per-key backoff),
//! re-checks everything on a timer to find drift, and talks to systemd.
//!
//! A reload that does not validate keeps the last good desired state: nothing is deleted because
//! a file failed to parse. Reconciles are level-triggered: a worker reads the current desired set
//! and observes the engine; the event that queued the key carries no data.
//!
//! Two kinds of difference are told apart, in the log and in the events: the desired state
//! moving (a manifest edit, a secret set; `desired_changed`, "manifest changed") and reality
//! moving away from a state the daemon had reached (a container stopped or removed by hand;
//! `drift_found`). A resource is *converged* at the effective hash it was last seen or made in
//! sync at; only a converged resource can drift.
//!
//! One daemon runs per database (see `lock`): a second one refuses to start.

pub mod config;
mod http;
mod lock;
mod metrics;
mod systemd;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use ballast_engine::{Engine, EngineError, GitSource, Reporter, source_info};
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

/// How often the secrets' versions are compared with the last look, so that `ballast secret set`
/// (which may run anywhere the database is reachable, without knowing the daemon's socket)
/// reaches the resources that use the secret within a moment. One small query.
const SECRETS_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Above this many resources changed by one reload, one summary event is recorded instead of
/// one `desired_changed` event each (a first start on a fresh database records everything).
const MAX_CHANGE_EVENTS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another ballast daemon ({}) is already running on this database: it holds {}. One daemon per database; stop it first (`systemctl stop ballast`, or kill {})",
        pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}")),
        lock.display(),
        pid.map_or_else(|| "it".to_string(), |p| p.to_string())
    )]
    AlreadyRunning { pid: Option<u32>, lock: PathBuf },
    #[error("cannot take the daemon lock file {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another ballast daemon ({holder}) is running on this database: it holds the database's `daemon` lease until {expires_at} unless it renews it. One daemon per database; stop that one first (if its host is gone, the lease expires {ttl} s after its last renewal)",
        ttl = lock::LEASE_TTL.as_secs()
    )]
    LeaseHeld {
        holder: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    #[error(
        "this daemon lost the database's `daemon` lease to {holder} (it could not renew it in time); stopped so that only one daemon acts on this database"
    )]
    LeaseLost { holder: String },
    #[error(transparent)]
    Socket(#[from] http::SocketError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] ballast_store::StoreError),
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
    /// What the set was loaded from, as one hash (documents, places, effective hashes); `None`
    /// until a reload succeeds. An unchanged fingerprint and commit make a reload a no-op.
    fingerprint: Option<String>,
}

/// One resource whose desired state a reload found moved.
struct Change {
    key: ResourceKey,
    /// Why, in a few words: `spec changed`, `a secret it uses was changed`, …
    reason: &'static str,
    /// Moved by a secret's new version rather than by a manifest edit.
    by_secret: bool,
    /// Whether it is reconciled (a removal is only with prune on).
    queue: bool,
}

/// What one reload came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reloaded {
    /// A new desired set is in place; `first` when it is the first good one of this process.
    Changed { first: bool },
    /// The same set from the same commit: nothing recorded, nothing queued.
    Unchanged,
    /// It did not validate; the last good set is kept.
    Failed,
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
    /// The effective hash each resource was last seen or made in sync at, and when. A
    /// difference found at the same hash, by an observation taken after that moment, is
    /// drift; any other difference is the desired state not reached yet.
    converged: HashMap<ResourceKey, (String, Instant)>,
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
    /// The same set from the same commit records nothing, so events that change nothing (a
    /// file the loader skips, `git status` refreshing its index) cost a read and no more.
    async fn reload(&self) -> Reloaded {
        let set = match ballast_model::load_dir(&self.manifests) {
            Ok(set) => set,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let hashes = match self.engine.hashes(&set).await {
            Ok(h) => h,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let source = source_info(&self.manifests);
        let fingerprint = set_fingerprint(&set, &hashes);
        let (previous_hashes, previous_fingerprint) = {
            let desired = self.desired.read().unwrap_or_else(|e| e.into_inner());
            (desired.hashes.clone(), desired.fingerprint.clone())
        };
        let first = previous_fingerprint.is_none();
        let unchanged = {
            let health = self.health();
            previous_fingerprint.as_deref() == Some(fingerprint.as_str())
                && health.last_reload_error.is_none()
                && health.last_commit == source.commit
                && health.last_dirty == source.dirty
        };
        if unchanged {
            self.metrics.reload("unchanged");
            tracing::debug!("manifests unchanged; nothing to reload");
            return Reloaded::Unchanged;
        }
        let outcome = match self.engine.record_desired(&set, &source).await {
            Ok(o) => o,
            Err(e) => return self.reload_failed(&e.to_string()).await,
        };
        let prune = self.config().prune;
        let key_of =
            |k: &ballast_store::Key| Some(ResourceKey::new(k.kind.parse().ok()?, k.name.clone()));
        // What moved in the desired state, and why.
        let mut changes: Vec<Change> = Vec::new();
        for (keys, reason) in [
            (&outcome.created, "added to the manifests"),
            (&outcome.changed, "spec changed"),
            (&outcome.restored, "back in the manifests"),
        ] {
            changes.extend(keys.iter().filter_map(key_of).map(|key| Change {
                key,
                reason,
                by_secret: false,
                queue: true,
            }));
        }
        // The same spec under another effective hash: a secret it uses has a new version.
        let recorded: HashSet<ResourceKey> = changes.iter().map(|c| c.key.clone()).collect();
        let mut secret_changed: Vec<ResourceKey> = hashes
            .iter()
            .filter(|(k, hash)| {
                !recorded.contains(*k)
                    && previous_hashes
                        .get(*k)
                        .is_some_and(|before| before != *hash)
            })
            .map(|(k, _)| k.clone())
            .collect();
        secret_changed.sort();
        changes.extend(secret_changed.into_iter().map(|key| Change {
            key,
            reason: "a secret it uses was changed",
            by_secret: true,
            queue: true,
        }));
        let removed = if prune {
            "removed from the manifests; deleting it (prune is on)"
        } else {
            "removed from the manifests; kept (prune is off)"
        };
        // A removal is acted on only with prune on.
        changes.extend(
            outcome
                .tombstoned
                .iter()
                .filter_map(key_of)
                .map(|key| Change {
                    key,
                    reason: removed,
                    by_secret: false,
                    queue: prune,
                }),
        );
        let queued: Vec<ResourceKey> = changes
            .iter()
            .filter(|c| c.queue)
            .map(|c| c.key.clone())
            .collect();
        tracing::info!(
            resources = set.len(),
            queued = queued.len(),
            commit = source.commit.as_deref().unwrap_or("-"),
            dirty = source.dirty,
            "manifests reloaded"
        );
        let resources = set.len();
        {
            let mut desired = self.desired.write().unwrap_or_else(|e| e.into_inner());
            *desired = Desired {
                set: Arc::new(set),
                hashes: Arc::new(hashes),
                fingerprint: Some(fingerprint),
            };
        }
        {
            let mut health = self.health();
            health.last_reload_error = None;
            health.last_reload_at = Some(chrono::Utc::now());
            health.last_commit = source.commit.clone();
            health.last_dirty = source.dirty;
            for key in outcome.tombstoned.iter().filter_map(key_of) {
                health.converged.remove(&key);
            }
        }
        self.metrics.reload("ok");
        let commit = short_commit(&source);
        self.event(
            "reload",
            Severity::Info,
            format!(
                "loaded {resources} resources from {} ({commit}{}); {} to reconcile",
                self.manifests.display(),
                if source.dirty { ", dirty" } else { "" },
                queued.len()
            ),
            None,
        )
        .await;
        self.desired_changed(&changes, &commit).await;
        for key in queued {
            self.queue.add(key);
        }
        systemd::status(&self.status_line());
        Reloaded::Changed { first }
    }

    /// Logs and records what moved in the desired state: one `desired_changed` event per
    /// resource, or one summary beyond [`MAX_CHANGE_EVENTS`].
    async fn desired_changed(&self, changes: &[Change], commit: &str) {
        for change in changes.iter().take(MAX_CHANGE_EVENTS) {
            let what = if change.by_secret {
                "secret changed"
            } else {
                "manifest changed"
            };
            tracing::info!(resource = %change.key, reason = change.reason, "{what}");
        }
        if changes.len() > MAX_CHANGE_EVENTS {
            tracing::info!(
                more = changes.len() - MAX_CHANGE_EVENTS,
                "desired state changed for more resources"
            );
            let first: Vec<String> = changes
                .iter()
                .take(5)
                .map(|c| format!("{} ({})", c.key, c.reason))
                .collect();
            let message = format!(
                "desired state changed ({commit}): {} resources, e.g. {}",
                changes.len(),
                first.join(", ")
            );
            self.event("desired_changed", Severity::Info, message, None)
                .await;
            return;
        }
        for change in changes {
            let message = format!("desired state changed ({commit}): {}", change.reason);
            self.event(
                "desired_changed",
                Severity::Info,
                message,
                Some(&change.key),
            )
            .await;
        }
    }

    /// Keeps the last good state. The same errors again (nothing fixed yet) are counted but
    /// not logged or recorded again.
    async fn reload_failed(&self, error: &str) -> Reloaded {
        self.metrics.reload("error");
        let repeated = {
            let mut health = self.health();
            let repeated = health.last_reload_error.as_deref() == Some(error);
            health.last_reload_error = Some(error.to_string());
            health.last_reload_at = Some(chrono::Utc::now());
            repeated
        };
        if repeated {
            tracing::debug!("manifest reload failed again with the same errors");
            return Reloaded::Failed;
        }
        tracing::error!("manifest reload failed; keeping the last good desired state:\n{error}");
        self.event(
            "reload_failed",
            Severity::Error,
            format!("kept the last good desired state: {error}"),
            None,
        )
        .await;
        systemd::status(&self.status_line());
        Reloaded::Failed
    }

    /// At start, before the first look at the engine: what the store recorded at the last
    /// observation tells which resources were in sync with the current desired state then, so
    /// that a difference found now on one of them is drift (a container removed while the
    /// daemon was down), not work the manifests asked for.
    async fn seed_converged(&self) {
        let (set, hashes) = self.snapshot();
        let recorded = match self.engine.recorded_observed().await {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the recorded observations");
                return;
            }
        };
        let plan = plan_set(&set, &hashes, &recorded, false, &[]);
        let changed: HashSet<&ResourceKey> = plan.changes().map(|c| &c.key).collect();
        let at = Instant::now();
        let mut health = self.health();
        for (key, hash) in hashes.iter() {
            if !changed.contains(key) {
                health.converged.insert(key.clone(), (hash.clone(), at));
            }
        }
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

    /// One observation of the engine (one list call), planned against the desired set. A
    /// difference on a resource converged at its current hash is drift, healed through the
    /// queue or reported per its policy; any other difference is desired state not reached
    /// yet (new or edited while the daemon was down, or failed since), queued whatever the
    /// drift policy. Resources with work in hand (queued, running, backing off) are left to it.
    async fn resync(&self) {
        let (set, hashes) = self.snapshot();
        let observed_at = Instant::now();
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
        let changed: HashSet<&ResourceKey> = plan.changes().map(|c| &c.key).collect();
        {
            let mut health = self.health();
            for (key, hash) in hashes.iter() {
                if changed.contains(key) || self.queue.is_pending(key) {
                    continue;
                }
                let newer = health
                    .converged
                    .get(key)
                    .is_some_and(|(_, at)| *at >= observed_at);
                if !newer {
                    health
                        .converged
                        .insert(key.clone(), (hash.clone(), observed_at));
                }
            }
        }
        let mut drifted = HashSet::new();
        for change in plan.changes() {
            let key = &change.key;
            let (policy, suspended) = self.drift_policy(&set, key);
            if suspended || self.failed_for_good(key, &hashes) || self.queue.is_pending(key) {
                continue;
            }
            let converged_at = {
                let health = self.health();
                match (health.converged.get(key), hashes.get(key)) {
                    (Some((hash, at)), Some(current)) if hash == current => Some(*at),
                    _ => None,
                }
            };
            match converged_at {
                // Reached after this observation was taken: the observation is older news.
                Some(at) if at >= observed_at => continue,
                Some(_) => {}
                None => {
                    tracing::info!(resource = %key, reasons = ?change.reasons, "not in sync with the manifests yet; reconciling");
                    self.queue.add(key.clone());
                    continue;
                }
            }
            match policy {
                DriftPolicy::Heal => {
                    tracing::info!(resource = %key, reasons = ?change.reasons, "drift found; healing");
                    self.health().healing.insert(key.clone());
                    self.queue.add(key.clone());
                }
                DriftPolicy::Report => {
                    tracing::warn!(resource = %key, reasons = ?change.reasons, "drift found; reporting only");
                    drifted.insert(key.clone());
                }
            }
            let already_reported = self.health().drifted.contains(key);
            if !already_reported {
                let message = format!(
                    "drift found: {} ({})",
                    change.reasons.join("; "),
                    match policy {
                        DriftPolicy::Heal => "healing",
                        DriftPolicy::Report => "report only",
                    }
                );
                self.event("drift_found", Severity::Warning, message, Some(key))
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
                    match (action, hashes.get(&key)) {
                        (Action::Delete, _) | (_, None) => {
                            health.converged.remove(&key);
                        }
                        (_, Some(hash)) => {
                            health
                                .converged
                                .insert(key.clone(), (hash.clone(), Instant::now()));
                        }
                    }
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
                    health.converged.remove(&key);
                }
                let message = format!("{e} (not retried until the spec changes)");
                self.event("reconcile_failed", Severity::Error, message, Some(&key))
                    .await;
                Outcome::Terminal
            }
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "reconcile failed; will retry with backoff");
                let first_failure = {
                    let mut health = self.health();
                    health.converged.remove(&key);
                    health.failing.insert(key.clone())
                };
                if first_failure {
                    self.event("reconcile_failed", Severity::Error, e.message, Some(&key))
                        .await;
                }
                Outcome::Retry
            }
        }
    }
}

/// One hash of everything a reload produced that matters: each resource's document, where it
/// was read from, and its effective hash (which covers the versions of the secrets it uses).
fn set_fingerprint(set: &DesiredSet, hashes: &HashMap<ResourceKey, String>) -> String {
    let mut lines: Vec<String> = set
        .iter()
        .map(|r| {
            format!(
                "{}\t{}\t{}:{}\t{}",
                r.key,
                ballast_model::spec_hash(&r.document_json()),
                r.source.file.display(),
                r.source.line,
                hashes.get(&r.key).map(String::as_str).unwrap_or("-"),
            )
        })
        .collect();
    lines.sort();
    ballast_model::spec_hash(&serde_json::Value::from(lines))
}

fn short_commit(source: &GitSource) -> String {
    source
        .commit
        .as_deref()
        .map(|c| c[..c.len().min(12)].to_string())
        .unwrap_or_else(|| "no commit".to_string())
}

/// Every secret's name and version: what changes when `ballast secret set` or `rm` runs.
async fn secret_versions(
    store: &ballast_store::Store,
) -> Result<Vec<(String, String)>, ballast_store::StoreError> {
    Ok(store
        .list_secrets()
        .await?
        .into_iter()
        .map(|s| (s.name, s.version.to_string()))
        .collect())
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
///
/// Refuses to start, before touching anything, when another daemon runs on the same database
/// (lock file or lease) or something already answers on the API socket.
pub async fn run(
    engine: Engine,
    manifests: PathBuf,
    config: DaemonConfig,
    config_path: Option<PathBuf>,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let socket = config.http.socket.clone().unwrap_or_else(default_socket);
    let store = engine.store().clone();

    // One daemon per database: the lock file for this machine, the lease for all of them.
    let runtime_dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".ballast"));
    let _lock = match lock::lock_path(store.url(), &runtime_dir) {
        Some(path) => {
            let held = lock::lock(&path)?;
            tracing::debug!(lock = %held.path.display(), "holding the daemon lock");
            Some(held)
        }
        None => None,
    };
    let holder = lock::holder();
    lock::acquire_lease(&store, &holder).await?;
    let outcome = serve(
        engine,
        manifests,
        config,
        config_path,
        socket,
        &holder,
        started,
    )
    .await;
    let lost = matches!(outcome, Err(DaemonError::LeaseLost { .. }));
    if !lost && let Err(e) = store.release_lease(lock::LEASE, &holder).await {
        tracing::warn!(error = %e, "cannot release the daemon lease; it expires on its own");
    }
    outcome
}

/// Everything after the daemon has made sure it is the only one.
async fn serve(
    engine: Engine,
    manifests: PathBuf,
    config: DaemonConfig,
    config_path: Option<PathBuf>,
    socket: PathBuf,
    holder: &str,
    started: Instant,
) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

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
    // Bound here, so a socket or port in use stops the start with a clear error.
    let unix_listener = http::bind_unix(&socket).await?;
    let tcp_listener = match config.http.listen {
        Some(addr) => {
            if config.http.network_listen().is_some() {
                tracing::warn!(%addr, "the API listens on {addr}, reachable from the network: every endpoint there but /healthz and /readyz needs the bearer token");
            }
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Listen { addr, source })?,
            )
        }
        None => None,
    };
    let (_watcher, mut changes) =
        watch::watch(&manifests, config.debounce).map_err(|source| DaemonError::Watch {
            path: manifests.clone(),
            source,
        })?;

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
            if let Err(e) = http::serve_unix(unix_listener, router).await {
                tracing::error!(socket = %socket.display(), error = %e, "the API socket failed");
            }
        });
    }
    if let Some(listener) = tcp_listener {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve_tcp(listener, router, shared).await {
                tracing::error!(error = %e, "the API listener failed");
            }
        });
    }

    // The lease is renewed for as long as the daemon runs; losing it stops the daemon.
    let lease_lost = Arc::new(tokio::sync::Notify::new());
    let renewal = {
        let store = shared.engine.store().clone();
        let holder = holder.to_string();
        let lost = lease_lost.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lock::LEASE_RENEW);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store
                    .renew_lease(lock::LEASE, &holder, lock::LEASE_TTL)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.notify_one();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the daemon lease; trying again")
                    }
                }
            }
        })
    };

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
    // Taken before the first reload, so a secret set while it runs is noticed by the poll.
    let mut secrets_seen = secret_versions(shared.engine.store()).await.ok();
    // Record the manifests, then one observation decides what needs work: one list call
    // however many resources there are, and nothing queued that is already in sync.
    shared.reload().await;
    shared.seed_converged().await;
    shared.resync().await;

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
    let mut secrets_poll =
        tokio::time::interval_at(tokio::time::Instant::now() + SECRETS_POLL, SECRETS_POLL);
    secrets_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = systemd::watchdog_period().map(tokio::time::interval);
    let mut secrets_poll_failing = false;
    let mut lost = false;
    loop {
        // After a reload that brought the first good set (the start-up one failed), look at
        // the engine at once: the start-up resync had nothing to compare with.
        let reloaded = tokio::select! {
            Some(()) = changes.recv() => shared.reload().await,
            _ = shared.reload_requested.notified() => shared.reload().await,
            _ = secrets_poll.tick() => {
                let versions = secret_versions(shared.engine.store()).await;
                // A database that is away is said once, not every two seconds.
                let failed_before = std::mem::replace(&mut secrets_poll_failing, versions.is_err());
                match versions {
                    Ok(now) if secrets_seen.as_ref() != Some(&now) => {
                        tracing::info!("secrets changed; reloading");
                        secrets_seen = Some(now);
                        shared.reload().await
                    }
                    Ok(_) => Reloaded::Unchanged,
                    Err(e) => {
                        if !failed_before {
                            tracing::warn!(error = %e, "cannot read the secrets' versions; trying again");
                        }
                        Reloaded::Unchanged
                    }
                }
            }
            _ = resync.as_mut() => {
                shared.resync().await;
                resync.as_mut().reset(tokio::time::Instant::now() + jittered(shared.config().resync_interval));
                Reloaded::Unchanged
            }
            _ = sighup.recv() => {
                systemd::reloading();
                if shared.reload_config(config_path.as_deref()) {
                    resync.as_mut().reset(tokio::time::Instant::now() + jittered(shared.config().resync_interval));
                }
                shared.reload().await;
                shared.resync().await;
                systemd::ready(&shared.status_line());
                Reloaded::Unchanged
            }
            _ = async { match watchdog.as_mut() { Some(w) => { w.tick().await; } None => std::future::pending().await } } => {
                systemd::watchdog();
                Reloaded::Unchanged
            }
            _ = lease_lost.notified() => {
                lost = true;
                break;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        if reloaded == (Reloaded::Changed { first: true }) {
            shared.seed_converged().await;
            shared.resync().await;
        }
    }
    renewal.abort();

    // Stop taking work; let running steps finish within the grace period.
    systemd::stopping();
    if lost {
        tracing::error!("the daemon lease was taken by another daemon; stopping");
    } else {
        tracing::info!("stopping: no new work; waiting for running reconciles");
    }
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
    if lost {
        let holder = match shared.engine.store().get_lease(lock::LEASE).await {
            Ok(Some(row)) => row.holder,
            _ => "another daemon".to_string(),
        };
        let error = DaemonError::LeaseLost { holder };
        shared
            .event("daemon_stopped", Severity::Error, error.to_string(), None)
            .await;
        return Err(error);
    }
    shared
        .event("daemon_stopped", Severity::Info, message, None)
        .await;
    Ok(())
}
