//! The apply engine: turns a validated desired set into a plan against what the engine reports,
//! and carries the plan out: tasks and snapshots written as it goes, apps started in `dependsOn`
//! order with bounded parallelism, one audit entry per apply.
//!
//! It owns no SQL (the store does) and no Docker calls (the Docker controller does); it decides
//! the order of things and what is recorded about them.
//!
//! Several processes may act on one store at once (two `apply`s, an `apply` beside the
//! daemon). Each acts on a resource only under that resource's lease, renewed while it acts;
//! a resource another live process holds is reported as "not touched", which is not a
//! failure. Each task records its owner, and recovery after a crash touches only the tasks of
//! owners that are gone, never a live process's.

mod git;
mod secrets;
mod servers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ballast_docker::{DockerEngine, DockerError, ResolvedApp};
use ballast_model::app::LOCAL_SERVER;
use ballast_model::{DesiredSet, Diagnostics, Kind, ResourceKey, ServerSpec};
use ballast_plan::{
    Action, AppStep, Observed, ObservedApp, ObservedServer, Plan, ResourcePlan, Step, plan_set,
};
use ballast_store::{ChangeType, DesiredRecord, Holder, LeaseTake, Store, StoreError};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Semaphore, watch};

pub use git::{DIRTY_SUFFIX, GitSource, source_info};
pub use secrets::{KeyError, KeyUse, open_key};
pub use servers::ServerObservation;

/// What one observation found: the plan's view of every app and server, and what the store
/// records about it.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub observed: Observed,
    /// Servers connected to just now, with their spec, to record.
    servers: BTreeMap<String, (ServerSpec, ServerObservation)>,
    /// Engines that could not be listed, by server, with why; their apps are planned against
    /// the state recorded last time.
    pub unreachable: BTreeMap<String, String>,
    /// When the observation started; work other processes recorded after it means it may be
    /// stale for their resources. (The default, the epoch, is always stale.)
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Observation {
    /// What was found of one server connected to in this observation (its facts included).
    pub fn server(&self, name: &str) -> Option<&ServerObservation> {
        self.servers.get(name).map(|(_, found)| found)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot reach the Docker engine: {0}")]
    Docker(#[source] DockerError),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(
        "recorded observed state of {key} is not readable ({source}); run `ballast diff --refresh`"
    )]
    CorruptObserved {
        key: ResourceKey,
        source: serde_json::Error,
    },
}

/// Why acting on a resource failed. `terminal` errors (a bad image reference, an image that
/// is missing with `pullPolicy: Never`, a spec Docker refuses) will fail the same way until the
/// spec changes, so the daemon records them once instead of retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    pub message: String,
    pub terminal: bool,
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for ActionError {
    fn from(message: String) -> Self {
        ActionError {
            message,
            terminal: false,
        }
    }
}

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Observe the engine now instead of planning against the state recorded at the last apply.
    pub refresh: bool,
    /// Delete what left the manifests (only what ballast created).
    pub prune: bool,
    /// Limit the plan to these resources.
    pub targets: Vec<ResourceKey>,
}

/// A plan with what it was computed from, ready to show and to apply.
pub struct Prepared {
    pub plan: Plan,
    set: DesiredSet,
    hashes: HashMap<ResourceKey, String>,
    observed: Observation,
    /// Whether `observed` came from the engine just now.
    live: bool,
}

/// Hears about progress while a plan is applied (a progress bar, log lines, nothing).
pub trait Reporter: Sync {
    fn started(&self, key: &ResourceKey, action: Action);
    fn step(&self, key: &ResourceKey, message: &str);
    fn finished(&self, key: &ResourceKey, outcome: &Result<(), String>);
    /// The resource was left to another process (`why` says which and why); it was never
    /// started here and is not a failure. The apply report lists these too.
    fn not_touched(&self, _key: &ResourceKey, _why: &str) {}
}

/// A reporter that reports nothing.
pub struct Silent;
impl Reporter for Silent {
    fn started(&self, _: &ResourceKey, _: Action) {}
    fn step(&self, _: &ResourceKey, _: &str) {}
    fn finished(&self, _: &ResourceKey, _: &Result<(), String>) {}
}

/// The outcome of an apply, per resource.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub succeeded: Vec<(ResourceKey, Action)>,
    pub failed: Vec<(ResourceKey, String)>,
    /// Resources left to another live process, with why: it holds the resource's lease ("held
    /// by …"), it converged the resource since this apply observed it, or it holds a
    /// dependency. Not failures: that process is doing the work.
    pub not_touched: Vec<(ResourceKey, String)>,
    /// Tasks found `running` from an earlier apply that ended abruptly, now marked interrupted.
    pub interrupted: usize,
}

impl ApplyReport {
    /// Nothing failed (resources left to another process are not failures).
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }

    /// `2 created, 0 updated, 0 replaced, 0 deleted, 0 failed, 1 not touched (held by apply
    /// 4242@nas01)`: the audit row's summary and the CLI's last line.
    pub fn summary(&self) -> String {
        summary_line(self)
    }
}

/// How a resource's turn ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ran {
    Done(Action),
    /// Another live process holds its lease.
    Held(String),
    /// Another process converged it since this one observed it: nothing left to do.
    AlreadyDone(String),
}

