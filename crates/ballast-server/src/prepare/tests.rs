use super::*;
use crate::sysinfo::DockerStatus;

fn debian_root() -> SystemInfo {
    SystemInfo {
        hostname: "deb12".into(),
        user: "root".into(),
        os_id: "debian".into(),
        os_id_like: vec![],
        os_name: "Debian GNU/Linux 12 (bookworm)".into(),
        os_version: Some("12".into()),
        kernel: "6.1.0-25-amd64".into(),
        arch: "x86_64".into(),
        cpu_model: None,
        cpu_count: 2,
        memory_bytes: 2 << 30,
        disk_total_bytes: 20 << 30,
        disk_free_bytes: 10 << 30,
        is_root: true,
        sudo_ok: true,
        docker: no_docker(),
        package_manager: Some(PackageManager::Apt),
        init_system: InitSystem::Systemd,
        missing_packages: vec![],
    }
}

fn no_docker() -> DockerStatus {
    DockerStatus {
        installed: false,
        version: None,
        running: false,
        socket_present: false,
    }
}

fn running_docker() -> DockerStatus {
    DockerStatus {
        installed: true,
        version: Some("20.10.24+dfsg1".into()),
        running: true,
        socket_present: true,
    }
}

fn as_user(mut info: SystemInfo, user: &str, sudo_ok: bool) -> SystemInfo {
    info.user = user.into();
    info.is_root = false;
    info.sudo_ok = sudo_ok;
    info
}

fn spec(docker: bool, packages: &[&str]) -> PrepareSpec {
    PrepareSpec {
        docker,
        packages: packages.iter().map(|p| p.to_string()).collect(),
    }
}

/// A plan as `(step, "run: COMMAND" | "skip: REASON")`, easy to compare in tables.
fn show(steps: &[PlannedStep]) -> Vec<(&'static str, String)> {
    steps
        .iter()
        .map(|s| {
            let what = match &s.action {
                StepAction::Run { command } => format!("run: {command}"),
                StepAction::Skip { reason } => format!("skip: {reason}"),
            };
            (s.step.as_str(), what)
        })
        .collect()
}

fn expect(rows: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    rows.iter().map(|(s, w)| (*s, w.to_string())).collect()
}

const INFO: &str = "run: sh -c '<ballast system-info script (read-only)>'";

