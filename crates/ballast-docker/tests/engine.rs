//! The Docker side against a real engine, through a proxy that counts the calls.
//!
//! Needs a Docker engine (a running one, or Debian's `docker.io` to start one) and Debian's
//! `busybox-static` for the offline test image; see `ballast_test_support::docker`.

use std::collections::HashMap;
use std::net::TcpListener;

use ballast_docker::{DockerEngine, DockerError, ResolvedApp};
use ballast_model::AppSpec;
use ballast_plan::AppStep;
use ballast_test_support::docker::{CallCounter, cleanup_instance, engine, unique_name};
use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;

/// One test's world: its own store instance id, a counting proxy, and cleanup on drop (also when
/// the test panics).
struct World {
    instance: String,
    proxy: CallCounter,
    docker: DockerEngine,
    extra_containers: Vec<String>,
    volumes: Vec<String>,
}

impl World {
    fn new() -> World {
        let _ = engine();
        let instance = unique_name("inst");
        let proxy = CallCounter::start();
        let docker = DockerEngine::connect_with_host(&proxy.docker_host(), &instance).unwrap();
        World {
            instance,
            proxy,
            docker,
            extra_containers: vec![],
            volumes: vec![],
        }
    }

    /// Calls recorded so far, without the one-time API version negotiation.
    fn calls(&self) -> Vec<(String, String)> {
        self.proxy
            .calls()
            .into_iter()
            .filter(|(_, p)| p != "/version")
            .collect()
    }

    fn mutating(&self) -> Vec<(String, String)> {
        self.proxy.mutating()
    }

    async fn run(&self, app: &ResolvedApp, steps: &[AppStep]) -> Result<Vec<String>, DockerError> {
        let mut log = Vec::new();
        for step in steps {
            self.docker.run_step(app, step, &mut log).await?;
        }
        Ok(log)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        cleanup_instance(&self.instance);
        for name in &self.extra_containers {
            let _ = engine().request("DELETE", &format!("/containers/{name}?force=1"));
        }
        for volume in &self.volumes {
            let _ = engine().request("DELETE", &format!("/volumes/{volume}?force=1"));
        }
    }
}

/// A bollard client straight to the engine, for checking what landed.
async fn inspector() -> Docker {
    Docker::connect_with_host(&engine().docker_host())
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

fn spec(yaml: &str) -> AppSpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("test spec does not parse: {e}\n{yaml}"))
}

