//! Redfish for ballast's firmware plans: a typed client for one BMC, and the pure helpers a
//! firmware campaign needs.
//!
//! - [`RedfishClient`] (reqwest over rustls): ONE session per BMC shared by every call and
//!   clone, logged in lazily, logged in again once on 401, logged out by
//!   [`RedfishClient::close`] (or always, by [`RedfishClient::scoped`]); basic auth when the
//!   service offers no sessions; trust by CA file, pinned SHA-256 fingerprint or an explicit
//!   insecure flag ([`TlsVerify`]). Reads the service root (vendor, `$expand` support), systems,
//!   managers, the UpdateService and the firmware inventory ([`RedfishClient::observe`]: two
//!   requests on a BMC with `$expand`); starts `ComputerSystem.Reset`, `SimpleUpdate` and
//!   multipart pushes and returns their task monitor at once ([`Operation::Started`]);
//!   [`RedfishClient::poll_task`] reads a monitor (DMTF tasks and Dell jobs alike) later, from
//!   any process. Errors say what to do next ([`RedfishError::class`]).
//! - [`catalog`]: Dell `Catalog.xml(.gz)`, the newest package per component for a model.
//! - [`window`]: weekly maintenance windows with time zones (`sat 01:00-05:00 Europe/Berlin`).
//! - [`hostrun`]: the host-run state machine and the campaign scheduler.
//!
//! ```no_run
//! use ballast_redfish::{BmcConfig, RedfishClient, SimpleUpdate, ApplyTime, Operation, TaskProgress, TlsVerify};
//!
//! # async fn demo() -> Result<(), ballast_redfish::RedfishError> {
//! let tls = TlsVerify::fingerprint("AB:CD:…")?;
//! let client = RedfishClient::new(BmcConfig::new("10.0.0.5", None, "root", "calvin", tls)?)?;
//! let monitor = client
//!     .clone()
//!     .scoped(|c| Box::pin(async move {
//!         let seen = c.observe().await?; // systems + firmware inventory
//!         println!("{} {:?}", seen.root.vendor, seen.bmc_firmware_version());
//!         c.simple_update(&SimpleUpdate {
//!             image_uri: "https://repo.example/BIOS_2.19.1.bin".into(),
//!             apply_time: Some(ApplyTime::OnReset),
//!             ..Default::default()
//!         })
//!         .await
//!     }))
//!     .await?;
//! if let Operation::Started(monitor) = monitor {
//!     // Store `monitor` (the external id); poll it later, possibly after a restart:
//!     match client.poll_task(&monitor).await? {
//!         TaskProgress::Running { percent, .. } => println!("{percent:?} %"),
//!         TaskProgress::AwaitingReset { .. } => { /* reset the system, then verify */ }
//!         other => println!("{other:?}"),
//!     }
//!     client.close().await?;
//! }
//! # Ok(()) }
//! ```

pub mod catalog;
mod client;
mod error;
pub mod hostrun;
mod model;
mod secret;
mod task;
mod tls;
pub mod window;

pub use client::{
    AuthMode, BmcConfig, BmcObservation, PushUpdate, RedfishClient, SimpleUpdate, parse_retry_after,
};
pub use error::{ErrorClass, RedfishError, RedfishMessage, error_messages};
pub use model::{
    ApplyTime, ComputerSystem, Expand, FirmwareComponent, InventoryState, Manager, PowerState,
    ResetType, ServiceRoot, Status, UpdateService, Vendor,
};
pub use secret::Secret;
pub use task::{Operation, TaskMonitor, TaskProgress, parse_task};
pub use tls::{
    TlsVerify, certificate_fingerprint, client_config, format_fingerprint, parse_fingerprint,
};
