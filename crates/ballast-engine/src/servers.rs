//! Servers: connecting over SSH with the credentials the manifest names, reading what the
//! machine is, preparing it step by step with a log, and reaching its Docker engine through the
//! same connection. One SSH connection per server, kept in the engine's pool and reused by every
//! step and every Docker request.

use std::sync::Arc;

use ballast_docker::{AsyncStream, DockerEngine, StreamOpener};
use ballast_model::server::Source;
use ballast_model::{ResourceKey, ServerSpec};
use ballast_plan::ObservedServer;
use ballast_server::{PrepareSpec, StepEvent, StepStatus, SystemInfo};
use ballast_ssh::{Auth, HostKeyPolicy, SshConnection, SshError, SshTarget, Timeouts};
use ballast_store::{ServerCredential, ServerRecord};
use zeroize::Zeroizing;

use crate::{ActionError, Engine, EngineError};

/// Status words of the `servers` table.
pub(crate) const CONNECTED: &str = "connected";
pub(crate) const DISCONNECTED: &str = "disconnected";
pub(crate) const ERROR: &str = "error";
pub(crate) const PREPARING: &str = "preparing";

/// What one observation of a server found: the plan's view plus the facts for the `servers`
/// table and the host key seen (recorded by trust on first use when the result is recorded).
#[derive(Debug, Clone)]
pub struct ServerObservation {
    pub observed: ObservedServer,
    pub(crate) info: Option<SystemInfo>,
    pub(crate) seen_host_key: Option<String>,
}

impl ServerObservation {
    /// Brings a `servers` row up to what this observation found: address and labels from the
    /// spec, status, and the system facts when the server answered. The host key is left
    /// alone (recording decides it). Recording uses it, and so does a live `get servers`.
    pub fn update_record(&self, record: &mut ServerRecord, spec: Option<&ServerSpec>) {
        if let Some(spec) = spec {
            record.address = spec.address.value.clone();
            record.port = spec.port;
            record.user = spec.user.clone();
            record.labels = spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        record.status = self.observed.status.clone();
        record.status_message = self.observed.message.clone();
        if let Some(info) = &self.info {
            record.docker_installed = info.docker.installed;
            record.docker_version = info.docker.version.clone();
            record.os_id = Some(info.os_id.clone());
            record.os_name = Some(info.os_name.clone());
            record.os_version = info.os_version.clone();
            record.kernel = Some(info.kernel.clone());
            record.arch = Some(info.arch.clone());
            record.cpu_model = info.cpu_model.clone();
            record.cpu_count = Some(info.cpu_count);
            record.memory_bytes = Some(info.memory_bytes);
            record.disk_total_bytes = Some(info.disk_total_bytes);
            record.disk_free_bytes = Some(info.disk_free_bytes);
            record.last_connected = Some(chrono::Utc::now());
        }
        record.prepared_hash = self.observed.applied_hash.clone();
    }
}

pub(crate) fn prepare_spec(spec: &ServerSpec) -> PrepareSpec {
    match &spec.prepare {
        Some(p) => PrepareSpec {
            docker: p.docker,
            packages: p.packages.iter().map(|s| s.value.clone()).collect(),
        },
        None => PrepareSpec::default(),
    }
}

fn expand_home(path: &str) -> std::path::PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        None => std::path::PathBuf::from(path),
    }
}

impl Engine {
    /// A credential's value, from the secret store, a file or the environment.
    async fn credential(
        &self,
        server: &str,
        purpose: &str,
        source: &ballast_model::server::CredentialSource,
    ) -> Result<Zeroizing<String>, String> {
        let problem = |what: String| format!("Server/{server}: the {purpose} {what}");
        match source.source() {
            Some(Source::Secret(name)) => {
                crate::secrets::read_secret(&self.store, &self.key, &self.key_file, name)
                    .await
                    .map_err(|e| problem(format!("cannot be read: {e}")))
            }
            Some(Source::File(path)) => {
                let path = expand_home(path);
                std::fs::read_to_string(&path)
                    .map(Zeroizing::new)
                    .map_err(|e| problem(format!("file {} cannot be read: {e}", path.display())))
            }
            Some(Source::Env(var)) => std::env::var(var)
                .map(Zeroizing::new)
                .map_err(|_| problem(format!("environment variable {var} is not set"))),
            None => Err(problem("names no source".to_string())),
        }
    }

