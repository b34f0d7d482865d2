//! Token and ticket auth against a real fakepve: what works, what is refused and how clearly,
//! ticket renewal, and that no secret leaks into `Debug` or error text.

mod common;

use std::time::Duration;

use ballast_proxmox::{Action, Error, ProxmoxClient, TlsTrust};
use ballast_test_support::fakepve::{FakePve, POOL};
use common::{password_client, paths, token_client};

#[tokio::test]
async fn an_api_token_reads_and_writes() {
    let pve = FakePve::start();
    let client = token_client(&pve);
    let version = client.version().await.expect("version");
    assert!(version.version.starts_with('9'), "{version:?}");
    client
        .create_pool("token-pool", Some("made with a token"))
        .await
        .expect("a write with a token");
    let pool = client.pool("token-pool").await.expect("the new pool");
    assert_eq!(pool.comment.as_deref(), Some("made with a token"));
}

#[tokio::test]
async fn a_wrong_token_is_refused_clearly_and_not_retried() {
    let pve = FakePve::start();
    let client = ProxmoxClient::builder(&pve.endpoint)
        .api_token(&pve.token_id, "not-the-secret")
        .tls(TlsTrust::CaFile(pve.ca_path.clone()))
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("a wrong token");
    assert!(matches!(&err, Error::Auth { status: 401, .. }), "{err:?}");
    assert_eq!(err.action(), Action::Stop);
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("authentication failure"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
}

#[tokio::test]
async fn a_password_login_reads_and_writes_with_the_csrf_token() {
    let pve = FakePve::start();
    let client = password_client(&pve);
    let resources = client.cluster_resources().await.expect("a read");
    assert!(!resources.nodes.is_empty());
    // fakepve refuses a write without the ticket's CSRFPreventionToken header.
    client
        .create_pool("ticket-pool", None)
        .await
        .expect("a write with a ticket");
    client
        .add_to_pool(POOL, &[9000], false)
        .await
        .expect("another write");
    let logins = paths(&pve)
        .await
        .into_iter()
        .filter(|p| p == "POST /access/ticket")
        .count();
    assert_eq!(logins, 1, "one login serves every request");
}

#[tokio::test]
async fn a_wrong_password_is_refused_clearly() {
    let pve = FakePve::start();
    let client = ProxmoxClient::builder(&pve.endpoint)
        .password(&pve.user, "wrong-password-42")
        .tls(TlsTrust::CaFile(pve.ca_path.clone()))
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("a wrong password");
    assert!(matches!(&err, Error::Auth { status: 401, .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-password-42"), "{err}");
}

#[tokio::test]
async fn a_revoked_ticket_is_renewed_once() {
    let pve = FakePve::start();
    let client = password_client(&pve);
    client.version().await.expect("logged in");
    pve.control.revoke_tickets().await;
    pve.control.clear_requests().await;
    client.version().await.expect("a new login after the 401");
    assert_eq!(
        paths(&pve).await,
        ["GET /version", "POST /access/ticket", "GET /version"]
    );
}

#[tokio::test]
async fn an_old_ticket_is_renewed_before_it_expires() {
    let pve = FakePve::start();
    // Tickets that live 3 s on a client that renews after 1 s: it must log in again before
    // the server refuses the old ticket, so no request is ever answered 401.
    pve.control.set_ticket_ttl(3.0).await;
    let client = ProxmoxClient::builder(&pve.endpoint)
        .password(&pve.user, pve.password.as_str())
        .tls(TlsTrust::CaFile(pve.ca_path.clone()))
        .ticket_renew_after(Duration::from_secs(1))
        .build()
        .expect("builds");
    client.version().await.expect("first login");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.version().await.expect("after renewal");
    assert_eq!(
        paths(&pve).await,
        [
            "POST /access/ticket",
            "GET /version",
            "POST /access/ticket",
            "GET /version"
        ]
    );
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let pve = FakePve::start();
    for client in [token_client(&pve), password_client(&pve)] {
        client.version().await.expect("works");
        let text = format!("{client:?}");
        assert!(!text.contains(&pve.token_secret), "{text}");
        assert!(!text.contains(&pve.password), "{text}");
    }
}
