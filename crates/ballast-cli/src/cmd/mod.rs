//! One function per subcommand. Each returns the exit code it wants; errors are printed at the
//! edge with their whole chain of causes.

mod plan;
mod secret;
mod servers;
mod show;
mod status;

use std::path::Path;
use std::process::ExitCode;

use ballast_model::{DesiredSet, LoadError, load_dir};

use crate::context::Context;
use crate::{Cli, Command, Output};

pub async fn run(cli: Cli) -> ExitCode {
    let ctx = Context::new(cli.global);
    // kubectl diff's convention: 0 same, 1 different, 2 trouble.
    let error_code = if matches!(cli.command, Command::Diff { .. }) {
        2
    } else {
        1
    };
    let result = match cli.command {
        Command::Init => init(&ctx).await,
        Command::Validate => validate(&ctx),
        Command::Schema => schema(),
        Command::Diff {
            refresh,
            prune,
            targets,
        } => plan::diff(&ctx, refresh, prune, &targets).await,
        Command::Apply {
            prune,
            dry_run,
            yes,
            targets,
            parallelism,
        } => {
            plan::apply(
                &ctx,
                plan::ApplyFlags {
                    prune,
                    dry_run,
                    yes,
                    parallelism,
                },
                &targets,
            )
            .await
        }
        Command::Get { kind, name } => show::get(&ctx, &kind, name.as_deref()).await,
        Command::Describe { resource } => show::describe(&ctx, &resource).await,
        Command::History { resource } => show::history(&ctx, &resource).await,
        Command::Logs { resource, limit } => servers::logs(&ctx, &resource, limit).await,
        Command::Tasks { failed, limit } => show::tasks(&ctx, failed, limit).await,
        Command::Audit { limit } => show::audit(&ctx, limit).await,
        Command::Status { socket } => status::run(&ctx, socket).await,
        Command::Events { watch, limit } => show::events(&ctx, watch, limit).await,
        Command::Secret(command) => secret::run(&ctx, command).await,
        Command::Daemon { config } => daemon(&ctx, config.as_deref()).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Manifest problems are a list of file:line:col lines, printed as they are.
            let diagnostics = match (
                e.downcast_ref::<LoadError>(),
                e.downcast_ref::<ballast_engine::EngineError>(),
            ) {
                (Some(LoadError::Invalid(d)), _)
                | (_, Some(ballast_engine::EngineError::Invalid(d))) => Some(d),
                _ => None,
            };
            if let Some(diagnostics) = diagnostics {
                eprintln!("{diagnostics}");
                return ExitCode::from(error_code);
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(error_code)
        }
    }
}

/// Loads and validates the manifests; invalid manifests become one error listing every problem.
pub fn load(ctx: &Context) -> anyhow::Result<DesiredSet> {
    match load_dir(&ctx.global.manifests()) {
        Ok(set) => Ok(set),
        Err(LoadError::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!(
                "manifest path {} does not exist; pass the manifest directory with -f DIR",
                path.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

async fn init(ctx: &Context) -> anyhow::Result<ExitCode> {
    let key_file = ctx.key_file();
    let existed = key_file.exists();
    let store = ctx.create_store().await?;
    // Checked against the store: no new key while it holds values only a lost key opens.
    ballast_engine::open_key(
        &store,
        &key_file,
        ballast_engine::KeyUse::Seal,
        &ballast_engine::actor(),
    )
    .await?;
    println!(
        "database: {} ({}, instance {})",
        ctx.database_url(),
        store.backend_name(),
        store.instance_id()
    );
    println!(
        "key file: {} ({})",
        key_file.display(),
        if existed {
            "kept"
        } else {
            "created, mode 0600"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(ctx: &Context) -> anyhow::Result<ExitCode> {
    match load_dir(&ctx.global.manifests()) {
        Ok(set) => {
            if ctx.global.output == Some(Output::Json) {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "resources": set.len(), "errors": []})
                );
            } else {
                println!(
                    "{} resource(s) in {} are valid",
                    set.len(),
                    ctx.global.manifests().display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(diagnostics)) => {
            if ctx.global.output == Some(Output::Json) {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "errors": diagnostics})
                );
            } else {
                eprintln!("{diagnostics}");
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

async fn daemon(ctx: &Context, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = ballast_daemon::DaemonConfig::load(config_path)?;
    // An explicit -f/BALLAST_MANIFESTS wins over the config file's `manifests`.
    let manifests = match (&ctx.global.file, &config.manifests) {
        (Some(given), _) => given.clone(),
        (None, Some(configured)) => configured.clone(),
        (None, None) => ctx.global.manifests(),
    };
    if !manifests.is_dir() {
        anyhow::bail!("manifest directory {} does not exist", manifests.display());
    }
    let engine = ctx.create_engine(config.workers).await?.with_role("daemon");
    ballast_daemon::run(
        engine,
        manifests,
        config,
        config_path.map(Path::to_path_buf),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn schema() -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&ballast_model::schema::manifest_schema())?
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses `--target` values.
pub fn parse_targets(targets: &[String]) -> anyhow::Result<Vec<ballast_model::ResourceKey>> {
    targets
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e: String| anyhow::anyhow!("--target {t}: {e}"))
        })
        .collect()
}
