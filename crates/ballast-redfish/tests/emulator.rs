//! The client against the project's BMC emulator (`ballast_test_support::bmc`): observing in
//! two requests with one reused session, update operations returning their monitor at once,
//! polling (also from a new client), versions after a reset, every fault mapped to what the
//! caller must do, sessions, and Dell's job queue.

use std::time::{Duration, Instant};

use ballast_redfish::catalog::{Catalog, SystemModel};
use ballast_redfish::{
    ApplyTime, AuthMode, BmcConfig, ErrorClass, InventoryState, Operation, PowerState, PushUpdate,
    RedfishClient, RedfishError, ResetType, SimpleUpdate, TaskMonitor, TaskProgress, TlsVerify,
    Vendor,
};
use ballast_test_support::bmc::{BmcEmulator, BmcHandle, BmcSpec};

fn client_for(emu: &BmcEmulator, bmc: &BmcHandle<'_>) -> RedfishClient {
    RedfishClient::new(BmcConfig::from_url(
        bmc.url(),
        bmc.username(),
        bmc.password(),
        TlsVerify::CaPem(emu.ca_pem().to_string()),
    ))
    .expect("client")
}

fn started(op: Operation) -> TaskMonitor {
    match op {
        Operation::Started(m) => m,
        other => panic!("expected a started operation, got {other:?}"),
    }
}

/// Polls until the task is final, collecting every answer; a retryable error (the BMC
/// rebooting) is recorded and polled through.
async fn poll_until_final(
    client: &RedfishClient,
    monitor: &TaskMonitor,
    limit: Duration,
) -> (TaskProgress, Vec<TaskProgress>, Vec<RedfishError>) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    loop {
        match client.poll_task(monitor).await {
            Ok(p) if p.is_final() => return (p, seen, errors),
            Ok(p) => seen.push(p),
            Err(e) => {
                assert!(e.is_retryable(), "a poll failed for good: {e}");
                errors.push(e);
            }
        }
        assert!(
            Instant::now() < deadline,
            "task {monitor} not final after {limit:?}; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_power_on(client: &RedfishClient, uri: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.system(uri).await {
            Ok(s) if s.power_state == Some(PowerState::On) => return,
            Ok(_) => {}
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
        assert!(Instant::now() < deadline, "the system did not power on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn version_of(firmware: &[ballast_redfish::FirmwareComponent], software_id: &str) -> String {
    firmware
        .iter()
        .find(|c| {
            c.software_id.as_deref() == Some(software_id) && c.state == InventoryState::Installed
        })
        .and_then(|c| c.version.clone())
        .unwrap_or_else(|| panic!("no {software_id} in {firmware:?}"))
}

#[tokio::test]
async fn observing_is_two_requests_on_one_reused_session() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);

    let first = c.observe().await.expect("observe");
    assert_eq!(first.root.vendor, Vendor::Other("Contoso".into()));
    assert_eq!(first.systems.len(), 1);
    let system = &first.systems[0];
    assert_eq!(system.model.as_deref(), Some("3500"));
    assert_eq!(system.service_tag(&first.root.vendor), Some("437XR1138R2"));
    assert_eq!(system.power_state, Some(PowerState::On));
    assert!(system.status.is_ok());
    assert_eq!(version_of(&first.firmware, "BIOS"), "1.0.0");
    assert_eq!(first.bmc_firmware_version(), Some("1.00"));
    assert_eq!(c.auth_mode().await, Some(AuthMode::Session));
    assert_eq!(bmc.sessions_created(), 1);

    // Once the root is known and the session open: exactly two requests, with $expand.
    bmc.reset_request_counts();
    let again = c.observe().await.expect("observe again");
    assert_eq!(again, first);
    assert_eq!(bmc.total_requests(), 2, "{:?}", bmc.requests());
    assert_eq!(bmc.request_count("GET", "/redfish/v1/Systems"), 1);
    assert_eq!(
        bmc.request_count("GET", "/redfish/v1/UpdateService/FirmwareInventory"),
        1
    );
    assert_eq!(bmc.sessions_created(), 1, "the session is reused");

    // The managers say the same firmware as the inventory.
    let managers = c.managers().await.expect("managers");
    assert_eq!(managers[0].firmware_version.as_deref(), Some("1.00"));

    c.close().await.expect("close");
    assert_eq!(bmc.sessions_deleted(), 1);
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test]
async fn without_expand_members_are_read_one_by_one() {
    let emu = BmcEmulator::start(vec![BmcSpec {
        expand: false,
        ..BmcSpec::generic()
    }]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    c.observe().await.expect("observe");
    bmc.reset_request_counts();
    let seen = c.observe().await.expect("observe");
    assert_eq!(version_of(&seen.firmware, "BIOS"), "1.0.0");
    // Two collections, one system, two inventory entries.
    assert_eq!(bmc.total_requests(), 5, "{:?}", bmc.requests());
    assert_eq!(bmc.request_count("GET", "/redfish/v1/Systems/1"), 1);
    c.close().await.expect("close");
}

#[tokio::test]
async fn one_session_for_many_calls_and_clones_then_logout() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    let mut calls = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                c.systems().await.map(|_| ())
            } else {
                c.firmware_inventory().await.map(|_| ())
            }
        }));
    }
    for call in calls {
        call.await.expect("join").expect("call");
    }
    assert_eq!(
        bmc.sessions_created(),
        1,
        "concurrent first calls share one login"
    );
    assert_eq!(bmc.max_live_sessions(), 1);
    c.close().await.expect("close");
    assert_eq!(bmc.live_sessions(), 0);
    assert_eq!(bmc.sessions_deleted(), 1);
}

