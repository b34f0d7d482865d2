//! `diff` and `apply`: the same loader and planner; apply then carries the plan out.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use ballast_engine::{PlanOptions, source_info};
use ballast_plan::render::render_plan;

use super::{load, parse_targets};
use crate::Output;
use crate::context::Context;
use crate::progress::Progress;

pub async fn diff(
    ctx: &Context,
    refresh: bool,
    prune: bool,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let set = load(ctx)?;
    refuse_empty_prune(ctx, &set, prune, "`apply --prune` would refuse to run")?;
    let options = PlanOptions {
        refresh,
        prune,
        targets: parse_targets(targets)?,
    };
    let engine = ctx.engine(1).await?;
    let prepared = engine.plan(set, &options).await?;
    print_plan(ctx, &prepared.plan)?;
    Ok(if prepared.plan.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--prune` with no resources at all would delete everything ballast manages; far more often
/// `-f` points at the wrong directory. `apply` refuses, and `diff` says so rather than showing
/// a plan that would never run.
fn refuse_empty_prune(
    ctx: &Context,
    set: &ballast_model::DesiredSet,
    prune: bool,
    verdict: &str,
) -> anyhow::Result<()> {
    if prune && set.is_empty() {
        bail!(
            "{} holds no resources; {verdict}: it will not delete everything ballast manages (point -f at the manifests)",
            ctx.global.manifests().display()
        );
    }
    Ok(())
}

fn print_plan(ctx: &Context, plan: &ballast_plan::Plan) -> anyhow::Result<()> {
    match ctx.global.output {
        Some(Output::Json) => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"resources": plan.resources, "summary": plan.summary()})
            )?
        ),
        Some(Output::Yaml) => print!(
            "{}",
            ballast_plan::to_yaml(
                &serde_json::json!({"resources": plan.resources, "summary": plan.summary()})
            )
        ),
        _ => print!("{}", render_plan(plan, ctx.color)),
    }
    Ok(())
}

pub struct ApplyFlags {
    pub prune: bool,
    pub dry_run: bool,
    pub yes: bool,
    pub parallelism: usize,
}

pub async fn apply(
    ctx: &Context,
    flags: ApplyFlags,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let set = load(ctx)?;
    refuse_empty_prune(ctx, &set, flags.prune, "refusing to --prune")?;
    let options = PlanOptions {
        refresh: true,
        prune: flags.prune,
        targets: parse_targets(targets)?,
    };
    let engine = ctx
        .create_engine(flags.parallelism)
        .await?
        .with_role("apply");
    let prepared = engine.plan(set, &options).await?;
    print_plan(ctx, &prepared.plan)?;
    if flags.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if prepared.plan.has_changes() && !flags.yes && !confirm()? {
        println!("Apply cancelled.");
        return Ok(ExitCode::from(1));
    }
    let source = source_info(&ctx.global.manifests());
    let progress = Progress::new();
    let report = engine.apply(prepared, &options, &source, &progress).await;
    progress.finish();
    let report = report?;
    if report.interrupted > 0 {
        println!(
            "note: {} task(s) left running by an earlier apply were marked interrupted and re-planned from the live state",
            report.interrupted
        );
    }
    if ctx.global.output == Some(Output::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (key, error) in &report.failed {
            println!("FAILED {key}: {error}");
        }
        for (key, why) in &report.not_touched {
            println!("NOT TOUCHED {key}: {why}");
        }
        println!("Apply complete: {}.", report.summary());
    }
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Asks on the terminal, as Terraform does; without a terminal, refuses rather than guessing.
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "standard input is not a terminal, so ballast cannot ask before applying; pass --yes to apply without asking"
        );
    }
    print!("\nApply these changes? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
