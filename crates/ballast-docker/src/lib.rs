//! The App controller's Docker side: observe the containers one ballast store manages on an
//! engine (one list call), and execute the steps the App plan produces.
//!
//! Every container ballast creates carries `ballast.managed=true` and `ballast.instance=<store id>`;
//! nothing without both labels is ever stopped or removed here.

mod config;
mod error;
mod files;
mod remote;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex as StdMutex};

use ballast_model::app::{PortMapping, PullPolicy};
use ballast_plan::app::labels;
use ballast_plan::{AppStep, Health, ObservedApp};
use bollard::Docker;
use bollard::models::{ContainerSummary, Network, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::sync::{Mutex, OnceCell};

pub use config::{
    ResolvedApp, container_labels, create_body, endpoint, merged_env, split_reference,
};
pub use error::{DockerError, StepKind};
pub use files::files_archive;
pub use remote::{AsyncStream, StreamOpener};

use error::{is_unreachable, message_of, one_line, status_of};

/// The engine address used when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// One Docker engine, seen by one ballast store (`instance_id`).
///
/// The API version is negotiated with the engine on first use (one `GET /version`), so the
/// client works with engines older than bollard's default API version.
pub struct DockerEngine {
    /// The address, or for an engine reached through streams, the label naming it.
    host: String,
    instance_id: String,
    /// Set for an engine reached through streams (e.g. SSH channels); `host` is then a label.
    opener: Option<StreamOpener>,
    /// Made on first use: bollard checks that a unix socket exists when the client is built.
    client: OnceCell<Docker>,
    /// One lock per network name: apps applied in parallel that share a network create it
    /// once (engines of API < 1.44 do not refuse a second network of the same name).
    network_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("host", &self.host)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl DockerEngine {
    /// The local engine: `DOCKER_HOST` when set, else `/var/run/docker.sock`. Nothing is sent
    /// until the first call, so this succeeds while the engine is down.
    pub fn connect(instance_id: &str) -> Result<DockerEngine, DockerError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        DockerEngine::connect_with_host(&host, instance_id)
    }

    /// The engine at `host` (`unix:///path`, a plain socket path, `tcp://host:port` or
    /// `http://host:port`). Nothing is sent until the first call.
    pub fn connect_with_host(host: &str, instance_id: &str) -> Result<DockerEngine, DockerError> {
        let host = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host.to_string()
        };
        if !["unix://", "tcp://", "http://"]
            .iter()
            .any(|scheme| host.starts_with(scheme))
        {
            return Err(DockerError::Connect {
                host,
                reason: "unsupported address; expected unix:///path, tcp://host:port or http://host:port"
                    .to_string(),
            });
        }
        Ok(DockerEngine {
            host,
            instance_id: instance_id.to_string(),
            opener: None,
            client: OnceCell::new(),
            network_locks: StdMutex::default(),
        })
    }

    /// An engine reached through streams from `opener` (one per HTTP connection, pooled),
    /// e.g. SSH channels to the server's docker socket. `label` names it in messages (e.g.
    /// `ssh://root@10.0.0.5:22/var/run/docker.sock`). Nothing is opened until the first call;
    /// an opener error makes that call fail with `DockerError::Unreachable`.
    pub fn over_stream(label: String, instance_id: &str, opener: StreamOpener) -> DockerEngine {
        DockerEngine {
            host: label,
            instance_id: instance_id.to_string(),
            opener: Some(opener),
            client: OnceCell::new(),
            network_locks: StdMutex::default(),
        }
    }

    /// The store id written as label `ballast.instance`.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The engine address (the label, for an engine reached through streams).
    pub fn host(&self) -> &str {
        &self.host
    }

    fn error(&self, app: Option<&str>, step: StepKind, err: bollard::errors::Error) -> DockerError {
        if is_unreachable(&err) {
            DockerError::Unreachable {
                host: self.host.clone(),
                app: app.map(str::to_string),
                step,
                reason: one_line(&err.to_string()),
            }
        } else {
            DockerError::Engine {
                app: app.map(str::to_string),
                step,
                status: status_of(&err),
                message: message_of(&err),
            }
        }
    }

    /// The client, built and its API version negotiated on first success.
    async fn client(&self, app: Option<&str>, step: StepKind) -> Result<&Docker, DockerError> {
        self.client
            .get_or_try_init(|| async {
                let built = match &self.opener {
                    Some(opener) => remote::docker_over(opener.clone()),
                    None => Docker::connect_with_host(&self.host),
                };
                let docker = built.map_err(|e| match e {
                    bollard::errors::Error::SocketNotFoundError(_) => self.error(app, step, e),
                    other => DockerError::Connect {
                        host: self.host.clone(),
                        reason: other.to_string(),
                    },
                })?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| self.error(app, step, e))
            })
            .await
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        let docker = self.client(None, StepKind::Observe).await?;
        docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.error(None, StepKind::Observe, e))
    }

    /// Every container of this store on the engine, by container name (= app name). One list
    /// call; no inspect.
    pub async fn observe_apps(&self) -> Result<BTreeMap<String, ObservedApp>, DockerError> {
        let docker = self.client(None, StepKind::Observe).await?;
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={}", labels::INSTANCE, self.instance_id),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(None, StepKind::Observe, e))?;
        Ok(containers
            .into_iter()
            .filter_map(observed_from_summary)
            .map(|app| (app.name.clone(), app))
            .collect())
    }

    /// Executes one step of an App action. Human log lines are appended to `log`; they never
    /// contain environment values.
    pub async fn run_step(
        &self,
        app: &ResolvedApp,
        step: &AppStep,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        tracing::debug!(app = %app.name, step = %StepKind::of(step), "docker step");
        match step {
            AppStep::EnsureImage => self.ensure_image(app, log).await,
            AppStep::EnsureNetworks => self.ensure_networks(app, log).await,
            AppStep::CreateContainer => self.create_container(app, log).await,
            AppStep::StartContainer => self.start_container(app, log).await,
            AppStep::StopContainer => self.stop_container(app, log).await,
            AppStep::RemoveContainer { container_id } => {
                self.remove_container(&app.name, container_id, log).await
            }
        }
    }

    async fn image_present(&self, app: &ResolvedApp) -> Result<bool, DockerError> {
        let step = StepKind::EnsureImage;
        let docker = self.client(Some(&app.name), step).await?;
        match docker.inspect_image(app.image()).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.error(Some(&app.name), step, e)),
        }
    }

    async fn ensure_image(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let image = app.image();
        match app.spec.pull_policy {
            PullPolicy::Always => self.pull(app, log).await,
            PullPolicy::IfNotPresent => {
                if self.image_present(app).await? {
                    log.push(format!("image {image} is present"));
                    Ok(())
                } else {
                    self.pull(app, log).await
                }
            }
            PullPolicy::Never => {
                if self.image_present(app).await? {
                    log.push(format!("image {image} is present"));
                    Ok(())
                } else {
                    Err(DockerError::ImageMissing {
                        app: app.name.clone(),
                        image: image.to_string(),
                    })
                }
            }
        }
    }

    async fn pull(&self, app: &ResolvedApp, log: &mut Vec<String>) -> Result<(), DockerError> {
        let step = StepKind::EnsureImage;
        let docker = self.client(Some(&app.name), step).await?;
        let image = app.image();
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = docker.create_image(Some(options), None, None);
        let mut last_status = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        last_status = Some(status);
                    }
                }
                Err(e) if is_unreachable(&e) => return Err(self.error(Some(&app.name), step, e)),
                Err(e) => {
                    return Err(DockerError::PullFailed {
                        app: app.name.clone(),
                        image: image.to_string(),
                        reason: message_of(&e),
                    });
                }
            }
        }
        log.push(match last_status {
            Some(status) => format!("pulled image {image} ({})", one_line(&status)),
            None => format!("pulled image {image}"),
        });
        Ok(())
    }

    /// Makes each network the app names exist exactly once. Each name is handled under its
    /// own lock, so apps of one process never race to create it; another process may still
    /// create a twin at the same moment, so the networks of that name are listed again after
    /// a create, and duplicates ballast made are repaired (see [`Self::settle_duplicates`]).
    async fn ensure_networks(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        for name in app.networks() {
            let lock = self.network_lock(name);
            let _held = lock.lock().await;
            self.ensure_network(app, name, log).await?;
        }
        Ok(())
    }

    fn network_lock(&self, name: &str) -> Arc<Mutex<()>> {
        // A poisoned map only means another task panicked while inserting; the map is intact.
        let mut locks = self
            .network_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(name.to_string()).or_default().clone()
    }

    async fn ensure_network(
        &self,
        app: &ResolvedApp,
        name: &str,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::EnsureNetworks;
        let mut found = self.networks_named(app, name).await?;
        if found.is_empty() {
            let docker = self.client(Some(&app.name), step).await?;
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".to_string()),
                labels: Some(HashMap::from([
                    (labels::MANAGED.to_string(), "true".to_string()),
                    (labels::INSTANCE.to_string(), self.instance_id.clone()),
                ])),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(created) => log.push(format!(
                    "created network {name} (id {})",
                    short_id(&created.id)
                )),
                // Created meanwhile by someone else (an engine that checks duplicates).
                Err(e) if status_of(&e) == Some(409) => log.push(format!("network {name} exists")),
                Err(e) => return Err(self.error(Some(&app.name), step, e)),
            }
            found = self.networks_named(app, name).await?;
        }
        if found.len() > 1 {
            self.settle_duplicates(app, name, found, log).await?;
        }
        Ok(())
    }

    /// The networks named exactly `name` (the engine's `name` filter matches substrings).
    async fn networks_named(
        &self,
        app: &ResolvedApp,
        name: &str,
    ) -> Result<Vec<FoundNetwork>, DockerError> {
        let step = StepKind::EnsureNetworks;
        let docker = self.client(Some(&app.name), step).await?;
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        Ok(docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.error(Some(&app.name), step, e))?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(FoundNetwork::from_listed)
            .collect())
    }

    /// Several networks share a name the app uses. Ballast's own duplicates (labelled
    /// `ballast.managed=true`, whichever store made them: two racing creators) are removed
    /// and one network is kept: the single one ballast did not make, else the oldest. The
    /// engine refuses to remove a network in use, so only empty duplicates go. More than one
    /// network not made by ballast is someone else's to sort out: reported, nothing removed.
    async fn settle_duplicates(
        &self,
        app: &ResolvedApp,
        name: &str,
        found: Vec<FoundNetwork>,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::EnsureNetworks;
        let found = oldest_first(found);
        let ids: Vec<String> = found.iter().map(|n| short_id(&n.id).to_string()).collect();
        let foreign: Vec<&FoundNetwork> = found.iter().filter(|n| !n.by_ballast).collect();
        let keep = match foreign.as_slice() {
            [] => &found[0],
            [only] => *only,
            _ => {
                let others: Vec<&str> = found[1..].iter().map(|n| short_id(&n.id)).collect();
                let whose = if foreign.len() == found.len() {
                    "none of them was made by ballast".to_string()
                } else {
                    format!("{} of them were not made by ballast", foreign.len())
                };
                return Err(DockerError::AmbiguousNetwork {
                    app: app.name.clone(),
                    network: name.to_string(),
                    ids,
                    hint: format!(
                        "{whose}, so it will not choose; keep one (the oldest is {}) and remove the others with `docker network rm {}`, then apply again",
                        short_id(&found[0].id),
                        others.join(" ")
                    ),
                });
            }
        };
        let docker = self.client(Some(&app.name), step).await?;
        for twin in found.iter().filter(|n| n.id != keep.id) {
            match docker.remove_network(&twin.id).await {
                Ok(()) => log.push(format!(
                    "removed duplicate network {name} (id {}) made by ballast; kept id {}",
                    short_id(&twin.id),
                    short_id(&keep.id)
                )),
                // Removed meanwhile, by the process that raced this one.
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) if is_unreachable(&e) => {
                    return Err(self.error(Some(&app.name), step, e));
                }
                Err(e) => {
                    return Err(DockerError::AmbiguousNetwork {
                        app: app.name.clone(),
                        network: name.to_string(),
                        ids,
                        hint: format!(
                            "the duplicate {} made by ballast cannot be removed ({}); disconnect its containers (`docker network inspect {}`) and remove it with `docker network rm {}`, then apply again",
                            short_id(&twin.id),
                            message_of(&e),
                            short_id(&twin.id),
                            short_id(&twin.id)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    async fn create_container(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::CreateContainer;
        let body =
            create_body(app, &self.instance_id).map_err(|message| DockerError::InvalidSpec {
                app: app.name.clone(),
                message,
            })?;
        let docker = self.client(Some(&app.name), step).await?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&app.name)
            .build();
        match docker.create_container(Some(options), body).await {
            Ok(created) => {
                log.push(format!(
                    "created container {} (id {})",
                    app.name,
                    short_id(&created.id)
                ));
                for warning in created.warnings.iter().filter(|w| !w.trim().is_empty()) {
                    log.push(format!("engine warning: {}", one_line(warning)));
                }
                let extra: Vec<&str> = app.networks().skip(1).collect();
                let mut connected = self.connect_networks(app, &created.id, &extra, log).await;
                if connected.is_ok() {
                    connected = self.put_files(app, &created.id, log).await;
                }
                if connected.is_err() {
                    // Half made: left in place it would look like a finished container of
                    // this spec to the next plan.
                    self.discard(&app.name, &created.id, log).await;
                }
                connected
            }
            Err(e) if status_of(&e) == Some(409) => self.adopt(app, log).await,
            Err(e) if status_of(&e) == Some(404) => Err(DockerError::Engine {
                app: Some(app.name.clone()),
                step,
                status: Some(404),
                message: format!(
                    "image `{}` is not on the engine ({})",
                    app.image(),
                    message_of(&e)
                ),
            }),
            Err(e) => Err(self.error(Some(&app.name), step, e)),
        }
    }

    async fn connect_networks(
        &self,
        app: &ResolvedApp,
        container_id: &str,
        networks: &[&str],
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::CreateContainer;
        if networks.is_empty() {
            return Ok(());
        }
        let docker = self.client(Some(&app.name), step).await?;
        for network in networks {
            let request = NetworkConnectRequest {
                container: container_id.to_string(),
                endpoint_config: Some(endpoint(app)),
            };
            docker
                .connect_network(network, request)
                .await
                .map_err(|e| self.error(Some(&app.name), step, e))?;
            log.push(format!(
                "connected container {} to network {network}",
                app.name
            ));
        }
        Ok(())
    }

    /// Removes a container this action just created, best effort: a failure is logged, and
    /// the next plan replaces the container anyway (it lacks part of its setup).
    async fn discard(&self, app_name: &str, container_id: &str, log: &mut Vec<String>) {
        let step = StepKind::RemoveContainer;
        let removed = match self.client(Some(app_name), step).await {
            Ok(docker) => {
                let options = RemoveContainerOptionsBuilder::default()
                    .v(false)
                    .force(true)
                    .build();
                docker
                    .remove_container(container_id, Some(options))
                    .await
                    .map_err(|e| self.error(Some(app_name), step, e))
            }
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => log.push(format!(
                "removed the container this action created (id {}) so that it is not taken for a finished one",
                short_id(container_id)
            )),
            Err(e) => {
                tracing::warn!(app = app_name, error = %e, "cannot remove a half-made container");
                log.push(format!(
                    "could not remove the container this action created (id {}): {e}",
                    short_id(container_id)
                ));
            }
        }
    }

    /// After a step of an action that created `app`'s container failed: removes that
    /// container (ours, of this very spec hash), best effort and logged, so that what is left
    /// is no container rather than one that looks finished but is not.
    pub async fn discard_created(&self, app: &ResolvedApp, log: &mut Vec<String>) {
        let step = StepKind::RemoveContainer;
        let existing = match self.client(Some(&app.name), step).await {
            Ok(docker) => docker.inspect_container(&app.name, None).await,
            Err(e) => {
                log.push(format!(
                    "could not remove the container this action created: {e}"
                ));
                return;
            }
        };
        let existing = match existing {
            Ok(info) => info,
            Err(e) if status_of(&e) == Some(404) => return,
            Err(e) => {
                let e = self.error(Some(&app.name), step, e);
                log.push(format!(
                    "could not remove the container this action created: {e}"
                ));
                return;
            }
        };
        let container_labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let ours = container_labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && container_labels.get(labels::INSTANCE) == Some(&self.instance_id)
            && container_labels.get(labels::SPEC_HASH) == Some(&app.spec_hash);
        match existing.id {
            Some(id) if ours => self.discard(&app.name, &id, log).await,
            _ => {}
        }
    }

    /// After a name conflict: adopt the existing container when this store created it from the
    /// same spec (a crash between create and record), refuse otherwise.
    async fn adopt(&self, app: &ResolvedApp, log: &mut Vec<String>) -> Result<(), DockerError> {
        let step = StepKind::CreateContainer;
        let docker = self.client(Some(&app.name), step).await?;
        let existing = docker
            .inspect_container(&app.name, None)
            .await
            .map_err(|e| self.error(Some(&app.name), step, e))?;
        let container_labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let ours = container_labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && container_labels.get(labels::INSTANCE) == Some(&self.instance_id);
        let hash = container_labels.get(labels::SPEC_HASH);
        if !ours {
            return Err(DockerError::NameConflict {
                app: app.name.clone(),
                spec_hash: None,
            });
        }
        if hash != Some(&app.spec_hash) {
            return Err(DockerError::NameConflict {
                app: app.name.clone(),
                spec_hash: Some(hash.cloned().unwrap_or_else(|| "(none)".to_string())),
            });
        }
        let id = existing.id.clone().unwrap_or_default();
        log.push(format!(
            "adopted existing container {} (id {}) created earlier by this store from the same spec",
            app.name,
            short_id(&id)
        ));
        // A crash may also have come between create and connecting the extra networks.
        let attached: BTreeSet<String> = existing
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default();
        let missing: Vec<&str> = app
            .networks()
            .skip(1)
            .filter(|n| !attached.contains(*n))
            .collect();
        self.connect_networks(app, &id, &missing, log).await?;
        // ... or before its files were written; writing them again gives the same files.
        self.put_files(app, &id, log).await
    }

    /// Writes the app's `files` into the created container, before it starts, through the
    /// engine's archive API (so it works over an SSH tunnel too). The log names the targets
    /// and sizes, never the content.
    async fn put_files(
        &self,
        app: &ResolvedApp,
        container_id: &str,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::CreateContainer;
        let archive = files_archive(&app.spec).map_err(|message| DockerError::InvalidSpec {
            app: app.name.clone(),
            message,
        })?;
        let Some(archive) = archive else {
            return Ok(());
        };
        let docker = self.client(Some(&app.name), step).await?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(
                container_id,
                Some(options),
                bollard::body_full(hyper::body::Bytes::from(archive)),
            )
            .await
            .map_err(|e| self.error(Some(&app.name), step, e))?;
        for file in &app.spec.files {
            let size = file.content.as_ref().map_or(0, |c| c.0.len());
            log.push(format!(
                "wrote {} ({size} bytes) into container {}",
                file.target.value, app.name
            ));
        }
        Ok(())
    }

    async fn start_container(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::StartContainer;
        let docker = self.client(Some(&app.name), step).await?;
        let mut started = docker.start_container(&app.name, None).await;
        if let Err(e) = &started
            && is_network_ambiguity(&message_of(e))
            && !app.spec.networks.is_empty()
        {
            // A twin network appeared after this app's networks were ensured (another
            // process created one at that moment): settle it and start once more.
            self.ensure_networks(app, log).await?;
            started = docker.start_container(&app.name, None).await;
        }
        match started {
            // 304 (already running) is a success for bollard too.
            Ok(()) => {
                log.push(format!("started container {}", app.name));
                Ok(())
            }
            Err(e) if status_of(&e) == Some(404) => Err(no_such_container(app, step)),
            Err(e) if status_of(&e).is_some() && is_port_conflict(&message_of(&e)) => {
                let reason = message_of(&e);
                Err(DockerError::PortInUse {
                    app: app.name.clone(),
                    port: conflicting_port(&reason, &app.spec.ports),
                    reason,
                })
            }
            Err(e) => Err(self.error(Some(&app.name), step, e)),
        }
    }

    async fn stop_container(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::StopContainer;
        let docker = self.client(Some(&app.name), step).await?;
        match docker.stop_container(&app.name, None).await {
            // 304 (already stopped) is a success for bollard too.
            Ok(()) => {
                log.push(format!("stopped container {}", app.name));
                Ok(())
            }
            Err(e) if status_of(&e) == Some(404) => Err(no_such_container(app, step)),
            Err(e) => Err(self.error(Some(&app.name), step, e)),
        }
    }

    /// Stops and removes a container ballast created for `app_name` (refusing any other);
    /// named volumes are kept. Also used for apps no longer in the manifests (prune).
    pub async fn remove_container(
        &self,
        app_name: &str,
        container_id: &str,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::RemoveContainer;
        let docker = self.client(Some(app_name), step).await?;
        let existing = match docker.inspect_container(container_id, None).await {
            Ok(info) => info,
            Err(e) if status_of(&e) == Some(404) => {
                log.push(format!(
                    "container {} is already gone",
                    short_id(container_id)
                ));
                return Ok(());
            }
            Err(e) => return Err(self.error(Some(app_name), step, e)),
        };
        let container_labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let ours = container_labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && container_labels.get(labels::INSTANCE) == Some(&self.instance_id);
        let name = existing
            .name
            .as_deref()
            .unwrap_or(container_id)
            .trim_start_matches('/')
            .to_string();
        if !ours {
            return Err(DockerError::NotOurs {
                app: app_name.to_string(),
                container: name,
                instance: self.instance_id.clone(),
            });
        }
        let running = existing
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            match docker.stop_container(container_id, None).await {
                Ok(()) => log.push(format!("stopped container {name}")),
                Err(e) if status_of(&e) == Some(404) => {
                    log.push(format!("container {name} is already gone"));
                    return Ok(());
                }
                Err(e) => return Err(self.error(Some(app_name), step, e)),
            }
        }
        // Named volumes are kept (v=false); force only covers a restart racing the stop.
        let options = RemoveContainerOptionsBuilder::default()
            .v(false)
            .force(true)
            .build();
        match docker.remove_container(container_id, Some(options)).await {
            Ok(()) => {
                log.push(format!(
                    "removed container {name} (id {}); volumes kept",
                    short_id(container_id)
                ));
                Ok(())
            }
            Err(e) if status_of(&e) == Some(404) => {
                log.push(format!("container {name} is already gone"));
                Ok(())
            }
            Err(e)
                if status_of(&e) == Some(409) && message_of(&e).contains("already in progress") =>
            {
                log.push(format!(
                    "removal of container {name} is already in progress"
                ));
                Ok(())
            }
            Err(e) => Err(self.error(Some(app_name), step, e)),
        }
    }
}

/// Maps one list entry into the observed state; entries without an id or name are skipped.
fn observed_from_summary(c: ContainerSummary) -> Option<ObservedApp> {
    let container_id = c.id?;
    let names = c.names.unwrap_or_default();
    // A linked container shows extra names like `/other/alias`; the own name has one slash.
    let name = names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .find(|n| !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))?
        .to_string();
    let mut ports: Vec<String> = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let public = p.public_port?;
            let ip = p.ip.unwrap_or_default();
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            let proto = p
                .typ
                .map(|t| t.to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "tcp".into());
            Some(format!("{ip}:{public}->{}/{proto}", p.private_port))
        })
        .collect();
    ports.sort();
    ports.dedup();
    let networks = c.network_settings.map(|settings| {
        let mut names: Vec<String> = settings.networks.unwrap_or_default().into_keys().collect();
        names.sort();
        names
    });
    let status = c.status.unwrap_or_default();
    let (health, exit_code) = parse_status(&status);
    Some(ObservedApp {
        container_id,
        name,
        image: c.image.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        status,
        health,
        exit_code,
        ports,
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        created: c.created.unwrap_or_default(),
        networks,
        server: ballast_model::app::LOCAL_SERVER.to_string(),
    })
}

