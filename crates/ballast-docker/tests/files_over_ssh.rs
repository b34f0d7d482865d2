//! An App's `files` reach a container on a remote engine: the create step writes them through
//! the engine's archive API (`PUT /containers/{id}/archive`) over the SSH tunnel, before the
//! container starts, with the mode and owner the spec gives. No path on the engine's machine is
//! involved, so nothing has to exist there but the engine.
//!
//! Needs Debian's `openssh-server` and a Docker engine, as `over_ssh.rs`.

use std::io;
use std::process::Command;
use std::sync::Arc;

use ballast_docker::{AsyncStream, DockerEngine, ResolvedApp, StreamOpener};
use ballast_model::app::sources::{EnvVars, FileContent};
use ballast_plan::AppStep;
use ballast_ssh::{Auth, HostKeyPolicy, SshPool, SshTarget, Timeouts, Zeroizing};
use ballast_test_support::docker::{CallCounter, cleanup_instance, engine, unique_name};
use ballast_test_support::sshd::{ClientKey, Sshd};

fn ssh_opener(pool: SshPool, target: SshTarget, socket: String) -> StreamOpener {
    Arc::new(move || {
        let (pool, target, socket) = (pool.clone(), target.clone(), socket.clone());
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

fn docker_exec(container: &str, args: &[&str]) -> String {
    let output = Command::new("docker")
        .env("DOCKER_HOST", engine().docker_host())
        .arg("exec")
        .arg(container)
        .args(args)
        .output()
        .expect("docker exec");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_env_files_reach_a_container_over_ssh() {
    let _ = engine();
    let proxy = CallCounter::start();
    let sshd = Sshd::start();
    let instance = unique_name("ssh-files");
    let _cleanup = Cleanup(instance.clone());
    let target = SshTarget {
        name: "filebox".into(),
        address: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        auth: Auth::Key {
            private_key: Zeroizing::new(sshd.client_key(ClientKey::Ed25519)),
            passphrase: None,
        },
        host_key: HostKeyPolicy::Pinned(sshd.host_key_fingerprint.clone()),
        timeouts: Timeouts::default(),
    };
    let socket = proxy.socket().display().to_string();
    let docker = DockerEngine::over_stream(
        format!("ssh://127.0.0.1:{}{socket}", sshd.port),
        &instance,
        ssh_opener(SshPool::new(), target, socket),
    );
    let name = unique_name("files");
    let mut spec: ballast_model::AppSpec = serde_saphyr::from_str(&format!(
        "image: {}\ncommand: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 600 & wait\"]\npullPolicy: Never\nenvFile: [app.env]\nfiles:\n  - {{source: app.ini, target: /etc/app/app.ini, mode: \"0640\", uid: 65534, gid: 65534}}\n  - {{source: token, target: /run/secrets/token}}\n",
        engine().image()
    ))
    .unwrap();
    // What the loader reads next to the manifest.
    spec.files[0].content = Some(FileContent(Arc::new(b"[app]\nport = 80\n".to_vec())));
    spec.files[0].sha256 = Some("a".into());
    spec.files[1].content = Some(FileContent(Arc::new(b"t0k3n".to_vec())));
    spec.files[1].sha256 = Some("b".into());
    spec.env_file[0].vars = Some(EnvVars(Arc::new(vec![("FROM_FILE".into(), "yes".into())])));
    spec.env_file[0].sha256 = Some("c".into());
    let app = ResolvedApp::new(&name, spec, "hash-1", vec![]);
    let mut log = Vec::new();
    for step in [
        AppStep::EnsureImage,
        AppStep::CreateContainer,
        AppStep::StartContainer,
    ] {
        docker.run_step(&app, &step, &mut log).await.unwrap();
    }
    assert_eq!(
        docker_exec(&name, &["cat", "/etc/app/app.ini"]),
        "[app]\nport = 80\n"
    );
    assert_eq!(
        docker_exec(&name, &["stat", "-c", "%a %u %g", "/etc/app/app.ini"]).trim(),
        "640 65534 65534"
    );
    assert_eq!(
        docker_exec(&name, &["stat", "-c", "%a %u", "/run/secrets/token"]).trim(),
        "444 0"
    );
    assert!(docker_exec(&name, &["env"]).contains("FROM_FILE=yes"));
    // Written once, through the tunnel, between create and start; the log names the files,
    // never their content.
    let calls = proxy.calls();
    let position = |method: &str, suffix: &str| {
        calls
            .iter()
            .position(|(m, p)| m == method && p.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {method} …{suffix} in {calls:?}"))
    };
    let archive = position("PUT", "/archive");
    assert!(position("POST", "/containers/create") < archive);
    assert!(archive < position("POST", "/start"));
    assert_eq!(
        calls.iter().filter(|(m, _)| m == "PUT").count(),
        1,
        "{calls:?}"
    );
    let text = log.join("\n");
    assert!(text.contains("wrote /etc/app/app.ini (16 bytes)"), "{text}");
    assert!(
        !text.contains("port = 80") && !text.contains("t0k3n"),
        "{text}"
    );
}
