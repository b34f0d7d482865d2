//! Connections by server name, reused while the server's identity is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::connection::SshConnection;
use crate::error::SshError;
use crate::target::{Auth, SshTarget};

/// Connections by server name, reused: `connect` returns the live connection for that target if
/// one exists and its identity (address, port, user, auth, host-key policy) is unchanged, else
/// opens a new one (reconnect after a drop is just the next `connect`).
///
/// The host-key policy counts as unchanged when the live connection's key satisfies the new
/// policy: recording a trust-on-first-use key, or pinning the key the server already presented,
/// does not cost a reconnect.
#[derive(Clone, Default)]
pub struct SshPool {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: HashMap<String, Entry>,
    opened: HashMap<String, u64>,
    /// One connect at a time per server, so concurrent callers share one new connection.
    gates: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

struct Entry {
    identity: Identity,
    connection: Arc<SshConnection>,
}

/// Address, port, user and a digest of the credentials: the pool keeps no second copy of the
/// secrets.
#[derive(PartialEq, Eq)]
struct Identity {
    address: String,
    port: u16,
    user: String,
    auth: [u8; 32],
}

impl Identity {
    fn of(target: &SshTarget) -> Identity {
        let mut digest = Sha256::new();
        let mut field = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        match &target.auth {
            Auth::Key {
                private_key,
                passphrase,
            } => {
                field(b"key");
                field(private_key.as_bytes());
                field(passphrase.as_ref().map_or(&b""[..], |p| p.as_bytes()));
            }
            Auth::Password(password) => {
                field(b"password");
                field(password.as_bytes());
            }
        }
        Identity {
            address: target.address.clone(),
            port: target.port,
            user: target.user.clone(),
            auth: digest.finalize().into(),
        }
    }
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        let mut names: Vec<&String> = state.live.keys().collect();
        names.sort();
        f.debug_struct("SshPool").field("live", &names).finish()
    }
}

impl SshPool {
    pub fn new() -> Self {
        SshPool::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The live connection to `target`, or a new one.
    pub async fn connect(&self, target: &SshTarget) -> Result<Arc<SshConnection>, SshError> {
        let gate = self
            .state()
            .gates
            .entry(target.name.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        let identity = Identity::of(target);
        {
            let mut state = self.state();
            if let Some(entry) = state.live.get(&target.name) {
                let reusable = entry.identity == identity
                    && !entry.connection.is_closed()
                    && target
                        .host_key
                        .accepts(entry.connection.host_key_fingerprint());
                if reusable {
                    return Ok(entry.connection.clone());
                }
                state.live.remove(&target.name);
            }
        }
        let connection = Arc::new(SshConnection::open(target).await?);
        let mut state = self.state();
        *state.opened.entry(target.name.clone()).or_default() += 1;
        state.live.insert(
            target.name.clone(),
            Entry {
                identity,
                connection: connection.clone(),
            },
        );
        Ok(connection)
    }

    /// Drops the pooled connection; it closes once its last user lets go of it.
    pub fn disconnect(&self, name: &str) {
        self.state().live.remove(name);
    }

    /// How many times a connection to `name` was opened (benchmarks, tests).
    pub fn connections_opened(&self, name: &str) -> u64 {
        self.state().opened.get(name).copied().unwrap_or(0)
    }
}