    /// How to reach a server: its address, its credentials resolved, and the host-key policy
    /// (the pin, or the key recorded by trust on first use).
    pub(crate) async fn ssh_target(
        &self,
        name: &str,
        spec: &ServerSpec,
    ) -> Result<SshTarget, String> {
        let auth = match (&spec.auth.key, &spec.auth.password) {
            (Some(key), _) => {
                let passphrase = match &spec.auth.passphrase {
                    Some(p) => Some(self.credential(name, "passphrase", p).await?),
                    None => None,
                };
                Auth::Key {
                    private_key: self.credential(name, "key", key).await?,
                    passphrase,
                }
            }
            (None, Some(password)) => {
                Auth::Password(self.credential(name, "password", password).await?)
            }
            (None, None) => return Err(format!("Server/{name} has no credentials")),
        };
        let host_key = match (&spec.host_key, spec.trust_on_first_use) {
            (Some(pin), _) => HostKeyPolicy::Pinned(pin.value.clone()),
            (None, true) => {
                let recorded = self
                    .store
                    .get_server(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|r| r.host_key);
                HostKeyPolicy::TrustOnFirstUse { recorded }
            }
            (None, false) => HostKeyPolicy::RequirePin,
        };
        Ok(SshTarget {
            name: name.to_string(),
            address: spec.address.value.clone(),
            port: spec.port,
            user: spec.user.clone(),
            auth,
            host_key,
            timeouts: Timeouts::default(),
        })
    }

    pub(crate) async fn connect_server(
        &self,
        name: &str,
        spec: &ServerSpec,
    ) -> Result<Arc<SshConnection>, ConnectError> {
        let target = self
            .ssh_target(name, spec)
            .await
            .map_err(ConnectError::Credentials)?;
        self.ssh.connect(&target).await.map_err(ConnectError::Ssh)
    }

    /// Connects and reads what the server is. Writes nothing: `diff --refresh` uses it too.
    pub(crate) async fn observe_server(
        &self,
        name: &str,
        spec: &ServerSpec,
        recorded: Option<ObservedServer>,
    ) -> ServerObservation {
        let recorded = recorded.unwrap_or_default();
        let mut observed = ObservedServer {
            applied_hash: recorded.applied_hash,
            applied_spec: recorded.applied_spec,
            host_key: recorded.host_key,
            ..Default::default()
        };
        let conn = match self.connect_server(name, spec).await {
            Ok(conn) => conn,
            Err(e) => {
                observed.status = e.status().to_string();
                observed.message = Some(e.to_string());
                return ServerObservation {
                    observed,
                    info: None,
                    seen_host_key: None,
                };
            }
        };
        let seen = conn.host_key_fingerprint().to_string();
        observed.host_key = Some(seen.clone());
        let prepare = prepare_spec(spec);
        match ballast_server::gather(&conn, &prepare).await {
            Ok(info) => {
                fill_from_info(&mut observed, &info, spec);
                ServerObservation {
                    observed,
                    info: Some(info),
                    seen_host_key: Some(seen),
                }
            }
            Err(e) => {
                observed.status = if e.is_unreachable() {
                    DISCONNECTED
                } else {
                    ERROR
                }
                .to_string();
                observed.message = Some(e.to_string());
                ServerObservation {
                    observed,
                    info: None,
                    seen_host_key: Some(seen),
                }
            }
        }
    }

    /// Records a server observation: the `servers` row (status, system facts), the host key
    /// by trust on first use, and the observed state (a snapshot when it changed).
    pub(crate) async fn record_server(
        &self,
        name: &str,
        spec: Option<&ServerSpec>,
        observation: &ServerObservation,
    ) -> Result<(), EngineError> {
        let observed = &observation.observed;
        if let (Some(spec), Some(seen)) = (spec, &observation.seen_host_key)
            && spec.trust_on_first_use
            && spec.host_key.is_none()
        {
            self.store.record_host_key(name, seen).await?;
        }
        let mut record = match self.store.get_server(name).await? {
            Some(r) => r,
            None => ServerRecord::new(name, "", 0, ""),
        };
        observation.update_record(&mut record, spec);
        if spec.is_some_and(|s| s.host_key.is_some()) {
            record.host_key = observation.seen_host_key.clone();
        } else {
            // Trust on first use owns the column (compare-and-set above); keep what it recorded.
            record.host_key = None;
        }
        self.store.upsert_server(&record).await?;
        let state = serde_json::to_value(observed).unwrap_or_default();
        self.store
            .record_observed(
                ballast_model::Kind::Server.as_str(),
                name,
                &state,
                ballast_store::ChangeType::Discovered,
            )
            .await?;
        Ok(())
    }