/// The facts in Docker's status text, without its clocks: the health verdict
/// (`Up 3 minutes (healthy)`, `(unhealthy)`, `(health: starting)`) and the exit code of an
/// exited or restarting container (`Exited (137) 2 hours ago`, `Restarting (1) 5 seconds ago`).
/// The list call gives no restart count; that needs an inspect per container.
fn parse_status(status: &str) -> (Option<Health>, Option<i64>) {
    let health = if status.ends_with("(healthy)") {
        Some(Health::Healthy)
    } else if status.ends_with("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.ends_with("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    };
    let exit_code = ["Exited (", "Restarting ("]
        .iter()
        .find_map(|prefix| status.strip_prefix(prefix))
        .and_then(|rest| rest.split_once(')'))
        .and_then(|(code, _)| code.parse::<i64>().ok());
    (health, exit_code)
}

/// A network found by name, with what the duplicate repair needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoundNetwork {
    id: String,
    /// `None` when the engine gave no readable creation time; such a network counts as newest.
    created: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Labelled `ballast.managed=true`: made by ballast (some store).
    by_ballast: bool,
}

impl FoundNetwork {
    fn from_listed(network: Network) -> Option<FoundNetwork> {
        let created = network
            .created
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let by_ballast = network
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::MANAGED))
            .is_some_and(|v| v == "true");
        Some(FoundNetwork {
            id: network.id?,
            created,
            by_ballast,
        })
    }
}