pub struct Engine {
    store: Store,
    key_file: PathBuf,
    docker: tokio::sync::OnceCell<Arc<DockerEngine>>,
    /// Each server's Docker engine through its SSH connection, with the identity of the target
    /// it was built for.
    remotes: Mutex<HashMap<String, (String, Arc<DockerEngine>)>>,
    /// One SSH connection per server, reused by every step and Docker request.
    ssh: ballast_ssh::SshPool,
    /// Loaded the first time a secret is needed, so apps without secrets need no key file.
    key: tokio::sync::OnceCell<ballast_secrets::SecretKey>,
    parallelism: usize,
    /// Who holds this process's leases and owns its tasks (`apply 1234@host`).
    holder: Holder,
    /// How long a resource's lease lasts, and how often it is renewed while acting.
    lease_ttl: std::time::Duration,
    lease_renew_every: std::time::Duration,
}

/// How long a lease on a resource lasts without renewal: a holder on another machine that died
/// is taken over this long after its last renewal.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a holder renews the lease of the resource it is acting on (a third of the TTL, so
/// two renewals can fail before it lapses).
const LEASE_RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

impl Engine {
    pub fn new(store: Store, key_file: PathBuf) -> Self {
        Engine {
            store,
            key_file,
            docker: tokio::sync::OnceCell::new(),
            remotes: Mutex::new(HashMap::new()),
            ssh: ballast_ssh::SshPool::new(),
            key: tokio::sync::OnceCell::new(),
            parallelism: 8,
            holder: Holder::new("ballast", std::process::id(), &hostname()),
            lease_ttl: LEASE_TTL,
            lease_renew_every: LEASE_RENEW_EVERY,
        }
    }

    /// Leases last `ttl` and are renewed every `renew_every` while an action runs (defaults
    /// 60 s and 20 s; renew well within the TTL).
    pub fn with_lease_timing(
        mut self,
        ttl: std::time::Duration,
        renew_every: std::time::Duration,
    ) -> Self {
        self.lease_ttl = ttl;
        self.lease_renew_every = renew_every.max(std::time::Duration::from_millis(1));
        self
    }

    /// Names this process in the leases it takes and the tasks it owns (`daemon`, `apply`).
    pub fn with_role(mut self, role: &str) -> Self {
        self.holder = Holder::new(role, self.holder.pid(), self.holder.host());
        self
    }

