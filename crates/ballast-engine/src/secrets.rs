//! Secret references in app specs: checked to exist before anything is planned, and resolved to
//! values only at the moment a container is created. Values never leave this module except into
//! the container's environment.

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
        .get_or_try_init(|| async { SecretKey::load(key_file) })
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
