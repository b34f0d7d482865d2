use super::*;

/// Output as the script prints it, from `(section, body)` pairs.
fn output(sections: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, body) in sections {
        out.push_str(&format!("\n@@ballast:{name}@@\n{body}"));
        if !body.is_empty() && !body.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

const DEBIAN_OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

const UBUNTU_OS_RELEASE: &str = r#"PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"#;

const FEDORA_OS_RELEASE: &str = r#"NAME="Fedora Linux"
VERSION="40 (Server Edition)"
ID=fedora
VERSION_ID=40
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Server Edition)"
# a comment
VARIANT_ID=server
"#;

const ALPINE_OS_RELEASE: &str = r#"NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
"#;

fn debian_root_with_docker() -> String {
    output(&[
        ("hostname", "deb12"),
        ("user", "root"),
        ("uid", "0"),
        ("os-release", DEBIAN_OS_RELEASE),
        ("kernel", "6.1.0-25-amd64"),
        ("arch", "x86_64"),
        (
            "cpu-model",
            "model name\t: Intel(R) Xeon(R) Processor @ 2.50GHz",
        ),
        ("cpu-count", "2"),
        ("meminfo", "MemTotal:       24684096 kB"),
        (
            "df",
            "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
             /dev/vda         264212084 13652460  81633428      15% /",
        ),
        ("sudo", "yes"),
        (
            "commands",
            "apt-get\ndpkg-query\nsystemctl\nservice\ndocker\ndockerd\ntimeout",
        ),
        ("init", "systemd"),
        ("docker-socket", "yes"),
        ("dockerd-process", "yes"),
        ("docker-version", "20.10.24+dfsg1"),
        ("packages", "jq present\nhtop missing"),
        ("end", ""),
    ])
}

#[test]
fn debian_root_with_docker_running() {
    let info = parse(&debian_root_with_docker()).unwrap();
    assert_eq!(
        info,
        SystemInfo {
            hostname: "deb12".into(),
            user: "root".into(),
            os_id: "debian".into(),
            os_id_like: vec![],
            os_name: "Debian GNU/Linux 12 (bookworm)".into(),
            os_version: Some("12".into()),
            kernel: "6.1.0-25-amd64".into(),
            arch: "x86_64".into(),
            cpu_model: Some("Intel(R) Xeon(R) Processor @ 2.50GHz".into()),
            cpu_count: 2,
            memory_bytes: 24684096 * 1024,
            disk_total_bytes: 264212084 * 1024,
            disk_free_bytes: 81633428 * 1024,
            is_root: true,
            sudo_ok: true,
            docker: DockerStatus {
                installed: true,
                version: Some("20.10.24+dfsg1".into()),
                running: true,
                socket_present: true,
            },
            package_manager: Some(PackageManager::Apt),
            init_system: InitSystem::Systemd,
            missing_packages: vec!["htop".into()],
        }
    );
}

#[test]
fn ubuntu_user_with_sudo_and_no_docker() {
    let out = output(&[
        ("hostname", "web-1"),
        ("user", "deploy"),
        ("uid", "1000"),
        ("os-release", UBUNTU_OS_RELEASE),
        ("kernel", "6.8.0-45-generic"),
        ("arch", "aarch64"),
        // Ampere ARM servers print no model line at all.
        ("cpu-model", ""),
        ("cpu-count", "4"),
        ("meminfo", "MemTotal:        8039880 kB"),
        (
            "df",
            "Filesystem     1024-blocks    Used Available Capacity Mounted on\n\
             /dev/mapper/ubuntu--vg-ubuntu--lv  30316484 9010112  19741740      32% /",
        ),
        ("sudo", "yes"),
        (
            "commands",
            "apt-get\ndpkg-query\nsystemctl\nservice\ntimeout",
        ),
        ("init", "systemd"),
        ("docker-socket", "no"),
        ("dockerd-process", "no"),
        ("docker-version", ""),
        ("packages", "jq missing\nhtop missing"),
        ("end", ""),
    ]);
    let info = parse(&out).unwrap();
    assert_eq!(info.os_id, "ubuntu");
    assert_eq!(info.os_id_like, vec!["debian".to_string()]);
    assert_eq!(info.os_name, "Ubuntu 24.04.1 LTS");
    assert_eq!(info.os_version.as_deref(), Some("24.04"));
    assert_eq!(info.arch, "aarch64");
    assert_eq!(info.cpu_model, None);
    assert_eq!(info.cpu_count, 4);
    assert_eq!(info.disk_total_bytes, 30316484 * 1024);
    assert_eq!(info.disk_free_bytes, 19741740 * 1024);
    assert!(!info.is_root);
    assert!(info.sudo_ok);
    assert_eq!(
        info.docker,
        DockerStatus {
            installed: false,
            version: None,
            running: false,
            socket_present: false,
        }
    );
    assert_eq!(info.package_manager, Some(PackageManager::Apt));
    assert_eq!(info.missing_packages, vec!["jq", "htop"]);
}