    /// Who this process is in leases and task rows.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    async fn docker(&self) -> Result<Arc<DockerEngine>, EngineError> {
        self.docker
            .get_or_try_init(|| async {
                DockerEngine::connect(self.store.instance_id()).map(Arc::new)
            })
            .await
            .cloned()
            .map_err(EngineError::Docker)
    }

    /// Observes everything `set` names: this machine's engine (one container list call), and
    /// each server (connect, read the system) with its engine (one list call over the SSH
    /// connection), servers concurrently. Writes nothing.
    pub async fn observe(&self, set: &DesiredSet) -> Result<Observation, EngineError> {
        let mut observation = Observation {
            at: chrono::Utc::now(),
            ..Default::default()
        };
        let recorded = self.recorded_observed().await?;
        let local_used = set.apps().any(|(_, a)| a.server.value == LOCAL_SERVER)
            || set.servers().next().is_none()
            || recorded.apps.values().any(|a| a.server == LOCAL_SERVER);
        // This machine's engine is listed only when something runs or ran there: a set of
        // servers alone needs no local Docker.
        if local_used {
            let docker = self.docker().await?;
            let apps = docker.observe_apps().await.map_err(EngineError::Docker)?;
            observation.observed.apps.extend(apps);
        } else {
            observation.unreachable.insert(
                LOCAL_SERVER.to_string(),
                "not observed: no app runs on this machine".to_string(),
            );
        }
        let with_apps: HashSet<&str> = set
            .apps()
            .map(|(_, a)| a.server.value.as_str())
            .chain(recorded.apps.values().map(|a| a.server.as_str()))
            .collect();
        let results = futures::future::join_all(set.servers().map(|(resource, spec)| {
            let name = resource.key.name.clone();
            let recorded_server = recorded.servers.get(&name).cloned();
            let has_apps = with_apps.contains(name.as_str());
            async move {
                let found = self.observe_server(&name, spec, recorded_server).await;
                let apps = if !found.observed.is_connected() {
                    Err(format!(
                        "Server/{name} is {}",
                        found.observed.message.as_deref().unwrap_or("not connected")
                    ))
                } else if has_apps {
                    match self.remote_engine(&name, spec).await {
                        Ok(engine) => engine.observe_apps().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    }
                } else {
                    Ok(BTreeMap::new())
                };
                (name, spec.clone(), found, apps)
            }
        }))
        .await;
        for (name, spec, found, apps) in results {
            observation
                .observed
                .servers
                .insert(name.clone(), found.observed.clone());
            match apps {
                Ok(apps) => {
                    for (app_name, mut app) in apps {
                        app.server = name.clone();
                        observation.observed.apps.insert(app_name, app);
                    }
                }
                Err(reason) => {
                    for (app_name, app) in recorded.apps.iter().filter(|(_, a)| a.server == name) {
                        observation
                            .observed
                            .apps
                            .insert(app_name.clone(), app.clone());
                    }
                    observation.unreachable.insert(name.clone(), reason);
                }
            }
            observation.servers.insert(name, (spec, found));
        }
        for (name, server) in recorded.servers {
            if set
                .get(&ResourceKey::new(Kind::Server, name.clone()))
                .is_none()
            {
                observation.observed.servers.insert(name, server);
            }
        }
        Ok(observation)
    }

    /// Observes just what reconciling `key` needs: an app's own engine (one list call), or
    /// one server. Everything else comes from the store's record. Writes nothing.
    pub async fn observe_key(
        &self,
        set: &DesiredSet,
        key: &ResourceKey,
    ) -> Result<Observation, EngineError> {
        let mut observation = Observation {
            at: chrono::Utc::now(),
            ..Default::default()
        };
        match key.kind {
            Kind::Server => {
                if let Some(spec) = set.get(key).and_then(|r| r.spec.as_server()) {
                    let recorded = self.recorded_state(key).await?;
                    let found = self.observe_server(&key.name, spec, recorded).await;
                    observation
                        .observed
                        .servers
                        .insert(key.name.clone(), found.observed.clone());
                    observation
                        .servers
                        .insert(key.name.clone(), (spec.clone(), found));
                }
            }
            Kind::App => {
                let recorded: Option<ObservedApp> = self.recorded_state(key).await?;
                let server = set
                    .get(key)
                    .and_then(|r| r.spec.as_app())
                    .map(|a| a.server.value.clone())
                    .or_else(|| recorded.as_ref().map(|a| a.server.clone()))
                    .unwrap_or_else(|| LOCAL_SERVER.to_string());
                // This machine's engine failing is an error of the whole observation; a
                // server's is a reason for its apps to wait.
                let listed: Result<_, String> = if server == LOCAL_SERVER {
                    let docker = self.docker().await?;
                    Ok(docker.observe_apps().await.map_err(EngineError::Docker)?)
                } else {
                    match self.engine_for(set, &server).await {
                        Ok(engine) => engine.observe_apps().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.message),
                    }
                };
                match listed {
                    Ok(apps) => {
                        for (name, mut app) in apps {
                            app.server = server.clone();
                            observation.observed.apps.insert(name, app);
                        }
                    }
                    Err(reason) => {
                        // Planned against what was recorded; acting on it will wait.
                        if let Some(app) = recorded {
                            observation.observed.apps.insert(key.name.clone(), app);
                        }
                        observation.unreachable.insert(server, reason);
                    }
                }
            }
        }
        Ok(observation)
    }

    /// The observed state recorded for one resource, if any.
    pub(crate) async fn recorded_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<T>, EngineError> {
        let Some(row) = self
            .store
            .get_observed(key.kind.as_str(), &key.name)
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_value(row.state)
            .map(Some)
            .map_err(|source| EngineError::CorruptObserved {
                key: key.clone(),
                source,
            })
    }

    /// What the store recorded at the last observation.
    pub async fn recorded_observed(&self) -> Result<Observed, EngineError> {
        let mut out = Observed::default();
        for row in self.store.list_observed(Kind::App.as_str()).await? {
            let app: ObservedApp = serde_json::from_value(row.state.clone()).map_err(|source| {
                EngineError::CorruptObserved {
                    key: ResourceKey::new(Kind::App, row.name.clone()),
                    source,
                }
            })?;
            out.apps.insert(row.name.clone(), app);
        }
        for row in self.store.list_observed(Kind::Server.as_str()).await? {
            let server: ObservedServer =
                serde_json::from_value(row.state.clone()).map_err(|source| {
                    EngineError::CorruptObserved {
                        key: ResourceKey::new(Kind::Server, row.name.clone()),
                        source,
                    }
                })?;
            out.servers.insert(row.name.clone(), server);
        }
        Ok(out)
    }

    /// The metadata recorded with each app's desired state, which the plan compares (it never
    /// reaches a container, so the store is the only witness of what was applied).
    async fn recorded_app_metadata(
        &self,
    ) -> Result<BTreeMap<String, ballast_plan::AppliedMetadata>, EngineError> {
        Ok(self
            .store
            .list_desired(Some(Kind::App.as_str()), false)
            .await?
            .into_iter()
            .filter_map(|row| {
                ballast_plan::AppliedMetadata::from_document(&row.spec).map(|m| (row.name, m))
            })
            .collect())
    }

    /// Plans `set`. Reads the store and, with `refresh`, the engine; writes nothing.
    pub async fn plan(
        &self,
        set: DesiredSet,
        options: &PlanOptions,
    ) -> Result<Prepared, EngineError> {
        let hashes = self.hashes(&set).await?;
        let mut observed = if options.refresh {
            self.observe(&set).await?
        } else {
            Observation {
                observed: self.recorded_observed().await?,
                ..Default::default()
            }
        };
        observed.observed.app_metadata = self.recorded_app_metadata().await?;
        let plan = plan_set(
            &set,
            &hashes,
            &observed.observed,
            options.prune,
            &options.targets,
        );
        Ok(Prepared {
            plan,
            set,
            hashes,
            observed,
            live: options.refresh,
        })
    }

    /// Applies a prepared plan. The plan should come from [`Engine::plan`] with `refresh`; if it
    /// did not, the engine is observed again and the plan recomputed so nothing acts on stale
    /// state.
    pub async fn apply(
        &self,
        mut prepared: Prepared,
        options: &PlanOptions,
        source: &GitSource,
        reporter: &dyn Reporter,
    ) -> Result<ApplyReport, EngineError> {
        if !prepared.live {
            let metadata = std::mem::take(&mut prepared.observed.observed.app_metadata);
            prepared.observed = self.observe(&prepared.set).await?;
            prepared.observed.observed.app_metadata = metadata;
            prepared.plan = plan_set(
                &prepared.set,
                &prepared.hashes,
                &prepared.observed.observed,
                options.prune,
                &options.targets,
            );
            prepared.live = true;
        }
        let mut report = ApplyReport {
            interrupted: self
                .recover_interrupted(&prepared.observed.observed)
                .await?,
            ..Default::default()
        };

        self.record_desired(&prepared.set, source).await?;
        self.record_observations(&prepared.observed, &HashSet::new())
            .await?;

        let changes: Vec<&ResourcePlan> = prepared.plan.changes().collect();
        if !changes.is_empty() {
            self.execute(&prepared, &changes, reporter, &mut report)
                .await;
            let created: HashSet<String> = report
                .succeeded
                .iter()
                .filter(|(_, a)| matches!(a, Action::Create | Action::Replace))
                .map(|(k, _)| k.name.clone())
                .collect();
            let after = self.observe(&prepared.set).await?;
            self.record_observations(&after, &created).await?;
            for (key, action) in &report.succeeded {
                if *action == Action::Delete {
                    self.store
                        .forget_desired(key.kind.as_str(), &key.name)
                        .await?;
                }
            }
        }
        if options.prune && options.targets.is_empty() {
            // Removed from the manifests and already gone from the engine: nothing left to
            // clean up, so the tombstone has done its job.
            for row in self.store.list_desired(None, true).await? {
                let observed = &prepared.observed.observed;
                let still_there = match row.kind.as_str() {
                    "App" => observed.apps.contains_key(&row.name),
                    _ => observed.servers.contains_key(&row.name),
                };
                if row.tombstoned_at.is_some() && !still_there {
                    self.store.forget_desired(&row.kind, &row.name).await?;
                }
            }
        }
        let summary = summary_line(&report);
        self.store
            .append_audit(&actor(), "apply", &summary, source.label().as_deref())
            .await?;
        Ok(report)
    }

    /// Tasks left `running` by a process that is gone are re-examined, never replayed: the plan
    /// just computed from live observation already says what is left to do. Only tasks (and
    /// server preparations) whose owner is gone are touched: a process of this host that no
    /// longer exists, or one elsewhere whose lease on the resource lapsed. A concurrent
    /// `apply` or daemon keeps its running tasks. Stale lease rows are removed too.
    pub async fn recover_interrupted(&self, observed: &Observed) -> Result<usize, EngineError> {
        self.store
            .mark_preparations_interrupted(&self.holder)
            .await?;
        let marked = self
            .store
            .interrupt_abandoned_tasks(&self.holder, |task| {
                let found = match observed.apps.get(&task.name) {
                    Some(app) => {
                        format!("container {} is {}", short_id(&app.container_id), app.state)
                    }
                    None => "no container".to_string(),
                };
                let owner = task.owner.as_deref().unwrap_or("an earlier ballast");
                format!(
                    "interrupted: the process running this task ({owner}) ended before it finished; re-examined by observing the engine ({found}) and planned again from there"
                )
            })
            .await?;
        let cleaned = self.store.clean_stale_leases(&self.holder).await?;
        if cleaned > 0 {
            tracing::info!(
                cleaned,
                "removed stale leases (expired, or of processes that have exited)"
            );
        }
        Ok(marked.len())
    }

    /// Records the whole desired set in one transaction (generation bumps, tombstones).
    pub async fn record_desired(
        &self,
        set: &DesiredSet,
        source: &GitSource,
    ) -> Result<ballast_store::RecordOutcome, EngineError> {
        let items: Vec<DesiredRecord> = set
            .iter()
            .map(|r| DesiredRecord {
                kind: r.key.kind.as_str().to_string(),
                name: r.key.name.clone(),
                spec: r.document_json(),
                spec_hash: recorded_hash(r),
                source_file: r.source.file.display().to_string(),
                source_line: r.source.line as i64,
            })
            .collect();
        let info = ballast_store::SourceInfo {
            git_commit: source.commit.clone(),
            git_dirty: source.dirty,
        };
        Ok(self.store.record_desired(&items, &info).await?)
    }

    /// The effective hash of every resource (spec plus the versions of the secrets it uses),
    /// checking that every referenced secret exists.
    pub async fn hashes(
        &self,
        set: &DesiredSet,
    ) -> Result<HashMap<ResourceKey, String>, EngineError> {
        let versions = secrets::check_refs(&self.store, set).await?;
        Ok(effective_hashes(set, &versions))
    }

    /// Reconciles one resource against `observed` (a fresh observation): plans it alone and,
    /// when something differs, carries the plan out as one task. Returns the action taken.
    /// The daemon's unit of work; `apply` runs the same steps for a whole set.
    pub async fn reconcile(
        &self,
        set: &DesiredSet,
        hashes: &HashMap<ResourceKey, String>,
        key: &ResourceKey,
        observation: &Observation,
        prune: bool,
        reporter: &dyn Reporter,
    ) -> Result<Action, ActionError> {
        let observed = &observation.observed;
        let plan = plan_set(set, hashes, observed, prune, std::slice::from_ref(key));
        let Some(resource) = plan
            .resources
            .iter()
            .find(|r| &r.key == key && r.action != Action::NoOp)
        else {
            return Ok(Action::NoOp);
        };
        let action = match self
            .run_resource(set, hashes, observation, resource, reporter)
            .await?
        {
            Ran::Done(action) => action,
            // Left to the process holding it: retried later (level-triggered, so the retry
            // finds it in sync once that process is done).
            Ran::Held(why) => return Err(format!("{key} not touched: {why}").into()),
            Ran::AlreadyDone(_) => return Ok(Action::NoOp),
        };
        if action == Action::Delete {
            self.store
                .forget_desired(key.kind.as_str(), &key.name)
                .await
                .map_err(|e| e.to_string())?;
        }
        // The action succeeded; failing to record its result must not turn it into a failure.
        // A server's action records what it found itself.
        if key.kind == Kind::App {
            let server = app_server(set, observed, &key.name);
            if let Err(e) = self.record_one(set, key, &server).await {
                tracing::warn!(resource = %key, error = %e, "cannot record the observed state");
            }
        }
        Ok(action)
    }

    /// Observes the app's engine again after acting on it and records what was found for it.
    async fn record_one(
        &self,
        set: &DesiredSet,
        key: &ResourceKey,
        server: &str,
    ) -> Result<(), EngineError> {
        let engine = self.engine_for(set, server).await.map_err(|e| {
            EngineError::Docker(DockerError::Connect {
                host: server.to_string(),
                reason: e.message,
            })
        })?;
        let mut observed = engine.observe_apps().await.map_err(EngineError::Docker)?;
        for app in observed.values_mut() {
            app.server = server.to_string();
        }
        let kind = key.kind.as_str();
        match observed.get(&key.name) {
            Some(app) => {
                let state = serde_json::to_value(app).unwrap_or_default();
                self.store
                    .record_observed(kind, &key.name, &state, ChangeType::Created)
                    .await?;
            }
            None => {
                self.store.record_gone(kind, &key.name).await?;
            }
        }
        Ok(())
    }

    /// Records what an observation found: a snapshot per change, the containers table per
    /// server, a `deleted` snapshot for apps that disappeared, and each server's row.
    /// `created` names apps this run created.
    pub async fn record_observations(
        &self,
        observation: &Observation,
        created: &HashSet<String>,
    ) -> Result<(), EngineError> {
        let observed = &observation.observed;
        let kind = Kind::App.as_str();
        let recorded: HashSet<String> = self
            .store
            .list_observed(kind)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect();
        let (fresh, seen): (Vec<_>, Vec<_>) = observed
            .apps
            .iter()
            .map(|(name, app)| (name.clone(), serde_json::to_value(app).unwrap_or_default()))
            .partition(|(name, _)| created.contains(name));
        self.store
            .record_observed_many(kind, &fresh, ChangeType::Created)
            .await?;
        self.store
            .record_observed_many(kind, &seen, ChangeType::Discovered)
            .await?;
        for gone in recorded
            .iter()
            .filter(|name| !observed.apps.contains_key(*name))
        {
            self.store.record_gone(kind, gone).await?;
        }
        let mut by_server: BTreeMap<&str, Vec<ballast_store::ContainerRecord>> = BTreeMap::new();
        by_server.insert(LOCAL_SERVER, Vec::new());
        for name in observation.servers.keys() {
            by_server.insert(name, Vec::new());
        }
        for app in observed.apps.values() {
            by_server.entry(app.server.as_str()).or_default().push(
                ballast_store::ContainerRecord {
                    id: app.container_id.clone(),
                    name: app.name.clone(),
                    image: app.image.clone(),
                    ports: serde_json::to_value(&app.ports).unwrap_or_default(),
                    state: app.state.clone(),
                    status: app.status.clone(),
                    labels: app.labels.clone(),
                    app: app.labels.get(ballast_plan::app::labels::APP).cloned(),
                },
            );
        }
        for (server, rows) in &by_server {
            // An engine that could not be listed keeps what was recorded of it.
            if observation.unreachable.contains_key(*server) {
                continue;
            }
            self.store.replace_containers(server, rows).await?;
        }
        for (name, (spec, found)) in &observation.servers {
            self.record_server(name, Some(spec), found).await?;
        }
        Ok(())
    }

    /// The Docker engine an app runs on: this machine's, or a server's through its SSH
    /// connection once the server is connected and prepared; until then the app waits.
    async fn engine_for(
        &self,
        set: &DesiredSet,
        server: &str,
    ) -> Result<Arc<DockerEngine>, ActionError> {
        if server == LOCAL_SERVER {
            return self.docker().await.map_err(|e| e.to_string().into());
        }
        let waiting = |why: String| ActionError {
            message: format!("waiting for Server/{server}: {why}"),
            terminal: false,
        };
        let Some(spec) = set
            .get(&ResourceKey::new(Kind::Server, server))
            .and_then(|r| r.spec.as_server())
        else {
            return Err(waiting("it is not in the manifests".into()));
        };
        match self.recorded_server(server).await {
            None => return Err(waiting("it has not been connected to yet".into())),
            Some(s) if !s.is_connected() => {
                return Err(waiting(format!(
                    "it is {}: {}",
                    s.status,
                    s.message.as_deref().unwrap_or("no detail")
                )));
            }
            Some(s) if !s.needs.is_empty() => {
                return Err(waiting(format!(
                    "it is not prepared yet ({})",
                    s.needs.join("; ")
                )));
            }
            Some(_) => {}
        }
        self.remote_engine(server, spec).await.map_err(waiting)
    }

    /// Runs every changed resource once its dependencies are done, at most `parallelism` at once.
    async fn execute(
        &self,
        prepared: &Prepared,
        changes: &[&ResourcePlan],
        reporter: &dyn Reporter,
        report: &mut ApplyReport,
    ) {
        // Each change announces its outcome on a watch channel its dependents wait on.
        let mut senders: HashMap<ResourceKey, watch::Sender<Option<Turn>>> = HashMap::new();
        let mut receivers: HashMap<ResourceKey, watch::Receiver<Option<Turn>>> = HashMap::new();
        for resource in changes {
            let (sender, receiver) = watch::channel(None);
            senders.insert(resource.key.clone(), sender);
            receivers.insert(resource.key.clone(), receiver);
        }
        let limit = Semaphore::new(self.parallelism);
        let mut running = FuturesUnordered::new();
        for resource in changes {
            let Some(sender) = senders.remove(&resource.key) else {
                continue;
            };
            let deps: Vec<(ResourceKey, watch::Receiver<Option<Turn>>)> = resource
                .depends_on
                .iter()
                .filter_map(|d| receivers.get(d).map(|rx| (d.clone(), rx.clone())))
                .collect();
            let limit = &limit;
            running.push(async move {
                let mut blocked = None;
                for (dep, mut rx) in deps {
                    let turn = match rx.wait_for(Option::is_some).await {
                        Ok(v) => v.unwrap_or(Turn::Failed),
                        Err(_) => Turn::Failed,
                    };
                    if turn != Turn::Done {
                        blocked = Some((dep, turn));
                        break;
                    }
                }
                let outcome = match blocked {
                    Some((dep, Turn::LeftToOther)) => {
                        // The process acting on the dependency will start this one after it.
                        let message = format!("its dependency {dep} is left to another process");
                        reporter.not_touched(&resource.key, &message);
                        Ok(Ran::Held(message))
                    }
                    Some((dep, _)) => {
                        let message = format!("not started: its dependency {dep} failed");
                        self.record_skipped(resource, &message).await;
                        reporter.finished(&resource.key, &Err(message.clone()));
                        Err(message)
                    }
                    None => {
                        let _permit = limit.acquire().await;
                        self.run_resource(
                            &prepared.set,
                            &prepared.hashes,
                            &prepared.observed,
                            resource,
                            reporter,
                        )
                        .await
                        .map_err(|e| e.message)
                    }
                };
                let turn = match &outcome {
                    Ok(Ran::Done(_)) | Ok(Ran::AlreadyDone(_)) => Turn::Done,
                    Ok(Ran::Held(_)) => Turn::LeftToOther,
                    Err(_) => Turn::Failed,
                };
                let _ = sender.send(Some(turn));
                (resource.key.clone(), outcome)
            });
        }
        while let Some((key, outcome)) = running.next().await {
            match outcome {
                Ok(Ran::Done(action)) => report.succeeded.push((key, action)),
                Ok(Ran::Held(why)) | Ok(Ran::AlreadyDone(why)) => {
                    report.not_touched.push((key, why))
                }
                Err(e) => report.failed.push((key, e)),
            }
        }
        report.succeeded.sort();
        report.failed.sort();
        report.not_touched.sort();
    }

    /// Records a resource that was not started as a failed task (started and ended at once).
    async fn record_skipped(&self, resource: &ResourcePlan, message: &str) {
        let kind = resource.key.kind.as_str();
        let Ok(id) = self
            .store
            .create_task(
                kind,
                &resource.key.name,
                resource.action.verb(),
                &self.holder,
            )
            .await
        else {
            return;
        };
        if self.store.start_task(&id).await.is_ok() {
            let _ = self.store.finish_task(&id, Err(message.to_string())).await;
        }
    }

    /// One resource's action as one task, under the resource's lease (renewed while it runs):
    /// pending, running, then succeeded or failed with the steps' log. A resource another live
    /// process holds is left to it; one that another process acted on since `observation` was
    /// taken is observed again and planned afresh (it may have nothing left to do).
    async fn run_resource(
        &self,
        set: &DesiredSet,
        hashes: &HashMap<ResourceKey, String>,
        observation: &Observation,
        resource: &ResourcePlan,
        reporter: &dyn Reporter,
    ) -> Result<Ran, ActionError> {
        let key = &resource.key;
        // One process at a time acts on a resource: `apply` and the daemon take the same lease.
        let lease = key.to_string();
        match self
            .store
            .take_lease(&lease, &self.holder, self.lease_ttl)
            .await
        {
            Ok(LeaseTake::Taken) => {}
            Ok(LeaseTake::Held(row)) => {
                let message = format!("held by {}", row.holder);
                reporter.not_touched(key, &message);
                return Ok(Ran::Held(message));
            }
            Err(e) => return Err(e.to_string().into()),
        }
        let outcome = self
            .while_renewing(
                &lease,
                self.act_under_lease(set, hashes, observation, resource, reporter),
            )
            .await;
        if let Err(e) = self
            .store
            .release_lease(&lease, &self.holder.to_string())
            .await
        {
            tracing::warn!(resource = %key, error = %e, "cannot release the lease; it expires on its own");
        }
        outcome
    }

    /// Runs `action`, renewing the lease `lease` (every 20 s by default) until it ends. If
    /// the lease is lost (taken over after the database was out of reach for longer than the
    /// TTL), the action is not cut short half-way, but the loss is logged.
    async fn while_renewing<F: std::future::Future>(&self, lease: &str, action: F) -> F::Output {
        let renew = async {
            let holder = self.holder.to_string();
            let mut tick = tokio::time::interval(self.lease_renew_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the lease was just taken.
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.store.renew_lease(lease, &holder, self.lease_ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            lease,
                            "lost the lease while acting (another process took it over after it lapsed)"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(lease, error = %e, "cannot renew the lease; retrying");
                    }
                }
            }
        };
        let action = std::pin::pin!(action);
        let renew = std::pin::pin!(renew);
        match futures::future::select(action, renew).await {
            futures::future::Either::Left((output, _)) => output,
            futures::future::Either::Right(((), action)) => action.await,
        }
    }

    /// The part of [`run_resource`](Engine::run_resource) that runs under the lease.
    async fn act_under_lease(
        &self,
        set: &DesiredSet,
        hashes: &HashMap<ResourceKey, String>,
        observation: &Observation,
        resource: &ResourcePlan,
        reporter: &dyn Reporter,
    ) -> Result<Ran, ActionError> {
        let key = &resource.key;
        let Some(by) = self
            .acted_on_since(key, observation.at)
            .await
            .map_err(|e| ActionError::from(e.to_string()))?
        else {
            self.run_task(set, hashes, &observation.observed, resource, reporter)
                .await?;
            return Ok(Ran::Done(resource.action));
        };
        // Another process acted on it after we looked: look again and plan from what is there.
        let fresh = self
            .observe_key(set, key)
            .await
            .map_err(|e| ActionError::from(e.to_string()))?;
        let prune = resource.action == Action::Delete;
        let plan = plan_set(
            set,
            hashes,
            &fresh.observed,
            prune,
            std::slice::from_ref(key),
        );
        match plan
            .resources
            .into_iter()
            .find(|r| &r.key == key && r.action != Action::NoOp)
        {
            None => {
                let message = format!("already done by {by}");
                reporter.not_touched(key, &message);
                Ok(Ran::AlreadyDone(message))
            }
            Some(replanned) => {
                self.run_task(set, hashes, &fresh.observed, &replanned, reporter)
                    .await?;
                Ok(Ran::Done(replanned.action))
            }
        }
    }

    /// The owner of the newest task on `key` if another process recorded it at or after
    /// `since`.
    async fn acted_on_since(
        &self,
        key: &ResourceKey,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError> {
        let newest = self
            .store
            .list_tasks(ballast_store::TaskFilter {
                kind: Some(key.kind.as_str().to_string()),
                name: Some(key.name.clone()),
                failed_only: false,
                limit: Some(1),
            })
            .await?;
        let me = self.holder.to_string();
        Ok(newest.into_iter().find_map(|task| {
            let owner = task.owner.unwrap_or_else(|| "another process".to_string());
            (task.created_at >= since && owner != me).then_some(owner)
        }))
    }

    async fn run_task(
        &self,
        set: &DesiredSet,
        hashes: &HashMap<ResourceKey, String>,
        observed: &Observed,
        resource: &ResourcePlan,
        reporter: &dyn Reporter,
    ) -> Result<(), ActionError> {
        let key = &resource.key;
        let kind = key.kind.as_str();
        reporter.started(key, resource.action);
        let task = self
            .store
            .create_task(kind, &key.name, resource.action.verb(), &self.holder)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .start_task(&task)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = self
            .run_steps(set, hashes, observed, resource, &task, reporter)
            .await;
        let as_text = outcome.clone().map_err(|e| e.message);
        let recorded = self.store.finish_task(&task, as_text.clone()).await;
        reporter.finished(key, &as_text);
        recorded.map_err(|e| e.to_string())?;
        outcome
    }

    async fn run_steps(
        &self,
        set: &DesiredSet,
        hashes: &HashMap<ResourceKey, String>,
        observed: &Observed,
        resource: &ResourcePlan,
        task: &ballast_store::TaskId,
        reporter: &dyn Reporter,
    ) -> Result<(), ActionError> {
        let key = &resource.key;
        let hash = hashes.get(key).cloned().unwrap_or_default();
        if key.kind == Kind::Server {
            let spec = set.get(key).and_then(|r| r.spec.as_server());
            let steps: Vec<ballast_plan::ServerStep> = resource
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Server(step) => Some(step.clone()),
                    Step::App(_) => None,
                })
                .collect();
            let mut lines = Vec::new();
            let outcome = self
                .run_server_steps(key, spec, &hash, &steps, &mut |line: &str| {
                    lines.push(line.to_string());
                })
                .await;
            for line in &lines {
                reporter.step(key, line);
                let _ = self.store.append_task_log(task, line).await;
            }
            if let Err(e) = &outcome {
                let _ = self
                    .store
                    .append_task_log(task, &format!("error: {}", e.message))
                    .await;
            }
            return outcome;
        }
        let app = match set.get(key) {
            Some(desired) => {
                let Some(spec) = desired.spec.as_app() else {
                    return Err(format!("{key} is not an app").into());
                };
                let env = secrets::resolve_env(&self.store, &self.key, &self.key_file, spec)
                    .await
                    .map_err(|e| e.to_string())?;
                Some(ResolvedApp::new(key.name.clone(), spec.clone(), hash, env))
            }
            None => None,
        };
        let server = app_server(set, observed, &key.name);
        let docker = match self.engine_for(set, &server).await {
            Ok(docker) => docker,
            Err(e) => {
                reporter.step(key, &e.message);
                let _ = self.store.append_task_log(task, &e.message).await;
                return Err(e);
            }
        };
        // Set once this action has created the container: a later failure must not leave it
        // behind looking like a finished container of the desired spec.
        let mut created = false;
        for step in &resource.steps {
            let Step::App(step) = step else { continue };
            let mut log = Vec::new();
            let result = match (&app, step) {
                (Some(app), step) => docker.run_step(app, step, &mut log).await,
                (None, AppStep::RemoveContainer { container_id }) => {
                    docker
                        .remove_container(&key.name, container_id, &mut log)
                        .await
                }
                (None, other) => {
                    log.push(format!(
                        "skipped {other:?}: the app is no longer in the manifests"
                    ));
                    Ok(())
                }
            };
            for line in &log {
                reporter.step(key, line);
                let _ = self.store.append_task_log(task, line).await;
            }
            if let Err(e) = result {
                let message = e.to_string();
                let mut lines = vec![format!(
                    "error: failed at step {}: {message}",
                    ballast_docker::StepKind::of(step)
                )];
                if created && let Some(app) = &app {
                    docker.discard_created(app, &mut lines).await;
                }
                for line in &lines[1..] {
                    reporter.step(key, line);
                }
                for line in &lines {
                    let _ = self.store.append_task_log(task, line).await;
                }
                return Err(ActionError {
                    message,
                    terminal: e.is_terminal(),
                });
            }
            created |= *step == AppStep::CreateContainer;
        }
        Ok(())
    }
}

