//! TLS against a real fakepve serving a leaf certificate signed by a generated CA: trust by the
//! CA, by a pinned fingerprint, refusals that show the presented fingerprint, and the explicit
//! insecure mode.

mod common;

use ballast_proxmox::{Action, Error, Fingerprint, ProxmoxClient, TlsTrust};
use ballast_test_support::fakepve::{FakePve, unrelated_ca_pem};

fn client(pve: &FakePve, trust: TlsTrust) -> ProxmoxClient {
    ProxmoxClient::builder(&pve.endpoint)
        .api_token(&pve.token_id, pve.token_secret.as_str())
        .tls(trust)
        .build()
        .expect("builds")
}

fn presented(pve: &FakePve) -> Fingerprint {
    pve.cert_fingerprint
        .parse()
        .expect("the fake's fingerprint")
}

#[tokio::test]
async fn the_ca_file_and_the_ca_text_are_trusted() {
    let pve = FakePve::start();
    for trust in [
        TlsTrust::CaFile(pve.ca_path.clone()),
        TlsTrust::CaPem(pve.ca_pem.clone().into_bytes()),
    ] {
        client(&pve, trust).version().await.expect("verified");
    }
}

#[tokio::test]
async fn a_pinned_fingerprint_is_trusted_without_a_ca() {
    let pve = FakePve::start();
    let pinned = client(&pve, TlsTrust::Fingerprint(presented(&pve)));
    pinned.version().await.expect("the pinned certificate");
}

#[tokio::test]
async fn a_wrong_pin_is_refused_with_both_fingerprints() {
    let pve = FakePve::start();
    let wrong: Fingerprint = "AB".repeat(32).parse().expect("a fingerprint");
    let err = client(&pve, TlsTrust::Fingerprint(wrong))
        .version()
        .await
        .expect_err("the wrong pin");
    let Error::Tls {
        presented: Some(got),
        expected: Some(want),
        ..
    } = &err
    else {
        panic!("expected a TLS error with both fingerprints, got {err:?}");
    };
    assert_eq!(*got, presented(&pve));
    assert_eq!(*want, wrong);
    let text = err.to_string();
    assert!(text.contains(&pve.cert_fingerprint), "{text}");
    assert!(text.contains(&wrong.to_string()), "{text}");
    assert_eq!(err.action(), Action::Stop);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_with_its_fingerprint_to_pin() {
    let pve = FakePve::start();
    for trust in [
        // The default: the public roots, which never signed a lab CA.
        TlsTrust::PublicRoots,
        // Another CA than the one that signed the server's certificate.
        TlsTrust::CaPem(unrelated_ca_pem().into_bytes()),
    ] {
        let err = client(&pve, trust.clone())
            .version()
            .await
            .expect_err("an untrusted certificate");
        let Error::Tls {
            presented: Some(got),
            expected: None,
            ..
        } = &err
        else {
            panic!("{trust:?}: expected a TLS error with the presented fingerprint, got {err:?}");
        };
        assert_eq!(*got, presented(&pve), "{trust:?}");
        let text = err.to_string();
        assert!(text.contains(&pve.cert_fingerprint), "{text}");
        assert!(text.contains("pin"), "{text}");
        assert_eq!(err.action(), Action::Stop);
    }
}

#[tokio::test]
async fn insecure_skip_verify_accepts_the_certificate() {
    let pve = FakePve::start();
    client(&pve, TlsTrust::InsecureSkipVerify)
        .version()
        .await
        .expect("no verification");
}
