//! The SSH transport against a real sshd (Debian's `openssh-server`, started per test by
//! `ballast_test_support::sshd`): every key type, passwords, the host-key policies, commands,
//! time limits, the pool, a server that goes away and comes back, and unix-socket streams.

use std::time::{Duration, Instant};

use ballast_ssh::{
    Auth, HostKeyPolicy, SshConnection, SshError, SshPool, SshTarget, Timeouts, Zeroizing,
    fingerprint_of_public_key,
};
use ballast_test_support::sshd::{ClientKey, KEY_PASSPHRASE, Sshd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn key_auth(sshd: &Sshd, which: ClientKey) -> Auth {
    Auth::Key {
        private_key: Zeroizing::new(sshd.client_key(which)),
        passphrase: (which == ClientKey::Ed25519WithPassphrase)
            .then(|| Zeroizing::new(KEY_PASSPHRASE.to_string())),
    }
}

fn target(sshd: &Sshd, auth: Auth, host_key: HostKeyPolicy) -> SshTarget {
    SshTarget {
        name: "testbox".to_string(),
        address: "127.0.0.1".to_string(),
        port: sshd.port,
        user: sshd.user.clone(),
        auth,
        host_key,
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(1),
            keepalive_max: 2,
        },
    }
}

fn pinned(sshd: &Sshd) -> HostKeyPolicy {
    HostKeyPolicy::Pinned(sshd.host_key_fingerprint.clone())
}

async fn connect(target: &SshTarget, sshd: &Sshd) -> SshConnection {
    match SshConnection::open(target).await {
        Ok(c) => c,
        Err(e) => panic!("connect failed: {e}\nsshd log:\n{}", sshd.log()),
    }
}

#[tokio::test]
async fn every_key_type_logs_in() {
    let sshd = Sshd::start();
    for which in [
        ClientKey::Ed25519,
        ClientKey::Ecdsa,
        ClientKey::Rsa,
        ClientKey::RsaPem,
        ClientKey::Ed25519WithPassphrase,
    ] {
        let t = target(&sshd, key_auth(&sshd, which), pinned(&sshd));
        let conn = connect(&t, &sshd).await;
        let out = conn.exec("id -u", None).await.unwrap();
        assert_eq!(out.stdout.trim(), "0", "{which:?}: {out:?}");
        assert!(out.success(), "{which:?}: {out:?}");
        assert_eq!(conn.host_key_fingerprint(), sshd.host_key_fingerprint);
    }
    // RSA logins prove SHA-2 signatures: OpenSSH (since 8.8) refuses SHA-1 `ssh-rsa` by default.
}

