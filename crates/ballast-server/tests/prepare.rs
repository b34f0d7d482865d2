//! System info and preparation against real hosts: a throwaway Debian container with its own
//! sshd (packages really installed with apt, through sudo), and this machine's own sshd and
//! Docker engine (the "already satisfied" path, which must change nothing here).
//!
//! Needs: Docker (`apt-get install docker.io`), debootstrap and openssh-client for the
//! throwaway image, openssh-server for the local sshd, and Debian's mirror reachable from the
//! container network.

use std::sync::Arc;
use std::time::Duration;

use ballast_server::{
    PrepareSpec, ServerError, Step, StepAction, StepEvent, StepStatus, gather, needs_work, plan,
    run,
};
use ballast_ssh::{Auth, HostKeyPolicy, SshConnection, SshPool, SshTarget, Timeouts};
use ballast_test_support::sshd::{ClientKey, Sshd};
use ballast_test_support::throwaway::{Options, ThrowawayHost};
use zeroize::Zeroizing;

fn throwaway() -> ThrowawayHost {
    ThrowawayHost::start().unwrap_or_else(|e| panic!("cannot start a throwaway host: {e:#}"))
}

async fn connect_throwaway(host: &ThrowawayHost, user: &str) -> Arc<SshConnection> {
    let target = SshTarget {
        name: format!("throwaway-{user}"),
        address: host.address.clone(),
        port: host.port,
        user: user.to_string(),
        auth: Auth::Key {
            private_key: Zeroizing::new(host.key_of(user).unwrap().to_string()),
            passphrase: None,
        },
        host_key: HostKeyPolicy::Pinned(host.host_key_fingerprint.clone()),
        timeouts: Timeouts::default(),
    };
    SshPool::new()
        .connect(&target)
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", host.logs()))
}

fn spec(docker: bool, packages: &[&str]) -> PrepareSpec {
    PrepareSpec {
        docker,
        packages: packages.iter().map(|p| p.to_string()).collect(),
    }
}

/// Runs a preparation, returning its result and every event.
async fn prepare(
    conn: &SshConnection,
    spec: &PrepareSpec,
) -> (
    Result<ballast_server::SystemInfo, ServerError>,
    Vec<StepEvent>,
) {
    let mut events = Vec::new();
    let mut sink = |event: StepEvent| events.push(event);
    let result = run(conn, spec, &mut sink).await;
    (result, events)
}

/// `(step, status)` of every finished step, in order.
fn outcomes(events: &[StepEvent]) -> Vec<(Step, StepStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            StepEvent::Finished { step, status, .. } => Some((*step, *status)),
            StepEvent::Started { .. } => None,
        })
        .collect()
}

