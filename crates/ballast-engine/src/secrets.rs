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
    let uses_secrets = set
        .apps()
        .any(|(_, app)| app.secret_refs().next().is_some());
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
    for resource in set.iter() {
        let ResourceSpec::App(app) = &resource.spec;
        for (key, value) in &app.env {
            if let EnvValue::Secret(r) = &value.value
                && !versions.contains_key(&r.name)
            {
                problems.push(resource.diagnostic(
                    &value.referenced,
                    &format!("spec.env.{key}"),
                    format!(
                        "secret `{}` does not exist; create it with `ballast secret set {}`",
                        r.name, r.name
                    ),
                ));
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
                let key = key
                    .get_or_try_init(|| async { SecretKey::load(key_file) })
                    .await?;
                let stored = store
                    .get_secret(&r.name)
                    .await?
                    .ok_or_else(|| SecretError::Missing(r.name.clone()))?;
                let plain = key.decrypt(&r.name, &stored.sealed)?;
                String::from_utf8(plain.to_vec())
                    .map_err(|_| SecretError::NotText(r.name.clone()))?
            }
        };
        env.push((name.clone(), text));
    }
    Ok(env)
}
