//! SSH transport to the servers ballast manages: one authenticated connection per server
//! (pooled by server name and reused by every step and every Docker request for that server),
//! commands run through the remote shell, and byte streams to unix sockets on the server (the
//! Docker engine's socket, for instance).
//!
//! Host keys are never trusted silently: a server is either pinned (`hostKey: SHA256:…`),
//! opted in to trust on first use (the first fingerprint is reported back for the caller to
//! record), or refused with the fingerprint to pin in the message.
//!
//! Secrets (private keys, passphrases, passwords) live in [`zeroize::Zeroizing`] buffers and
//! never appear in `Debug` output or in errors.

mod connection;
mod error;
mod pool;
mod target;

pub use connection::{ExecOutput, SshConnection, SshStream, fingerprint_of_public_key};
pub use error::SshError;
pub use pool::SshPool;
pub use target::{Auth, HostKeyPolicy, SshTarget, Timeouts};
pub use zeroize::Zeroizing;