fn message_of(events: &[StepEvent], wanted: Step) -> String {
    events
        .iter()
        .find_map(|e| match e {
            StepEvent::Finished { step, message, .. } if *step == wanted => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn dump(events: &[StepEvent]) -> String {
    events
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn jq_installed(host: &ThrowawayHost) -> bool {
    let out = host
        .docker_exec("dpkg-query -W -f='${Status}' jq 2>/dev/null")
        .unwrap();
    String::from_utf8_lossy(&out.stdout).ends_with(" installed")
}

#[tokio::test]
async fn system_info_of_a_real_host() {
    let host = throwaway();
    let root = connect_throwaway(&host, "root").await;
    let info = gather(&root, &spec(false, &["jq", "sudo"])).await.unwrap();
    assert_eq!(info.os_id, "debian");
    assert_eq!(info.os_version.as_deref(), Some("12"));
    assert!(info.os_name.starts_with("Debian GNU/Linux 12"), "{info:?}");
    assert_eq!(info.hostname, "throwaway");
    assert_eq!(info.user, "root");
    assert!(info.is_root && info.sudo_ok);
    assert!(info.cpu_count > 0);
    assert!(info.memory_bytes > 0);
    assert!(info.disk_total_bytes > 0 && info.disk_free_bytes > 0);
    assert!(!info.kernel.is_empty() && !info.arch.is_empty());
    assert_eq!(
        info.package_manager,
        Some(ballast_server::PackageManager::Apt)
    );
    assert!(!info.docker.installed && !info.docker.running && !info.docker.socket_present);
    assert_eq!(info.missing_packages, vec!["jq"], "sudo is in the image");

    let deploy = connect_throwaway(&host, "deploy").await;
    let info = gather(&deploy, &spec(false, &[])).await.unwrap();
    assert_eq!(info.user, "deploy");
    assert!(!info.is_root && info.sudo_ok);

    let nosudo = connect_throwaway(&host, "nosudo").await;
    let info = gather(&nosudo, &spec(false, &[])).await.unwrap();
    assert_eq!(info.user, "nosudo");
    assert!(!info.is_root && !info.sudo_ok);
}

#[tokio::test]
async fn prepares_through_sudo_then_has_nothing_left_to_do() {
    let host = throwaway();
    let deploy = connect_throwaway(&host, "deploy").await;
    let want = spec(false, &["jq"]);
    assert!(!jq_installed(&host));

    let before = gather(&deploy, &want).await.unwrap();
    assert_eq!(needs_work(&before, &want), vec!["packages missing: jq"]);

    let (result, events) = prepare(&deploy, &want).await;
    let info = result.unwrap_or_else(|e| panic!("{e}\n{}", dump(&events)));
    assert_eq!(
        outcomes(&events),
        vec![
            (Step::DetectOs, StepStatus::Succeeded),
            (Step::RefreshIndex, StepStatus::Succeeded),
            (Step::InstallPackages, StepStatus::Succeeded),
            (Step::InstallDocker, StepStatus::Skipped),
            (Step::StartDocker, StepStatus::Skipped),
            (Step::Verify, StepStatus::Succeeded),
        ],
        "{}",
        dump(&events)
    );
    // Every step announced itself first, with the command it ran.
    let started: Vec<(Step, String)> = events
        .iter()
        .filter_map(|e| match e {
            StepEvent::Started { step, message } => Some((*step, message.clone())),
            StepEvent::Finished { .. } => None,
        })
        .collect();
    assert_eq!(started.len(), 6);
    assert_eq!(
        started[2].1,
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jq"
    );
    let install_output = events.iter().find_map(|e| match e {
        StepEvent::Finished {
            step: Step::InstallPackages,
            stdout,
            ..
        } => Some(stdout.clone()),
        _ => None,
    });
    assert!(
        install_output.is_some_and(|out| out.contains("Setting up jq")),
        "{}",
        dump(&events)
    );
    assert_eq!(
        message_of(&events, Step::InstallDocker),
        "docker not requested"
    );
    assert!(info.missing_packages.is_empty());
    assert!(needs_work(&info, &want).is_empty());
    assert!(jq_installed(&host), "jq is installed, as dpkg sees it");

    let (again, events) = prepare(&deploy, &want).await;
    again.unwrap_or_else(|e| panic!("{e}\n{}", dump(&events)));
    assert_eq!(
        outcomes(&events),
        vec![
            (Step::DetectOs, StepStatus::Succeeded),
            (Step::RefreshIndex, StepStatus::Skipped),
            (Step::InstallPackages, StepStatus::Skipped),
            (Step::InstallDocker, StepStatus::Skipped),
            (Step::StartDocker, StepStatus::Skipped),
            (Step::Verify, StepStatus::Succeeded),
        ],
        "{}",
        dump(&events)
    );
    assert_eq!(
        message_of(&events, Step::InstallPackages),
        "already satisfied: jq installed"
    );
}

#[tokio::test]
async fn a_user_without_sudo_is_refused_before_anything_runs() {
    let host = throwaway();
    let nosudo = connect_throwaway(&host, "nosudo").await;
    let (result, events) = prepare(&nosudo, &spec(false, &["jq"])).await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "server `throwaway-nosudo`: cannot prepare: user nosudo is not root and cannot sudo \
         without a password; give it NOPASSWD sudo or connect as root"
    );
    assert!(!err.is_transient());
    assert_eq!(err.server(), "throwaway-nosudo");
    assert_eq!(
        outcomes(&events),
        vec![(Step::DetectOs, StepStatus::Succeeded)],
        "{}",
        dump(&events)
    );
    assert!(!jq_installed(&host));
}

#[tokio::test]
async fn a_failing_step_stops_the_preparation_with_its_reason() {
    let host = throwaway();
    let root = connect_throwaway(&host, "root").await;
    let (result, events) = prepare(&root, &spec(false, &["no-such-package-ballast"])).await;
    let err = result.unwrap_err();
    match &err {
        ServerError::StepFailed {
            server,
            step,
            exit,
            reason,
            transient,
        } => {
            assert_eq!(server, "throwaway-root");
            assert_eq!(*step, Step::InstallPackages);
            assert_eq!(*exit, Some(100), "apt-get's exit status");
            assert!(
                reason.contains("Unable to locate package no-such-package-ballast"),
                "{reason}"
            );
            assert!(!transient);
        }
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(
        outcomes(&events),
        vec![
            (Step::DetectOs, StepStatus::Succeeded),
            (Step::RefreshIndex, StepStatus::Succeeded),
            (Step::InstallPackages, StepStatus::Failed),
        ],
        "{}",
        dump(&events)
    );
    let failed_stderr = events.iter().find_map(|e| match e {
        StepEvent::Finished {
            status: StepStatus::Failed,
            stderr,
            ..
        } => Some(stderr.clone()),
        _ => None,
    });
    assert!(failed_stderr.is_some_and(|s| s.contains("Unable to locate package")));
}

/// This machine's sshd (as root) and Docker engine: Docker is installed and running, so the
/// preparation has nothing to do. The plan is checked before running, so this test can never
/// install anything here.
#[tokio::test]
async fn docker_already_running_here_is_already_satisfied() {
    let engine = ballast_test_support::docker::engine();
    assert_eq!(
        engine.socket(),
        std::path::Path::new("/var/run/docker.sock"),
        "this test needs the system Docker engine on /var/run/docker.sock (the one a server's \
         sshd session finds): `apt-get install docker.io` and start it (`systemctl start docker` \
         or `dockerd &`)"
    );
    let sshd = Sshd::start();
    let target = SshTarget {
        name: "localhost".to_string(),
        address: "127.0.0.1".to_string(),
        port: sshd.port,
        user: sshd.user.clone(),
        auth: Auth::Key {
            private_key: Zeroizing::new(sshd.client_key(ClientKey::Ed25519)),
            passphrase: None,
        },
        host_key: HostKeyPolicy::Pinned(sshd.host_key_fingerprint.clone()),
        timeouts: Timeouts {
            command: Duration::from_secs(60),
            ..Timeouts::default()
        },
    };
    let conn = SshPool::new()
        .connect(&target)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let want = spec(true, &[]);

    let info = gather(&conn, &want).await.unwrap();
    assert!(info.is_root);
    assert!(info.docker.installed && info.docker.running, "{info:?}");
    assert!(info.docker.version.is_some(), "{info:?}");
    assert!(info.docker.socket_present);
    let steps = plan(&info, &want).unwrap();
    let runs: Vec<Step> = steps
        .iter()
        .filter(|s| matches!(s.action, StepAction::Run { .. }))
        .map(|s| s.step)
        .collect();
    assert_eq!(runs, vec![Step::DetectOs, Step::Verify], "{steps:?}");

    let (result, events) = prepare(&conn, &want).await;
    let after = result.unwrap_or_else(|e| panic!("{e}\n{}", dump(&events)));
    assert_eq!(
        outcomes(&events),
        vec![
            (Step::DetectOs, StepStatus::Succeeded),
            (Step::RefreshIndex, StepStatus::Skipped),
            (Step::InstallPackages, StepStatus::Skipped),
            (Step::InstallDocker, StepStatus::Skipped),
            (Step::StartDocker, StepStatus::Skipped),
            (Step::Verify, StepStatus::Succeeded),
        ],
        "{}",
        dump(&events)
    );
    let version = info.docker.version.clone().unwrap();
    assert_eq!(
        message_of(&events, Step::InstallDocker),
        format!("already satisfied: docker is installed (version {version})")
    );
    assert_eq!(
        message_of(&events, Step::StartDocker),
        format!("already satisfied: docker is running (version {version})")
    );
    assert_eq!(after.docker.version, Some(version));
}

/// A throwaway host that can run Docker but has none: preparation installs Debian's docker.io
/// through sudo, starts it, and Docker answers; a second run has nothing to do.
///
/// The container has no init system, and Debian's `service docker start` needs
/// `CAP_SYS_RESOURCE` (its init script raises ulimits), which this sandbox cannot grant; so
/// `service` is removed first and the last fallback, a background `dockerd`, is what runs.
#[tokio::test]
async fn installs_and_starts_docker_on_a_bare_host() {
    let host = ThrowawayHost::start_with(Options {
        docker_capable: true,
    })
    .unwrap_or_else(|e| panic!("cannot start a throwaway host: {e:#}"));
    let removed = host.docker_exec("rm /usr/sbin/service").unwrap();
    assert!(removed.status.success());
    let deploy = connect_throwaway(&host, "deploy").await;
    let want = spec(true, &[]);
    let before = gather(&deploy, &want).await.unwrap();
    assert_eq!(before.init_system, ballast_server::InitSystem::None);
    let (result, events) = prepare(&deploy, &want).await;
    let info = result.unwrap_or_else(|e| panic!("{e}\n{}", dump(&events)));
    assert_eq!(
        outcomes(&events),
        vec![
            (Step::DetectOs, StepStatus::Succeeded),
            (Step::RefreshIndex, StepStatus::Succeeded),
            (Step::InstallPackages, StepStatus::Skipped),
            (Step::InstallDocker, StepStatus::Succeeded),
            (Step::StartDocker, StepStatus::Succeeded),
            (Step::Verify, StepStatus::Succeeded),
        ],
        "{}",
        dump(&events)
    );
    assert!(info.docker.version.is_some(), "{info:?}");
    assert_eq!(
        message_of(&events, Step::StartDocker),
        "`sudo -n sh -c 'nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &'` succeeded"
    );
    let out = host
        .docker_exec("docker version --format '{{.Server.Version}}'")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (again, events) = prepare(&deploy, &want).await;
    again.unwrap_or_else(|e| panic!("{e}\n{}", dump(&events)));
    assert!(
        outcomes(&events).iter().all(|(step, status)| matches!(
            step,
            Step::DetectOs | Step::Verify
        ) || *status == StepStatus::Skipped),
        "{}",
        dump(&events)
    );
}
