//! Shared by the integration tests: clients for a running fakepve, and task waiting.

#![allow(dead_code)]

use std::time::Duration;

use ballast_proxmox::{ProxmoxClient, TaskState, TlsTrust, Upid};
use ballast_test_support::fakepve::FakePve;

/// A client with the fake's API token, trusting its CA.
pub fn token_client(pve: &FakePve) -> ProxmoxClient {
    ProxmoxClient::builder(&pve.endpoint)
        .api_token(&pve.token_id, pve.token_secret.as_str())
        .tls(TlsTrust::CaFile(pve.ca_path.clone()))
        .build()
        .expect("a token client")
}

/// A client logging in with the fake's user and password, trusting its CA.
pub fn password_client(pve: &FakePve) -> ProxmoxClient {
    ProxmoxClient::builder(&pve.endpoint)
        .password(&pve.user, pve.password.as_str())
        .tls(TlsTrust::CaFile(pve.ca_path.clone()))
        .build()
        .expect("a password client")
}

/// Waits for a task to end (fakepve's tasks are short).
pub async fn finish(client: &ProxmoxClient, upid: &Upid) -> TaskState {
    client
        .wait_task(upid, Duration::from_millis(50), Duration::from_secs(30))
        .await
        .expect("the task ends")
}

/// Waits for a task and insists it succeeded.
pub async fn succeed(client: &ProxmoxClient, upid: &Upid) {
    match finish(client, upid).await {
        TaskState::Succeeded { .. } => {}
        other => panic!("task {upid} did not succeed: {other:?}"),
    }
}

/// The API paths (without `/api2/json`) of the requests the fake answered.
pub async fn paths(pve: &FakePve) -> Vec<String> {
    pve.control
        .requests()
        .await
        .into_iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.strip_prefix("/api2/json").unwrap_or(&r.path)
            )
        })
        .collect()
}
