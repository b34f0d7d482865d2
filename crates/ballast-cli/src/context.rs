//! Resolving where things are (database, key file, manifests) and how to print (colour, format),
//! from flags, environment and defaults, in one place.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ballast_engine::Engine;
use ballast_store::{OpenMode, Store, StoreError};

use crate::Global;

/// Where state lives when no flag or variable says otherwise: next to the manifests' checkout,
/// as Terraform keeps `.terraform/` in the working directory.
pub const DEFAULT_STATE_DIR: &str = ".ballast";

pub struct Context {
    pub global: Global,
    pub color: bool,
}

impl Context {
    pub fn new(global: Global) -> Self {
        let color = !global.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal();
        Context { global, color }
    }

    pub fn database_url(&self) -> String {
        self.global
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{DEFAULT_STATE_DIR}/ballast.db"))
    }

    pub fn key_file(&self) -> PathBuf {
        ballast_secrets::resolve_key_path(
            self.global.key_file.as_deref(),
            Path::new(DEFAULT_STATE_DIR),
        )
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
