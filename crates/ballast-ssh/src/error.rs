//! Errors of the SSH transport, each naming the server and what was tried. None carries a
//! secret.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The server presented another host key than the pinned or recorded one.
    #[error(
        "{}host key mismatch: expected {expected}, but the server presented {found}; if the server's key changed on purpose (reinstall, new host key), update `hostKey` in the Server's spec (or forget the key recorded by trust on first use), otherwise someone may be intercepting the connection",
        who(server)
    )]
    HostKeyMismatch {
        server: String,
        expected: String,
        found: String,
    },

    /// No pin and no trust on first use.
    #[error(
        "{}refusing to connect: the host key is not pinned; the server presented {found}: after checking it (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server), add `hostKey: {found}` to the Server's spec, or `trustOnFirstUse: true`",
        who(server)
    )]
    HostKeyNotPinned { server: String, found: String },

    #[error(
        "{}the server rejected {method} authentication as user `{user}`",
        who(server)
    )]
    AuthRejected {
        server: String,
        user: String,
        method: &'static str,
    },

    /// A key cannot be parsed, or a private key cannot be decrypted (wrong or missing
    /// passphrase).
    #[error("{}unusable key: {reason}", who(server))]
    BadKey { server: String, reason: String },

    /// Refused, DNS failure, unreachable network, failed handshake.
    #[error("{}cannot connect to {address}: {reason}", who(server))]
    Connect {
        server: String,
        address: String,
        reason: String,
    },

    #[error("{}{what}: no result after {}", who(server), seconds(*after))]
    Timeout {
        server: String,
        what: String,
        after: Duration,
    },

    /// The connection went away (closed by the server, keepalives unanswered, network gone).
    #[error("{}the SSH connection is lost: {reason}", who(server))]
    Disconnected { server: String, reason: String },

    /// The server refused or broke one channel; the connection itself is fine.
    #[error("{}{what}: {reason}", who(server))]
    Channel {
        server: String,
        what: String,
        reason: String,
    },
}

/// `Timeout::what` of a connection attempt starts with this.
pub(crate) const CONNECTING: &str = "connecting to";

fn who(server: &str) -> String {
    if server.is_empty() {
        String::new()
    } else {
        format!("server `{server}`: ")
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl SshError {
    /// The server could not be reached or the connection was lost: waiting and retrying may
    /// help without anyone changing anything.
    pub fn is_unreachable(&self) -> bool {
        match self {
            SshError::Connect { .. } | SshError::Disconnected { .. } => true,
            SshError::Timeout { what, .. } => what.starts_with(CONNECTING),
            _ => false,
        }
    }

    /// Retrying will not help until the configuration changes: the host key, the credentials or
    /// the key itself is wrong.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SshError::HostKeyMismatch { .. }
                | SshError::HostKeyNotPinned { .. }
                | SshError::AuthRejected { .. }
                | SshError::BadKey { .. }
        )
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        match self {
            SshError::HostKeyMismatch { server, .. }
            | SshError::HostKeyNotPinned { server, .. }
            | SshError::AuthRejected { server, .. }
            | SshError::BadKey { server, .. }
            | SshError::Connect { server, .. }
            | SshError::Timeout { server, .. }
            | SshError::Disconnected { server, .. }
            | SshError::Channel { server, .. } => server,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_server_and_what_to_do() {
        let e = SshError::HostKeyNotPinned {
            server: "nas01".into(),
            found: "SHA256:abc".into(),
        };
        let text = e.to_string();
        assert!(text.starts_with("server `nas01`: refusing"), "{text}");
        assert!(text.contains("`hostKey: SHA256:abc`"), "{text}");
        assert!(text.contains("trustOnFirstUse: true"), "{text}");
        assert!(e.is_terminal() && !e.is_unreachable());

        let e = SshError::Timeout {
            server: "nas01".into(),
            what: format!("{CONNECTING} 10.0.0.5:22"),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "server `nas01`: connecting to 10.0.0.5:22: no result after 1.5 s"
        );
        assert!(e.is_unreachable() && !e.is_terminal());

        let e = SshError::Timeout {
            server: "nas01".into(),
            what: "running `sleep 30`".into(),
            after: Duration::from_secs(1),
        };
        assert!(!e.is_unreachable() && !e.is_terminal());
        assert_eq!(e.server(), "nas01");

        let e = SshError::BadKey {
            server: String::new(),
            reason: "not a public key".into(),
        };
        assert_eq!(e.to_string(), "unusable key: not a public key");
    }
}