/// The server an app runs on: its spec's, or, for an app that left the manifests, where it
/// was found.
fn app_server(set: &DesiredSet, observed: &Observed, name: &str) -> String {
    set.get(&ResourceKey::new(Kind::App, name))
        .and_then(|r| r.spec.as_app())
        .map(|a| a.server.value.clone())
        .or_else(|| observed.apps.get(name).map(|a| a.server.clone()))
        .unwrap_or_else(|| LOCAL_SERVER.to_string())
}

/// This machine's name, as lease holders and task owners name their host.
fn hostname() -> String {
    whoami::hostname().unwrap_or_else(|_| "localhost".into())
}

/// What a resource's turn told its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Done,
    Failed,
    /// Left to another process (held, or its dependency was).
    LeftToOther,
}

/// The hash the store keeps for a desired resource: its spec hash, combined with its metadata
/// labels and annotations when it has any, so that a change of those alone is recorded (a new
/// generation) although it changes no container.
fn recorded_hash(r: &ballast_model::DesiredResource) -> String {
    let metadata = ballast_plan::AppliedMetadata::of(&r.metadata);
    if metadata.is_empty() {
        r.spec_hash()
    } else {
        ballast_model::spec_hash(&serde_json::json!({"spec": r.spec_hash(), "metadata": metadata}))
    }
}