#[tokio::test]
async fn scoped_logs_out_also_when_the_work_fails() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let result = client_for(&emu, &bmc)
        .scoped(|c| {
            Box::pin(async move {
                c.systems().await?;
                c.get("/redfish/v1/NoSuchThing").await
            })
        })
        .await;
    assert!(
        matches!(result, Err(RedfishError::NotFound { .. })),
        "{result:?}"
    );
    assert_eq!(bmc.sessions_created(), 1);
    assert_eq!(bmc.sessions_deleted(), 1, "logged out after the error");
    assert_eq!(bmc.live_sessions(), 0);

    // A client dropped with its session open logs out in the background.
    let c = client_for(&emu, &bmc);
    c.login().await.expect("login");
    assert_eq!(bmc.live_sessions(), 1);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while bmc.live_sessions() > 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped client's session stays open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_expired_session_is_replaced_once() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    c.systems().await.expect("systems");
    bmc.expire_sessions();
    c.systems().await.expect("systems after expiry");
    assert_eq!(bmc.sessions_created(), 2, "one new login");
    c.close().await.expect("close");
    assert_eq!(bmc.live_sessions(), 0);

    // Wrong credentials: one login attempt, an error to stop on, no password in it.
    let wrong = RedfishClient::new(BmcConfig::from_url(
        bmc.url(),
        bmc.username(),
        "wrong-password-123",
        TlsVerify::CaPem(emu.ca_pem().to_string()),
    ))
    .expect("client");
    bmc.reset_request_counts();
    let err = wrong.systems().await.unwrap_err();
    assert!(matches!(err, RedfishError::Auth { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Stop);
    assert!(
        err.to_string().contains("invalid user name or password"),
        "{err}"
    );
    assert!(!format!("{err:?}{err}").contains("wrong-password-123"));
    assert_eq!(
        bmc.request_count("POST", "/redfish/v1/SessionService/Sessions"),
        1
    );
}

#[tokio::test]
async fn idrac_session_limit_is_a_retryable_error() {
    let emu = BmcEmulator::start(vec![BmcSpec::dell()]);
    let bmc = emu.bmc(0);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let c = client_for(&emu, &bmc);
        c.login().await.expect("login");
        clients.push(c);
    }
    let ninth = client_for(&emu, &bmc);
    let err = ninth.login().await.unwrap_err();
    assert!(matches!(err, RedfishError::SessionLimit { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(bmc.logins_refused(), 1);
    clients[0].close().await.expect("close");
    ninth.login().await.expect("a session is free again");
    for c in clients.iter().chain([&ninth]) {
        c.close().await.expect("close");
    }
    assert_eq!(bmc.live_sessions(), 0);
    assert_eq!(bmc.max_live_sessions(), 8);
}

#[tokio::test]
async fn simple_update_returns_its_monitor_at_once_and_the_version_changes_after_reset() {
    let task_time = Duration::from_millis(1500);
    let emu = BmcEmulator::start(vec![BmcSpec {
        task_duration: task_time,
        ..BmcSpec::generic()
    }]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    c.observe().await.expect("observe");

    let asked = Instant::now();
    let monitor = started(
        c.simple_update(&SimpleUpdate {
            image_uri: "http://repo.test/fw/bios-1.1.0.bin".into(),
            transfer_protocol: Some("HTTP".into()),
            targets: vec!["/redfish/v1/UpdateService/FirmwareInventory/BIOS".into()],
            apply_time: Some(ApplyTime::OnReset),
            ..Default::default()
        })
        .await
        .expect("SimpleUpdate"),
    );
    assert!(
        asked.elapsed() < task_time / 2,
        "SimpleUpdate waited for the task"
    );
    assert!(
        monitor.as_str().starts_with("/redfish/v1/TaskService/"),
        "{monitor}"
    );

    let (last, seen, errors) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    assert!(errors.is_empty(), "{errors:?}");
    let percents: Vec<u8> = seen
        .iter()
        .filter_map(|p| match p {
            TaskProgress::Running { percent, .. } => *percent,
            _ => None,
        })
        .collect();
    assert!(percents.len() >= 3, "{seen:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(
        percents.first() < percents.last(),
        "the percentage advances: {percents:?}"
    );
    assert!(
        matches!(last, TaskProgress::AwaitingReset { .. }),
        "{last:?}"
    );

    // Flashed but not active: the inventory still shows the old version.
    let inventory = c.firmware_inventory().await.expect("inventory");
    assert_eq!(version_of(&inventory, "BIOS"), "1.0.0");

    let system = c.systems().await.expect("systems").remove(0);
    let reset = c
        .reset_system(&system, &ResetType::ForceRestart)
        .await
        .expect("reset");
    assert!(matches!(reset, Operation::Done { .. }));
    wait_power_on(&c, &system.uri).await;
    let (last, _, _) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        c.poll_task(&monitor).await,
        Ok(TaskProgress::Succeeded { .. })
    ) {
        assert!(
            Instant::now() < deadline,
            "the task did not complete after the reset: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inventory = c.firmware_inventory().await.expect("inventory");
    assert_eq!(version_of(&inventory, "BIOS"), "1.1.0");
    assert_eq!(emu.max_updating_at_once(), 1);
    assert_eq!(emu.updating_now(), 0);
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_new_client_polls_the_monitor_after_a_restart() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let stored: String = {
        let first = client_for(&emu, &bmc);
        let monitor = started(
            first
                .simple_update(&SimpleUpdate {
                    image_uri: "https://repo.test/bmc-1.10.bin".into(),
                    ..Default::default()
                })
                .await
                .expect("SimpleUpdate"),
        );
        first.close().await.expect("close");
        // Only the string survives the "restart", as a stored external id would.
        monitor.as_str().to_string()
    };
    let second = client_for(&emu, &bmc);
    let (last, _, _) =
        poll_until_final(&second, &TaskMonitor(stored), Duration::from_secs(10)).await;
    // The BMC's own firmware needs no system reset.
    assert_eq!(last, TaskProgress::Succeeded { warnings: vec![] });
    let seen = second.observe().await.expect("observe");
    assert_eq!(seen.bmc_firmware_version(), Some("1.10"));
    assert_eq!(bmc.sessions_created(), 2);
    second.close().await.expect("close");
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test]
async fn multipart_push_sends_the_file_and_its_parameters() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bios-1.1.0.bin");
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &image).expect("write image");

    let monitor = started(
        c.push_update(
            &file,
            &PushUpdate {
                targets: vec!["/redfish/v1/UpdateService/FirmwareInventory/BIOS".into()],
                apply_time: Some(ApplyTime::OnReset),
            },
        )
        .await
        .expect("push"),
    );
    let uploads = bmc.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].file_name, "bios-1.1.0.bin");
    assert_eq!(uploads[0].bytes, image.len());
    assert_eq!(
        uploads[0].parameters,
        serde_json::json!({"Targets": ["/redfish/v1/UpdateService/FirmwareInventory/BIOS"], "@Redfish.OperationApplyTime": "OnReset"})
    );
    let (last, _, _) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    assert!(
        matches!(last, TaskProgress::AwaitingReset { .. }),
        "{last:?}"
    );

    // A file that is not there fails before anything is sent.
    let before = bmc.total_requests();
    let err = c
        .push_update(&dir.path().join("missing.bin"), &PushUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::File { .. }), "{err}");
    assert_eq!(bmc.total_requests(), before);
    c.close().await.expect("close");
}

