//! The Server kind's work on a machine reached over SSH: learn what it is ([`sysinfo`]: OS,
//! resources, privileges, Docker, packages) and prepare it ([`prepare`]: install packages and
//! Docker, start Docker), step by step with a log, idempotently.
//!
//! Everything runs through one [`ballast_ssh::SshConnection`]; the plan of a preparation is a
//! pure function of the gathered [`SystemInfo`], so `diff` can show it without changing anything.

mod error;
pub mod prepare;
pub mod sysinfo;

pub use error::ServerError;
pub use prepare::{
    PlanError, PlannedStep, PrepareSpec, Step, StepAction, StepEvent, StepStatus, needs_work, plan,
    run,
};
pub use sysinfo::{
    DockerStatus, InitSystem, PackageManager, ParseError, SystemInfo, gather, parse,
    valid_package_name,
};