    /// Seals the server's credentials into `server_credentials` (ciphertext only), so the
    /// store records which credential each server uses; `ballast secret rotate-key` re-wraps
    /// them with the secrets.
    async fn seal_credentials(&self, name: &str, spec: &ServerSpec) -> Result<(), String> {
        let key = self
            .key
            .get_or_try_init(|| async {
                crate::secrets::open_key(
                    &self.store,
                    &self.key_file,
                    crate::secrets::KeyUse::Seal,
                    &crate::actor(),
                )
                .await
            })
            .await
            .map_err(|e| e.to_string())?;
        let parts = [
            ("key", &spec.auth.key),
            ("passphrase", &spec.auth.passphrase),
            ("password", &spec.auth.password),
        ];
        for (purpose, source) in parts {
            let Some(source) = source else { continue };
            let value = self.credential(name, purpose, source).await?;
            let sealed = key
                .try_encrypt(
                    &ServerCredential::associated_data(name, purpose),
                    value.as_bytes(),
                )
                .map_err(|e| e.to_string())?;
            self.store
                .put_server_credential(name, purpose, &source.describe(), &sealed, None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Carries out a Server action: connect and read the system, prepare it, or forget it.
    /// Returns the new observation (nothing for a forget).
    pub(crate) async fn run_server_steps(
        &self,
        key: &ResourceKey,
        spec: Option<&ServerSpec>,
        hash: &str,
        steps: &[ballast_plan::ServerStep],
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), ActionError> {
        use ballast_plan::ServerStep;
        let name = &key.name;
        let Some(spec) = spec else {
            if steps.contains(&ServerStep::Forget) {
                self.ssh.disconnect(name);
                self.forget_remote_engine(name);
                self.store
                    .delete_server(name)
                    .await
                    .map_err(|e| e.to_string())?;
                self.store
                    .record_gone(ballast_model::Kind::Server.as_str(), name)
                    .await
                    .map_err(|e| e.to_string())?;
                log(&format!(
                    "forgot server {name}: its recorded state and credentials (the machine was not touched)"
                ));
            }
            return Ok(());
        };
        let recorded = self.recorded_server(name).await;
        log(&format!(
            "connecting to {}@{}:{}",
            spec.user, spec.address.value, spec.port
        ));
        let conn = match self.connect_server(name, spec).await {
            Ok(conn) => conn,
            Err(e) => {
                let observation = ServerObservation {
                    observed: ObservedServer {
                        status: e.status().to_string(),
                        message: Some(e.to_string()),
                        ..recorded.clone().unwrap_or_default()
                    },
                    info: None,
                    seen_host_key: None,
                };
                let _ = self.record_server(name, Some(spec), &observation).await;
                return Err(ActionError {
                    message: e.to_string(),
                    terminal: e.is_terminal(),
                });
            }
        };
        log(&format!(
            "connected; host key {}",
            conn.host_key_fingerprint()
        ));
        self.seal_credentials(name, spec).await?;
        let prepare = prepare_spec(spec);
        let info = if steps.contains(&ServerStep::Prepare) {
            self.prepare(name, &conn, &prepare, log).await?
        } else {
            ballast_server::gather(&conn, &prepare)
                .await
                .map_err(|e| ActionError {
                    message: e.to_string(),
                    terminal: false,
                })?
        };
        let mut observed = ObservedServer {
            applied_hash: Some(hash.to_string()),
            applied_spec: serde_json::to_value(spec).ok(),
            host_key: Some(conn.host_key_fingerprint().to_string()),
            ..Default::default()
        };
        fill_from_info(&mut observed, &info, spec);
        log(&format!(
            "{} ({}, {}), {} CPUs, docker {}",
            info.os_name,
            info.kernel,
            info.arch,
            info.cpu_count,
            info.docker.version.as_deref().unwrap_or("not answering")
        ));
        let observation = ServerObservation {
            observed,
            info: Some(info),
            seen_host_key: Some(conn.host_key_fingerprint().to_string()),
        };
        self.record_server(name, Some(spec), &observation)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// One preparation run: a `server_preparations` row and a `preparation_logs` row per
    /// step, written as the steps happen so a crash leaves an honest log.
    async fn prepare(
        &self,
        name: &str,
        conn: &SshConnection,
        prepare: &PrepareSpec,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<SystemInfo, ActionError> {
        let store_err = |e: ballast_store::StoreError| ActionError::from(e.to_string());
        let attempt = 1 + self
            .store
            .list_preparations(name, 20)
            .await
            .map_err(store_err)?
            .iter()
            .take_while(|p| p.status == "failed")
            .count() as u32;
        let _ = self
            .store
            .set_server_status(name, PREPARING, Some("preparing"))
            .await;
        let id = self
            .store
            .start_preparation(name, attempt, &self.holder)
            .await
            .map_err(store_err)?;
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<StepEvent>();
        let writer = async {
            let mut current = None;
            let mut lines = Vec::new();
            while let Some(event) = received.recv().await {
                match event {
                    StepEvent::Started { step, message } => {
                        lines.push(format!("{}: {message}", step.as_str()));
                        current = self
                            .store
                            .start_preparation_step(&id, step.as_str(), &message)
                            .await
                            .ok();
                    }
                    StepEvent::Finished {
                        step,
                        status,
                        message,
                        stdout,
                        stderr,
                    } => {
                        let status = match status {
                            StepStatus::Succeeded => "succeeded",
                            StepStatus::Skipped => "skipped",
                            StepStatus::Failed => "failed",
                        };
                        lines.push(format!("{}: {status}: {message}", step.as_str()));
                        if let Some(step_id) = current.take() {
                            let _ = self
                                .store
                                .finish_preparation_step(
                                    &step_id, status, &message, &stdout, &stderr,
                                )
                                .await;
                        }
                    }
                }
            }
            lines
        };
        let run = async {
            let mut sink = move |event: StepEvent| {
                let _ = events.send(event);
            };
            ballast_server::run(conn, prepare, &mut sink).await
        };
        let (outcome, lines) = tokio::join!(run, writer);
        for line in &lines {
            log(line);
        }
        let finished = outcome.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.store
            .finish_preparation(&id, finished)
            .await
            .map_err(store_err)?;
        match outcome {
            Ok(info) => Ok(info),
            Err(e) => {
                let message = format!("preparation of Server/{name} failed: {e}");
                let _ = self
                    .store
                    .set_server_status(name, ERROR, Some(&message))
                    .await;
                Err(ActionError {
                    message,
                    terminal: false,
                })
            }
        }
    }

    /// The observed state recorded for a server, if any (unreadable counts as none).
    pub(crate) async fn recorded_server(&self, name: &str) -> Option<ObservedServer> {
        self.recorded_state(&ResourceKey::new(ballast_model::Kind::Server, name))
            .await
            .ok()
            .flatten()
    }

    /// The Docker engine of a server, through its SSH connection (one stream per HTTP
    /// connection, pooled). Cached per server, rebuilt when the way to reach it changes.
    pub(crate) async fn remote_engine(
        &self,
        name: &str,
        spec: &ServerSpec,
    ) -> Result<Arc<DockerEngine>, String> {
        let target = self.ssh_target(name, spec).await?;
        let identity = format!(
            "{}@{}:{} {} {:?}",
            target.user, target.address, target.port, spec.docker_socket, target.host_key
        );
        let mut engines = self
            .remotes
            .lock()
            .map_err(|_| "the engine cache is poisoned".to_string())?;
        if let Some((known, engine)) = engines.get(name)
            && *known == identity
        {
            return Ok(engine.clone());
        }
        let pool = self.ssh.clone();
        let socket = spec.docker_socket.clone();
        let label = format!(
            "ssh://{}@{}:{}{}",
            target.user, target.address, target.port, spec.docker_socket
        );
        let target = Arc::new(target);
        let opener: StreamOpener = Arc::new(move || {
            let pool = pool.clone();
            let target = target.clone();
            let socket = socket.clone();
            Box::pin(async move {
                let conn = pool.connect(&target).await.map_err(std::io::Error::other)?;
                let stream = conn
                    .open_unix_stream(&socket)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok(Box::new(stream) as Box<dyn AsyncStream>)
            })
        });
        let engine = Arc::new(DockerEngine::over_stream(
            label,
            self.store.instance_id(),
            opener,
        ));
        engines.insert(name.to_string(), (identity, engine.clone()));
        Ok(engine)
    }

    fn forget_remote_engine(&self, name: &str) {
        if let Ok(mut engines) = self.remotes.lock() {
            engines.remove(name);
        }
    }

    /// How many SSH connections the engine has opened to a server (benchmarks).
    pub fn ssh_connections_opened(&self, name: &str) -> u64 {
        self.ssh.connections_opened(name)
    }
}

fn fill_from_info(observed: &mut ObservedServer, info: &SystemInfo, spec: &ServerSpec) {
    observed.status = CONNECTED.to_string();
    observed.message = None;
    observed.docker_version = info.docker.version.clone();
    observed.os = Some(info.os_name.clone());
    observed.kernel = Some(info.kernel.clone());
    observed.arch = Some(info.arch.clone());
    observed.needs = if spec.prepare.is_some() {
        ballast_server::needs_work(info, &prepare_spec(spec))
    } else {
        Vec::new()
    };
}

/// Why a server could not be reached: its credentials, or the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("{0}")]
    Credentials(String),
    #[error(transparent)]
    Ssh(#[from] SshError),
}

impl ConnectError {
    fn status(&self) -> &'static str {
        match self {
            ConnectError::Ssh(e) if e.is_unreachable() => DISCONNECTED,
            _ => ERROR,
        }
    }
    fn is_terminal(&self) -> bool {
        match self {
            ConnectError::Credentials(_) => false,
            ConnectError::Ssh(e) => e.is_terminal(),
        }
    }
}