/// Oldest first; ties (and unknown times) broken by id, so every process picks the same one.
fn oldest_first(mut found: Vec<FoundNetwork>) -> Vec<FoundNetwork> {
    found.sort_by(|a, b| {
        (a.created.is_none(), a.created, &a.id).cmp(&(b.created.is_none(), b.created, &b.id))
    });
    found
}

/// The engine's answer when a network name matches several networks.
fn is_network_ambiguity(message: &str) -> bool {
    message.contains("is ambiguous")
}

fn is_port_conflict(message: &str) -> bool {
    message.contains("port is already allocated") || message.contains("address already in use")
}

/// The host port an engine's "port in use" message names, among the ports the spec publishes.
fn conflicting_port(message: &str, ports: &[ballast_model::Spanned<String>]) -> Option<u16> {
    let published: Vec<u16> = ports
        .iter()
        .filter_map(|p| PortMapping::parse(&p.value).ok())
        .map(|p| p.host_port)
        .collect();
    let mentioned = message.split(':').skip(1).filter_map(|after| {
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u16>().ok()
    });
    for port in mentioned {
        if published.contains(&port) {
            return Some(port);
        }
    }
    match published.as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// The app's container (named after it) is gone: removed by hand between observe and this step.
fn no_such_container(app: &ResolvedApp, step: StepKind) -> DockerError {
    DockerError::NoSuchContainer {
        app: app.name.clone(),
        step,
        container: app.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::Spanned;
    use bollard::models::EndpointSettings;

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(
            s.to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    }

    #[test]
    fn port_conflicts_name_the_port_from_the_engine_message() {
        let ports = vec![spanned("8080:80"), spanned("127.0.0.1:9443:443")];
        let cases = [
            (
                "driver failed programming external connectivity on endpoint web (abc): Bind for 0.0.0.0:8080 failed: port is already allocated",
                Some(8080),
            ),
            (
                "driver failed programming external connectivity on endpoint web (abc): Error starting userland proxy: listen tcp4 127.0.0.1:9443: bind: address already in use",
                Some(9443),
            ),
            ("address already in use", None),
        ];
        for (message, expected) in cases {
            assert!(is_port_conflict(message));
            assert_eq!(conflicting_port(message, &ports), expected, "{message}");
        }
        assert_eq!(
            conflicting_port("address already in use", &ports[..1]),
            Some(8080)
        );
    }

    #[test]
    fn summaries_map_to_observed_apps() {
        use bollard::models::{ContainerSummaryStateEnum, PortSummary, PortSummaryTypeEnum};
        let summary = ContainerSummary {
            id: Some("abcdef0123456789".into()),
            names: Some(vec!["/web".into()]),
            image: Some("busybox:1".into()),
            image_id: Some("sha256:1".into()),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            status: Some("Up 2 seconds".into()),
            created: Some(1700000000),
            labels: Some(HashMap::from([(
                "ballast.app".to_string(),
                "web".to_string(),
            )])),
            ports: Some(vec![
                PortSummary {
                    ip: Some("::".into()),
                    private_port: 80,
                    public_port: Some(8080),
                    typ: Some(PortSummaryTypeEnum::TCP),
                },
                PortSummary {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(8080),
                    typ: Some(PortSummaryTypeEnum::TCP),
                },
                PortSummary {
                    ip: None,
                    private_port: 443,
                    public_port: None,
                    typ: Some(PortSummaryTypeEnum::TCP),
                },
            ]),
            ..Default::default()
        };
        let app = observed_from_summary(summary).unwrap();
        assert_eq!(app.name, "web");
        assert_eq!(app.state, "running");
        assert!(app.is_running());
        assert_eq!(app.ports, vec!["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"]);
        assert_eq!(app.labels["ballast.app"], "web");
        assert_eq!(app.created, 1700000000);
        assert_eq!(app.networks, None, "no network settings listed: not known");
    }

    #[test]
    fn the_networks_a_container_is_attached_to_are_observed() {
        use bollard::models::ContainerSummaryNetworkSettings;
        let summary = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/web".into()]),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(HashMap::from([
                    ("front".to_string(), EndpointSettings::default()),
                    ("back".to_string(), EndpointSettings::default()),
                ])),
            }),
            ..Default::default()
        };
        let app = observed_from_summary(summary).unwrap();
        assert_eq!(app.networks, Some(vec!["back".into(), "front".into()]));
    }

    #[test]
    fn status_text_gives_health_and_exit_code_without_clocks() {
        let cases = [
            ("Up 2 seconds", None, None),
            ("Up 3 minutes (healthy)", Some(Health::Healthy), None),
            (
                "Up 10 seconds (health: starting)",
                Some(Health::Starting),
                None,
            ),
            (
                "Up About an hour (unhealthy)",
                Some(Health::Unhealthy),
                None,
            ),
            ("Up 5 minutes (Paused)", None, None),
            ("Exited (0) 2 hours ago", None, Some(0)),
            ("Exited (137) Less than a second ago", None, Some(137)),
            ("Restarting (1) 5 seconds ago", None, Some(1)),
            ("Created", None, None),
            ("Dead", None, None),
            ("", None, None),
        ];
        for (status, health, exit_code) in cases {
            assert_eq!(parse_status(status), (health, exit_code), "{status}");
        }
    }

    #[test]
    fn the_oldest_network_comes_first_whatever_the_fraction_digits() {
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
        let net = |id: &str, created: Option<&str>| FoundNetwork {
            id: id.into(),
            created: created.and_then(at),
            by_ballast: true,
        };
        // Go trims trailing zeros: `.1` is later than `.05`, though it sorts first as text.
        let found = vec![
            net("c", None),
            net("b", Some("2024-05-01T10:00:00.1Z")),
            net("a", Some("2024-05-01T10:00:00.05Z")),
            net("d", Some("2024-05-01T12:00:00.07+02:00")),
        ];
        let ids: Vec<String> = oldest_first(found).into_iter().map(|n| n.id).collect();
        assert_eq!(ids, vec!["a", "d", "b", "c"]);
    }
}