#[tokio::test]
async fn a_wrong_or_missing_passphrase_is_a_bad_key() {
    let sshd = Sshd::start();
    let key = Zeroizing::new(sshd.client_key(ClientKey::Ed25519WithPassphrase));
    let wrong = target(
        &sshd,
        Auth::Key {
            private_key: key.clone(),
            passphrase: Some(Zeroizing::new("not the passphrase".into())),
        },
        pinned(&sshd),
    );
    let err = SshConnection::open(&wrong).await.unwrap_err();
    assert!(matches!(err, SshError::BadKey { .. }), "{err}");
    assert!(err.is_terminal() && !err.is_unreachable(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("testbox") && text.contains("passphrase"),
        "{text}"
    );
    assert!(
        !text.contains("not the passphrase"),
        "secret in error: {text}"
    );

    let missing = target(
        &sshd,
        Auth::Key {
            private_key: key,
            passphrase: None,
        },
        pinned(&sshd),
    );
    let err = SshConnection::open(&missing).await.unwrap_err();
    assert!(matches!(err, SshError::BadKey { .. }), "{err}");
    assert!(err.to_string().contains("no passphrase"), "{err}");

    let garbage = target(
        &sshd,
        Auth::Key {
            private_key: Zeroizing::new(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            ),
            passphrase: None,
        },
        pinned(&sshd),
    );
    let err = SshConnection::open(&garbage).await.unwrap_err();
    assert!(matches!(err, SshError::BadKey { .. }), "{err}");
}

#[tokio::test]
async fn password_logs_in_and_a_wrong_one_is_rejected() {
    let sshd = Sshd::start();
    let good = target(
        &sshd,
        Auth::Password(Zeroizing::new(sshd.password.clone())),
        pinned(&sshd),
    );
    let conn = connect(&good, &sshd).await;
    assert_eq!(conn.exec("echo hi", None).await.unwrap().stdout, "hi\n");

    let bad = target(
        &sshd,
        Auth::Password(Zeroizing::new("wrong-password".into())),
        pinned(&sshd),
    );
    let err = SshConnection::open(&bad).await.unwrap_err();
    match &err {
        SshError::AuthRejected {
            server,
            user,
            method,
        } => {
            assert_eq!(
                (server.as_str(), user.as_str(), *method),
                ("testbox", "root", "password")
            );
        }
        other => panic!("expected AuthRejected, got {other}"),
    }
    assert!(err.is_terminal());
    assert!(!format!("{err} {err:?}").contains("wrong-password"));
}

#[tokio::test]
async fn a_key_that_is_not_authorized_is_rejected() {
    let sshd = Sshd::start();
    let t = target(
        &sshd,
        key_auth(&sshd, ClientKey::NotAuthorized),
        pinned(&sshd),
    );
    let err = SshConnection::open(&t).await.unwrap_err();
    assert!(
        matches!(
            err,
            SshError::AuthRejected {
                method: "publickey",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`root`"), "{err}");
}

#[tokio::test]
async fn host_key_policies() {
    let sshd = Sshd::start();
    let other = Sshd::start();
    let auth = || key_auth(&sshd, ClientKey::Ed25519);
    assert_eq!(
        fingerprint_of_public_key(&sshd.host_public_key()).unwrap(),
        sshd.host_key_fingerprint
    );

    // Pinned, matching (also as people paste it: padding, blanks).
    connect(&target(&sshd, auth(), pinned(&sshd)), &sshd).await;
    let padded = HostKeyPolicy::Pinned(format!(" {}= ", sshd.host_key_fingerprint));
    connect(&target(&sshd, auth(), padded), &sshd).await;

    // Pinned to another server's key: both fingerprints in the message.
    let wrong = HostKeyPolicy::Pinned(other.host_key_fingerprint.clone());
    let err = SshConnection::open(&target(&sshd, auth(), wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&sshd.host_key_fingerprint), "{text}");
    assert!(text.contains(&other.host_key_fingerprint), "{text}");
    assert!(text.contains("hostKey"), "{text}");
    assert!(err.is_terminal());

    // Neither pinned nor trusted on first use: refused, with the fingerprint to pin.
    let err = SshConnection::open(&target(&sshd, auth(), HostKeyPolicy::RequirePin))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyNotPinned { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("hostKey: {}", sshd.host_key_fingerprint)),
        "{text}"
    );
    assert!(text.contains("trustOnFirstUse"), "{text}");

    // Trust on first use: the key is reported back, then held to.
    let first = HostKeyPolicy::TrustOnFirstUse { recorded: None };
    let conn = connect(&target(&sshd, auth(), first), &sshd).await;
    let recorded = conn.host_key_fingerprint().to_string();
    assert_eq!(recorded, sshd.host_key_fingerprint);
    let again = HostKeyPolicy::TrustOnFirstUse {
        recorded: Some(recorded.clone()),
    };
    connect(&target(&sshd, auth(), again), &sshd).await;

    // The same name and address now answered by another host key.
    let mut moved = target(
        &other,
        key_auth(&other, ClientKey::Ed25519),
        HostKeyPolicy::TrustOnFirstUse {
            recorded: Some(recorded.clone()),
        },
    );
    moved.name = "testbox".into();
    let err = SshConnection::open(&moved).await.unwrap_err();
    match &err {
        SshError::HostKeyMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, &recorded);
            assert_eq!(found, &other.host_key_fingerprint);
        }
        other => panic!("expected HostKeyMismatch, got {other}"),
    }
}

#[tokio::test]
async fn exec_reports_stdout_stderr_and_exit_status() {
    let sshd = Sshd::start();
    let conn = connect(
        &target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd)),
        &sshd,
    )
    .await;
    let out = conn
        .exec(
            "echo out; echo err >&2; printf 'caf\\303\\251\\n'; exit 3",
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "out\ncafé\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.exit_status, Some(3));
    assert!(!out.success());

    // Invalid UTF-8 comes through lossily rather than as an error.
    let out = conn.exec("printf '\\377ok'", None).await.unwrap();
    assert_eq!(out.stdout, "\u{fffd}ok");
    assert!(out.success());

    // Large output, more than one channel window's worth of packets.
    let out = conn.exec("seq 1 200000", None).await.unwrap();
    assert_eq!(out.stdout.lines().count(), 200_000);
    assert_eq!(out.stdout.lines().last(), Some("200000"));

    // A command killed by a signal has no exit status.
    let out = conn.exec("kill -KILL $$", None).await.unwrap();
    assert_eq!(out.exit_status, None, "{out:?}");
    assert_eq!(conn.commands_run(), 4);
}

