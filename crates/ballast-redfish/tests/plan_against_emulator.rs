//! The firmware plan run for real, before the controller exists: Servers with a `bmc` and a
//! FirmwarePlan from YAML (through the model's checks), the pure plan, the host runs in the
//! store (every transition a compare-and-set), and each started host's steps through the
//! Redfish client against 6 emulated BMCs with `maxConcurrent: 2`. The emulator says how many
//! BMCs were updating at once (2), every host ends at the version, and the host already at
//! it was never touched (its request counters).
//!
//! The driver here is test code: the smallest loop that runs the plan's steps (what the
//! controller will do with pending operations and requeues), not product code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_model::firmware::check::parse_firmware_plan;
use ballast_model::firmware::targets::{ServerRef, resolve_targets};
use ballast_model::server::{BmcTrust, Source};
use ballast_model::{load_dir, spec_hash};
use ballast_plan::firmware::{
    Component, FirmwareStep, HostObservation, PlanInput, RecordedRun, TargetHost, failure_state,
    plan_firmware,
};
use ballast_redfish::hostrun::RunState;
use ballast_redfish::{
    ApplyTime, BmcConfig, InventoryState, Operation, PowerState, RedfishClient, ResetType,
    SimpleUpdate, TaskProgress, TlsVerify,
};
use ballast_store::Store;
use ballast_store::firmware::{FirmwareEvent, HostRun, Phase, RunChange, RunId};
use ballast_test_support::bmc::{BmcEmulator, BmcSpec};
use chrono::Utc;

const PLAN: &str = "bios-campaign";
const SIMPLE_UPDATE: &str = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";
const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

/// What the test driver keeps per host: its client (one session per BMC, reused).
struct Host {
    name: String,
    client: RedfishClient,
}

/// Servers with a `bmc` each (the emulator's ports, its CA as `caFile`, the password in a
/// file), labelled `rack: r1`.
fn write_servers(emu: &BmcEmulator, dir: &Path) -> String {
    let mut docs = Vec::new();
    for i in 0..emu.len() {
        let bmc = emu.bmc(i);
        let password = dir.join(format!("h{i}.password"));
        std::fs::write(&password, bmc.password()).expect("password file");
        docs.push(format!(
            "apiVersion: ballast/v1\nkind: Server\nmetadata:\n  name: h{i}\n  labels: {{rack: r1}}\nspec:\n  bmc:\n    address: 127.0.0.1\n    port: {}\n    username: {}\n    password: {{file: {}}}\n    tls: {{caFile: {}}}\n",
            bmc.port(),
            bmc.username(),
            password.display(),
            emu.ca_file().display()
        ));
    }
    docs.join("---\n")
}

const PLAN_YAML: &str = "apiVersion: ballast/v1
kind: FirmwarePlan
metadata:
  name: bios-campaign
spec:
  targets:
    - selector: {matchLabels: {rack: r1}}
  artifacts:
    - component: BIOS
      version: 1.1.0
      imageUri: https://repo.example/bios-1.1.0.bin
  policy:
    maxConcurrent: 2
    resetType: ForceRestart
    timeouts: {task: 30s, reboot: 30s}
";

/// A client for a Server's `bmc` block, as the controller will build it.
fn client(spec: &ballast_model::ServerSpec) -> RedfishClient {
    let bmc = spec.bmc.as_ref().expect("a bmc");
    let password = match bmc.credentials.password.source() {
        Some(Source::File(path)) => std::fs::read_to_string(path).expect("password"),
        other => panic!("the test writes passwords to files, not {other:?}"),
    };
    let tls = match bmc.trust() {
        BmcTrust::CaFile(path) => TlsVerify::CaFile(path.into()),
        other => panic!("the test trusts the emulator's CA, not {other:?}"),
    };
    let config = BmcConfig::new(
        &bmc.address.value,
        bmc.port,
        bmc.credentials.username.clone(),
        password,
        tls,
    )
    .expect("config");
    RedfishClient::new(config).expect("client")
}

