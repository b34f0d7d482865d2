//! One authenticated SSH connection (russh): connecting with the host-key policy and the
//! credentials, running commands, and opening streams to unix sockets on the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, AuthResult, DisconnectReason, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Sig};
use zeroize::Zeroizing;

use crate::error::{CONNECTING, SshError};
use crate::target::{Auth, HostKeyPolicy, SshTarget, Timeouts};

/// A byte stream to a unix socket on the server, carried by one SSH channel.
pub type SshStream = russh::ChannelStream<client::Msg>;

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// None when the command was killed by a signal (or the server sent no status).
    pub exit_status: Option<u32>,
    /// Lossy UTF-8.
    pub stdout: String,
    /// Lossy UTF-8.
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }
}

/// The fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of a public key line such as
/// `ssh-ed25519 AAAA… comment`.
pub fn fingerprint_of_public_key(openssh_public_key_line: &str) -> Result<String, SshError> {
    let key =
        PublicKey::from_openssh(openssh_public_key_line.trim()).map_err(|e| SshError::BadKey {
            server: String::new(),
            reason: format!("not an OpenSSH public key line (`type base64 [comment]`): {e}"),
        })?;
    Ok(fingerprint(&key))
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// What the russh session task tells the connection.
#[derive(Default)]
struct Shared {
    /// The host key the server presented.
    fingerprint: Option<String>,
    /// Why the session ended, once it has.
    disconnect_reason: Option<String>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The russh handler: checks the host key against the policy and remembers why the session
/// ended.
struct Client {
    server: String,
    policy: HostKeyPolicy,
    timeouts: Timeouts,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug)]
enum HandlerError {
    Russh(russh::Error),
    /// The host key was refused; carries the error for the caller as it is.
    HostKey(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for Client {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let found = fingerprint(&server_public_key.public_key());
        lock(&self.shared).fingerprint = Some(found.clone());
        if self.policy.accepts(&found) {
            return Ok(true);
        }
        let server = self.server.clone();
        Err(HandlerError::HostKey(match self.policy.expected() {
            Some(expected) => SshError::HostKeyMismatch {
                server,
                expected: expected.trim().to_string(),
                found,
            },
            None => SshError::HostKeyNotPinned { server, found },
        }))
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let text = match &reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                let message = info.message.trim();
                if message.is_empty() {
                    format!("the server closed the connection ({:?})", info.reason_code)
                } else {
                    format!(
                        "the server closed the connection ({:?}: {message})",
                        info.reason_code
                    )
                }
            }
            DisconnectReason::Error(HandlerError::Russh(e)) => session_error(e, &self.timeouts),
            DisconnectReason::Error(HandlerError::HostKey(e)) => e.to_string(),
        };
        tracing::debug!(server = %self.server, reason = %text, "ssh connection ended");
        lock(&self.shared).disconnect_reason = Some(text);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// A russh session error in words.
fn session_error(e: &russh::Error, timeouts: &Timeouts) -> String {
    match e {
        russh::Error::KeepaliveTimeout => format!(
            "the server did not answer {} keepalives sent every {} s",
            timeouts.keepalive_max,
            timeouts.keepalive_interval.as_secs()
        ),
        russh::Error::Disconnect | russh::Error::HUP => {
            "the connection was closed by the server or the network".to_string()
        }
        russh::Error::IO(io) => format!("network error: {io}"),
        other => other.to_string(),
    }
}

/// One live, authenticated SSH connection; cheap to share (`Arc`). Every step and every Docker
/// request for one server goes over it (one channel each).
pub struct SshConnection {
    server: String,
    address: String,
    fingerprint: String,
    timeouts: Timeouts,
    handle: Handle<Client>,
    shared: Arc<Mutex<Shared>>,
    commands: AtomicU64,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection")
            .field("server", &self.server)
            .field("address", &self.address)
            .field("host_key_fingerprint", &self.fingerprint)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl SshConnection {
    /// Connects and authenticates, all within `timeouts.connect`.
    pub async fn open(target: &SshTarget) -> Result<SshConnection, SshError> {
        // Decoding (and decrypting) the key first: a bad key fails without touching the network.
        let key = match &target.auth {
            Auth::Key {
                private_key,
                passphrase,
            } => Some(decode_key(target, private_key, passphrase.as_ref()).await?),
            Auth::Password(_) => None,
        };
        let after = target.timeouts.connect;
        match tokio::time::timeout(after, handshake(target, key)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout {
                server: target.name.clone(),
                what: format!(
                    "{CONNECTING} {} (TCP, SSH handshake and authentication)",
                    target.display_address()
                ),
                after,
            }),
        }
    }

    /// "SHA256:base64-no-padding", as `ssh-keygen -l` prints it.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Exec calls made on this connection (for benchmarks).
    pub fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Runs `command` through the remote shell; `timeout` None = `Timeouts::command`. On timeout
    /// the command is sent SIGTERM, its channel closed and `SshError::Timeout` returned (the
    /// connection stays usable).
    ///
    /// sshd delivers that signal only to sessions of non-root users (for root logins it logs
    /// "session signalling requires privilege separation"), and closing a channel without a pty
    /// does not stop the command: where a command must not outlive its limit, wrap it in the
    /// server's `timeout`.
    ///
    /// The command's text appears in errors: pass secrets some other way.
    pub async fn exec(
        &self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, SshError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let what = format!("running `{}`", abbreviate(command));
        let after = timeout.unwrap_or(self.timeouts.command);
        let mut channel = self
            .open_channel(&what, self.handle.channel_open_session())
            .await?;
        match tokio::time::timeout(after, self.collect(&mut channel, command, &what)).await {
            Ok(result) => result,
            Err(_) => {
                // Best effort (see above): without a pty, closing the channel alone leaves the
                // command running.
                let _ = channel.signal(Sig::TERM).await;
                let _ = channel.close().await;
                Err(SshError::Timeout {
                    server: self.server.clone(),
                    what,
                    after,
                })
            }
        }
    }

    async fn collect(
        &self,
        channel: &mut russh::Channel<client::Msg>,
        command: &str,
        what: &str,
    ) -> Result<ExecOutput, SshError> {
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.error(e, what))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_status = None;
        let mut closed = false;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status: s } => exit_status = Some(s),
                ChannelMsg::Failure => {
                    return Err(SshError::Channel {
                        server: self.server.clone(),
                        what: what.to_string(),
                        reason: "the server refused to run the command".to_string(),
                    });
                }
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        if !closed && exit_status.is_none() {
            return Err(self.lost(format!("while {what}")));
        }
        Ok(ExecOutput {
            exit_status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// A byte stream to a unix socket on the server (OpenSSH direct-streamlocal@openssh.com),
    /// e.g. /var/run/docker.sock.
    pub async fn open_unix_stream(&self, path: &str) -> Result<SshStream, SshError> {
        let what = format!("opening a stream to the unix socket {path} on the server");
        let channel = self
            .open_channel(&what, self.handle.channel_open_direct_streamlocal(path))
            .await?;
        Ok(channel.into_stream())
    }

    /// Waits for a channel to open, within the connect timeout.
    async fn open_channel(
        &self,
        what: &str,
        open: impl Future<Output = Result<russh::Channel<client::Msg>, russh::Error>>,
    ) -> Result<russh::Channel<client::Msg>, SshError> {
        if self.is_closed() {
            return Err(self.lost(String::new()));
        }
        let after = self.timeouts.connect;
        match tokio::time::timeout(after, open).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => Err(self.error(e, what)),
            Err(_) => Err(SshError::Timeout {
                server: self.server.clone(),
                what: format!("{what}: opening an SSH channel"),
                after,
            }),
        }
    }

    fn error(&self, e: russh::Error, what: &str) -> SshError {
        match e {
            russh::Error::ChannelOpenFailure(failure) => SshError::Channel {
                server: self.server.clone(),
                what: what.to_string(),
                reason: format!(
                    "the server refused to open the channel ({})",
                    open_failure(failure)
                ),
            },
            russh::Error::RequestDenied => SshError::Channel {
                server: self.server.clone(),
                what: what.to_string(),
                reason: "the server refused the request".to_string(),
            },
            russh::Error::SendError
            | russh::Error::RecvError
            | russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::KeepaliveTimeout
            | russh::Error::IO(_) => self.lost(format!("while {what}")),
            other if self.is_closed() => {
                tracing::debug!(server = %self.server, error = %other, "channel error on a closed connection");
                self.lost(format!("while {what}"))
            }
            other => SshError::Channel {
                server: self.server.clone(),
                what: what.to_string(),
                reason: other.to_string(),
            },
        }
    }

    /// The connection is gone: `Disconnected`, with the session's own reason when known.
    fn lost(&self, context: String) -> SshError {
        let reason = lock(&self.shared)
            .disconnect_reason
            .clone()
            .unwrap_or_else(|| "the connection was closed".to_string());
        let reason = if context.is_empty() {
            reason
        } else {
            format!("{reason} ({context})")
        };
        SshError::Disconnected {
            server: self.server.clone(),
            reason,
        }
    }
}

fn open_failure(failure: russh::ChannelOpenFailure) -> &'static str {
    match failure {
        russh::ChannelOpenFailure::AdministrativelyProhibited => {
            "administratively prohibited: is forwarding allowed in sshd_config?"
        }
        russh::ChannelOpenFailure::ConnectFailed => {
            "connect failed: is the socket there, and may this user open it?"
        }
        russh::ChannelOpenFailure::UnknownChannelType => "unknown channel type",
        russh::ChannelOpenFailure::ResourceShortage => "resource shortage",
        _ => "unknown reason",
    }
}

/// The first line of a command, cut to a readable length.
fn abbreviate(command: &str) -> String {
    let first = command.trim().lines().next().unwrap_or_default();
    let mut short: String = first.chars().take(80).collect();
    if short.len() < command.trim().len() {
        short.push('…');
    }
    short
}

async fn decode_key(
    target: &SshTarget,
    private_key: &Zeroizing<String>,
    passphrase: Option<&Zeroizing<String>>,
) -> Result<PrivateKey, SshError> {
    let text = private_key.clone();
    let pass = passphrase.cloned();
    // Decrypting runs a deliberately slow KDF (bcrypt-pbkdf): keep it off the async workers.
    let decoded = tokio::task::spawn_blocking(move || {
        russh::keys::decode_secret_key(&text, pass.as_ref().map(|p| p.as_str()))
    })
    .await;
    let bad = |reason: String| SshError::BadKey {
        server: target.name.clone(),
        reason,
    };
    match decoded {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(russh::keys::Error::KeyIsEncrypted)) => Err(bad(
            "the private key is encrypted and no passphrase was given".to_string(),
        )),
        Ok(Err(e)) if passphrase.is_some() => Err(bad(format!(
            "cannot decrypt the private key with the given passphrase (wrong passphrase, or a damaged key): {e}"
        ))),
        Ok(Err(e)) => Err(bad(format!(
            "the private key cannot be read (expected OpenSSH or PEM text of an ed25519, ECDSA or RSA key): {e}"
        ))),
        Err(e) => Err(bad(format!("decoding the private key failed: {e}"))),
    }
}