#[test]
fn plans_from_a_table() {
    struct Case {
        name: &'static str,
        info: SystemInfo,
        spec: PrepareSpec,
        steps: Vec<(&'static str, String)>,
    }
    let missing = |mut info: SystemInfo, pkgs: &[&str]| {
        info.missing_packages = pkgs.iter().map(|p| p.to_string()).collect();
        info
    };
    let with_docker = |mut info: SystemInfo, docker: DockerStatus| {
        info.docker = docker;
        info
    };
    let fedora = {
        let mut i = debian_root();
        i.os_id = "fedora".into();
        i.os_name = "Fedora Linux 40 (Server Edition)".into();
        i.package_manager = Some(PackageManager::Dnf);
        i
    };
    let alpine = {
        let mut i = debian_root();
        i.os_id = "alpine".into();
        i.os_name = "Alpine Linux v3.20".into();
        i.package_manager = Some(PackageManager::Apk);
        i.init_system = InitSystem::OpenRc;
        i
    };
    let amazon = {
        let mut i = fedora.clone();
        i.os_id = "amzn".into();
        i.os_id_like = vec!["fedora".into()];
        i
    };
    let rocky = {
        let mut i = fedora.clone();
        i.os_id = "rocky".into();
        i.os_id_like = vec!["rhel".into(), "centos".into()];
        i
    };

    let cases = vec![
        Case {
            name: "debian root installs a package, no docker",
            info: missing(debian_root(), &["jq"]),
            spec: spec(false, &["jq"]),
            steps: expect(&[
                ("detect-os", INFO),
                (
                    "refresh-index",
                    "run: DEBIAN_FRONTEND=noninteractive apt-get update",
                ),
                (
                    "install-packages",
                    "run: DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jq",
                ),
                ("install-docker", "skip: docker not requested"),
                ("start-docker", "skip: docker not requested"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "debian user with sudo installs only what is missing, and docker",
            info: as_user(missing(debian_root(), &["htop"]), "deploy", true),
            spec: spec(true, &["jq", "htop"]),
            steps: expect(&[
                ("detect-os", INFO),
                (
                    "refresh-index",
                    "run: sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update",
                ),
                (
                    "install-packages",
                    "run: sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends htop",
                ),
                (
                    "install-docker",
                    "run: sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io",
                ),
                ("start-docker", "run: sudo -n systemctl enable --now docker"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "prepared host: everything already satisfied",
            info: with_docker(debian_root(), running_docker()),
            spec: spec(true, &["jq"]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: already satisfied: jq installed"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed (version 20.10.24+dfsg1)",
                ),
                (
                    "start-docker",
                    "skip: already satisfied: docker is running (version 20.10.24+dfsg1)",
                ),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "docker installed but stopped is only started",
            info: with_docker(
                debian_root(),
                DockerStatus {
                    installed: true,
                    version: None,
                    running: false,
                    socket_present: false,
                },
            ),
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: no packages requested"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed",
                ),
                ("start-docker", "run: systemctl enable --now docker"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "fedora installs moby-engine with dnf",
            info: fedora.clone(),
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "run: dnf -y makecache"),
                ("install-packages", "skip: no packages requested"),
                ("install-docker", "run: dnf -y install moby-engine"),
                ("start-docker", "run: systemctl enable --now docker"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "fedora-like amazon linux installs moby-engine too",
            info: amazon,
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "run: dnf -y makecache"),
                ("install-packages", "skip: no packages requested"),
                ("install-docker", "run: dnf -y install moby-engine"),
                ("start-docker", "run: systemctl enable --now docker"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "other dnf distributions ask for `docker`",
            info: as_user(rocky, "ops", true),
            spec: spec(true, &["jq"]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "run: sudo -n dnf -y makecache"),
                ("install-packages", "skip: already satisfied: jq installed"),
                ("install-docker", "run: sudo -n dnf -y install docker"),
                ("start-docker", "run: sudo -n systemctl enable --now docker"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "alpine with openrc",
            info: missing(alpine.clone(), &["curl"]),
            spec: spec(true, &["curl"]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "run: apk update"),
                ("install-packages", "run: apk add curl"),
                ("install-docker", "run: apk add docker"),
                (
                    "start-docker",
                    "run: rc-update add docker default && rc-service docker start",
                ),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "openrc through sudo runs one shell",
            info: as_user(alpine, "ops", true),
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "run: sudo -n apk update"),
                ("install-packages", "skip: no packages requested"),
                ("install-docker", "run: sudo -n apk add docker"),
                (
                    "start-docker",
                    "run: sudo -n sh -c 'rc-update add docker default && rc-service docker start'",
                ),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "sysv service command",
            info: {
                let mut i = as_user(debian_root(), "deploy", true);
                i.init_system = InitSystem::Service;
                i.docker.installed = true;
                i
            },
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: no packages requested"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed",
                ),
                ("start-docker", "run: sudo -n service docker start"),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "no init system: background dockerd",
            info: {
                let mut i = debian_root();
                i.init_system = InitSystem::None;
                i.docker.installed = true;
                i
            },
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: no packages requested"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed",
                ),
                (
                    "start-docker",
                    "run: nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &",
                ),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "user without sudo and nothing to do is fine",
            info: as_user(
                with_docker(debian_root(), running_docker()),
                "nosudo",
                false,
            ),
            spec: spec(true, &["jq"]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: already satisfied: jq installed"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed (version 20.10.24+dfsg1)",
                ),
                (
                    "start-docker",
                    "skip: already satisfied: docker is running (version 20.10.24+dfsg1)",
                ),
                ("verify", INFO),
            ]),
        },
        Case {
            name: "unknown OS with nothing to install is fine",
            info: {
                let mut i = with_docker(debian_root(), running_docker());
                i.os_id = "arch".into();
                i.package_manager = None;
                i
            },
            spec: spec(true, &[]),
            steps: expect(&[
                ("detect-os", INFO),
                ("refresh-index", "skip: nothing to install"),
                ("install-packages", "skip: no packages requested"),
                (
                    "install-docker",
                    "skip: already satisfied: docker is installed (version 20.10.24+dfsg1)",
                ),
                (
                    "start-docker",
                    "skip: already satisfied: docker is running (version 20.10.24+dfsg1)",
                ),
                ("verify", INFO),
            ]),
        },
    ];

    for case in cases {
        let steps = plan(&case.info, &case.spec)
            .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
        assert_eq!(show(&steps), case.steps, "{}", case.name);
        let order: Vec<Step> = steps.iter().map(|s| s.step).collect();
        assert_eq!(order, Step::ALL, "{}", case.name);
    }
}

#[test]
fn a_user_who_cannot_sudo_is_refused_when_there_is_work() {
    let info = as_user(debian_root(), "nosudo", false);
    let err = plan(&info, &spec(true, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "user nosudo is not root and cannot sudo without a password; give it NOPASSWD sudo or \
         connect as root"
    );
    let mut only_package = as_user(debian_root(), "nosudo", false);
    only_package.missing_packages = vec!["jq".into()];
    assert_eq!(
        plan(&only_package, &spec(false, &["jq"])),
        Err(PlanError::NoPrivilege {
            user: "nosudo".into()
        })
    );
}

#[test]
fn an_unknown_os_is_named() {
    let mut info = debian_root();
    info.os_id = "arch".into();
    info.os_name = "Arch Linux".into();
    info.package_manager = None;
    info.missing_packages = vec!["jq".into()];
    let err = plan(&info, &spec(true, &["jq"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot install packages jq and docker: unsupported OS (os-release ID `arch`, Arch \
         Linux); ballast installs with apt (Debian, Ubuntu), dnf (Fedora) or apk (Alpine)"
    );
}

#[test]
fn needs_work_says_what_is_missing() {
    let mut info = debian_root();
    info.missing_packages = vec!["jq".into(), "htop".into()];
    assert_eq!(
        needs_work(&info, &spec(true, &["jq", "htop"])),
        vec!["packages missing: jq, htop", "docker is not installed"]
    );
    info.docker.installed = true;
    assert_eq!(
        needs_work(&info, &spec(true, &["jq", "htop"])),
        vec!["packages missing: jq, htop", "docker is not running"]
    );
    assert_eq!(
        needs_work(&info, &spec(false, &["jq", "htop"])),
        vec!["packages missing: jq, htop"]
    );
    let prepared = SystemInfo {
        docker: running_docker(),
        ..debian_root()
    };
    assert!(needs_work(&prepared, &spec(true, &["jq"])).is_empty());
}

#[test]
fn verify_wants_an_answering_daemon() {
    let mut info = debian_root();
    info.docker = DockerStatus {
        installed: true,
        version: None,
        running: true,
        socket_present: true,
    };
    assert!(needs_work(&info, &spec(true, &[])).is_empty());
    assert_eq!(
        unsatisfied(&info, &spec(true, &[])),
        vec!["docker is running but does not answer `docker version`"]
    );
}

#[test]
fn output_is_cut_to_its_end_on_a_char_boundary() {
    let text = format!("{}é{}", "a".repeat(10), "b".repeat(OUTPUT_LIMIT - 1));
    let cut = tail(&text);
    assert!(cut.len() <= OUTPUT_LIMIT);
    assert!(cut.ends_with('b'));
    assert_eq!(tail("short"), "short");
}

#[test]
fn transient_failures_are_recognised() {
    assert!(output_is_transient(
        "",
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)"
    ));
    assert!(output_is_transient(
        "Err:1 http://deb.debian.org/debian bookworm InRelease\n  Temporary failure resolving 'deb.debian.org'",
        ""
    ));
    assert!(output_is_transient(
        "",
        "ERROR: unable to lock database: temporary error (try again later)"
    ));
    assert!(!output_is_transient(
        "",
        "E: Unable to locate package no-such-package"
    ));
    assert!(!output_is_transient(
        "",
        "Error: Unable to find a match: docker"
    ));
}

#[test]
fn events_serialize_for_the_log() {
    let event = StepEvent::Finished {
        step: Step::InstallDocker,
        status: StepStatus::Skipped,
        message: "already satisfied".into(),
        stdout: String::new(),
        stderr: String::new(),
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["event"], "finished");
    assert_eq!(json["step"], "install-docker");
    assert_eq!(json["status"], "skipped");
    let planned = PlannedStep::skip(Step::RefreshIndex, "nothing to install");
    let json = serde_json::to_value(&planned).unwrap();
    assert_eq!(json["step"], "refresh-index");
    assert_eq!(json["action"], "skip");
    assert_eq!(json["reason"], "nothing to install");
}