#[test]
fn fedora_user_without_sudo_sees_dockerd_it_cannot_ask() {
    let out = output(&[
        ("hostname", "fedora"),
        ("user", "alice"),
        ("uid", "1001"),
        ("os-release", FEDORA_OS_RELEASE),
        ("kernel", "6.10.6-200.fc40.x86_64"),
        ("arch", "x86_64"),
        ("cpu-model", "model name\t: AMD EPYC 7B13"),
        ("cpu-count", "8"),
        ("meminfo", "MemTotal:       32594012 kB"),
        (
            "df",
            "Filesystem              1024-blocks    Used Available Capacity Mounted on\n\
             /dev/mapper/fedora-root    15718400 4294144  11424256      28% /",
        ),
        ("sudo", "no"),
        ("commands", "dnf\nrpm\nsystemctl\ndocker\ndockerd\ntimeout"),
        ("init", "systemd"),
        ("docker-socket", "yes"),
        ("dockerd-process", "yes"),
        ("docker-version", ""),
        ("packages", "jq present"),
        ("end", ""),
    ]);
    let info = parse(&out).unwrap();
    assert_eq!(info.os_id, "fedora");
    assert_eq!(info.os_name, "Fedora Linux 40 (Server Edition)");
    assert_eq!(info.os_version.as_deref(), Some("40"));
    assert!(!info.sudo_ok);
    assert_eq!(info.package_manager, Some(PackageManager::Dnf));
    assert_eq!(info.init_system, InitSystem::Systemd);
    assert!(info.docker.installed);
    assert!(info.docker.running);
    assert!(!info.docker.answers());
    assert!(info.missing_packages.is_empty());
}

#[test]
fn alpine_with_openrc_and_busybox() {
    let out = output(&[
        ("hostname", "alpine"),
        ("user", "root"),
        ("uid", "0"),
        ("os-release", ALPINE_OS_RELEASE),
        ("kernel", "6.6.49-0-lts"),
        ("arch", "x86_64"),
        ("cpu-model", "model name\t: QEMU Virtual CPU version 2.5+"),
        ("cpu-count", "1"),
        ("meminfo", "MemTotal:        1004544 kB"),
        (
            "df",
            "Filesystem           1024-blocks    Used Available Capacity Mounted on\n\
             /dev/sda3              7154584    241460   6530752   4% /",
        ),
        // sudo is not installed on Alpine by default; root needs none.
        ("sudo", "no"),
        ("commands", "apk\nrc-service\ntimeout"),
        ("init", "openrc"),
        ("docker-socket", "no"),
        ("dockerd-process", "no"),
        ("docker-version", ""),
        ("packages", "curl missing"),
        ("end", ""),
    ]);
    let info = parse(&out).unwrap();
    assert_eq!(info.os_id, "alpine");
    assert_eq!(info.os_name, "Alpine Linux v3.20");
    assert_eq!(info.os_version.as_deref(), Some("3.20.3"));
    assert!(info.is_root);
    assert!(info.sudo_ok, "root needs no sudo");
    assert_eq!(info.package_manager, Some(PackageManager::Apk));
    assert_eq!(info.init_system, InitSystem::OpenRc);
    assert!(!info.docker.installed);
    assert_eq!(info.missing_packages, vec!["curl"]);
}

