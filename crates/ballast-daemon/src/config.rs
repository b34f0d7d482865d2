//! The daemon's configuration file (TOML). Every option has a default, so an empty file (or no
//! file) is a valid configuration; `deploy/ballast.toml` documents each one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// What drift does to a resource that does not say otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    /// Repair drift at the next resync (the default).
    #[default]
    Heal,
    /// Record it as an event and leave it.
    Report,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DaemonConfig {
    /// Manifest directory; the command line's `-f` wins when given.
    pub manifests: Option<PathBuf>,
    /// The database; `--database-url`/`BALLAST_DATABASE_URL` win when given. Read by every
    /// command given `--config`, so `ballast --config FILE get apps` reads the daemon's store.
    pub database_url: Option<String>,
    /// The secrets key file; `--key-file`/`BALLAST_KEY_FILE`, then systemd's
    /// `$CREDENTIALS_DIRECTORY/ballast.key`, win when present.
    pub key_file: Option<PathBuf>,
    /// Delete resources removed from the manifests (only what ballast created). Off by default,
    /// as in Argo CD and Flux.
    pub prune: bool,
    /// How often reality is re-checked for drift (`5m`, `30s`).
    #[serde(with = "humantime_serde_compat")]
    pub resync_interval: Duration,
    /// Quiet time after the last file change before a reload.
    #[serde(with = "humantime_serde_compat")]
    pub debounce: Duration,
    /// Resources reconciled at once.
    pub workers: usize,
    /// Default drift policy; a resource overrides it with the annotation `ballast.io/drift`.
    pub drift: DriftPolicy,
    /// How long running steps may take to finish after SIGTERM.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    /// The HTTP API.
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HttpConfig {
    /// Unix socket of the API. [default: $RUNTIME_DIRECTORY/ballast.sock under systemd, else
    /// .ballast/ballast.sock]
    pub socket: Option<PathBuf>,
    /// Also listen on this TCP address, e.g. `127.0.0.1:9477`. An address other than loopback
    /// makes the API reachable from the network: it needs `token-file`, and every endpoint
    /// there but `/healthz` and `/readyz` then needs the token.
    pub listen: Option<std::net::SocketAddr>,
    /// File holding the bearer token that the action endpoints require; without it they are off.
    pub token_file: Option<PathBuf>,
}

/// Where the API socket is when the config does not say: systemd's `RuntimeDirectory=`, else
/// the state directory next to the working directory. `ballast status` uses the same rule.
pub fn default_socket() -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(dir) => PathBuf::from(dir).join("ballast.sock"),
        None => PathBuf::from(".ballast/ballast.sock"),
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            manifests: None,
            database_url: None,
            key_file: None,
            prune: false,
            resync_interval: Duration::from_secs(300),
            debounce: Duration::from_millis(100),
            workers: 4,
            drift: DriftPolicy::Heal,
            shutdown_grace: Duration::from_secs(30),
            http: HttpConfig::default(),
        }
    }
}

impl DaemonConfig {
    /// Reads `path`; a missing file is an error (the user named it), an absent path means defaults.
    pub fn load(path: Option<&Path>) -> Result<DaemonConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(DaemonConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: DaemonConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if config.workers == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "workers must be at least 1".into(),
            });
        }
        if let Some(addr) = config.http.network_listen()
            && config.http.token_file.is_none()
        {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "[http] listen = \"{addr}\" makes the API reachable from the network, so it needs [http] token-file (a file holding the bearer token that every endpoint there but /healthz and /readyz will then require); or listen on 127.0.0.1"
                ),
            });
        }
        Ok(config)
    }
}

impl HttpConfig {
    /// The TCP address, when it is not a loopback one (so other machines may reach it).
    pub fn network_listen(&self) -> Option<std::net::SocketAddr> {
        self.listen.filter(|addr| !addr.ip().is_loopback())
    }
}

/// Durations written as `30s`, `5m`, `1h30m`.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); expected e.g. `30s` or `5m`"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/ballast.toml");
        let config = DaemonConfig::load(Some(&example)).unwrap();
        let defaults = DaemonConfig::default();
        assert_eq!(config.resync_interval, defaults.resync_interval);
        assert_eq!(config.workers, defaults.workers);
        assert_eq!(config.prune, defaults.prune);
        assert_eq!(config.shutdown_grace, defaults.shutdown_grace);
    }

    #[test]
    fn empty_file_means_defaults_and_fields_parse() {
        let dir = std::env::temp_dir().join(format!("ballast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ballast.toml");
        std::fs::write(&path, "").unwrap();
        let config = DaemonConfig::load(Some(&path)).unwrap();
        assert!(!config.prune);
        assert_eq!(config.resync_interval, Duration::from_secs(300));
        std::fs::write(
            &path,
            "prune = true\nresync-interval = \"30s\"\ndrift = \"report\"\nworkers = 2\n",
        )
        .unwrap();
        let config = DaemonConfig::load(Some(&path)).unwrap();
        assert!(config.prune);
        assert_eq!(config.resync_interval, Duration::from_secs(30));
        assert_eq!(config.drift, DriftPolicy::Report);
        std::fs::write(&path, "resync-interval = \"soon\"\n").unwrap();
        let err = DaemonConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("not a duration"), "{err}");
        std::fs::write(&path, "prunee = true\n").unwrap();
        let err = DaemonConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_listener_off_loopback_needs_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ballast.toml");
        for (listen, token, ok) in [
            ("127.0.0.1:9477", false, true),
            ("[::1]:9477", false, true),
            ("0.0.0.0:9477", false, false),
            ("[::]:9477", false, false),
            ("192.0.2.10:9477", false, false),
            ("0.0.0.0:9477", true, true),
        ] {
            let token_line = if token {
                "token-file = \"/etc/ballast/api-token\"\n"
            } else {
                ""
            };
            std::fs::write(
                &path,
                format!("[http]\nlisten = \"{listen}\"\n{token_line}"),
            )
            .unwrap();
            let loaded = DaemonConfig::load(Some(&path));
            assert_eq!(loaded.is_ok(), ok, "{listen} token={token}: {loaded:?}");
            if let Err(e) = loaded {
                let e = e.to_string();
                assert!(
                    e.contains(listen)
                        && e.contains("token-file")
                        && e.contains("reachable from the network"),
                    "{e}"
                );
            }
        }
    }
}
