//! The FirmwarePlan plan from tables: every rule of the campaign on made-up hosts and runs.

use super::*;
use RunState::*;
use chrono::TimeZone;

/// A plan spec from the YAML of its `spec`.
fn spec(yaml: &str) -> FirmwarePlanSpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

const BIOS_PLAN: &str = "targets: [{server: h0}]\nartifacts:\n  - component: BIOS\n    version: 1.1.0\n    imageUri: https://repo.example/bios-1.1.0.bin\n";

fn with_policy(policy: &str) -> FirmwarePlanSpec {
    spec(&format!("{BIOS_PLAN}policy:\n{policy}"))
}

fn bios(version: &str) -> Component {
    Component {
        id: "BIOS".into(),
        name: Some("Contoso BIOS".into()),
        software_id: Some("BIOS".into()),
        version: Some(version.into()),
        manager: false,
    }
}

fn bmc_fw(version: &str) -> Component {
    Component {
        id: "BMC".into(),
        name: Some("Contoso BMC Firmware".into()),
        software_id: Some("BMC".into()),
        version: Some(version.into()),
        manager: true,
    }
}

fn seen(inventory: Vec<Component>) -> HostObservation {
    HostObservation {
        reachable: true,
        power_on: Some(true),
        healthy: Some(true),
        model: Some("3500".into()),
        dell_system_id: None,
        inventory,
    }
}

fn host(name: &str, priority: i64, bios_version: &str) -> TargetHost {
    TargetHost {
        host: name.into(),
        priority,
        observed: Some(seen(vec![bios(bios_version), bmc_fw("1.00")])),
    }
}