#[test]
fn container_without_init_uses_service_or_nothing() {
    let base = debian_root_with_docker();
    let no_systemd = base.replace("@@ballast:init@@\nsystemd\n", "@@ballast:init@@\n");
    assert_eq!(parse(&no_systemd).unwrap().init_system, InitSystem::Service);
    let no_service = no_systemd.replace("service\n", "");
    assert_eq!(parse(&no_service).unwrap().init_system, InitSystem::None);
}

#[test]
fn os_release_quoting() {
    let fields = parse_os_release(
        "ID='opensuse-tumbleweed'\nNAME=\"with \\\"escaped\\\" quotes\"\nID_LIKE=\"opensuse suse\"\n\nnot a field\n",
    );
    assert_eq!(fields["ID"], "opensuse-tumbleweed");
    assert_eq!(fields["NAME"], "with \"escaped\" quotes");
    assert_eq!(fields["ID_LIKE"], "opensuse suse");
}

#[test]
fn broken_outputs_are_refused_with_the_section_named() {
    let full = debian_root_with_docker();
    let cut = &full[..full.find("@@ballast:packages@@").unwrap()];
    assert_eq!(parse(cut), Err(ParseError::MissingSection("end")));

    let no_os = full.replace(DEBIAN_OS_RELEASE, "");
    assert_eq!(parse(&no_os), Err(ParseError::NoOsRelease));

    let bad_mem = full.replace("MemTotal:       24684096 kB", "MemTotal: lots");
    assert!(matches!(
        parse(&bad_mem),
        Err(ParseError::BadValue {
            section: "meminfo",
            ..
        })
    ));

    let bad_df = full.replace("/dev/vda         264212084", "/dev/vda  x");
    assert!(matches!(
        parse(&bad_df),
        Err(ParseError::BadValue { section: "df", .. })
    ));

    let bad_pkg = full.replace("htop missing", "htop maybe");
    assert!(matches!(
        parse(&bad_pkg),
        Err(ParseError::BadValue {
            section: "packages",
            ..
        })
    ));

    assert_eq!(
        parse("bash: sh: command not found\n"),
        Err(ParseError::MissingSection("end"))
    );
}

#[test]
fn package_names() {
    for good in [
        "jq",
        "htop",
        "g++",
        "libc6-dev",
        "python3.11",
        "ca-certificates",
        "docker_ce",
    ] {
        assert!(valid_package_name(good), "{good}");
    }
    for bad in [
        "",
        "-rf",
        "jq=1.6",
        "jq;reboot",
        "a b",
        "$(id)",
        "'",
        "jq*",
        "jq:amd64",
    ] {
        assert!(!valid_package_name(bad), "{bad:?}");
    }
}

#[test]
fn serializes_in_camel_case() {
    let info = parse(&debian_root_with_docker()).unwrap();
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["osId"], "debian");
    assert_eq!(json["memoryBytes"], 24684096u64 * 1024);
    assert_eq!(json["docker"]["socketPresent"], true);
    assert_eq!(json["packageManager"], "apt");
    assert_eq!(json["initSystem"], "systemd");
    assert_eq!(json["missingPackages"][0], "htop");
    let back: SystemInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, info);
}

/// The script itself, run by this machine's `sh` (no SSH), parses: it is valid POSIX sh and
/// every section the parser needs is printed.
#[test]
fn script_runs_on_this_machine() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&[
            "sh-is-surely-not-a-package".to_string(),
            "dash".to_string(),
        ]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let info = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!info.os_id.is_empty());
    assert!(info.cpu_count > 0);
    assert!(info.memory_bytes > 0);
    assert!(info.disk_total_bytes > 0 && info.disk_free_bytes <= info.disk_total_bytes);
    assert!(!info.kernel.is_empty() && !info.arch.is_empty());
    assert_eq!(info.missing_packages, vec!["sh-is-surely-not-a-package"]);
}

#[test]
fn script_quotes_package_names() {
    let text = script(&["it's".to_string()]);
    assert!(text.contains(r"for p in 'it'\''s'; do"), "{text}");
}
