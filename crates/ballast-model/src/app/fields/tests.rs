//! Table tests of the compose-parity parsers.

use super::*;

#[test]
fn capabilities_are_docker_s() {
    for ok in ["NET_ADMIN", "cap_sys_time", "CAP_CHOWN", "ALL", "all"] {
        assert_eq!(check_capability(ok), Ok(()), "{ok}");
    }
    for bad in ["NET_ADMINS", "", "CAP_", "ROOT"] {
        assert!(
            check_capability(bad)
                .unwrap_err()
                .contains("not a Linux capability")
        );
    }
}

#[test]
fn expose_takes_ports_ranges_and_protocols() {
    assert_eq!(parse_expose("80").unwrap(), vec!["80/tcp"]);
    assert_eq!(parse_expose("53/udp").unwrap(), vec!["53/udp"]);
    assert_eq!(
        parse_expose("8000-8002").unwrap(),
        vec!["8000/tcp", "8001/tcp", "8002/tcp"]
    );
    for (bad, why) in [
        ("http", "expected a port"),
        ("0", "out of range"),
        ("80/icmp", "unknown protocol"),
        ("90-80", "ends before it starts"),
    ] {
        assert!(parse_expose(bad).unwrap_err().contains(why), "{bad}");
    }
}

#[test]
fn security_options_are_the_engine_s() {
    for ok in [
        "no-new-privileges",
        "no-new-privileges:true",
        "label=disable",
        "label:type:svirt_apache_t",
        "apparmor=unconfined",
        "seccomp=unconfined",
        "seccomp:unconfined",
        "systempaths=unconfined",
    ] {
        assert_eq!(check_security_opt(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("privileged", "not a security option"),
        ("seccomp=./profile.json", "seccomp profile is a file"),
        ("no-new-privileges=maybe", "not accepted"),
        ("apparmor", "value is missing"),
    ] {
        assert!(check_security_opt(bad).unwrap_err().contains(why), "{bad}");
    }
}

#[test]
fn network_modes() {
    assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
    assert_eq!(
        NetworkMode::parse("app:vpn").unwrap().docker_value(),
        "container:vpn"
    );
    assert!(
        NetworkMode::parse("service:vpn")
            .unwrap_err()
            .contains("app:NAME")
    );
    assert!(
        NetworkMode::parse("overlay")
            .unwrap_err()
            .contains("unknown")
    );
    assert!(
        NetworkMode::parse("container:")
            .unwrap_err()
            .contains("names no")
    );
}

#[test]
fn tmpfs_dns_hosts_devices_and_sizes() {
    assert_eq!(parse_tmpfs("/run").unwrap(), ("/run".into(), "".into()));
    assert_eq!(
        parse_tmpfs("/tmp:size=64m,mode=1777").unwrap().1,
        "size=64m,mode=1777"
    );
    assert!(parse_tmpfs("run").unwrap_err().contains("must be absolute"));
    assert!(
        parse_tmpfs("/x:bogus=1")
            .unwrap_err()
            .contains("unknown tmpfs option")
    );
    assert!(check_dns_server("1.1.1.1").is_ok());
    assert!(check_dns_server("dns.lan").is_err());
    assert_eq!(parse_extra_host("nas:10.0.0.5").unwrap(), "nas:10.0.0.5");
    assert_eq!(parse_extra_host("nas=10.0.0.5").unwrap(), "nas:10.0.0.5");
    assert_eq!(parse_extra_host("v6=::1").unwrap(), "v6:::1");
    assert_eq!(parse_extra_host("v6:::1").unwrap(), "v6:::1");
    assert_eq!(
        parse_extra_host("host.docker.internal:host-gateway").unwrap(),
        "host.docker.internal:host-gateway"
    );
    assert!(parse_extra_host("nas").is_err());
    assert!(
        parse_extra_host("nas:ten")
            .unwrap_err()
            .contains("not an IP")
    );
    let d = DeviceMapping::parse("/dev/dri").unwrap();
    assert_eq!(
        (d.host.as_str(), d.container.as_str()),
        ("/dev/dri", "/dev/dri")
    );
    assert_eq!(d.permissions, "rwm");
    let d = DeviceMapping::parse("/dev/ttyUSB0:/dev/ttyACM0:rw").unwrap();
    assert_eq!(
        (d.container.as_str(), d.permissions.as_str()),
        ("/dev/ttyACM0", "rw")
    );
    assert_eq!(DeviceMapping::parse("/dev/sda:r").unwrap().permissions, "r");
    assert!(
        DeviceMapping::parse("dri")
            .unwrap_err()
            .contains("absolute")
    );
    assert!(DeviceMapping::parse("/a:/b:x").is_err());
    assert_eq!(parse_size("64m").unwrap(), 64 << 20);
    assert_eq!(parse_size("1gb").unwrap(), 1 << 30);
    assert_eq!(parse_size("100").unwrap(), 100);
    assert!(parse_size("lots").is_err());
    assert_eq!(parse_memory_swap("-1").unwrap(), -1);
    assert_eq!(parse_file_mode("0640").unwrap(), 0o640);
    assert_eq!(parse_file_mode("0o444").unwrap(), 0o444);
    assert!(parse_file_mode("0999").is_err());
    assert!(parse_file_mode("").is_err());
}

#[test]
fn ulimits_sysctls_and_gpus() {
    assert!(
        check_ulimit(
            "nofile",
            &Ulimit::Pair(UlimitPair {
                soft: 1024,
                hard: 4096
            })
        )
        .is_ok()
    );
    assert!(check_ulimit("nproc", &Ulimit::Single(-1)).is_ok());
    assert!(
        check_ulimit("files", &Ulimit::Single(1))
            .unwrap_err()
            .contains("not a resource limit")
    );
    assert!(
        check_ulimit("nofile", &Ulimit::Pair(UlimitPair { soft: 10, hard: 5 }))
            .unwrap_err()
            .contains("above the hard limit")
    );
    assert!(check_sysctl("net.core.somaxconn", false).is_ok());
    assert!(
        check_sysctl("net.core.somaxconn", true)
            .unwrap_err()
            .contains("host")
    );
    assert!(check_sysctl("kernel.shmmax", false).is_ok());
    assert!(
        check_sysctl("vm.swappiness", false)
            .unwrap_err()
            .contains("not a sysctl")
    );
    let all = GpuRequest::parse("all").unwrap();
    assert_eq!(
        (all.count, all.capabilities.clone()),
        (Some(-1), vec!["gpu".to_string()])
    );
    assert_eq!(GpuRequest::parse("2").unwrap().count, Some(2));
    let ids = GpuRequest::parse("device=0,1,driver=nvidia").unwrap();
    assert_eq!(ids.device_ids, vec!["0", "1"]);
    assert_eq!(ids.driver.as_deref(), Some("nvidia"));
    assert!(GpuRequest::parse("0").is_err());
    assert!(
        GpuRequest::parse("count=1,device=0")
            .unwrap_err()
            .contains("both")
    );
    assert!(
        GpuRequest::parse("vendor=amd")
            .unwrap_err()
            .contains("unknown key")
    );
}

#[test]
fn names_for_hosts() {
    assert_eq!(hostname_problem("web-1.lab", 64), None);
    assert!(hostname_problem("-web", 64).is_some());
    assert!(hostname_problem("we_b", 64).is_some());
    assert!(
        hostname_problem(&"a".repeat(65), 64)
            .unwrap()
            .contains("65 characters")
    );
    assert!(hostname_problem("", 64).unwrap().contains("empty"));
}
