//! One function per subcommand. Each returns the exit code it wants; errors are printed at the
//! edge with their whole chain of causes.

pub mod import;
mod observe;
mod plan;
mod secret;
mod servers;
mod show;
mod status;

use std::process::ExitCode;

use ballast_model::{DesiredSet, Diagnostics, LoadError, load_dir};

use crate::context::Context;
use crate::{Cli, Command, Output};

pub async fn run(cli: Cli) -> ExitCode {
    // kubectl diff's convention: 0 same, 1 different, 2 trouble.
    let error_code = ExitCode::from(if matches!(cli.command, Command::Diff { .. }) {
        2
    } else {
        1
    });
    let ctx = match Context::new(cli.global) {
        Ok(ctx) => ctx,
        Err(e) => {
            print_error(&e);
            return error_code;
        }
    };
    let result = match cli.command {
        Command::Init => init(&ctx).await,
        Command::Validate => validate(&ctx).await,
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
        Command::Get { kind, name, cached } => {
            show::get(&ctx, &kind, name.as_deref(), cached).await
        }
        Command::Describe { resource } => show::describe(&ctx, &resource).await,
        Command::History { resource } => show::history(&ctx, &resource).await,
        Command::Logs { resource, limit } => servers::logs(&ctx, &resource, limit).await,
        Command::Tasks { failed, limit } => show::tasks(&ctx, failed, limit).await,
        Command::Audit { limit } => show::audit(&ctx, limit).await,
        Command::Status { socket } => status::run(&ctx, socket).await,
        Command::Events { watch, limit } => show::events(&ctx, watch, limit).await,
        Command::Secret(command) => secret::run(&ctx, command).await,
        Command::Daemon => daemon(&ctx).await,
        Command::Import(command) => import::run(&ctx, command).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            error_code
        }
    }
}

/// Prints an error at the edge: manifest problems as their list of file:line:col lines, any
/// other error with each of its causes once.
fn print_error(e: &anyhow::Error) {
    let diagnostics = match (
        e.downcast_ref::<LoadError>(),
        e.downcast_ref::<ballast_engine::EngineError>(),
    ) {
        (Some(LoadError::Invalid(d)), _) | (_, Some(ballast_engine::EngineError::Invalid(d))) => {
            Some(d)
        }
        _ => None,
    };
    if let Some(diagnostics) = diagnostics {
        eprintln!("{diagnostics}");
        return;
    }
    let mut lines = error_lines(e).into_iter();
    if let Some(first) = lines.next() {
        eprintln!("error: {first}");
    }
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
}

/// The error's message and its causes, each said once. Many errors quote their cause in their
/// own message (thiserror's `{0}` or `{source}`) and also return it as `source()`; a cause
/// whose text was already printed adds nothing and is left out.
fn error_lines(e: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || lines.iter().any(|shown| shown.contains(&text)) {
            continue;
        }
        lines.push(text);
    }
    lines
}

/// Loads and validates the manifests; invalid manifests become one error listing every problem.
/// A load error is printed as the model words it, so every command says the same.
pub fn load(ctx: &Context) -> anyhow::Result<DesiredSet> {
    Ok(load_dir(&ctx.global.manifests())?)
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

/// What `validate` could say about the secrets the manifests refer to.
enum SecretCheck {
    /// No manifest refers to a secret.
    NoneUsed,
    /// Every referenced secret exists in this store (URL, passwords redacted).
    Found(String),
    /// Some are missing from this store.
    Missing(Diagnostics, String),
    /// No store could be read, so nothing was checked; why.
    NotChecked(String),
}

/// Checks the manifests' secret references against the store, as `diff` and `apply` do, when
/// there is a store to check; a missing SQLite file is not created for this.
async fn check_secrets(ctx: &Context, set: &DesiredSet) -> anyhow::Result<SecretCheck> {
    if set.iter().all(|r| r.spec.secret_refs().is_empty()) {
        return Ok(SecretCheck::NoneUsed);
    }
    let store = match ctx.existing_store().await {
        Ok(store) => store,
        Err(why) => return Ok(SecretCheck::NotChecked(why)),
    };
    let url = store.url().to_string();
    let engine = ballast_engine::Engine::new(store, ctx.key_file());
    match engine.hashes(set).await {
        Ok(_) => Ok(SecretCheck::Found(url)),
        Err(ballast_engine::EngineError::Invalid(d)) => Ok(SecretCheck::Missing(d, url)),
        Err(e) => Err(e.into()),
    }
}

async fn validate(ctx: &Context) -> anyhow::Result<ExitCode> {
    let json = ctx.global.output == Some(Output::Json);
    let set = match load_dir(&ctx.global.manifests()) {
        Ok(set) => set,
        Err(LoadError::Invalid(diagnostics)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "errors": diagnostics})
                );
            } else {
                eprintln!("{diagnostics}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let check = check_secrets(ctx, &set).await?;
    let (secrets, note) = match &check {
        SecretCheck::NoneUsed => (serde_json::json!({"checked": false}), String::new()),
        SecretCheck::Found(url) => (
            serde_json::json!({"checked": true, "store": url}),
            format!("; every secret they refer to exists in {url}"),
        ),
        SecretCheck::Missing(_, url) => (
            serde_json::json!({"checked": true, "store": url}),
            format!("secret references were checked against {url}"),
        ),
        SecretCheck::NotChecked(why) => (
            serde_json::json!({"checked": false, "reason": why}),
            format!("; secret references were not checked: {why}"),
        ),
    };
    if let SecretCheck::Missing(diagnostics, _) = &check {
        if json {
            println!(
                "{}",
                serde_json::json!({"valid": false, "errors": diagnostics, "secrets": secrets})
            );
        } else {
            eprintln!("{diagnostics}");
            eprintln!("{note}");
        }
        return Ok(ExitCode::from(1));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"valid": true, "resources": set.len(), "errors": [], "secrets": secrets})
        );
    } else {
        println!(
            "{} resource(s) in {} are valid{note}",
            set.len(),
            ctx.global.manifests().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn daemon(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.config.clone().unwrap_or_default();
    // An explicit -f/BALLAST_MANIFESTS wins over the config file's `manifests` (the context
    // filled `file` from the config only when neither was given).
    let manifests = ctx.global.manifests();
    if !manifests.is_dir() {
        anyhow::bail!("manifest directory {} does not exist", manifests.display());
    }
    let engine = ctx.create_engine(config.workers).await?.with_role("daemon");
    ballast_daemon::run(engine, manifests, config, ctx.global.config.clone()).await?;
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
