//! `ballast import compose FILE…`: docker compose files in, one App manifest per service out
//! (the conversion is `ballast-compose`'s; here are the flags, the files written and the
//! report). Nothing is dropped silently: what ballast cannot express is listed per service, and
//! the command exits 1 without writing unless `--allow-partial`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ballast_compose::{ImportOptions, import};

use crate::context::Context;

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Read docker compose files (merged in order, as `docker compose -f A -f B`) and write one
    /// App manifest per service. Exit 1 when anything could not be expressed, unless
    /// --allow-partial.
    Compose {
        /// The compose files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Run the apps on this Server (spec.server); default: this machine's engine.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        /// Write NAME.yaml per app into DIR (created if missing); default: print them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the manifests even when some settings could not be imported (they are listed).
        #[arg(long)]
        allow_partial: bool,
        /// The compose project name [default: COMPOSE_PROJECT_NAME, the files' `name:`, or
        /// the directory's name].
        #[arg(short = 'p', long, value_name = "NAME")]
        project_name: Option<String>,
        /// Enable a compose profile (repeatable; COMPOSE_PROFILES is read too).
        #[arg(long = "profile", value_name = "NAME")]
        profiles: Vec<String>,
    },
}

pub async fn run(_ctx: &Context, command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Compose {
        files,
        server,
        out,
        allow_partial,
        project_name,
        profiles,
    } = command;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let out_dir = match &out {
        Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| cwd.join(dir)),
        None => cwd,
    };
    let imported = import(&ImportOptions {
        files,
        project_name,
        profiles,
        server,
        out_dir: out_dir.clone(),
        env: std::env::vars().collect(),
    })?;

    for app in &imported.apps {
        if app.losses.is_empty() {
            eprintln!("{} -> App/{}: imported", app.service, app.name);
        } else {
            eprintln!(
                "{} -> App/{}: imported without {} setting{}:",
                app.service,
                app.name,
                app.losses.len(),
                if app.losses.len() == 1 { "" } else { "s" }
            );
            for loss in &app.losses {
                eprintln!("    {loss}");
            }
        }
        for note in &app.notes {
            eprintln!("    note: {note}");
        }
    }
    for (service, losses) in &imported.refused {
        eprintln!("{service}: not imported:");
        for loss in losses {
            eprintln!("    {loss}");
        }
    }
    for (service, why) in &imported.skipped {
        eprintln!("{service}: skipped: {why}");
    }
    for ignored in &imported.ignored {
        eprintln!("not imported: {ignored}");
    }

    let complete = imported.is_lossless();
    if !complete && !allow_partial {
        eprintln!(
            "some settings cannot be expressed in ballast (listed above); nothing was written. Pass --allow-partial to write the manifests anyway."
        );
        return Ok(ExitCode::from(1));
    }
    match &out {
        Some(_) => {
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            for app in &imported.apps {
                let path = out_dir.join(format!("{}.yaml", app.name));
                std::fs::write(&path, &app.manifest)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let documents: Vec<&str> = imported.apps.iter().map(|a| a.manifest.as_str()).collect();
            print!("{}", documents.join("---\n"));
        }
    }
    let commands = imported.secret_commands();
    if !commands.is_empty() {
        eprintln!(
            "\nStore these secrets before `ballast apply` (each reads its value from standard input; the values are in your compose files or environment and are not shown here):"
        );
        for command in commands {
            eprintln!("  {command}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
