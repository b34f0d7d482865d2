//! Tests of the App parsers that predate the compose-parity fields.

use super::*;

#[test]
fn ports_parse_in_every_documented_form() {
    let cases: &[(&str, Option<&str>, u16, u16, Protocol)] = &[
        ("8080:80", None, 8080, 80, Protocol::Tcp),
        (
            "127.0.0.1:8080:80",
            Some("127.0.0.1"),
            8080,
            80,
            Protocol::Tcp,
        ),
        ("53:53/udp", None, 53, 53, Protocol::Udp),
        ("[::1]:8443:443/tcp", Some("::1"), 8443, 443, Protocol::Tcp),
    ];
    for (text, ip, host, container, protocol) in cases {
        let parsed = PortMapping::parse(text).unwrap();
        assert_eq!(
            parsed.host_ip.map(|i| i.to_string()).as_deref(),
            *ip,
            "{text}"
        );
        assert_eq!(
            (parsed.host_port, parsed.container_port, parsed.protocol),
            (*host, *container, *protocol)
        );
    }
}

#[test]
fn bad_ports_say_what_was_expected() {
    let cases = [
        ("80", "expected `[ip:]host:container"),
        ("70000:80", "out of range"),
        ("http:80", "not a number"),
        ("8080:80/sctp", "unknown protocol `sctp`"),
        ("localhost:80:80", "not an IP address"),
        ("0:80", "out of range"),
        ("1:2:3:4", "expected `[ip:]host:container"),
    ];
    for (text, expected) in cases {
        let err = PortMapping::parse(text).unwrap_err();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn volumes_parse_named_and_bind_mounts() {
    let v = VolumeMount::parse("data:/var/lib/data:ro").unwrap();
    assert_eq!(v.source, VolumeSource::Named("data".into()));
    assert!(v.read_only);
    let v = VolumeMount::parse("/srv/www:/usr/share/www").unwrap();
    assert_eq!(v.source, VolumeSource::Bind("/srv/www".into()));
    assert!(!v.read_only);
    for (bad, expected) in [
        ("./site:/www", "must be an absolute path"),
        ("data:relative", "must be absolute"),
        ("data:/x:rx", "unknown mode `rx`"),
        ("data", "expected `volume-name"),
        ("bad name:/x", "not a volume name"),
    ] {
        let err = VolumeMount::parse(bad).unwrap_err();
        assert!(err.contains(expected), "{bad}: {err}");
    }
}

#[test]
fn restart_memory_and_duration_parsers() {
    assert_eq!(
        RestartPolicy::parse("on-failure:3").unwrap(),
        RestartPolicy::OnFailure {
            max_retries: Some(3)
        }
    );
    assert!(
        RestartPolicy::parse("sometimes")
            .unwrap_err()
            .contains("expected no, always")
    );
    assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
    assert_eq!(parse_memory("2Gi").unwrap(), 2 << 30);
    assert_eq!(parse_memory("104857600").unwrap(), 100 << 20);
    assert!(
        parse_memory("lots")
            .unwrap_err()
            .contains("not a memory size")
    );
    assert!(parse_memory("1k").unwrap_err().contains("minimum"));
    assert!(parse_memory("5x").unwrap_err().contains("unknown unit"));
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn stop_signals_and_grace_periods_are_what_docker_accepts() {
    for ok in [
        "SIGTERM",
        "SIGINT",
        "SIGQUIT",
        "TERM",
        "sigusr1",
        "15",
        "9",
        "64",
        "SIGRTMIN+3",
        "RTMAX-1",
    ] {
        assert_eq!(check_stop_signal(ok), Ok(()), "{ok}");
    }
    for bad in ["SIGTERMX", "0", "65", "", "SIG", "RTMIN+16", "-9", "TERM "] {
        assert!(
            check_stop_signal(bad)
                .unwrap_err()
                .contains("is not a signal"),
            "{bad}"
        );
    }
    assert_eq!(parse_stop_grace_period("10s"), Ok(10));
    assert_eq!(parse_stop_grace_period("1m30s"), Ok(90));
    assert_eq!(parse_stop_grace_period("0s"), Ok(0));
    assert!(
        parse_stop_grace_period("1500ms")
            .unwrap_err()
            .contains("whole number of seconds")
    );
    assert!(
        parse_stop_grace_period("soon")
            .unwrap_err()
            .contains("not a duration")
    );
    assert!(
        parse_stop_grace_period("100years")
            .unwrap_err()
            .contains("too long")
    );
}

#[test]
fn healthcheck_test_maps_to_docker_form() {
    let exec = Healthcheck {
        test: CommandLine::Exec(vec!["wget".into(), "-q".into()]),
        interval: None,
        timeout: None,
        retries: None,
        start_period: None,
    };
    assert_eq!(exec.docker_test(), vec!["CMD", "wget", "-q"]);
    let shell = Healthcheck {
        test: CommandLine::Shell("curl -f localhost".into()),
        ..exec
    };
    assert_eq!(shell.docker_test(), vec!["CMD-SHELL", "curl -f localhost"]);
}