fn run(name: &str, state: RunState, attempts: u32) -> RecordedRun {
    RecordedRun {
        host: name.into(),
        state,
        attempts,
        generation: 1,
        completed_at: state.is_final().then(|| at("2024-03-01T10:00:00Z")),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// A Saturday, 02:00 in Berlin (01:00 UTC).
fn saturday_night() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 2, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

fn plan(
    spec: &FirmwarePlanSpec,
    targets: &[TargetHost],
    runs: &[RecordedRun],
    approval: Option<ApprovalView>,
    now: DateTime<Utc>,
) -> FirmwarePlanResult {
    plan_firmware(&PlanInput {
        spec,
        generation: 1,
        approval,
        targets,
        runs,
        catalog: None,
        now,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn moves(result: &FirmwarePlanResult) -> Vec<(String, RunState, RunState)> {
    result
        .moves
        .iter()
        .map(|m| (m.host.clone(), m.from, m.to))
        .collect()
}

fn started(result: &FirmwarePlanResult) -> Vec<&str> {
    result.start.iter().map(|s| s.host.as_str()).collect()
}

fn mv(host: &str, from: RunState, to: RunState) -> (String, RunState, RunState) {
    (host.to_string(), from, to)
}

fn waits<'a>(result: &'a FirmwarePlanResult, host: &str) -> Option<&'a str> {
    result
        .hosts
        .iter()
        .find(|h| h.host == host)
        .and_then(|h| h.waiting.as_deref())
}

#[test]
fn a_host_already_at_the_version_completes_untouched_unless_forced() {
    let s = spec(BIOS_PLAN);
    let targets = [host("h0", 0, "1.1.0")];
    let result = plan(
        &s,
        &targets,
        &[run("h0", Pending, 0)],
        None,
        saturday_night(),
    );
    assert_eq!(moves(&result), [mv("h0", Pending, Completed)]);
    assert!(result.start.is_empty(), "never flashed");
    assert_eq!(result.status, CampaignStatus::Completed);
    let check = result.hosts[0].check.as_ref().expect("check");
    assert_eq!(
        check.at_version,
        [("BIOS".to_string(), "1.1.0".to_string())]
    );

    // With force it is flashed, and a completed run is not flashed again.
    let forced = with_policy("  force: true\n");
    let result = plan(
        &forced,
        &targets,
        &[run("h0", Pending, 0)],
        None,
        saturday_night(),
    );
    assert_eq!(moves(&result), [mv("h0", Pending, Running)]);
    let flashes_bios = |s: &FirmwareStep| matches!(s, FirmwareStep::SimpleUpdate { version, .. } if version == "1.1.0");
    assert!(result.start[0].steps.iter().any(flashes_bios));
    let result = plan(
        &forced,
        &targets,
        &[run("h0", Completed, 1)],
        None,
        saturday_night(),
    );
    assert!(result.moves.is_empty() && result.start.is_empty());
    assert_eq!(result.action, Action::NoOp);
}

#[test]
fn check_mode_says_what_would_be_flashed_and_whether_it_reboots() {
    let s = spec(
        "targets: [{server: h0}]\nartifacts:\n  - {component: BIOS, version: 1.1.0, imageUri: 'https://r/bios.bin'}\n  - {component: bmc, version: '1.10', file: /srv/bmc.bin, sha256: ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB}\n",
    );
    // No run yet: the diff of a plan never applied.
    let result = plan(&s, &[host("h0", 0, "1.0.0")], &[], None, saturday_night());
    assert_eq!(result.action, Action::Create);
    assert_eq!(result.create, ["h0"]);
    let check = result.hosts[0].check.as_ref().expect("check");
    assert!(check.reboot(), "the BIOS needs the system to restart");
    assert_eq!(
        result.reasons,
        ["h0: would flash BIOS 1.0.0 → 1.1.0, bmc 1.00 → 1.10 (reboot needed)"]
    );
    let bmc = &check.flashes[1];
    assert!(
        !bmc.reboot,
        "the BMC's own firmware restarts the BMC, not the system"
    );
    assert_eq!(
        bmc.image,
        ImageSource::File {
            path: "/srv/bmc.bin".into()
        }
    );
    assert_eq!(bmc.sha256.as_deref(), Some(&*"ab".repeat(32)));

    // Only the BMC's firmware: no system reboot.
    let bmc_only = spec(
        "targets: [{server: h0}]\nartifacts:\n  - {component: BMC, version: '1.10', imageUri: 'https://r/bmc.bin'}\n",
    );
    let result = plan(
        &bmc_only,
        &[host("h0", 0, "1.0.0")],
        &[],
        None,
        saturday_night(),
    );
    assert_eq!(
        result.hosts[0].summary(),
        "h0: would flash BMC 1.00 → 1.10 (no system reboot)"
    );
}

#[test]
fn a_newer_version_is_not_downgraded_and_a_missing_component_is_not_started() {
    let s = spec(BIOS_PLAN);
    let result = plan(
        &s,
        &[host("h0", 0, "1.2.0")],
        &[run("h0", Pending, 0)],
        None,
        saturday_night(),
    );
    assert_eq!(moves(&result), [mv("h0", Pending, Completed)]);
    let check = result.hosts[0].check.as_ref().expect("check");
    assert_eq!(
        check.newer,
        [("BIOS".into(), "1.2.0".into(), "1.1.0".into())]
    );

    let raid = spec(
        "targets: [{server: h0}]\nartifacts:\n  - {component: RAID, version: '2', imageUri: 'https://r/raid.bin'}\n",
    );
    let result = plan(
        &raid,
        &[host("h0", 0, "1.0.0")],
        &[run("h0", Pending, 0)],
        None,
        saturday_night(),
    );
    assert!(result.moves.is_empty() && result.start.is_empty());
    assert!(
        waits(&result, "h0").is_some_and(|w| w.contains("not in its firmware inventory: RAID")),
        "{result:#?}"
    );
}

fn six_pending() -> (Vec<TargetHost>, Vec<RecordedRun>) {
    let targets = (0..6).map(|i| host(&format!("h{i}"), i, "1.0.0")).collect();
    let runs = (0..6).map(|i| run(&format!("h{i}"), Pending, 0)).collect();
    (targets, runs)
}

#[test]
fn never_more_than_max_concurrent_past_pending() {
    let s = with_policy("  maxConcurrent: 2\n");
    let (mut targets, mut runs) = six_pending();
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(started(&result), ["h0", "h1"]);
    assert_eq!(result.status, CampaignStatus::Running);
    assert_eq!(
        waits(&result, "h2"),
        Some("maxConcurrent hosts are being updated")
    );
    // One running, one retrying: both hold slots, the retrying one goes again.
    runs[0].state = Running;
    runs[0].attempts = 1;
    runs[1].state = Retrying;
    runs[1].attempts = 1;
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(moves(&result), [mv("h1", Retrying, Running)]);
    // Driving the whole campaign never has more than two hosts past pending.
    let mut runs = six_pending().1;
    for round in 0..20 {
        let result = plan(&s, &targets, &runs, None, saturday_night());
        for m in &result.moves {
            let r = runs.iter_mut().find(|r| r.host == m.host).expect("run");
            assert_eq!(r.state, m.from, "round {round}: {m:?}");
            r.state = m.to;
            if m.to == Running {
                r.attempts += 1;
            }
        }
        let active = runs.iter().filter(|r| r.state.is_active()).count();
        assert!(active <= 2, "round {round}: {active} past pending");
        // The running hosts finish, and their BMCs report the new version.
        for r in runs.iter_mut().filter(|r| r.state == Running) {
            r.state = Completed;
            let t = targets
                .iter_mut()
                .find(|t| t.host == r.host)
                .expect("target");
            *t = host(&r.host, t.priority, "1.1.0");
        }
        if runs.iter().all(|r| r.state == Completed) {
            return;
        }
    }
    panic!("the campaign did not finish: {runs:?}");
}

#[test]
fn nothing_starts_outside_the_window_and_running_hosts_go_on() {
    let s = with_policy("  maxConcurrent: 3\n  maintenanceWindow: sat 01:00-05:00 Europe/Berlin\n");
    let (mut targets, mut runs) = six_pending();
    runs[0].state = Running;
    runs[0].attempts = 1;
    // Friday noon: closed.
    let friday = at("2024-03-01T12:00:00Z");
    let result = plan(&s, &targets, &runs, None, friday);
    assert!(result.start.is_empty() && result.moves.is_empty());
    assert!(!result.window_open);
    assert_eq!(result.next_window, Some(at("2024-03-02T00:00:00Z")));
    assert!(waits(&result, "h1").is_some_and(|w| w.starts_with("outside the maintenance window")));
    assert_eq!(result.status, CampaignStatus::Running, "h0 goes on");
    runs[0].state = Completed;
    targets[0] = host("h0", 0, "1.1.0");
    let result = plan(&s, &targets, &runs, None, friday);
    assert_eq!(result.status, CampaignStatus::WaitingWindow);
    // Saturday 02:00 in Berlin: open.
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert!(result.window_open);
    assert_eq!(started(&result), ["h1", "h2", "h3"]);
}

#[test]
fn approval_is_for_the_current_generation() {
    let s = with_policy("  approvalRequired: true\n  maxConcurrent: 6\n");
    let (targets, runs) = six_pending();
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert!(result.start.is_empty());
    assert_eq!(result.status, CampaignStatus::AwaitingApproval);
    assert_eq!(waits(&result, "h0"), Some("waiting for approval"));
    let old = ApprovalView {
        generation: 0,
        at: at("2024-02-01T00:00:00Z"),
    };
    let result = plan(&s, &targets, &runs, Some(old), saturday_night());
    assert!(
        result.start.is_empty(),
        "an approval of another generation does not count"
    );
    let current = ApprovalView {
        generation: 1,
        ..old
    };
    let result = plan(&s, &targets, &runs, Some(current), saturday_night());
    assert_eq!(result.start.len(), 6);
}

#[test]
fn a_failed_host_is_retried_then_failed() {
    let s = with_policy("  retries: 2\n");
    let targets = [host("h0", 0, "1.0.0")];
    // The executor's rule after a failed attempt.
    assert_eq!(failure_state(1, 2), Retrying);
    assert_eq!(failure_state(2, 2), Retrying);
    assert_eq!(failure_state(3, 2), Failed);
    let result = plan(
        &s,
        &targets,
        &[run("h0", Retrying, 2)],
        None,
        saturday_night(),
    );
    assert_eq!(moves(&result), [mv("h0", Retrying, Running)]);
    assert_eq!(result.moves[0].reason, "retrying");
    let result = plan(
        &s,
        &targets,
        &[run("h0", Retrying, 3)],
        None,
        saturday_night(),
    );
    assert_eq!(moves(&result), [mv("h0", Retrying, Failed)]);
    assert_eq!(result.moves[0].reason, "gave up after 3 attempt(s)");
    assert!(result.start.is_empty());
    let result = plan(
        &s,
        &targets,
        &[run("h0", Failed, 3)],
        None,
        saturday_night(),
    );
    assert!(result.moves.is_empty());
    assert_eq!(result.status, CampaignStatus::Failed);
}

#[test]
fn min_hosts_online_counts_updating_and_offline_hosts_as_down() {
    let s = with_policy("  maxConcurrent: 6\n  minHostsOnline: 4\n");
    let (mut targets, runs) = six_pending();
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(started(&result), ["h0", "h1"], "6 up, 4 must stay");
    // h5's BMC does not answer: it is down, and not started blind.
    targets[5].observed = Some(HostObservation::default());
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(started(&result), ["h0"]);
    assert_eq!(waits(&result, "h5"), Some("the host is offline"));
    assert_eq!(
        waits(&result, "h1"),
        Some("starting it would leave fewer than minHostsOnline hosts up")
    );
    // Not observed at all: the same.
    targets[5].observed = None;
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(started(&result), ["h0"]);
    assert_eq!(
        result.hosts[5].summary(),
        "h5: not observed (its BMC did not answer); waits: the host is offline"
    );
}

#[test]
fn drift_is_reported_and_healed_only_in_a_window_after_approval() {
    let s = with_policy(
        "  maintenanceWindow: sat 01:00-05:00 Europe/Berlin\n  approvalRequired: true\n",
    );
    let targets = [host("h0", 0, "1.0.0")];
    let runs = [run("h0", Completed, 1)];
    let approved_before = ApprovalView {
        generation: 1,
        at: at("2024-02-20T00:00:00Z"),
    };
    let approved_after = ApprovalView {
        generation: 1,
        at: at("2024-03-01T11:00:00Z"),
    };
    // Closed window: reported, not healed.
    let friday = at("2024-03-01T12:00:00Z");
    let result = plan(&s, &targets, &runs, Some(approved_after), friday);
    assert!(result.hosts[0].drift);
    assert!(result.moves.is_empty());
    assert_eq!(result.action, Action::Update);
    assert_eq!(result.status, CampaignStatus::WaitingWindow);
    assert_eq!(
        waits(&result, "h0"),
        Some("drift: healed in the next maintenance window")
    );
    // Open window, but the approval predates the completion: still waits.
    let result = plan(&s, &targets, &runs, Some(approved_before), saturday_night());
    assert!(result.moves.is_empty());
    assert_eq!(
        waits(&result, "h0"),
        Some("drift: waiting for an approval given after the host completed")
    );
    // Open window and a new approval: re-opened and started in one pass.
    let result = plan(&s, &targets, &runs, Some(approved_after), saturday_night());
    assert_eq!(
        moves(&result),
        [mv("h0", Completed, Pending), mv("h0", Pending, Running)]
    );
    // Without approvalRequired the window alone decides.
    let open = with_policy("  maintenanceWindow: sat 01:00-05:00 Europe/Berlin\n");
    let result = plan(&open, &targets, &runs, None, saturday_night());
    assert_eq!(
        result.moves[0].reason,
        "drift: the host reports an older version than the plan"
    );
}

#[test]
fn a_new_generation_reopens_what_it_changes_and_keeps_what_it_does_not() {
    let s = with_policy("  maxConcurrent: 1\n");
    let targets = [
        host("a", 0, "1.1.0"),
        host("b", 1, "1.0.0"),
        host("c", 2, "1.0.0"),
    ];
    let old = |h: &str, state| RecordedRun {
        generation: 1,
        ..run(h, state, 1)
    };
    let runs = [old("a", Completed), old("b", Completed), old("c", Failed)];
    let result = plan_firmware(&PlanInput {
        spec: &s,
        generation: 2,
        approval: None,
        targets: &targets,
        runs: &runs,
        catalog: None,
        now: saturday_night(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        result.regenerate,
        ["a"],
        "at the new versions: kept, moved to generation 2"
    );
    assert_eq!(
        moves(&result),
        [
            mv("b", Completed, Pending),
            mv("c", Failed, Pending),
            mv("b", Pending, Running)
        ]
    );
    assert!(result.moves[..2].iter().all(|m| m.generation == Some(2)));
}

#[test]
fn runs_of_hosts_that_left_the_plan_are_forgotten_once_idle() {
    let s = spec(BIOS_PLAN);
    let targets = [host("h0", 0, "1.1.0")];
    let runs = [
        run("h0", Completed, 1),
        run("gone", Completed, 1),
        run("busy", Running, 1),
    ];
    let result = plan(&s, &targets, &runs, None, saturday_night());
    assert_eq!(result.forget, ["gone"]);
    assert_eq!(result.action, Action::Update);

    assert_eq!(plan_removed(&runs, false).0, Action::NoOp);
    let (action, reasons) = plan_removed(&runs, true);
    assert_eq!(action, Action::NoOp);
    assert!(reasons[0].contains("1 host(s) still updating"));
    assert_eq!(plan_removed(&runs[..2], true).0, Action::Delete);
}

#[test]
fn a_host_is_updated_step_by_step_and_rolled_back_on_failed_validation() {
    let s = spec(
        "targets: [{server: h0}]\nartifacts:\n  - component: BIOS\n    version: 1.1.0\n    imageUri: https://r/bios-1.1.0.bin\n    rollback: {version: 1.0.0, imageUri: 'https://r/bios-1.0.0.bin'}\n  - {component: BMC, version: '1.10', file: /srv/bmc.bin}\npolicy:\n  rollbackOnFailure: true\n  resetType: ForceRestart\n  timeouts: {task: 10m, reboot: 5m}\n  preflightChecks: [connectivity]\n  maintenance:\n    before: [drain]\n    after: [uncordon]\n",
    );
    let result = plan(
        &s,
        &[host("h0", 0, "1.0.0")],
        &[run("h0", Pending, 0)],
        None,
        saturday_night(),
    );
    let start = &result.start[0];
    let names: Vec<String> = start.steps.iter().map(FirmwareStep::describe).collect();
    assert_eq!(
        names,
        [
            "maintenance before: 1 command(s)",
            "preflight: connectivity",
            "SimpleUpdate BIOS to 1.1.0",
            "wait for the BIOS task",
            "push BMC 1.10",
            "wait for the BMC task",
            "reset (ForceRestart)",
            "wait for power-on and the BMC",
            "verify BIOS 1.1.0, BMC 1.10",
            "check health",
            "maintenance after: 1 command(s)",
        ]
    );
    assert_eq!(
        start.steps[2],
        FirmwareStep::SimpleUpdate {
            component: "BIOS".into(),
            version: "1.1.0".into(),
            image_uri: "https://r/bios-1.1.0.bin".into(),
            transfer_protocol: None,
            apply_on_reset: true,
        }
    );
    assert_eq!(
        start.steps[3],
        FirmwareStep::WaitTask {
            component: "BIOS".into(),
            timeout_secs: 600
        }
    );
    assert!(start.steps[8].is_validation() && start.steps[9].is_validation());
    let phases: Vec<&str> = start.steps.iter().map(FirmwareStep::phase).collect();
    assert_eq!(
        phases[2..8],
        [
            "download", "install", "download", "install", "reboot", "reboot"
        ]
    );
    let rollback: Vec<String> = start.rollback.iter().map(FirmwareStep::describe).collect();
    assert_eq!(
        rollback,
        [
            "SimpleUpdate BIOS to 1.0.0",
            "wait for the BIOS task",
            "reset (ForceRestart)",
            "wait for power-on and the BMC",
            "verify BIOS 1.0.0",
        ]
    );
    // Steps are what a task row keeps: they read back from JSON.
    let json = serde_json::to_value(&start.steps).expect("json");
    assert_eq!(json[2]["step"], "simpleUpdate");
    assert_eq!(json[2]["applyOnReset"], true);
    let back: Vec<FirmwareStep> = serde_json::from_value(json).expect("back");
    assert_eq!(back, start.steps);
}

const CATALOG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Manifest baseLocation="downloads.example.com" version="24.03.00">
  <SoftwareComponent packageID="A" path="F/BIOS_A_2.18.1.BIN" vendorVersion="2.18.1" rebootRequired="true" dateTime="2023-08-02T11:20:00+05:30">
    <Name><Display lang="en">BIOS, 2.18.1</Display></Name>
    <ComponentType value="BIOS"><Display lang="en">BIOS</Display></ComponentType>
    <SupportedDevices><Device componentID="159"><Display lang="en">BIOS</Display></Device></SupportedDevices>
    <SupportedSystems><Brand key="3" prefix="PE"><Display lang="en">PowerEdge</Display><Model systemID="0716"><Display lang="en">R640</Display></Model></Brand></SupportedSystems>
  </SoftwareComponent>
  <SoftwareComponent packageID="B" path="F/BIOS_B_2.19.1.BIN" vendorVersion="2.19.1" rebootRequired="true" size="33554432" dateTime="2024-02-20T10:05:00+05:30">
    <Name><Display lang="en">BIOS, 2.19.1</Display></Name>
    <ComponentType value="BIOS"><Display lang="en">BIOS</Display></ComponentType>
    <SupportedDevices><Device componentID="159"><Display lang="en">BIOS</Display></Device></SupportedDevices>
    <SupportedSystems><Brand key="3" prefix="PE"><Display lang="en">PowerEdge</Display><Model systemID="0716"><Display lang="en">R640</Display></Model></Brand></SupportedSystems>
  </SoftwareComponent>
  <SoftwareComponent packageID="C" path="F/BIOS_C_1.9.0.BIN" vendorVersion="1.9.0" rebootRequired="true" dateTime="2024-02-20T10:05:00+05:30">
    <Name><Display lang="en">BIOS, 1.9.0</Display></Name>
    <ComponentType value="BIOS"><Display lang="en">BIOS</Display></ComponentType>
    <SupportedDevices><Device componentID="159"><Display lang="en">BIOS</Display></Device></SupportedDevices>
    <SupportedSystems><Brand key="3" prefix="PE"><Display lang="en">PowerEdge</Display><Model systemID="0A2B"><Display lang="en">R750</Display></Model></Brand></SupportedSystems>
  </SoftwareComponent>
  <SoftwareComponent packageID="D" path="F/NIC_D_22.5.BIN" vendorVersion="22.5" rebootRequired="false" dateTime="2024-02-20T10:05:00+05:30">
    <Name><Display lang="en">NIC, 22.5</Display></Name>
    <ComponentType value="FRMW"><Display lang="en">Firmware</Display></ComponentType>
    <SupportedDevices><Device componentID="104893"><Display lang="en">NIC</Display></Device></SupportedDevices>
  </SoftwareComponent>
</Manifest>"#;

fn dell(name: &str, model: &str, system_id: u32, bios_version: &str) -> TargetHost {
    TargetHost {
        host: name.into(),
        priority: 0,
        observed: Some(HostObservation {
            reachable: true,
            power_on: Some(true),
            healthy: Some(true),
            model: Some(model.into()),
            dell_system_id: Some(system_id),
            inventory: vec![Component {
                id: format!("Installed-159-{bios_version}"),
                name: Some("BIOS".into()),
                software_id: Some("159".into()),
                version: Some(bios_version.into()),
                manager: false,
            }],
        }),
    }
}

#[test]
fn latest_from_catalog_chooses_per_host_model() {
    let s = spec(
        "targets: [{server: r640}, {server: r750}, {server: r640-new}]\npolicy:\n  updateMode: LATEST_FROM_CATALOG\n  catalogUri: https://downloads.example.com/Catalog.xml\n  maxConcurrent: 3\n",
    );
    let catalog = Catalog::parse(CATALOG.as_bytes(), None).expect("catalog");
    let targets = [
        dell("r640", "PowerEdge R640", 1814, "2.18.1"),
        dell("r750", "PowerEdge R750", 2603, "1.8.0"),
        dell("r640-new", "PowerEdge R640", 1814, "2.19.1"),
    ];
    let runs: Vec<RecordedRun> = targets.iter().map(|t| run(&t.host, Pending, 0)).collect();
    let input = PlanInput {
        spec: &s,
        generation: 1,
        approval: None,
        targets: &targets,
        runs: &runs,
        catalog: Some(&catalog),
        now: saturday_night(),
    };
    let result = plan_firmware(&input).unwrap_or_else(|e| panic!("{e}"));
    let check = |h: &str| {
        result
            .hosts
            .iter()
            .find(|p| p.host == h)
            .and_then(|p| p.check.clone())
            .expect("check")
    };
    // The newest for the R640 (not the R750's), the NIC skipped: not in the inventory.
    let r640 = check("r640");
    assert_eq!(r640.flashes.len(), 1);
    assert_eq!(r640.flashes[0].to, "2.19.1");
    assert_eq!(r640.flashes[0].size, Some(33_554_432));
    assert_eq!(
        r640.flashes[0].image,
        ImageSource::Uri {
            uri: "https://downloads.example.com/F/BIOS_B_2.19.1.BIN".into(),
            transfer_protocol: None
        }
    );
    assert_eq!(check("r750").flashes[0].to, "1.9.0");
    assert!(check("r640-new").satisfied());
    assert_eq!(started(&result), ["r640", "r750"]);
    assert_eq!(moves(&result)[0], mv("r640-new", Pending, Completed));

    // The controller must read the catalog first.
    let no_catalog = PlanInput {
        catalog: None,
        ..input
    };
    assert_eq!(
        plan_firmware(&no_catalog),
        Err(FirmwarePlanError::NoCatalog(
            "https://downloads.example.com/Catalog.xml".into()
        ))
    );
}

#[test]
fn components_are_named_by_software_id_id_or_name() {
    let c = Component {
        id: "Installed-159-2.18.1".into(),
        name: Some("BIOS".into()),
        software_id: Some("159".into()),
        version: Some("2.18.1".into()),
        manager: false,
    };
    assert!(c.is("159") && c.is("bios") && c.is("Installed-159-2.18.1"));
    assert!(!c.is("25227") && !c.is("2.18.1"));
}
