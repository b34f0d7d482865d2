//! The App controller's Docker side: observe the containers one ballast store manages on an
//! engine (one list call), and execute the steps the App plan produces.
//!
//! Every container ballast creates carries `ballast.managed=true` and `ballast.instance=<store id>`;
//! nothing without both labels is ever stopped or removed here.

mod config;
mod error;
mod remote;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ballast_model::app::{PortMapping, PullPolicy};
use ballast_plan::app::labels;
use ballast_plan::{AppStep, ObservedApp};
use bollard::Docker;
use bollard::models::{
    ContainerSummary, EndpointSettings, NetworkConnectRequest, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

pub use config::{ResolvedApp, container_labels, create_body, split_reference};
pub use error::{DockerError, StepKind};
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

    async fn ensure_networks(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::EnsureNetworks;
        let wanted: Vec<&str> = app.networks().collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let docker = self.client(Some(&app.name), step).await?;
        // One list call; the `name` filter matches substrings, so compare exactly here.
        let filters = HashMap::from([("name", wanted.clone())]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let existing: BTreeSet<String> = docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.error(Some(&app.name), step, e))?
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        for name in wanted {
            if existing.contains(name) {
                continue;
            }
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
                // Created meanwhile by someone else: it exists, which is all this step wants.
                Err(e) if status_of(&e) == Some(409) => log.push(format!("network {name} exists")),
                Err(e) => return Err(self.error(Some(&app.name), step, e)),
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
                self.connect_networks(app, &created.id, &extra, log).await
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
                endpoint_config: Some(EndpointSettings::default()),
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
        self.connect_networks(app, &id, &missing, log).await
    }

    async fn start_container(
        &self,
        app: &ResolvedApp,
        log: &mut Vec<String>,
    ) -> Result<(), DockerError> {
        let step = StepKind::StartContainer;
        let docker = self.client(Some(&app.name), step).await?;
        match docker.start_container(&app.name, None).await {
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
    Some(ObservedApp {
        container_id,
        name,
        image: c.image.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        status: c.status.unwrap_or_default(),
        ports,
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        created: c.created.unwrap_or_default(),
        server: ballast_model::app::LOCAL_SERVER.to_string(),
    })
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
    }
}