/// Each resource's spec hash, combined with the versions of the secrets it uses so that
/// `ballast secret set` of a value an app uses recreates that app.
fn effective_hashes(
    set: &DesiredSet,
    versions: &HashMap<String, String>,
) -> HashMap<ResourceKey, String> {
    set.iter()
        .map(|r| {
            let mut used: Vec<(&str, &str)> = r
                .spec
                .secret_refs()
                .into_iter()
                .map(|name| (name, versions.get(name).map(String::as_str).unwrap_or("")))
                .collect();
            used.sort();
            used.dedup();
            let hash = if used.is_empty() {
                r.spec_hash()
            } else {
                ballast_model::spec_hash(
                    &serde_json::json!({"spec": r.spec_hash(), "secrets": used}),
                )
            };
            (r.key.clone(), hash)
        })
        .collect()
}

fn summary_line(report: &ApplyReport) -> String {
    let count = |action: Action| {
        report
            .succeeded
            .iter()
            .filter(|(_, a)| *a == action)
            .count()
    };
    let mut line = format!(
        "{} created, {} updated, {} replaced, {} deleted, {} failed",
        count(Action::Create),
        count(Action::Update),
        count(Action::Replace),
        count(Action::Delete),
        report.failed.len()
    );
    if !report.not_touched.is_empty() {
        // Who has them, once each: "held by apply 4242@nas01".
        let mut reasons: Vec<&str> = report
            .not_touched
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        line.push_str(&format!(
            ", {} not touched ({})",
            report.not_touched.len(),
            reasons.join("; ")
        ));
    }
    line
}

