//! `ballast`: the command-line edge. Parses arguments, opens the store, calls the libraries, and
//! turns their results into text and exit codes. No reconciling logic lives here.

mod cmd;
mod context;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Declarative reconciler for servers, Docker apps, Proxmox guests and firmware plans.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// Database URL: `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`.
    /// [default: sqlite://.ballast/ballast.db]
    #[arg(long, env = "BALLAST_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Key file that encrypts secrets. [default: $CREDENTIALS_DIRECTORY/ballast.key under
    /// systemd, else .ballast/ballast.key]
    #[arg(long, env = "BALLAST_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Manifest directory (read recursively) or single manifest file. [default: manifests]
    #[arg(short = 'f', long = "file", env = "BALLAST_MANIFESTS", global = true)]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Output>,
    /// Never colour the output (also: NO_COLOR set, or output not a terminal).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// The daemon's config file (TOML, see deploy/ballast.toml). `ballast daemon` runs with it;
    /// every command takes its database-url, key-file, manifests and [http] socket unless given
    /// on the command line or in the environment.
    #[arg(long, env = "BALLAST_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Global {
    /// The manifest path: `-f`, `BALLAST_MANIFESTS`, or `manifests`.
    pub fn manifests(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| PathBuf::from("manifests"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the state directory, the database and the secrets key.
    Init,
    /// Check every manifest and report all errors.
    Validate,
    /// Print the JSON Schema of the manifests (for editor completion).
    Schema,
    /// Show what `apply` would change. Exit status: 0 no changes, 1 changes, 2 error.
    Diff {
        /// Observe the live engine first instead of using the state recorded at the last apply.
        #[arg(long)]
        refresh: bool,
        /// Also show deletions of resources that left the manifests.
        #[arg(long)]
        prune: bool,
        /// Limit to these resources (KIND/NAME), repeatable.
        #[arg(long = "target", value_name = "KIND/NAME")]
        targets: Vec<String>,
    },
    /// Make reality match the manifests.
    Apply {
        /// Delete resources that left the manifests (only those ballast created).
        #[arg(long)]
        prune: bool,
        /// Show the plan and stop.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Limit to these resources (KIND/NAME), repeatable.
        #[arg(long = "target", value_name = "KIND/NAME")]
        targets: Vec<String>,
        /// How many resources to act on at once.
        #[arg(long, default_value_t = 8)]
        parallelism: usize,
    },
    /// List resources of a kind with their live state (one list call per Docker engine; a
    /// connection per server).
    Get {
        /// Kind: app, apps, server, servers.
        kind: String,
        /// Show only this resource.
        name: Option<String>,
        /// Show the state recorded at the last observation (by apply or the daemon) and how
        /// old it is, without asking the engines.
        #[arg(long)]
        cached: bool,
    },
    /// Show one resource: spec, source, observed state, status and recent tasks.
    Describe {
        /// KIND/NAME, e.g. app/web.
        resource: String,
    },
    /// Show the recorded snapshots of a resource and what changed between them.
    History {
        /// KIND/NAME, e.g. app/web.
        resource: String,
    },
    /// Show a server's last preparation runs, step by step with their output.
    Logs {
        /// server/NAME.
        resource: String,
        /// How many runs to show.
        #[arg(long, default_value_t = 3)]
        limit: u64,
    },
    /// List recorded tasks, newest first.
    Tasks {
        /// Only failed and interrupted tasks.
        #[arg(long)]
        failed: bool,
        /// How many tasks to show, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Ask the running daemon for its view: last reload, drifted and failing resources.
    Status {
        /// The daemon's API socket. [default: the --config file's [http] socket, else
        /// $RUNTIME_DIRECTORY/ballast.sock, else .ballast/ballast.sock]
        #[arg(long, env = "BALLAST_SOCKET")]
        socket: Option<PathBuf>,
    },
    /// Show system events (reloads, drift, failures), oldest first; -w follows new ones.
    Events {
        /// Keep printing new events as they happen.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How many recent events to show first.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Show the audit log and verify its hash chain.
    Audit {
        /// How many entries to show, newest first (the whole chain is verified regardless).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Watch the manifests and keep reality equal to them (run by systemd). Its config file is
    /// the global --config FILE.
    Daemon,
    /// Manage encrypted secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Bring other tools' files over as manifests.
    #[command(subcommand)]
    Import(cmd::import::ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret, read from standard input (one trailing newline dropped) or a file.
    Set {
        name: String,
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Create a new key when the key file is missing (or seal with the key file given)
        /// even though the store holds values sealed with another key: those values can no
        /// longer be read. Without it, ballast refuses and names them.
        #[arg(long)]
        new_key: bool,
    },
    /// List secret names (never values).
    List,
    /// Delete a secret.
    Rm { name: String },
    /// Generate a new key and re-encrypt every secret with it.
    RotateKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    context::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(cmd::run(cli))
}
