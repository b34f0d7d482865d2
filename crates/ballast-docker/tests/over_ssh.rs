//! The Docker side through SSH: `DockerEngine::over_stream` with an opener that makes SSH
//! channels (direct-streamlocal) to the engine's socket, through a real sshd.
//!
//! Needs Debian's `openssh-server` (see `ballast_test_support::sshd`) and a Docker engine (see
//! `ballast_test_support::docker`). The channels reach the engine through the counting proxy,
//! so the test sees both the HTTP calls and the SSH connections they used.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ballast_docker::{AsyncStream, DockerEngine, DockerError, ResolvedApp, StreamOpener};
use ballast_plan::AppStep;
use ballast_ssh::{Auth, HostKeyPolicy, SshPool, SshTarget, Timeouts, Zeroizing};
use ballast_test_support::docker::{CallCounter, cleanup_instance, engine, unique_name};
use ballast_test_support::sshd::{ClientKey, Sshd};

/// Opens one SSH channel per call to `socket`, over the pool's connection to `target`,
/// counting the calls.
fn ssh_opener(
    pool: SshPool,
    target: SshTarget,
    socket: String,
    opened: Arc<AtomicUsize>,
) -> StreamOpener {
    Arc::new(move || {
        let (pool, target, socket) = (pool.clone(), target.clone(), socket.clone());
        opened.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let connection = pool.connect(&target).await.map_err(io::Error::other)?;
            let stream = connection
                .open_unix_stream(&socket)
                .await
                .map_err(io::Error::other)?;
            Ok(Box::new(stream) as Box<dyn AsyncStream>)
        })
    })
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_instance(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_through_one_ssh_connection() {
    let _ = engine();
    let proxy = CallCounter::start();
    let mut sshd = Sshd::start();
    let instance = unique_name("ssh");
    let _cleanup = Cleanup(instance.clone());
    let target = SshTarget {
        name: "dockerbox".into(),
        address: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        auth: Auth::Key {
            private_key: Zeroizing::new(sshd.client_key(ClientKey::Ed25519)),
            passphrase: None,
        },
        host_key: HostKeyPolicy::Pinned(sshd.host_key_fingerprint.clone()),
        timeouts: Timeouts {
            keepalive_interval: Duration::from_secs(1),
            keepalive_max: 2,
            ..Timeouts::default()
        },
    };
    let pool = SshPool::new();
    let opened = Arc::new(AtomicUsize::new(0));
    let socket = proxy.socket().display().to_string();
    let label = format!("ssh://root@127.0.0.1:{}{socket}", sshd.port);
    let docker = DockerEngine::over_stream(
        label.clone(),
        &instance,
        ssh_opener(pool.clone(), target.clone(), socket, opened.clone()),
    );
    assert_eq!(docker.host(), label);

    docker.ping().await.unwrap();
    assert!(docker.observe_apps().await.unwrap().is_empty());

    // A whole App lifecycle over the same connection.
    let name = unique_name("web");
    let spec: ballast_model::AppSpec = serde_saphyr::from_str(&format!(
        "image: {}\ncommand: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 600 & wait\"]\npullPolicy: Never\n",
        engine().image()
    ))
    .unwrap();
    let app = ResolvedApp::new(&name, spec, "hash-1", vec![]);
    let mut log = Vec::new();
    for step in [
        AppStep::EnsureImage,
        AppStep::CreateContainer,
        AppStep::StartContainer,
    ] {
        docker.run_step(&app, &step, &mut log).await.unwrap();
    }
    let apps = docker.observe_apps().await.unwrap();
    let observed = apps.get(&name).unwrap_or_else(|| panic!("{apps:?}"));
    assert!(observed.is_running(), "{observed:?}");
    docker
        .remove_container(&name, &observed.container_id, &mut log)
        .await
        .unwrap();
    assert!(docker.observe_apps().await.unwrap().is_empty());

    // Every call went through the proxy, over one SSH connection and few channels: hyper keeps
    // its HTTP connections, and so their channels, alive between requests (a request sent while
    // the previous connection is on its way back to the pool may open a second one).
    let calls = proxy.calls();
    assert!(calls.len() >= 8, "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|(m, p)| m == "POST" && p == "/containers/create"),
        "{calls:?}"
    );
    assert_eq!(pool.connections_opened("dockerbox"), 1);
    let streams = opened.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&streams),
        "{streams} streams for {} calls",
        calls.len()
    );

    // The server goes away: the engine is unreachable (not a terminal error), and it comes back
    // by itself once the server does.
    tokio::task::block_in_place(|| sshd.stop());
    let err = docker.observe_apps().await.unwrap_err();
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err}");
    assert!(err.is_transient() && !err.is_terminal(), "{err}");
    let text = err.to_string();
    assert!(text.contains(&label), "{text}");
    assert!(text.contains("dockerbox"), "the SSH reason is lost: {text}");

    tokio::task::block_in_place(|| sshd.restart());
    let mut result = docker.observe_apps().await;
    // A pooled HTTP connection over the dead channel may fail once before it is dropped.
    if result.is_err() {
        result = docker.observe_apps().await;
    }
    assert!(result.unwrap().is_empty());
    assert_eq!(pool.connections_opened("dockerbox"), 2);
}

#[tokio::test]
async fn an_unreachable_server_makes_the_engine_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = SshTarget {
        name: "gone".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        auth: Auth::Password(Zeroizing::new("unused".into())),
        host_key: HostKeyPolicy::RequirePin,
        timeouts: Timeouts::default(),
    };
    let docker = DockerEngine::over_stream(
        format!("ssh://root@127.0.0.1:{port}/var/run/docker.sock"),
        "inst",
        ssh_opener(
            SshPool::new(),
            target,
            "/var/run/docker.sock".into(),
            Arc::new(AtomicUsize::new(0)),
        ),
    );
    let err = docker.ping().await.unwrap_err();
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("server `gone`"), "{err}");
}
