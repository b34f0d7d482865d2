//! A typed client for the Proxmox VE API (one cluster endpoint), and pure helpers for its values.
//!
//! What it covers:
//! - **Auth** by API token (`PVEAPIToken=USER@REALM!NAME=SECRET`) or by user and password
//!   (ticket cookie plus `CSRFPreventionToken` on writes, renewed before it expires, one
//!   re-login on a 401). Secrets are [`Secret`]s: never in `Debug`, errors or logs.
//! - **TLS** verified against a CA ([`TlsTrust::CaFile`]), a pinned SHA-256 fingerprint
//!   ([`TlsTrust::Fingerprint`]) or the public roots; only [`TlsTrust::InsecureSkipVerify`]
//!   turns checking off. A refused certificate's error shows its fingerprint, to pin.
//! - **Observe** a cluster in one request ([`ProxmoxClient::cluster_resources`]: every guest,
//!   node and storage), plus cluster status and quorum, next free vmid, nodes, storage, guest
//!   configs with their `digest` (and QEMU's pending changes), pools.
//! - **Change** guests: create, clone, update config (with the digest it was planned against),
//!   resize, power, convert to template, delete. Each asynchronous call answers the task's
//!   [`Upid`] at once, without waiting.
//! - **Tasks**: [`ProxmoxClient::poll_task`] needs only the UPID (its node is part of it), so a
//!   task started before a restart is polled after it: [`TaskState::Running`] with progress,
//!   `Succeeded` (warnings included) or `Failed` with `TASK ERROR: …` and the log's tail.
//! - **Errors** ([`Error`]) say what to do ([`Error::action`]): retry with backoff (no quorum,
//!   node offline, guest locked, 5xx, 503 with `Retry-After`, transport), re-read (stale
//!   digest), or stop (bad request with PVE's per-parameter messages, auth, TLS, not found).
//! - **Values**: numbers that come as strings and booleans as `1`/`0` parse everywhere
//!   ([`lenient`]); property strings and sizes ([`PropertyString`], [`parse_size`]).
//!
//! ```no_run
//! use ballast_proxmox::{ProxmoxClient, QemuClone, TaskState, TlsTrust, Upid};
//!
//! # async fn example() -> Result<(), ballast_proxmox::Error> {
//! let client = ProxmoxClient::builder("https://pve1.lab:8006")
//!     .api_token("root@pam!ballast", std::env::var("PVE_TOKEN").unwrap_or_default())
//!     .tls(TlsTrust::CaFile("/etc/ballast/pve-root-ca.pem".into()))
//!     .build()?;
//!
//! // One request: every guest, node and storage.
//! let resources = client.cluster_resources().await?;
//! let Some(template) = resources.guests.iter().find(|g| g.template) else {
//!     return Ok(());
//! };
//!
//! // Start a clone; the UPID comes back at once.
//! let clone = QemuClone { newid: client.next_id().await?, name: Some("web1".into()),
//!                         full: Some(true), ..QemuClone::default() };
//! let upid = client.qemu_clone(&template.node, template.vmid, &clone).await?;
//! let recorded = upid.to_string(); // store it
//!
//! // Later, maybe in another process: poll from the id alone.
//! let upid: Upid = recorded.parse()?;
//! match client.poll_task(&upid).await? {
//!     TaskState::Running { progress, .. } => println!("still cloning: {progress:?}"),
//!     TaskState::Succeeded { warnings, .. } => println!("done ({} warnings)", warnings.len()),
//!     TaskState::Failed(failure) => println!("{failure}; retry? {}", failure.error().is_retryable()),
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod client;
mod config;
mod error;
pub mod lenient;
mod secret;
mod task;
mod tls;
mod types;
mod upid;

pub use api::LOG_TAIL_LINES;
pub use client::{ClientBuilder, Credentials, ProxmoxClient};
pub use config::{
    ConfigUpdate, DeleteOptions, DiskSize, Drive, LxcClone, LxcConfig, LxcCreate, LxcFeatures,
    LxcNet, Mount, ParamValue, Params, PendingEntry, PowerAction, PropertyString, QemuClone,
    QemuConfig, QemuCreate, QemuNet, format_size, is_qemu_disk_key, parse_size,
};
pub use error::{Action, Error, Failure, classify, classify_message};
pub use secret::Secret;
pub use task::{
    TaskFailure, TaskLog, TaskLogLine, TaskState, TaskStatus, parse_percent, parse_warnings,
    task_state,
};
pub use tls::{Fingerprint, FingerprintError, TlsTrust};
pub use types::{
    ClusterNode, ClusterResources, ClusterStatus, CpuInfo, GuestKind, GuestRef, GuestResource,
    NodeResource, NodeStatus, NodeStorage, Pool, PoolMember, StorageConfig, StorageResource, Usage,
    Version, split_tags,
};
pub use upid::{Upid, UpidError};
