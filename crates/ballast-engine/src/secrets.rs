//! Secret references in app specs: checked to exist before anything is planned, and resolved to
//! values only at the moment a container is created. Values never leave this module except into
//! the container's environment.
//!
//! Also the one place that opens the key file against the store ([`open_key`]): the store
//! records the id of the key that seals its values, so a lost key file is reported as such
//! (naming the key the store needs and where ballast looked) and a new key is never made
//! silently while the store holds values that only the lost key opens.

use std::collections::HashMap;
use std::path::Path;

use ballast_model::app::EnvValue;
use ballast_model::{AppSpec, DesiredSet, Diagnostics, ResourceSpec};
use ballast_secrets::SecretKey;
use ballast_store::Store;
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Store(#[from] ballast_store::StoreError),
    #[error(transparent)]
    Crypto(#[from] ballast_secrets::SecretError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("secret `{0}` does not exist; create it with `ballast secret set {0}`")]
    Missing(String),
    #[error("secret `{0}` is not UTF-8 text, so it cannot go into an environment variable")]
    NotText(String),
}

/// Every secret the set refers to must exist; returns each secret's current version.
pub(crate) async fn check_refs(
    store: &Store,
    set: &DesiredSet,
) -> Result<HashMap<String, String>, crate::EngineError> {
    let uses_secrets = set.iter().any(|r| !r.spec.secret_refs().is_empty());
    if !uses_secrets {
        return Ok(HashMap::new());
    }
    let versions: HashMap<String, String> = store
        .list_secrets()
        .await?
        .into_iter()
        .map(|s| (s.name, s.version.to_string()))
        .collect();
    let mut problems = Diagnostics::default();
    let missing = |name: &str| {
        format!("secret `{name}` does not exist; create it with `ballast secret set {name}`")
    };
    for resource in set.iter() {
        match &resource.spec {
            ResourceSpec::App(app) => {
                for (key, value) in &app.env {
                    if let EnvValue::Secret(r) = &value.value
                        && !versions.contains_key(&r.name)
                    {
                        problems.push(resource.diagnostic(
                            &value.referenced,
                            &format!("spec.env.{key}"),
                            missing(&r.name),
                        ));
                    }
                }
            }
            ResourceSpec::Server(server) => {
                let bmc = server.bmc.as_ref().map(|b| {
                    (
                        ["spec", "bmc", "credentials", "password"].as_slice(),
                        &b.credentials.password,
                    )
                });
                let auth = [
                    (["spec", "auth", "key"].as_slice(), &server.auth.key),
                    (
                        ["spec", "auth", "passphrase"].as_slice(),
                        &server.auth.passphrase,
                    ),
                    (
                        ["spec", "auth", "password"].as_slice(),
                        &server.auth.password,
                    ),
                ]
                .into_iter()
                .filter_map(|(path, source)| source.as_ref().map(|s| (path, s)));
                for (path, source) in auth.chain(bmc) {
                    if let Some(r) = &source.secret_ref
                        && !versions.contains_key(&r.name)
                    {
                        problems.push(resource.diagnostic_at_path(path, missing(&r.name)));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(versions)
    } else {
        Err(crate::EngineError::Invalid(problems))
    }
}

/// The app's environment with secret references replaced by their decrypted values.
pub(crate) async fn resolve_env(
    store: &Store,
    key: &OnceCell<SecretKey>,
    key_file: &Path,
    spec: &AppSpec,
) -> Result<Vec<(String, String)>, SecretError> {
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in &spec.env {
        let text = match &value.value {
            EnvValue::Text(text) => text.clone(),
            EnvValue::Secret(r) => {
                let value = read_secret(store, key, key_file, &r.name).await?;
                String::clone(&value)
            }
        };
        env.push((name.clone(), text));
    }
    Ok(env)
}

/// One secret's value, decrypted.
pub(crate) async fn read_secret(
    store: &Store,
    key: &OnceCell<SecretKey>,
    key_file: &Path,
    name: &str,
) -> Result<zeroize::Zeroizing<String>, SecretError> {
    let key = key
        .get_or_try_init(|| async { open_key(store, key_file, KeyUse::Read, "").await })
        .await?;
    let stored = store
        .get_secret(name)
        .await?
        .ok_or_else(|| SecretError::Missing(name.to_string()))?;
    let plain = key.decrypt(name, &stored.sealed)?;
    String::from_utf8(plain.to_vec())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| SecretError::NotText(name.to_string()))
}

/// What a command needs the key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Open values: the key file must exist.
    Read,
    /// Seal values (`init`, `secret set`, a server's credentials): a missing key file is
    /// created, unless the store holds values sealed with a key that the new one cannot open.
    Seal,
    /// Seal values with a new key even though the store holds values only the lost key opens
    /// (`secret set --new-key`): they become unreadable, and the audit log names them.
    SealWithNewKey,
}

/// Why the key cannot be used. Never contains key bytes or values.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the key file {} does not exist{}; {search}",
        path.display(),
        match expected {
            Some(id) => format!(
                ": this store's values are sealed with key {id}, so restore that key file \
                 (or point --key-file / BALLAST_KEY_FILE at it)"
            ),
            None => "; `ballast init` creates one for a new store".to_string(),
        }
    )]
    Missing {
        path: std::path::PathBuf,
        expected: Option<String>,
        search: String,
    },
    #[error(
        "refusing to create a new key at {}: this store holds {} value(s) sealed with key \
         {expected} that a new key cannot open: {}. Restore the key file with key {expected} \
         ({search}), or create a new key anyway with `ballast secret set NAME --new-key`: the \
         values listed then can no longer be read and must be set again",
        path.display(),
        names.len(),
        names.join(", ")
    )]
    WouldOrphan {
        path: std::path::PathBuf,
        expected: String,
        names: Vec<String>,
        search: String,
    },
    #[error(
        "the key file {} holds key {key_id}, but this store's values are sealed with key \
         {expected}: {}. Use the key file they were sealed with, or pass --new-key to seal with \
         key {key_id} anyway (the values listed then can no longer be read)",
        path.display(),
        names.join(", ")
    )]
    Mismatch {
        path: std::path::PathBuf,
        key_id: String,
        expected: String,
        names: Vec<String>,
    },
    #[error(transparent)]
    Crypto(#[from] ballast_secrets::SecretError),
    #[error(transparent)]
    Store(#[from] ballast_store::StoreError),
}

/// Opens the key file at `path` for `usage`, checked against the key the store records (or,
/// in a store from before key ids were recorded, the key its values were sealed with).
/// Sealing records the key's id on first use; `SealWithNewKey` makes the key the store's key
/// with an audit row by `actor` naming the values it cannot open.
pub async fn open_key(
    store: &Store,
    path: &Path,
    usage: KeyUse,
    actor: &str,
) -> Result<SecretKey, KeyError> {
    let sealed = store.sealed_refs().await?;
    let expected = match store.recorded_key_id().await? {
        Some(id) => Some(id),
        None => most_used_key(&sealed),
    };
    let sealed_with = |id: &str| -> Vec<String> {
        sealed
            .iter()
            .filter(|r| r.key_id == id)
            .map(|r| r.name.clone())
            .collect()
    };
    let key = match SecretKey::load(path) {
        Ok(key) => key,
        Err(ballast_secrets::SecretError::KeyFileMissing { .. }) => {
            let search = ballast_secrets::describe_key_search(path);
            match usage {
                KeyUse::Read => {
                    return Err(KeyError::Missing {
                        path: path.to_path_buf(),
                        expected,
                        search,
                    });
                }
                KeyUse::Seal => {
                    if let Some(expected) = &expected {
                        let names = sealed_with(expected);
                        if !names.is_empty() {
                            return Err(KeyError::WouldOrphan {
                                path: path.to_path_buf(),
                                expected: expected.clone(),
                                names,
                                search,
                            });
                        }
                    }
                }
                KeyUse::SealWithNewKey => {}
            }
            SecretKey::load_or_create(path)?
        }
        Err(e) => return Err(e.into()),
    };
    if usage == KeyUse::Read {
        return Ok(key);
    }
    match expected {
        Some(expected) if expected != key.key_id() => {
            let names = sealed_with(&expected);
            if !names.is_empty() && usage != KeyUse::SealWithNewKey {
                return Err(KeyError::Mismatch {
                    path: path.to_path_buf(),
                    key_id: key.key_id().to_string(),
                    expected,
                    names,
                });
            }
            // Nothing left that the old key opens, or the user asked for a new key: this key
            // is the store's now, and the audit log says what became unreadable.
            store.replace_key_id(key.key_id(), actor).await?;
        }
        Some(_) => {
            store.record_key_id(key.key_id()).await?;
        }
        None => {
            let recorded = store.record_key_id(key.key_id()).await?;
            if recorded != key.key_id() {
                // Another process recorded its key between our look and our write.
                return Err(KeyError::Mismatch {
                    path: path.to_path_buf(),
                    key_id: key.key_id().to_string(),
                    expected: recorded,
                    names: Vec::new(),
                });
            }
        }
    }
    Ok(key)
}

/// The key most values were sealed with, for stores from before the key id was recorded.
fn most_used_key(sealed: &[ballast_store::SealedRef]) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in sealed {
        *counts.entry(r.key_id.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(id, _)| id.to_string())
}