#[tokio::test]
async fn faults_map_to_what_the_caller_must_do() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    c.observe().await.expect("observe");

    // 503 with Retry-After: retry, after the BMC's delay.
    bmc.busy(1, 7);
    let err = c.observe().await.unwrap_err();
    assert!(
        matches!(err, RedfishError::Busy { status: 503, .. }),
        "{err}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    c.observe().await.expect("answers again");

    // The task fails with an ExtendedInfo message: the message is the failure.
    bmc.fail_next_task("Unable to verify the update package signature.");
    let monitor = started(
        c.simple_update(&SimpleUpdate {
            image_uri: "http://repo.test/bios-1.1.0.bin".into(),
            ..Default::default()
        })
        .await
        .expect("SimpleUpdate"),
    );
    let (last, _, _) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    assert_eq!(
        last,
        TaskProgress::Failed {
            messages: vec!["Unable to verify the update package signature.".into()]
        }
    );

    // A request the BMC refuses: stop, with its per-field messages.
    let err = c
        .simple_update(&SimpleUpdate {
            image_uri: "http://repo.test/unknown.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, RedfishError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Stop);
    assert_eq!(err.messages()[0].related_properties, ["#/ImageURI"]);
    assert!(
        err.to_string()
            .contains("is not a valid update package. (field ImageURI)"),
        "{err}"
    );

    // Checked before sending: a protocol or apply time the BMC does not list.
    let before = bmc.total_requests();
    let err = c
        .simple_update(&SimpleUpdate {
            image_uri: "ftp://repo.test/bios-1.1.0.bin".into(),
            transfer_protocol: Some("FTP".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("HTTP, HTTPS"), "{err}");
    assert_eq!(bmc.total_requests(), before);

    // A request to nowhere: not found, stop.
    let err = c.get("/redfish/v1/Nope").await.unwrap_err();
    assert!(matches!(err, RedfishError::NotFound { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Stop);
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_bmc_that_stops_answering_during_the_reboot_is_waited_for_and_the_version_checked() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    bmc.go_down_on_reset(Duration::from_millis(1500));
    bmc.keep_version_on_reset(true);
    let c = client_for(&emu, &bmc);
    let system = c.systems().await.expect("systems").remove(0);
    let monitor = started(
        c.simple_update(&SimpleUpdate {
            image_uri: "http://repo.test/bios-1.1.0.bin".into(),
            apply_time: Some(ApplyTime::OnReset),
            ..Default::default()
        })
        .await
        .expect("SimpleUpdate"),
    );
    let (last, _, _) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    assert!(
        matches!(last, TaskProgress::AwaitingReset { .. }),
        "{last:?}"
    );

    c.reset_system(&system, &ResetType::GracefulRestart)
        .await
        .expect("reset");
    // While the BMC is away, polling is a retryable "unreachable", never a failed task.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut unreachable = 0;
    loop {
        match c.poll_task(&monitor).await {
            Err(e) => {
                assert!(matches!(e, RedfishError::Unreachable { .. }), "{e}");
                assert!(e.is_retryable());
                unreachable += 1;
            }
            Ok(TaskProgress::Succeeded { .. }) if unreachable > 0 => break,
            Ok(TaskProgress::Failed { messages }) => panic!("the task failed: {messages:?}"),
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "the BMC did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The task says success but the version did not change: only the inventory tells.
    wait_power_on(&c, &system.uri).await;
    let inventory = c.firmware_inventory().await.expect("inventory");
    assert_eq!(version_of(&inventory, "BIOS"), "1.0.0");
    // The session survived the BMC's absence.
    assert_eq!(bmc.sessions_created(), 1);
    c.close().await.expect("close");
}

#[tokio::test]
async fn tls_pin_ca_and_wrong_pin() {
    let emu = BmcEmulator::start(vec![BmcSpec::generic()]);
    let bmc = emu.bmc(0);
    let make = |tls: TlsVerify| {
        RedfishClient::new(BmcConfig::from_url(
            bmc.url(),
            bmc.username(),
            bmc.password(),
            tls,
        ))
        .expect("client")
    };
    for tls in [
        TlsVerify::fingerprint(&emu.fingerprint()).expect("pin"),
        TlsVerify::CaFile(emu.ca_file()),
        TlsVerify::InsecureSkipVerify,
    ] {
        let c = make(tls.clone());
        c.systems().await.unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        c.close().await.expect("close");
    }
    let err = make(TlsVerify::Fingerprint([0u8; 32]))
        .systems()
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::Tls { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Stop);
    // A BMC whose port is closed is unreachable: retry.
    let closed = RedfishClient::new(BmcConfig::from_url(
        "https://127.0.0.1:1",
        "root",
        "x",
        TlsVerify::InsecureSkipVerify,
    ))
    .expect("client");
    let err = closed.systems().await.unwrap_err();
    assert!(matches!(err, RedfishError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test]
async fn dell_job_queue_from_catalog_to_completed() {
    let emu = BmcEmulator::start(vec![BmcSpec {
        task_duration: Duration::from_millis(800),
        reset_duration: Duration::from_millis(400),
        ..BmcSpec::dell()
    }]);
    let bmc = emu.bmc(0);
    let c = client_for(&emu, &bmc);
    let seen = c.observe().await.expect("observe");
    assert_eq!(seen.root.vendor, Vendor::Dell);
    let system = seen.systems[0].clone();
    assert_eq!(system.uri, "/redfish/v1/Systems/System.Embedded.1");
    assert_eq!(system.service_tag(&Vendor::Dell), Some("7XK2QR2"));
    assert_eq!(seen.bmc_firmware_version(), Some("6.10.30.00"));
    assert_eq!(version_of(&seen.firmware, "159"), "2.18.1");
    assert!(seen.firmware.iter().any(|c| c.id == "Installed-159-2.18.1"));

    // The catalog's newest BIOS for this system (by its Dell system id and model).
    let catalog = Catalog::parse(include_bytes!("data/Catalog.xml"), None).expect("catalog");
    let model = SystemModel::dell(system.dell_system_id, system.model.as_deref());
    let bios = catalog
        .newest_for(&model)
        .into_iter()
        .find(|p| p.component_type.as_deref() == Some("BIOS"))
        .expect("a BIOS package");
    assert_eq!(bios.version, "2.19.1");
    assert!(bios.reboot_required);

    let monitor = started(
        c.simple_update(&SimpleUpdate {
            image_uri: bios.uri.clone(),
            apply_time: Some(ApplyTime::OnReset),
            ..Default::default()
        })
        .await
        .expect("SimpleUpdate"),
    );
    let job_id = monitor
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    assert!(job_id.starts_with("JID_"), "{monitor}");
    let job = TaskMonitor(format!(
        "/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/{job_id}"
    ));

    let (last, seen, _) = poll_until_final(&c, &monitor, Duration::from_secs(10)).await;
    let states: Vec<&str> = seen
        .iter()
        .filter_map(|p| match p {
            TaskProgress::Running { state, .. } => Some(state.as_str()),
            _ => None,
        })
        .collect();
    assert!(states.contains(&"Downloading"), "{states:?}");
    assert_eq!(
        last,
        TaskProgress::AwaitingReset {
            message: Some("Task successfully scheduled.".into())
        }
    );
    // The job queue entry says the same.
    assert_eq!(c.poll_task(&job).await.expect("job"), last);

    c.reset_system(&system, &ResetType::GracefulRestart)
        .await
        .expect("reset");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut running_after_reset = false;
    loop {
        match c.poll_task(&job).await.expect("job") {
            TaskProgress::Running { state, message, .. } => {
                assert_eq!(state, "Running");
                assert_eq!(message.as_deref(), Some("Job in progress."));
                running_after_reset = true;
            }
            TaskProgress::Succeeded { .. } => break,
            TaskProgress::AwaitingReset { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "the job did not complete");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(running_after_reset, "the job runs during the restart");
    assert_eq!(
        c.poll_task(&monitor).await.expect("task"),
        TaskProgress::Succeeded { warnings: vec![] }
    );
    let inventory = c.firmware_inventory().await.expect("inventory");
    assert_eq!(version_of(&inventory, "159"), "2.19.1");
    assert!(inventory.iter().any(|c| c.id == "Installed-159-2.19.1"));
    c.close().await.expect("close");
    assert_eq!(bmc.live_sessions(), 0);
}

#[tokio::test]
async fn the_emulator_counts_bmcs_updating_at_once() {
    let emu = BmcEmulator::start((0..3).map(|_| BmcSpec::generic()).collect());
    let clients: Vec<RedfishClient> = (0..3).map(|i| client_for(&emu, &emu.bmc(i))).collect();
    for c in &clients[..2] {
        started(
            c.simple_update(&SimpleUpdate {
                image_uri: "http://repo.test/bios-1.1.0.bin".into(),
                ..Default::default()
            })
            .await
            .expect("SimpleUpdate"),
        );
    }
    assert_eq!(emu.updating_now(), 2);
    assert_eq!(emu.max_updating_at_once(), 2);
    // Reset both: once the new versions are active they no longer count.
    for c in &clients[..2] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let system = c.systems().await.expect("systems").remove(0);
        loop {
            let inv = c.firmware_inventory().await.expect("inventory");
            if version_of(&inv, "BIOS") == "1.1.0" {
                break;
            }
            // Flashing takes a moment; reset once it waits for one.
            let _ = c.reset_system(&system, &ResetType::ForceRestart).await;
            assert!(Instant::now() < deadline, "no new version");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.updating_now() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(emu.max_updating_at_once(), 2);
    for c in &clients {
        c.close().await.expect("close");
    }
}
