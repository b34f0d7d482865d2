//! Errors of system info and preparation, each naming the server (the manifest's name) and what
//! was being done, and telling whether a retry may succeed on its own.

use ballast_ssh::SshError;

use crate::prepare::{PlanError, Step};
use crate::sysinfo::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The SSH connection failed or a command timed out (the SSH error names the server).
    #[error("{source} ({during})")]
    Ssh {
        server: String,
        during: String,
        source: SshError,
    },

    /// The system-info script itself failed (no POSIX `sh`, or the login shell refused it).
    #[error(
        "server `{server}`: the system-info script failed (exit status {}): {stderr}",
        exit_text(*exit)
    )]
    SystemInfoFailed {
        server: String,
        exit: Option<u32>,
        stderr: String,
    },

    /// The system-info output could not be understood.
    #[error("server `{server}`: {source}")]
    SystemInfo { server: String, source: ParseError },

    /// A requested package name is not one a package manager takes.
    #[error(
        "server `{server}`: package name {name:?} is not valid: use a plain distribution package \
         name (letters, digits, `+`, `.`, `_`, `-`; no version pins or globs)"
    )]
    InvalidPackageName { server: String, name: String },

    /// Preparation cannot be planned on this server (no privileges, unknown OS).
    #[error("server `{server}`: cannot prepare: {source}")]
    Plan { server: String, source: PlanError },

    /// A preparation step ran and failed, or `verify` found the server still not prepared.
    #[error(
        "server `{server}`: step {step} failed (exit status {}): {reason}",
        exit_text(*exit)
    )]
    StepFailed {
        server: String,
        step: Step,
        exit: Option<u32>,
        /// The last lines of the step's stderr (or stdout when stderr is empty).
        reason: String,
        /// The output says the failure is passing (package database locked, mirror unreachable).
        transient: bool,
    },
}

fn exit_text(exit: Option<u32>) -> String {
    exit.map_or_else(|| "none".to_string(), |e| e.to_string())
}

impl ServerError {
    /// The server (manifest name) the error is about.
    pub fn server(&self) -> &str {
        match self {
            ServerError::Ssh { server, .. }
            | ServerError::SystemInfoFailed { server, .. }
            | ServerError::SystemInfo { server, .. }
            | ServerError::InvalidPackageName { server, .. }
            | ServerError::Plan { server, .. }
            | ServerError::StepFailed { server, .. } => server,
        }
    }

    /// True when retrying later may succeed without anyone changing anything: the server was
    /// unreachable or the connection broke, a command timed out, the package database was
    /// locked by another process, or a mirror could not be reached.
    pub fn is_transient(&self) -> bool {
        match self {
            ServerError::Ssh { source, .. } => !source.is_terminal(),
            ServerError::StepFailed { transient, .. } => *transient,
            ServerError::SystemInfoFailed { .. }
            | ServerError::SystemInfo { .. }
            | ServerError::InvalidPackageName { .. }
            | ServerError::Plan { .. } => false,
        }
    }

    /// True when the server could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ServerError::Ssh { source, .. } if source.is_unreachable())
    }
}

/// Whether a failed command's output says the failure is passing: another package manager holds
/// the lock, or the network or a mirror failed.
pub(crate) fn output_is_transient(stdout: &str, stderr: &str) -> bool {
    const MARKERS: &[&str] = &[
        // apt / dpkg
        "could not get lock",
        "unable to acquire the dpkg frontend lock",
        "unable to lock directory",
        "is another process using it",
        "temporary failure resolving",
        "failed to fetch",
        "some index files failed to download",
        "could not connect to",
        "could not resolve",
        "connection timed out",
        "connection refused",
        "network is unreachable",
        "no route to host",
        "hash sum mismatch",
        // dnf
        "waiting for process with pid",
        "curl error",
        "cannot download repomd.xml",
        "failed to download metadata",
        // apk
        "unable to lock database",
        "temporary error",
        "network error",
    ];
    let haystack = format!("{stdout}\n{stderr}").to_ascii_lowercase();
    MARKERS.iter().any(|m| haystack.contains(m))
}