/// The OS user running ballast, for the audit log: looked up from the process's uid, so it
/// is right under systemd or sudo too, where `$USER` may be missing or stale.
pub fn actor() -> String {
    whoami::username().unwrap_or_else(|_| "unknown".to_string())
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ballast_store::{LeaseTake, Store};

    use super::Engine;

    /// While an action runs, its lease is renewed, so another holder cannot take it even long
    /// after the TTL; once the action ended (and nothing renews it), the lease lapses.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_action_renews_its_lease_until_it_ends() {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let ttl = Duration::from_millis(300);
        let engine = Engine::new(store.clone(), "unused.key".into())
            .with_role("apply")
            .with_lease_timing(ttl, ttl / 3);
        let lease = "App/web";
        assert_eq!(
            store
                .take_lease(lease, engine.holder(), ttl)
                .await
                .expect("take"),
            LeaseTake::Taken
        );
        let other = "daemon 1@elsewhere";
        let action = tokio::time::sleep(ttl * 4);
        let contender = async {
            let until = Instant::now() + ttl * 3;
            let mut tries = 0;
            while Instant::now() < until {
                assert!(
                    !store
                        .try_acquire_lease(lease, other, ttl)
                        .await
                        .expect("try"),
                    "taken while the action runs"
                );
                tries += 1;
                tokio::time::sleep(ttl / 6).await;
            }
            tries
        };
        let ((), tries) = tokio::join!(engine.while_renewing(lease, action), contender);
        assert!(tries > 10, "{tries}");

        // Nothing renews it now: another holder takes it once it lapsed.
        let ended = Instant::now();
        while !store
            .try_acquire_lease(lease, other, ttl)
            .await
            .expect("try")
        {
            assert!(ended.elapsed() < ttl * 3, "never lapsed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
