//! What to connect to and how: address, credentials, the host-key policy and the time limits.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

/// One server as the SSH transport sees it.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// The Server's name, used in every message.
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    pub host_key: HostKeyPolicy,
    pub timeouts: Timeouts,
}

impl SshTarget {
    /// `user@address:port`, for messages.
    pub fn display_address(&self) -> String {
        format!("{}@{}", self.user, self.host_port())
    }

    /// `address:port` (IPv6 literals in brackets).
    pub fn host_port(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// How to authenticate. `Debug` shows which method, never the secret.
#[derive(Clone)]
pub enum Auth {
    /// A private key in OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`) or PEM format
    /// (ed25519, ECDSA or RSA), with its passphrase when it is encrypted.
    Key {
        private_key: Zeroizing<String>,
        passphrase: Option<Zeroizing<String>>,
    },
    Password(Zeroizing<String>),
}

impl Auth {
    /// The SSH method name (`publickey`, `password`), as messages and sshd's log call it.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::Key { .. } => "publickey",
            Auth::Password(_) => "password",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Key { passphrase, .. } => f
                .debug_struct("Key")
                .field("private_key", &"<redacted>")
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .finish(),
            Auth::Password(_) => f.debug_tuple("Password").field(&"<redacted>").finish(),
        }
    }
}

/// Which host keys to accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// `hostKey: SHA256:…` in the manifest: anything else fails, showing both fingerprints.
    Pinned(String),
    /// The server opted in to trust on first use: `recorded` is the fingerprint ballast recorded
    /// earlier (None the first time: any key is accepted and reported back via
    /// `SshConnection::host_key_fingerprint`, and the caller records it). A mismatch fails.
    TrustOnFirstUse { recorded: Option<String> },
    /// No pin and no TOFU: refuse, with the fingerprint to pin in the message.
    RequirePin,
}

impl HostKeyPolicy {
    /// Whether a server presenting `fingerprint` (`SHA256:…`) is accepted.
    pub fn accepts(&self, fingerprint: &str) -> bool {
        match self {
            HostKeyPolicy::Pinned(pin) => same_fingerprint(pin, fingerprint),
            HostKeyPolicy::TrustOnFirstUse { recorded: None } => true,
            HostKeyPolicy::TrustOnFirstUse {
                recorded: Some(recorded),
            } => same_fingerprint(recorded, fingerprint),
            HostKeyPolicy::RequirePin => false,
        }
    }

    /// The fingerprint a connection must present, when there is one.
    pub(crate) fn expected(&self) -> Option<&str> {
        match self {
            HostKeyPolicy::Pinned(pin) => Some(pin),
            HostKeyPolicy::TrustOnFirstUse { recorded } => recorded.as_deref(),
            HostKeyPolicy::RequirePin => None,
        }
    }
}

/// Compares fingerprints as people copy them: surrounding blanks and base64 padding (which some
/// tools print and `ssh-keygen` does not) are ignored; the `SHA256:` prefix is required on the
/// one ballast computed and optional on the configured one.
fn same_fingerprint(configured: &str, computed: &str) -> bool {
    let configured = configured.trim().trim_end_matches('=');
    let configured = configured.strip_prefix("SHA256:").unwrap_or(configured);
    computed.strip_prefix("SHA256:") == Some(configured)
}

/// Time limits of one server's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, SSH handshake and authentication together.
    pub connect: Duration,
    /// Default limit of one `exec`.
    pub command: Duration,
    /// A keepalive is sent after this long without anything from the server.
    pub keepalive_interval: Duration,
    /// The connection is declared dead after this many unanswered keepalives.
    pub keepalive_max: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_as_people_paste_them() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        let cases = [
            ("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", true),
            (
                " SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\n",
                true,
            ),
            ("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s=", true),
            ("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", true),
            ("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2S", false),
            ("MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48", false),
            ("", false),
        ];
        for (configured, expected) in cases {
            assert_eq!(
                HostKeyPolicy::Pinned(configured.to_string()).accepts(fp),
                expected,
                "{configured:?}"
            );
        }
    }

    #[test]
    fn policies_accept_what_they_say() {
        let fp = "SHA256:abc";
        assert!(HostKeyPolicy::TrustOnFirstUse { recorded: None }.accepts(fp));
        assert!(
            HostKeyPolicy::TrustOnFirstUse {
                recorded: Some(fp.into())
            }
            .accepts(fp)
        );
        assert!(
            !HostKeyPolicy::TrustOnFirstUse {
                recorded: Some("SHA256:other".into())
            }
            .accepts(fp)
        );
        assert!(!HostKeyPolicy::RequirePin.accepts(fp));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let key = Auth::Key {
            private_key: Zeroizing::new("-----BEGIN OPENSSH PRIVATE KEY----- secret-key".into()),
            passphrase: Some(Zeroizing::new("secret-pass".into())),
        };
        let password = Auth::Password(Zeroizing::new("secret-password".into()));
        let target = SshTarget {
            name: "nas01".into(),
            address: "10.0.0.5".into(),
            port: 22,
            user: "root".into(),
            auth: key,
            host_key: HostKeyPolicy::RequirePin,
            timeouts: Timeouts::default(),
        };
        let text = format!("{target:?} {target:#?} {password:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.contains("nas01"), "{text}");
    }

    #[test]
    fn addresses_display_with_brackets_for_ipv6() {
        let mut target = SshTarget {
            name: "n".into(),
            address: "fd00::5".into(),
            port: 2222,
            user: "admin".into(),
            auth: Auth::Password(Zeroizing::new(String::new())),
            host_key: HostKeyPolicy::RequirePin,
            timeouts: Timeouts::default(),
        };
        assert_eq!(target.display_address(), "admin@[fd00::5]:2222");
        target.address = "nas01.lan".into();
        assert_eq!(target.host_port(), "nas01.lan:2222");
    }
}
