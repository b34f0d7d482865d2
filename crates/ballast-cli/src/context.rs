//! Resolving where things are (database, key file, manifests, the daemon's socket) and how to
//! print (colour, format), from flags, environment, the `--config` file and defaults, in one
//! place.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ballast_daemon::DaemonConfig;
use ballast_engine::Engine;
use ballast_store::{OpenMode, Store, StoreError};

use crate::Global;

/// Where state lives when no flag or variable says otherwise: next to the manifests' checkout,
/// as Terraform keeps `.terraform/` in the working directory.
pub const DEFAULT_STATE_DIR: &str = ".ballast";

pub struct Context {
    pub global: Global,
    pub color: bool,
    /// The `--config` file, read once; its places fill what the command line and the
    /// environment leave open.
    pub config: Option<DaemonConfig>,
}

impl Context {
    /// Reads the `--config` file when one is given: the command line and the environment win
    /// over it, it wins over the defaults, so read commands find the installed daemon's store.
    pub fn new(mut global: Global) -> anyhow::Result<Self> {
        let color = !global.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal();
        let config = match &global.config {
            Some(path) => Some(DaemonConfig::load(Some(path))?),
            None => None,
        };
        if let Some(config) = &config {
            global.database_url = global.database_url.or(config.database_url.clone());
            global.file = global.file.or(config.manifests.clone());
        }
        Ok(Context {
            global,
            color,
            config,
        })
    }

    /// The daemon's API socket: `--socket`/`BALLAST_SOCKET`, the config's `[http] socket`, or
    /// the daemon's own default.
    pub fn socket(&self, given: Option<PathBuf>) -> PathBuf {
        given
            .or_else(|| self.config.as_ref().and_then(|c| c.http.socket.clone()))
            .unwrap_or_else(ballast_daemon::default_socket)
    }

    pub fn database_url(&self) -> String {
        self.global
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{DEFAULT_STATE_DIR}/ballast.db"))
    }

    pub fn key_file(&self) -> PathBuf {
        let state_dir = Path::new(DEFAULT_STATE_DIR);
        if let Some(given) = &self.global.key_file {
            return given.clone();
        }
        // systemd's credential, else the state directory's key.
        let fallback = ballast_secrets::resolve_key_path(None, state_dir);
        // The config's key file comes after the flag, the variable and systemd's credential
        // (the daemon keeps getting its key through LoadCredential=), before the default.
        match self.config.as_ref().and_then(|c| c.key_file.clone()) {
            Some(configured) if fallback == state_dir.join(ballast_secrets::KEY_FILE_NAME) => {
                configured
            }
            _ => fallback,
        }
    }

    /// The database of a command that only reads: it must exist, so a mistyped path is an
    /// error instead of a new empty database.
    pub async fn store(&self) -> anyhow::Result<Store> {
        self.open_store(OpenMode::MustExist).await
    }

    /// The database of `init`, `apply`, `secret set` and the daemon, created if missing.
    pub async fn create_store(&self) -> anyhow::Result<Store> {
        self.open_store(OpenMode::CreateIfMissing).await
    }

    async fn open_store(&self, mode: OpenMode) -> anyhow::Result<Store> {
        let url = self.database_url();
        Store::open_with(&url, mode)
            .await
            .with_context(|| "cannot open the ballast database".to_string())
    }

    /// The store when there is one to read, or why not: a database that does not exist is not
    /// created (validate must not leave one behind), a server that does not answer is reported.
    pub async fn existing_store(&self) -> Result<Store, String> {
        Store::open_existing(&self.database_url())
            .await
            .map_err(|e| e.to_string())
    }

    /// An engine for `diff`, which writes nothing: on the existing database, or, when there is
    /// no SQLite file yet (a fresh checkout), on an empty in-memory stand-in, so the plan shows
    /// everything to create and no file is made.
    pub async fn engine(&self, parallelism: usize) -> anyhow::Result<Engine> {
        let store = match Store::open_existing(&self.database_url()).await {
            Ok(store) => store,
            Err(StoreError::NoDatabase { .. }) => Store::open("sqlite::memory:")
                .await
                .context("cannot open an empty in-memory store")?,
            Err(e) => return Err(anyhow::Error::new(e).context("cannot open the ballast database")),
        };
        Ok(Engine::new(store, self.key_file()).with_parallelism(parallelism))
    }

    /// An engine that may create the database (`apply`, the daemon).
    pub async fn create_engine(&self, parallelism: usize) -> anyhow::Result<Engine> {
        Ok(Engine::new(self.create_store().await?, self.key_file()).with_parallelism(parallelism))
    }
}

/// Logs go to stderr (the journal under systemd); `BALLAST_LOG` (or `RUST_LOG`) sets the
/// filter, warnings by default; `BALLAST_LOG_FORMAT=json` writes one JSON object per line.
pub fn init_tracing() {
    let filter = std::env::var("BALLAST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = if std::env::var("BALLAST_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
