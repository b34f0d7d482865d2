//! [`Error`]: every failure of the client, classified by what the caller must do about it
//! ([`Error::action`]): retry with backoff, read the configuration again, or stop.
//!
//! Proxmox reports most trouble as HTTP 500 with a message, so the class comes from the status
//! and from PVE's own wording ([`classify`]): `cluster not ready - no quorum?`, `VM is locked
//! (backup)`, `can't lock file '…' - got timeout`, `detected modified configuration - file changed
//! by other user? Try again.`, `Configuration file '…' does not exist`. The same rules classify a
//! failed task's exit status ([`crate::TaskFailure::error`]). No variant ever holds a secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::tls::Fingerprint;
use crate::upid::UpidError;

/// What a caller does about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transient (no quorum, node offline, guest locked, 5xx, transport): try again later with
    /// backoff; `after` is the server's `Retry-After` when it sent one.
    Retry { after: Option<Duration> },
    /// The configuration changed since it was read (stale digest): read it again, plan again,
    /// never overwrite blindly.
    Reread,
    /// Retrying changes nothing (bad request, auth, TLS, not found): report it.
    Stop,
}

/// A failed call. `context` is the request (`POST /nodes/pve1/qemu/101/config`) or the task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{context}: the cluster has no quorum (retry later): {message}")]
    NoQuorum { context: String, message: String },
    #[error(
        "{context}: node {node} is offline or unreachable (HTTP {status}, retry later): {message}"
    )]
    NodeOffline {
        context: String,
        node: String,
        status: u16,
        message: String,
    },
    #[error("{context}: the guest is locked (retry later): {message}")]
    Locked { context: String, message: String },
    #[error(
        "{context}: the configuration changed since it was read (stale digest; read it again): {message}"
    )]
    StaleDigest { context: String, message: String },
    #[error("{context}: Proxmox answered HTTP {status}: {message}")]
    Server {
        context: String,
        status: u16,
        message: String,
    },
    #[error("{context}: Proxmox is unavailable (HTTP 503{}): {message}", retry_after_text(*retry_after))]
    Unavailable {
        context: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{context}: {} (HTTP {status}): {message}", if *status == 403 { "permission denied" } else { "authentication failed" })]
    Auth {
        context: String,
        status: u16,
        message: String,
    },
    #[error("{context}: bad request: {}", bad_request_text(message, errors))]
    BadRequest {
        context: String,
        message: String,
        /// PVE's per-parameter messages (`errors` in the answer), by parameter name.
        errors: BTreeMap<String, String>,
    },
    #[error("{context}: not found: {message}")]
    NotFound { context: String, message: String },
    /// Another client error (4xx, 501) that retrying will not fix.
    #[error("{context}: HTTP {status}: {message}")]
    Api {
        context: String,
        status: u16,
        message: String,
    },
    /// The server's certificate was refused. `presented` is the SHA-256 fingerprint of the
    /// certificate the server showed, so a user who trusts it can pin it.
    #[error("{message}")]
    Tls {
        endpoint: String,
        message: String,
        presented: Option<Fingerprint>,
        expected: Option<Fingerprint>,
    },
    #[error("{context}: {message}")]
    Transport { context: String, message: String },
    #[error("{context}: unexpected answer from Proxmox: {message}")]
    Decode { context: String, message: String },
    /// The client could not be built (bad endpoint, unreadable CA file, bad token id).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    InvalidUpid(#[from] UpidError),
    #[error("task {upid} was still running after {waited:?}")]
    TaskTimeout { upid: String, waited: Duration },
}