/// What a BMC shows, as the plan takes it.
async fn observe(client: &RedfishClient) -> HostObservation {
    let Ok(seen) = client.observe().await else {
        return HostObservation::default();
    };
    let system = seen.systems.first();
    HostObservation {
        reachable: true,
        power_on: system
            .and_then(|s| s.power_state.as_ref())
            .map(|p| *p == PowerState::On),
        healthy: system.map(|s| s.status.is_ok()),
        model: system.and_then(|s| s.model.clone()),
        dell_system_id: system.and_then(|s| s.dell_system_id),
        inventory: seen
            .firmware
            .iter()
            .filter(|c| c.state == InventoryState::Installed)
            .map(|c| Component {
                id: c.id.clone(),
                name: c.name.clone(),
                software_id: c.software_id.clone(),
                version: c.version.clone(),
                manager: c.is_manager_firmware(),
            })
            .collect(),
    }
}

fn recorded(runs: &[HostRun]) -> Vec<RecordedRun> {
    runs.iter()
        .map(|r| RecordedRun {
            host: r.host.clone(),
            state: r.state,
            attempts: r.attempts,
            generation: r.generation,
            completed_at: r.completed_at,
        })
        .collect()
}

/// Runs one host's steps; `Err` is why the attempt failed.
async fn run_steps(
    store: &Store,
    id: RunId,
    client: &RedfishClient,
    steps: &[FirmwareStep],
) -> Result<BTreeMap<String, String>, String> {
    let mut ctx = ballast_store::firmware::RunCtx::default();
    let mut monitor = None;
    let mut verified = BTreeMap::new();
    for step in steps {
        let phase = match step.phase() {
            "download" => Phase::Download,
            "install" => Phase::Install,
            "reboot" => Phase::Reboot,
            _ => Phase::Verify,
        };
        ctx.enter(phase, Utc::now(), step.describe());
        let change = RunChange {
            ctx: Some(ctx.clone()),
            ..Default::default()
        };
        store
            .update_host_run(id, RunState::Running, &change)
            .await
            .map_err(|e| e.to_string())?;
        match step {
            FirmwareStep::Preflight { .. } => {
                let seen = observe(client).await;
                if !seen.reachable || seen.healthy == Some(false) {
                    return Err("preflight: the BMC does not answer or is not healthy".into());
                }
            }
            FirmwareStep::SimpleUpdate {
                image_uri,
                transfer_protocol,
                apply_on_reset,
                ..
            } => {
                let op = client
                    .simple_update(&SimpleUpdate {
                        image_uri: image_uri.clone(),
                        transfer_protocol: transfer_protocol.clone(),
                        apply_time: apply_on_reset.then_some(ApplyTime::OnReset),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                if let Operation::Started(m) = op {
                    // The task monitor is the external id, stored before waiting on it.
                    let change = RunChange {
                        external_id: Some(Some(m.to_string())),
                        ..Default::default()
                    };
                    store
                        .update_host_run(id, RunState::Running, &change)
                        .await
                        .map_err(|e| e.to_string())?;
                    monitor = Some(m);
                }
            }
            FirmwareStep::WaitTask { timeout_secs, .. } => {
                let Some(m) = &monitor else { continue };
                let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
                loop {
                    match client.poll_task(m).await {
                        Ok(TaskProgress::AwaitingReset { .. } | TaskProgress::Succeeded { .. }) => {
                            break;
                        }
                        Ok(TaskProgress::Failed { messages }) => {
                            return Err(format!("the task failed: {}", messages.join("; ")));
                        }
                        Ok(TaskProgress::Running { percent, .. }) => {
                            ctx.progress.percentage = percent.unwrap_or(0);
                        }
                        Ok(TaskProgress::Gone) => break,
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err(e.to_string()),
                    }
                    if Instant::now() > deadline {
                        return Err("the task did not finish in time".into());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            FirmwareStep::Reset { reset_type } => {
                let systems = client.systems().await.map_err(|e| e.to_string())?;
                let system = systems.first().ok_or("no system")?;
                client
                    .reset_system(system, &ResetType::parse(reset_type))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            FirmwareStep::WaitOnline { timeout_secs } => {
                let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
                while observe(client).await.power_on != Some(true) {
                    if Instant::now() > deadline {
                        return Err("the host did not come back in time".into());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            FirmwareStep::VerifyVersions { expected } => {
                let seen = observe(client).await;
                for (component, version) in expected {
                    let found = seen.inventory.iter().find(|c| c.is(component));
                    let actual = found.and_then(|c| c.version.clone()).unwrap_or_default();
                    if &actual != version {
                        return Err(format!("{component} is at {actual}, expected {version}"));
                    }
                    verified.insert(component.clone(), actual);
                }
            }
            FirmwareStep::CheckHealth => {
                if observe(client).await.healthy != Some(true) {
                    return Err("the host is not healthy".into());
                }
            }
            FirmwareStep::MaintenanceBefore { .. }
            | FirmwareStep::MaintenanceAfter { .. }
            | FirmwareStep::PushUpdate { .. } => {
                return Err(format!("the test plan has no {}", step.describe()));
            }
        }
    }
    Ok(verified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_bmcs_two_at_a_time_and_one_left_alone() {
    let mut specs: Vec<BmcSpec> = (0..6).map(|_| BmcSpec::generic()).collect();
    // h5 is already at the version.
    specs[5].components[0].version = "1.1.0".into();
    let emu = BmcEmulator::start(specs);
    let dir = tempfile::tempdir().expect("tempdir");

    // The manifests, through the model's checks (set-wide too).
    let servers_file = dir.path().join("servers.yaml");
    std::fs::write(&servers_file, write_servers(&emu, dir.path())).expect("servers");
    let set = load_dir(&servers_file).expect("the servers validate");
    let (parsed, problems) = parse_firmware_plan(Path::new("plan.yaml"), 1, PLAN_YAML);
    assert!(problems.is_empty(), "{problems:?}");
    let parsed = parsed.expect("plan");
    let servers = ServerRef::all(&set);
    assert!(parsed.check_targets(&servers).is_empty());
    let spec = parsed.spec;
    let targets = resolve_targets(&spec, &servers);
    assert_eq!(targets.len(), 6);
    let hosts: Vec<Arc<Host>> = targets
        .iter()
        .map(|t| {
            let server = servers.iter().find(|s| s.name == t.server).expect("server");
            Arc::new(Host {
                name: t.server.clone(),
                client: client(server.spec),
            })
        })
        .collect();

    // The store: plan, hosts, runs.
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("ballast.db").display()
    ))
    .await
    .expect("store");
    let spec_json = serde_json::to_value(&spec).expect("json");
    let generation = store
        .record_update_plan(
            PLAN,
            &spec_hash(&spec_json),
            &spec_json["policy"],
            &[],
            false,
        )
        .await
        .expect("plan");
    let names: Vec<&str> = targets.iter().map(|t| t.server.as_str()).collect();
    store
        .ensure_host_runs(PLAN, generation, &names)
        .await
        .expect("runs");

    let mut workers: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(Instant::now() < deadline, "the campaign did not finish");
        workers.retain(|_, w| !w.is_finished());
        let runs = store.list_host_runs(PLAN).await.expect("runs");
        let mut observed = Vec::new();
        for (t, h) in targets.iter().zip(&hosts) {
            observed.push(TargetHost {
                host: t.server.clone(),
                priority: t.priority,
                observed: Some(observe(&h.client).await),
            });
        }
        let recorded_runs = recorded(&runs);
        let result = plan_firmware(&PlanInput {
            spec: &spec,
            generation,
            approval: None,
            targets: &observed,
            runs: &recorded_runs,
            catalog: None,
            now: Utc::now(),
        })
        .expect("plan");
        if result.status == ballast_plan::firmware::CampaignStatus::Completed {
            break;
        }
        let mut moved_all = true;
        for m in &result.moves {
            let run = runs.iter().find(|r| r.host == m.host).expect("run");
            let change = RunChange {
                generation: m.generation,
                ..Default::default()
            };
            // A false is another actor's move: plan again from what is recorded.
            if !store
                .move_host_run(run.id, m.from, m.to, &change)
                .await
                .expect("move")
            {
                moved_all = false;
                break;
            }
        }
        if moved_all {
            for start in result.start {
                let host = hosts
                    .iter()
                    .find(|h| h.name == start.host)
                    .expect("host")
                    .clone();
                let run = runs.iter().find(|r| r.host == start.host).expect("run");
                let (store, id, retries) = (store.clone(), run.id, spec.policy.retries);
                let attempts = run.attempts + 1;
                store
                    .append_event(FirmwareEvent::UpdateStarted.event(PLAN, &host.name))
                    .await
                    .expect("event");
                workers.insert(
                    start.host.clone(),
                    tokio::spawn(async move {
                        let outcome = run_steps(&store, id, &host.client, &start.steps).await;
                        let (to, change, event) = match outcome {
                            Ok(after) => (
                                RunState::Completed,
                                RunChange {
                                    versions_after: Some(after),
                                    external_id: Some(None),
                                    ..Default::default()
                                },
                                FirmwareEvent::UpdateCompleted,
                            ),
                            Err(why) => (
                                failure_state(attempts, retries),
                                RunChange {
                                    reason: Some(Some(why)),
                                    ..Default::default()
                                },
                                FirmwareEvent::UpdateFailed,
                            ),
                        };
                        assert!(
                            store
                                .move_host_run(id, RunState::Running, to, &change)
                                .await
                                .expect("finish"),
                            "nobody else moves a running run"
                        );
                        store
                            .append_event(event.event(PLAN, &host.name))
                            .await
                            .expect("event");
                    }),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (_, worker) in workers {
        worker.await.expect("worker");
    }

    assert_eq!(
        emu.max_updating_at_once(),
        2,
        "maxConcurrent 2 held, and used"
    );
    let runs = store.list_host_runs(PLAN).await.expect("runs");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.state, RunState::Completed, "{run:?}");
        assert_eq!(emu.bmc(i).version("BIOS").as_deref(), Some("1.1.0"), "h{i}");
    }
    for (i, run) in runs.iter().enumerate().take(5) {
        assert_eq!(run.attempts, 1, "h{i} updated once");
        assert_eq!(
            run.versions_after.get("BIOS").map(String::as_str),
            Some("1.1.0")
        );
        assert!(run.external_id.is_none() && run.completed_at.is_some());
        let bmc = emu.bmc(i);
        assert_eq!(bmc.request_count("POST", SIMPLE_UPDATE), 1, "h{i}");
        assert_eq!(bmc.request_count("POST", RESET), 1, "h{i}");
    }
    // h5 was at the version: completed without an attempt, never flashed nor reset.
    let untouched = emu.bmc(5);
    assert_eq!((runs[5].attempts, runs[5].started_at), (0, None));
    assert_eq!(untouched.request_count("POST", SIMPLE_UPDATE), 0);
    assert_eq!(untouched.request_count("POST", RESET), 0);
    let posts: u64 = untouched
        .requests()
        .iter()
        .filter(|(k, _)| k.starts_with("POST ") && !k.contains("SessionService"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(posts, 0, "{:?}", untouched.requests());

    // One session per BMC, reused throughout, closed at the end.
    for (i, host) in hosts.iter().enumerate() {
        host.client.close().await.expect("logout");
        let bmc = emu.bmc(i);
        assert_eq!(bmc.sessions_created(), 1, "h{i}");
        assert_eq!(bmc.live_sessions(), 0, "h{i}");
    }
    let events = store
        .list_events(ballast_store::EventFilter::default())
        .await
        .expect("events");
    let completed = events
        .iter()
        .filter(|e| e.kind == "update_completed")
        .count();
    assert_eq!(completed, 5);
}