async fn handshake(target: &SshTarget, key: Option<PrivateKey>) -> Result<SshConnection, SshError> {
    let address = target.display_address();
    let connect_error = |reason: String| SshError::Connect {
        server: target.name.clone(),
        address: address.clone(),
        reason,
    };
    let tcp = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let _ = tcp.set_nodelay(true);

    let config = Arc::new(client::Config {
        keepalive_interval: Some(target.timeouts.keepalive_interval),
        keepalive_max: target.timeouts.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    });
    let shared = Arc::new(Mutex::new(Shared::default()));
    let handler = Client {
        server: target.name.clone(),
        policy: target.host_key.clone(),
        timeouts: target.timeouts,
        shared: shared.clone(),
    };
    let mut handle = client::connect_stream(config, tcp, handler)
        .await
        .map_err(|e| match e {
            HandlerError::HostKey(e) => e,
            HandlerError::Russh(e) => connect_error(format!(
                "the SSH handshake failed: {}",
                session_error(&e, &target.timeouts)
            )),
        })?;

    let during_auth = |e: russh::Error| {
        connect_error(format!(
            "the connection failed during authentication: {}",
            session_error(&e, &target.timeouts)
        ))
    };
    let result = match (&target.auth, key) {
        (Auth::Key { .. }, Some(key)) => {
            // RSA keys must sign with rsa-sha2-256/512: current sshd refuses SHA-1 `ssh-rsa`.
            let hash = if key.algorithm().is_rsa() {
                match handle.best_supported_rsa_hash().await {
                    Ok(Some(Some(hash))) => Some(hash),
                    _ => Some(HashAlg::Sha256),
                }
            } else {
                None
            };
            handle
                .authenticate_publickey(
                    target.user.as_str(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(during_auth)?
        }
        (Auth::Password(password), _) => handle
            .authenticate_password(target.user.as_str(), password.as_str())
            .await
            .map_err(during_auth)?,
        (Auth::Key { .. }, None) => {
            return Err(SshError::BadKey {
                server: target.name.clone(),
                reason: "the private key was not decoded".to_string(),
            });
        }
    };
    if !matches!(result, AuthResult::Success) {
        if handle.is_closed() {
            let reason = lock(&shared)
                .disconnect_reason
                .clone()
                .unwrap_or_else(|| "the server closed the connection".to_string());
            return Err(connect_error(format!(
                "the connection failed during authentication: {reason}"
            )));
        }
        return Err(SshError::AuthRejected {
            server: target.name.clone(),
            user: target.user.clone(),
            method: target.auth.method(),
        });
    }
    let fingerprint = lock(&shared).fingerprint.clone().unwrap_or_default();
    tracing::debug!(server = %target.name, %address, host_key = %fingerprint, "ssh connected");
    Ok(SshConnection {
        server: target.name.clone(),
        address,
        fingerprint,
        timeouts: target.timeouts,
        handle,
        shared,
        commands: AtomicU64::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // Pairs of a public key line and what `ssh-keygen -lf` prints for it.
        let cases = [
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhufBtcjRClTHrCsIWJLZu8cxhFJpbbInkxiFj18yMd test",
                "SHA256:D+yt2Yo0A1ILjMZA4lWPPUGxezGOKsI/MeS01LJ2ki8",
            ),
            (
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBhAeLCNMp9gxD9D+olwjQGZi7QuU+gIm7fZXmemjgc8OZqE9QBhk3fhnGioqbsnXYCwudzR75sF3dcjVQVo6jI=",
                "SHA256:bxo23+ngbapKbwZRpPk97fINQ0GPsr90uFLnxaFXf8M",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(fingerprint_of_public_key(line).unwrap(), expected);
        }
        let err = fingerprint_of_public_key("not a key").unwrap_err();
        assert!(matches!(err, SshError::BadKey { .. }), "{err}");
    }

    #[test]
    fn long_commands_are_abbreviated_in_messages() {
        assert_eq!(abbreviate("echo ok"), "echo ok");
        assert_eq!(abbreviate("set -e\necho two"), "set -e…");
        let long = "x".repeat(200);
        assert_eq!(abbreviate(&long).chars().count(), 81);
    }
}