fn retry_after_text(after: Option<Duration>) -> String {
    after
        .map(|d| format!(", retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

fn bad_request_text(message: &str, errors: &BTreeMap<String, String>) -> String {
    let mut out = message.trim().trim_end_matches('.').to_string();
    for (i, (param, text)) in errors.iter().enumerate() {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let sep = if i == 0 { ": " } else { "; " };
        let _ = write!(out, "{sep}{param}: {text}");
    }
    out
}

impl Error {
    /// What the caller must do: retry with backoff, re-read, or stop.
    pub fn action(&self) -> Action {
        match self {
            Error::NoQuorum { .. }
            | Error::NodeOffline { .. }
            | Error::Locked { .. }
            | Error::Server { .. }
            | Error::Transport { .. }
            | Error::TaskTimeout { .. } => Action::Retry { after: None },
            Error::Unavailable { retry_after, .. } => Action::Retry {
                after: *retry_after,
            },
            Error::StaleDigest { .. } => Action::Reread,
            Error::Auth { .. }
            | Error::BadRequest { .. }
            | Error::NotFound { .. }
            | Error::Api { .. }
            | Error::Tls { .. }
            | Error::Decode { .. }
            | Error::Config(_)
            | Error::InvalidUpid(_) => Action::Stop,
        }
    }

    /// True when [`Error::action`] is a retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self.action(), Action::Retry { .. })
    }
}

/// A non-2xx answer, as read off the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failure {
    pub status: u16,
    /// The body's `message`, or PVE's HTTP reason phrase (real PVE puts the message there).
    pub message: String,
    /// The body's `errors` object: per-parameter messages of a 400.
    pub errors: BTreeMap<String, String>,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<Duration>,
}

/// Classifies a failed request. `node` is the node the request addressed (from its path), for
/// [`Error::NodeOffline`].
pub fn classify(context: &str, node: Option<&str>, failure: Failure) -> Error {
    let context = context.to_string();
    let message = failure.message.trim().to_string();
    let status = failure.status;
    match status {
        400 => {
            return Error::BadRequest {
                context,
                message,
                errors: failure.errors,
            };
        }
        401 | 403 => {
            return Error::Auth {
                context,
                status,
                message,
            };
        }
        404 => return Error::NotFound { context, message },
        // The method does not exist on this PVE version: retrying cannot help.
        501 => {
            return Error::Api {
                context,
                status,
                message,
            };
        }
        // pveproxy's own answers when it cannot reach the node a request is for.
        595 | 596 => {
            return Error::NodeOffline {
                context,
                node: node.unwrap_or("?").to_string(),
                status,
                message,
            };
        }
        _ => {}
    }
    if let Some(error) = classify_message(&context, &message) {
        return error;
    }
    match status {
        503 => Error::Unavailable {
            context,
            message,
            retry_after: failure.retry_after,
        },
        500..=599 => Error::Server {
            context,
            status,
            message,
        },
        _ => Error::Api {
            context,
            status,
            message,
        },
    }
}

/// The class PVE's wording gives a message, whatever the status (tasks have none): no quorum,
/// locked, stale digest, not found; `None` for anything else.
pub fn classify_message(context: &str, message: &str) -> Option<Error> {
    let lower = message.to_ascii_lowercase();
    let context = context.to_string();
    let message = message.trim().to_string();
    if lower.contains("no quorum") {
        return Some(Error::NoQuorum { context, message });
    }
    if lower.contains("checksum mismatch")
        || lower.contains("checksum missmatch")
        || lower.contains("file changed by other user")
        || lower.contains("file change by other user")
        || lower.contains("detected modified configuration")
    {
        return Some(Error::StaleDigest { context, message });
    }
    if lower.contains("is locked (")
        || (lower.contains("can't lock file") && lower.contains("timeout"))
        || lower.contains("got lock timeout")
    {
        return Some(Error::Locked { context, message });
    }
    // `Configuration file '…' does not exist` (a guest), `pool 'x' does not exist`, `storage
    // 'x' does not exist`, `no such cluster node 'x'`, an unknown node name.
    if lower.contains("does not exist")
        || lower.contains("no such cluster node")
        || lower.contains("hostname lookup")
    {
        return Some(Error::NotFound { context, message });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, message: &str) -> Failure {
        Failure {
            status,
            message: message.to_string(),
            ..Failure::default()
        }
    }

    #[derive(Debug, PartialEq)]
    enum Class {
        NoQuorum,
        NodeOffline,
        Locked,
        Stale,
        Server,
        Unavailable,
        Auth,
        BadRequest,
        NotFound,
        Api,
    }

    fn class(error: &Error) -> Class {
        match error {
            Error::NoQuorum { .. } => Class::NoQuorum,
            Error::NodeOffline { .. } => Class::NodeOffline,
            Error::Locked { .. } => Class::Locked,
            Error::StaleDigest { .. } => Class::Stale,
            Error::Server { .. } => Class::Server,
            Error::Unavailable { .. } => Class::Unavailable,
            Error::Auth { .. } => Class::Auth,
            Error::BadRequest { .. } => Class::BadRequest,
            Error::NotFound { .. } => Class::NotFound,
            Error::Api { .. } => Class::Api,
            other => panic!("unexpected class {other:?}"),
        }
    }

    #[test]
    fn pve_answers_map_to_their_class() {
        let cases = [
            (500, "cluster not ready - no quorum?\n", Class::NoQuorum),
            (595, "No route to host", Class::NodeOffline),
            (596, "Connection timed out", Class::NodeOffline),
            (500, "VM is locked (backup)", Class::Locked),
            (500, "CT is locked (snapshot)", Class::Locked),
            (
                500,
                "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
                Class::Locked,
            ),
            (
                500,
                "can't lock file '/run/lock/lxc/pve-config-200.lock' - got timeout",
                Class::Locked,
            ),
            (
                500,
                "detected modified configuration - file changed by other user? Try again.",
                Class::Stale,
            ),
            (
                500,
                "checksum mismatch (file change by other user?)",
                Class::Stale,
            ),
            (
                500,
                "checksum missmatch (file change by other user?)",
                Class::Stale,
            ),
            (
                500,
                "Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist",
                Class::NotFound,
            ),
            (
                500,
                "hostname lookup 'pve9' failed - failed to get address info for: pve9",
                Class::NotFound,
            ),
            (500, "pool 'team' does not exist", Class::NotFound),
            (500, "internal error", Class::Server),
            (502, "Bad Gateway", Class::Server),
            (503, "Service Unavailable", Class::Unavailable),
            (401, "authentication failure", Class::Auth),
            (401, "permission denied - invalid PVE ticket", Class::Auth),
            (
                403,
                "Permission check failed (/vms/100, VM.Allocate)",
                Class::Auth,
            ),
            (400, "Parameter verification failed.", Class::BadRequest),
            (404, "Not Found", Class::NotFound),
            (
                501,
                "Method 'GET /nodes/pve1/nope' not implemented",
                Class::Api,
            ),
            (409, "cluster not ready - no quorum?", Class::NoQuorum),
        ];
        for (status, message, want) in cases {
            let error = classify("GET /x", Some("pve1"), failure(status, message));
            assert_eq!(class(&error), want, "{status} {message}");
        }
    }

    #[test]
    fn each_class_has_its_action() {
        let cases = [
            (
                500,
                "cluster not ready - no quorum?",
                Action::Retry { after: None },
            ),
            (595, "No route to host", Action::Retry { after: None }),
            (500, "VM is locked (backup)", Action::Retry { after: None }),
            (500, "internal error", Action::Retry { after: None }),
            (
                500,
                "detected modified configuration - file changed by other user? Try again.",
                Action::Reread,
            ),
            (401, "authentication failure", Action::Stop),
            (403, "Permission check failed", Action::Stop),
            (400, "Parameter verification failed.", Action::Stop),
            (
                500,
                "Configuration file 'nodes/pve1/lxc/9.conf' does not exist",
                Action::Stop,
            ),
        ];
        for (status, message, want) in cases {
            let error = classify("GET /x", None, failure(status, message));
            assert_eq!(error.action(), want, "{status} {message}");
        }
    }

    #[test]
    fn a_503_keeps_its_retry_after() {
        let error = classify(
            "GET /version",
            None,
            Failure {
                status: 503,
                message: "Service Unavailable".into(),
                retry_after: Some(Duration::from_secs(7)),
                ..Failure::default()
            },
        );
        assert_eq!(
            error.action(),
            Action::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(error.to_string().contains("retry after 7s"), "{error}");
    }

    #[test]
    fn node_offline_names_the_node() {
        let error = classify(
            "GET /nodes/pve2/status",
            Some("pve2"),
            failure(595, "No route to host"),
        );
        assert!(
            matches!(&error, Error::NodeOffline { node, .. } if node == "pve2"),
            "{error:?}"
        );
        assert!(error.to_string().contains("node pve2"), "{error}");
    }

    #[test]
    fn a_bad_request_says_what_each_parameter_got_wrong() {
        let mut errors = BTreeMap::new();
        errors.insert(
            "cores".to_string(),
            "type check ('integer') failed - got 'abc'".to_string(),
        );
        errors.insert(
            "memory".to_string(),
            "invalid format - format error\nmemory.current: type check ('integer') failed - got 'x'\n"
                .to_string(),
        );
        let error = classify(
            "POST /nodes/pve1/qemu/101/config",
            Some("pve1"),
            Failure {
                status: 400,
                message: "Parameter verification failed.\n".into(),
                errors,
                retry_after: None,
            },
        );
        assert_eq!(
            error.to_string(),
            "POST /nodes/pve1/qemu/101/config: bad request: Parameter verification failed: \
             cores: type check ('integer') failed - got 'abc'; memory: invalid format - format \
             error memory.current: type check ('integer') failed - got 'x'"
        );
    }

    #[test]
    fn a_message_without_a_known_wording_has_no_class() {
        assert_eq!(classify_message("task", "clone failed: out of space"), None);
    }
}