#[tokio::test]
async fn a_command_that_overruns_times_out_and_the_connection_stays_usable() {
    let sshd = Sshd::start();
    let conn = connect(
        &target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd)),
        &sshd,
    )
    .await;
    let started = Instant::now();
    let err = conn
        .exec("sleep 30", Some(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match &err {
        SshError::Timeout { what, after, .. } => {
            assert!(what.contains("sleep 30"), "{what}");
            assert_eq!(*after, Duration::from_secs(1));
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(!err.is_unreachable() && !err.is_terminal());
    let out = conn.exec("echo ok", None).await.unwrap();
    assert_eq!(out.stdout, "ok\n");
    assert!(!conn.is_closed());
    // The overrunning `sleep` itself is not asserted gone: sshd refuses session signals to root
    // logins ("session signalling requires privilege separation"), so it runs to its end.
}

#[tokio::test]
async fn the_pool_reuses_one_connection_per_server() {
    let sshd = Sshd::start();
    let pool = SshPool::new();
    let mut t = target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd));
    let a = pool.connect(&t).await.unwrap();
    let b = pool.connect(&t).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(pool.connections_opened("testbox"), 1);

    // Concurrent callers share one new connection too.
    pool.disconnect("testbox");
    let (c, d) = tokio::join!(pool.connect(&t), pool.connect(&t));
    assert!(std::sync::Arc::ptr_eq(&c.unwrap(), &d.unwrap()));
    assert_eq!(pool.connections_opened("testbox"), 2);

    // Recording the trust-on-first-use key of the live connection keeps it.
    t.host_key = HostKeyPolicy::TrustOnFirstUse {
        recorded: Some(sshd.host_key_fingerprint.clone()),
    };
    pool.connect(&t).await.unwrap();
    assert_eq!(pool.connections_opened("testbox"), 2);

    // Other credentials are another identity: a new connection.
    t.auth = key_auth(&sshd, ClientKey::Ecdsa);
    pool.connect(&t).await.unwrap();
    assert_eq!(pool.connections_opened("testbox"), 3);

    // A failed connect leaves nothing behind and counts nothing.
    t.auth = key_auth(&sshd, ClientKey::NotAuthorized);
    assert!(pool.connect(&t).await.is_err());
    assert_eq!(pool.connections_opened("testbox"), 3);
    assert_eq!(pool.connections_opened("elsewhere"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_promptly_and_the_next_connect_resumes() {
    let mut sshd = Sshd::start();
    let pool = SshPool::new();
    let t = target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd));
    let conn = pool.connect(&t).await.unwrap();
    assert_eq!(
        conn.exec("echo before", None).await.unwrap().stdout,
        "before\n"
    );

    let running = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.exec("sleep 20", None).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    tokio::task::block_in_place(|| sshd.stop());
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("exec did not return within 10 s of the server going away")
        .unwrap();
    // Keepalive window: 2 unanswered keepalives 1 s apart, plus slack.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    let err = result.unwrap_err();
    assert!(matches!(err, SshError::Disconnected { .. }), "{err}");
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("testbox"), "{err}");

    // The connection knows it is gone; the next command says so at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.is_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(conn.is_closed());
    let err = conn.exec("echo after", None).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");

    // While the server is down, connecting is an unreachable error.
    let err = pool.connect(&t).await.unwrap_err();
    assert!(matches!(err, SshError::Connect { .. }), "{err}");

    tokio::task::block_in_place(|| sshd.restart());
    let again = pool.connect(&t).await.unwrap();
    assert_eq!(
        again.exec("echo after", None).await.unwrap().stdout,
        "after\n"
    );
    assert_eq!(pool.connections_opened("testbox"), 2);
}

/// A TCP relay to `port` that can go silent: once `cut` is set it neither forwards nor closes
/// anything, as a network that drops packets would.
async fn relay(port: u16) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, cut_rx.clone()));
            tokio::spawn(pipe(server_read, client_write, cut_rx.clone()));
        }
    });
    (relay_port, cut)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16384];
    loop {
        tokio::select! {
            _ = async { cut.wait_for(|c| *c).await.is_ok() } => break,
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
    // Silent from here on, both sockets held open.
    std::future::pending::<()>().await;
    drop((from, to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_network_is_noticed_by_keepalives() {
    let sshd = Sshd::start();
    let (port, cut) = relay(sshd.port).await;
    let mut t = target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd));
    t.port = port;
    let conn = connect(&t, &sshd).await;
    assert_eq!(conn.exec("echo ok", None).await.unwrap().stdout, "ok\n");
    let running = {
        let conn = std::sync::Arc::new(conn);
        let c = conn.clone();
        (
            conn,
            tokio::spawn(async move { c.exec("sleep 20", None).await }),
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut_at = Instant::now();
    cut.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), running.1)
        .await
        .expect("a silent network went unnoticed for 10 s")
        .unwrap();
    // 2 keepalives 1 s apart, unanswered, then the connection is declared dead.
    let took = cut_at.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    let err = result.unwrap_err();
    assert!(matches!(err, SshError::Disconnected { .. }), "{err}");
    assert!(err.to_string().contains("keepalive"), "{err}");
    assert!(running.0.is_closed());
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let sshd = Sshd::start();
    let mut t = target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd));
    // A port nobody listens on: bind one, note it, close it.
    t.port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = SshConnection::open(&t).await.unwrap_err();
    match &err {
        SshError::Connect {
            server, address, ..
        } => {
            assert_eq!(server, "testbox");
            assert_eq!(address, &format!("root@127.0.0.1:{}", t.port));
        }
        other => panic!("expected Connect, got {other}"),
    }
    assert!(err.is_unreachable() && !err.is_terminal(), "{err}");

    // An unknown host name is a Connect error as well.
    t.address = "no-such-host.invalid".into();
    let err = SshConnection::open(&t).await.unwrap_err();
    assert!(matches!(err, SshError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn a_silent_peer_times_out_connecting() {
    // Accepts TCP but never speaks SSH.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let t = SshTarget {
        name: "silent".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        auth: Auth::Password(Zeroizing::new("x".into())),
        host_key: HostKeyPolicy::RequirePin,
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            ..Timeouts::default()
        },
    };
    let started = Instant::now();
    let err = SshConnection::open(&t).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("silent"), "{err}");
    hold.abort();
}

#[tokio::test]
async fn unix_socket_streams_reach_the_server_side_socket() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let echo = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let conn = connect(
        &target(&sshd, key_auth(&sshd, ClientKey::Ed25519), pinned(&sshd)),
        &sshd,
    )
    .await;
    let path_text = path.to_str().unwrap();
    // Two streams at once over the one connection.
    let mut a = conn.open_unix_stream(path_text).await.unwrap();
    let mut b = conn.open_unix_stream(path_text).await.unwrap();
    a.write_all(b"hello a").await.unwrap();
    b.write_all(b"hello b").await.unwrap();
    let mut buf = [0u8; 7];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello a");
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello b");

    let Err(err) = conn.open_unix_stream("/nonexistent/ballast.sock").await else {
        panic!("a stream to a missing socket opened");
    };
    assert!(matches!(err, SshError::Channel { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/ballast.sock"),
        "{err}"
    );
    // The connection is fine after a refused channel.
    assert_eq!(conn.exec("echo ok", None).await.unwrap().stdout, "ok\n");
    echo.abort();
}