fn app(name: &str, yaml: &str) -> ResolvedApp {
    ResolvedApp::new(name, spec(yaml), "hash-1", vec![])
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_string(), path.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const CREATE: [AppStep; 3] = [
    AppStep::EnsureImage,
    AppStep::CreateContainer,
    AppStep::StartContainer,
];

/// A container that is not ballast's, made straight through the engine.
async fn foreign_container(name: &str, labels: HashMap<String, String>) -> String {
    let body = ContainerCreateBody {
        image: Some(engine().image().to_string()),
        labels: Some(labels),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    inspector()
        .await
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn observing_an_instance_with_no_containers_is_one_list_call() {
    let world = World::new();
    let apps = world.docker.observe_apps().await.unwrap();
    assert!(apps.is_empty(), "{apps:?}");
    assert_eq!(world.calls(), vec![call("GET", "/containers/json")]);
    let query = &world
        .proxy
        .requests()
        .iter()
        .find(|c| c.path == "/containers/json")
        .unwrap()
        .query
        .clone();
    assert!(
        query.contains("all=true") || query.contains("all=1"),
        "{query}"
    );
}

#[tokio::test]
async fn every_spec_field_lands_on_the_container_and_the_lifecycle_works() {
    let mut world = World::new();
    let name = unique_name("full");
    let volume = unique_name("vol");
    world.volumes.push(volume.clone());
    let (front, back) = (unique_name("front"), unique_name("back"));
    let bind_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let image = engine().image();
    let yaml = format!(
        r#"
image: {image}
entrypoint: ["/bin/sh", "-c"]
command: ["trap 'exit 0' TERM; sleep 600 & wait"]
env:
  GREETING: hello
  TOKEN: {{secretRef: {{name: api-token}}}}
ports: ["127.0.0.1:{port}:80"]
volumes: ["{volume}:/data", "{bind}:/www:ro"]
networks: [{front}, {back}]
restart: on-failure:2
labels: {{team: ops}}
healthcheck: {{test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3, startPeriod: 500ms}}
user: "65534:65534"
workingDir: /data
resources: {{memory: 64m, cpus: 0.5}}
"#,
        bind = bind_dir.path().display()
    );
    let app = ResolvedApp::new(
        &name,
        spec(&yaml),
        "hash-1",
        vec![
            ("GREETING".into(), "hello".into()),
            ("TOKEN".into(), "s3cret-value".into()),
        ],
    );

    let steps = [
        AppStep::EnsureImage,
        AppStep::EnsureNetworks,
        AppStep::CreateContainer,
        AppStep::StartContainer,
    ];
    let log = world.run(&app, &steps).await.unwrap();
    assert!(log.iter().all(|l| !l.contains("s3cret")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("created container {name} (id "))),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("created network {front}"))),
        "{log:?}"
    );

    // Exactly the calls needed: no inspect beyond the image check.
    let calls = world.calls();
    assert_eq!(
        calls,
        vec![
            call("GET", &format!("/images/{image}/json")),
            // Per network: look, create, look again for a twin another process made.
            call("GET", "/networks"),
            call("POST", "/networks/create"),
            call("GET", "/networks"),
            call("GET", "/networks"),
            call("POST", "/networks/create"),
            call("GET", "/networks"),
            call("POST", "/containers/create"),
            call("POST", &format!("/networks/{back}/connect")),
            call("POST", &format!("/containers/{name}/start")),
        ]
    );

    let inspect = inspector()
        .await
        .inspect_container(&name, None)
        .await
        .unwrap();
    let config = inspect.config.clone().unwrap();
    assert_eq!(config.image.as_deref(), Some(image));
    assert_eq!(
        config.entrypoint,
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
    assert_eq!(
        config.cmd,
        Some(vec!["trap 'exit 0' TERM; sleep 600 & wait".to_string()])
    );
    let env = config.env.clone().unwrap();
    assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
    assert!(env.contains(&"TOKEN=s3cret-value".to_string()), "{env:?}");
    assert_eq!(config.exposed_ports, Some(vec!["80/tcp".to_string()]));
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    assert_eq!(config.working_dir.as_deref(), Some("/data"));
    let health = config.healthcheck.clone().unwrap();
    assert_eq!(
        health.test,
        Some(vec!["CMD".to_string(), "true".to_string()])
    );
    assert_eq!(health.interval, Some(1_000_000_000));
    assert_eq!(health.timeout, Some(2_000_000_000));
    assert_eq!(health.retries, Some(3));
    assert_eq!(health.start_period, Some(500_000_000));
    let labels = config.labels.clone().unwrap();
    assert_eq!(labels["team"], "ops");
    assert_eq!(labels["ballast.managed"], "true");
    assert_eq!(labels["ballast.instance"], world.instance);
    assert_eq!(labels["ballast.app"], name);
    assert_eq!(labels["ballast.spec-hash"], "hash-1");
    assert!(!labels["ballast.spec"].contains("s3cret"));
    let applied: serde_json::Value = serde_json::from_str(&labels["ballast.spec"]).unwrap();
    assert_eq!(applied["env"]["TOKEN"]["secretRef"]["name"], "api-token");

    let host = inspect.host_config.clone().unwrap();
    let binding = &host.port_bindings.clone().unwrap()["80/tcp"]
        .clone()
        .unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(binding.host_port, Some(port.to_string()));
    assert_eq!(
        host.binds,
        Some(vec![
            format!("{volume}:/data"),
            format!("{}:/www:ro", bind_dir.path().display())
        ])
    );
    let restart = host.restart_policy.clone().unwrap();
    assert_eq!(
        restart.name.map(|n| n.to_string()).as_deref(),
        Some("on-failure")
    );
    assert_eq!(restart.maximum_retry_count, Some(2));
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.network_mode.as_deref(), Some(front.as_str()));
    let networks = inspect.network_settings.clone().unwrap().networks.unwrap();
    assert!(
        networks.contains_key(&front) && networks.contains_key(&back),
        "{:?}",
        networks.keys()
    );
    let mounts = inspect.mounts.clone().unwrap();
    let data = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/data"))
        .unwrap();
    assert_eq!(data.name.as_deref(), Some(volume.as_str()));
    let www = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/www"))
        .unwrap();
    assert_eq!(www.rw, Some(false));
    assert_eq!(inspect.state.clone().unwrap().running, Some(true));

    // Networks made by ballast carry its labels; a second ensure creates nothing.
    let net = inspector()
        .await
        .inspect_network(&front, None)
        .await
        .unwrap();
    let net_labels = net.labels.unwrap_or_default();
    assert_eq!(
        net_labels.get("ballast.managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(net_labels.get("ballast.instance"), Some(&world.instance));
    world.proxy.reset();
    world.run(&app, &[AppStep::EnsureNetworks]).await.unwrap();
    assert_eq!(
        world.mutating(),
        vec![],
        "networks exist: nothing to create"
    );

    // Observe: one list call, the container with its labels and ports.
    world.proxy.reset();
    let apps = world.docker.observe_apps().await.unwrap();
    assert_eq!(world.calls(), vec![call("GET", "/containers/json")]);
    let observed = &apps[&name];
    assert_eq!(observed.name, name);
    assert_eq!(observed.container_id, inspect.id.clone().unwrap());
    assert_eq!(observed.state, "running");
    assert!(observed.status.starts_with("Up"), "{}", observed.status);
    assert_eq!(observed.image, image);
    assert!(
        observed.image_id.starts_with("sha256:"),
        "{}",
        observed.image_id
    );
    assert_eq!(observed.spec_hash(), Some("hash-1"));
    assert_eq!(observed.labels["team"], "ops");
    assert_eq!(observed.ports, vec![format!("127.0.0.1:{port}->80/tcp")]);
    assert!(observed.created > 1_600_000_000);
    assert_eq!(apps.len(), 1);

    // Stop and start, each twice: the second is a no-op for the engine (304), not an error.
    let log = world
        .run(&app, &[AppStep::StopContainer, AppStep::StopContainer])
        .await
        .unwrap();
    assert_eq!(
        log,
        vec![
            format!("stopped container {name}"),
            format!("stopped container {name}")
        ]
    );
    let apps = world.docker.observe_apps().await.unwrap();
    assert_eq!(apps[&name].state, "exited");
    assert!(!apps[&name].is_running());
    world
        .run(&app, &[AppStep::StartContainer, AppStep::StartContainer])
        .await
        .unwrap();
    assert!(world.docker.observe_apps().await.unwrap()[&name].is_running());

    // Remove: inspect (ownership), stop, remove; the named volume stays.
    world.proxy.reset();
    let remove = AppStep::RemoveContainer {
        container_id: observed.container_id.clone(),
    };
    let log = world
        .run(&app, std::slice::from_ref(&remove))
        .await
        .unwrap();
    assert!(log.iter().any(|l| l.contains("volumes kept")), "{log:?}");
    let id = &observed.container_id;
    assert_eq!(
        world.calls(),
        vec![
            call("GET", &format!("/containers/{id}/json")),
            call("POST", &format!("/containers/{id}/stop")),
            call("DELETE", &format!("/containers/{id}")),
        ]
    );
    let delete = world
        .proxy
        .requests()
        .into_iter()
        .find(|c| c.method == "DELETE")
        .unwrap();
    assert!(delete.query.contains("v=false"), "{}", delete.query);
    assert!(world.docker.observe_apps().await.unwrap().is_empty());
    inspector()
        .await
        .inspect_volume(&volume)
        .await
        .expect("named volume is kept");

    // Removing again: already gone is success.
    let log = world.run(&app, &[remove]).await.unwrap();
    assert!(log[0].contains("already gone"), "{log:?}");
    for network in [&front, &back] {
        let _ = engine().request("DELETE", &format!("/networks/{network}"));
    }
}

#[tokio::test]
async fn remove_refuses_containers_without_this_stores_labels() {
    let mut world = World::new();
    let foreign = unique_name("foreign");
    let other_store = unique_name("other");
    world
        .extra_containers
        .extend([foreign.clone(), other_store.clone()]);
    let foreign_id = foreign_container(&foreign, HashMap::new()).await;
    let other_id = foreign_container(
        &other_store,
        HashMap::from([
            ("ballast.managed".to_string(), "true".to_string()),
            (
                "ballast.instance".to_string(),
                "some-other-store".to_string(),
            ),
        ]),
    )
    .await;
    let app = app(&foreign, &format!("image: {}", engine().image()));
    for (id, shown) in [(foreign_id, &foreign), (other_id, &other_store)] {
        world.proxy.reset();
        let err = world
            .run(
                &app,
                &[AppStep::RemoveContainer {
                    container_id: id.clone(),
                }],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DockerError::NotOurs { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("refusing to remove container `{shown}`")),
            "{message}"
        );
        assert_eq!(
            world.mutating(),
            vec![],
            "nothing may be changed on a container that is not ours"
        );
        inspector()
            .await
            .inspect_container(&id, None)
            .await
            .expect("still there");
    }
}

#[tokio::test]
async fn a_foreign_container_with_the_apps_name_is_a_clear_conflict() {
    let mut world = World::new();
    let name = unique_name("conflict");
    world.extra_containers.push(name.clone());
    foreign_container(&name, HashMap::new()).await;
    let app = app(&name, &format!("image: {}", engine().image()));
    let err = world
        .run(&app, &[AppStep::CreateContainer])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "a container named `{name}` already exists and was not created by this ballast store; remove or rename it"
        )
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn create_adopts_this_stores_container_from_the_same_spec() {
    let world = World::new();
    let name = unique_name("adopt");
    let app = app(&name, &format!("image: {}", engine().image()));
    let first = world.run(&app, &[AppStep::CreateContainer]).await.unwrap();
    assert!(first[0].starts_with("created container"), "{first:?}");

    // As after a crash between create and record: the same create again adopts.
    world.proxy.reset();
    let again = world.run(&app, &[AppStep::CreateContainer]).await.unwrap();
    assert!(
        again[0].starts_with(&format!("adopted existing container {name}")),
        "{again:?}"
    );
    assert_eq!(
        world.calls(),
        vec![
            call("POST", "/containers/create"),
            call("GET", &format!("/containers/{name}/json"))
        ]
    );
    assert_eq!(world.docker.observe_apps().await.unwrap().len(), 1);

    // The same name from another spec of this store is not adopted.
    let changed = ResolvedApp::new(&name, app.spec.clone(), "hash-2", vec![]);
    let err = world
        .run(&changed, &[AppStep::CreateContainer])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DockerError::NameConflict {
                spec_hash: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("another spec (hash hash-1)"),
        "{err}"
    );
}

#[tokio::test]
async fn pull_policy_never_with_a_missing_image_is_a_clear_error() {
    let world = World::new();
    let app = app("never", "image: ballast-test/missing:1\npullPolicy: Never");
    let err = world.run(&app, &[AppStep::EnsureImage]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "image `ballast-test/missing:1` is not on the engine and pullPolicy is Never (app `never`)"
    );
    assert_eq!(
        world.calls(),
        vec![call("GET", "/images/ballast-test/missing:1/json")]
    );

    // Present image with Never: fine, and not pulled.
    let present = app_with_image("never", engine().image(), "Never");
    let log = world.run(&present, &[AppStep::EnsureImage]).await.unwrap();
    assert_eq!(log, vec![format!("image {} is present", engine().image())]);
    assert_eq!(world.mutating(), vec![]);
}

fn app_with_image(name: &str, image: &str, policy: &str) -> ResolvedApp {
    app(name, &format!("image: {image}\npullPolicy: {policy}"))
}

#[tokio::test]
async fn a_pull_that_cannot_reach_a_registry_is_a_clear_one_line_error() {
    let world = World::new();
    // Nothing listens on port 1: the engine's pull fails at once, whatever the network.
    let image = "127.0.0.1:1/ballast/unreachable:1";
    let app = app_with_image("pull", image, "Always");
    let err = world.run(&app, &[AppStep::EnsureImage]).await.unwrap_err();
    let message = err.to_string();
    eprintln!("shown to the user: {message}");
    assert!(matches!(err, DockerError::PullFailed { .. }), "{err:?}");
    assert!(
        message.starts_with(&format!("cannot pull image `{image}`: ")),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.len() > format!("cannot pull image `{image}`: ").len() + 5,
        "has the engine's reason: {message}"
    );
    assert_eq!(world.calls(), vec![call("POST", "/images/create")]);
    let pull = world
        .proxy
        .requests()
        .into_iter()
        .find(|c| c.path == "/images/create")
        .unwrap();
    assert!(
        pull.query.contains("tag=1"),
        "pulls one tag, not all: {}",
        pull.query
    );

    // IfNotPresent inspects first, then pulls.
    world.proxy.reset();
    let app = app_with_image("pull", image, "IfNotPresent");
    let err = world.run(&app, &[AppStep::EnsureImage]).await.unwrap_err();
    assert!(matches!(err, DockerError::PullFailed { .. }), "{err:?}");
    assert_eq!(
        world.calls(),
        vec![
            call("GET", &format!("/images/{image}/json")),
            call("POST", "/images/create")
        ]
    );
}

#[tokio::test]
async fn a_host_port_in_use_is_a_clear_error() {
    let world = World::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let name = unique_name("port");
    let app = app(
        &name,
        &format!(
            "image: {}\nports: [\"127.0.0.1:{port}:80\"]",
            engine().image()
        ),
    );
    let err = world.run(&app, &CREATE).await.unwrap_err();
    eprintln!("shown to the user: {err} (engine: {err:?})");
    assert_eq!(
        err.to_string(),
        format!("cannot start `{name}`: host port {port} is already in use")
    );
    assert!(
        matches!(err, DockerError::PortInUse { port: Some(p), .. } if p == port),
        "{err:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn an_unreachable_engine_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/nothing.sock", dir.path().display());
    let docker = DockerEngine::connect_with_host(&host, "inst").unwrap();
    let err = docker.observe_apps().await.unwrap_err();
    assert!(err.is_transient() && err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains("is unreachable"), "{err}");
}

#[tokio::test]
async fn a_create_that_fails_after_the_container_exists_leaves_no_container() {
    let world = World::new();
    let name = unique_name("half");
    let net = unique_name("net");
    // `none` cannot be joined by a container on another network: the engine creates the
    // container on the first network, then refuses the connect.
    let app = app(
        &name,
        &format!(
            "image: {}\ncommand: [sleep, \"60\"]\nnetworks: [{net}, none]\n",
            engine().image()
        ),
    );
    let result = world
        .run(
            &app,
            &[
                AppStep::EnsureImage,
                AppStep::EnsureNetworks,
                AppStep::CreateContainer,
            ],
        )
        .await;
    let _ = engine().request("DELETE", &format!("/networks/{net}"));
    let err = result.expect_err("connecting `none` fails");
    assert!(err.to_string().contains("create container"), "{err}");
    let found = inspector().await.inspect_container(&name, None).await;
    assert!(
        found.is_err(),
        "the half-made container is removed: {found:?}"
    );
}
