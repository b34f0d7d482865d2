//! Read-only views of what the store recorded: `get`, `describe`, `history`, `tasks`, `audit`.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use ballast_model::{Kind, ResourceKey};
use ballast_plan::to_yaml;
use ballast_store::TaskFilter;
use comfy_table::{Table, presets::NOTHING};
use similar::TextDiff;

use crate::Output;
use crate::context::Context;

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_header(header.iter().map(|h| h.to_string()));
    t
}

pub(crate) fn print_structured(ctx: &Context, value: &serde_json::Value) -> anyhow::Result<bool> {
    match ctx.global.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(value)?),
        Some(Output::Yaml) => print!("{}", to_yaml(value)),
        _ => return Ok(false),
    }
    Ok(true)
}

pub(crate) fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub async fn get(ctx: &Context, kind: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let kind: Kind = kind.parse().map_err(|e: String| anyhow!(e))?;
    if kind == Kind::Server {
        return super::servers::get(ctx, name).await;
    }
    let store = ctx.store().await?;
    let desired = store.list_desired(Some(kind.as_str()), false).await?;
    let observed = store.list_observed(kind.as_str()).await?;
    let mut rows = Vec::new();
    for d in desired.iter().filter(|d| name.is_none_or(|n| n == d.name)) {
        let live = observed.iter().find(|o| o.name == d.name);
        rows.push(serde_json::json!({
            "kind": d.kind, "name": d.name, "generation": d.generation,
            "source": format!("{}:{}", d.source_file, d.source_line),
            "gitCommit": d.git_commit, "desired": d.spec,
            "observed": live.map(|o| o.state.clone()),
            "observedAt": live.map(|o| time(&o.observed_at)),
        }));
    }
    if let Some(name) = name
        && rows.is_empty()
    {
        bail!("{kind}/{name} is not in the recorded desired state (has it been applied?)");
    }
    if print_structured(ctx, &serde_json::Value::Array(rows.clone()))? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "NAME",
        "IMAGE",
        "WANT",
        "STATE",
        "STATUS",
        "CONTAINER",
        "GEN",
    ]);
    for row in &rows {
        let spec = &row["desired"]["spec"];
        let obs = &row["observed"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        t.add_row(vec![
            text(&row["name"]),
            text(&spec["image"]),
            spec["state"].as_str().unwrap_or("running").to_string(),
            if obs.is_null() {
                "absent".into()
            } else {
                text(&obs["state"])
            },
            text(&obs["status"]),
            obs["containerId"]
                .as_str()
                .map(|id| id[..id.len().min(12)].to_string())
                .unwrap_or("-".into()),
            row["generation"].to_string(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn parse_key(resource: &str) -> anyhow::Result<ResourceKey> {
    resource.parse().map_err(|e: String| anyhow!(e))
}

pub async fn describe(ctx: &Context, resource: &str) -> anyhow::Result<ExitCode> {
    let key = parse_key(resource)?;
    let store = ctx.store().await?;
    let kind = key.kind.as_str();
    let desired = store.get_desired(kind, &key.name).await?;
    let observed = store.get_observed(kind, &key.name).await?;
    if desired.is_none() && observed.is_none() {
        bail!("{key} is not known to this store (not applied, not observed)");
    }
    let tasks = store
        .list_tasks(TaskFilter {
            kind: Some(kind.to_string()),
            name: Some(key.name.clone()),
            failed_only: false,
            limit: Some(5),
        })
        .await?;
    let value = serde_json::json!({
        "resource": key.to_string(),
        "desired": desired.as_ref().map(|d| serde_json::json!({
            "generation": d.generation, "specHash": d.spec_hash, "source": format!("{}:{}", d.source_file, d.source_line),
            "gitCommit": d.git_commit, "gitDirty": d.git_dirty, "tombstoned": d.tombstoned_at.map(|t| time(&t)),
            "document": d.spec,
        })),
        "observed": observed.as_ref().map(|o| serde_json::json!({"at": time(&o.observed_at), "state": o.state})),
        "recentTasks": tasks.iter().map(|t| serde_json::json!({
            "id": t.id, "action": t.action, "status": t.status, "attempts": t.attempts,
            "started": t.started_at.map(|x| time(&x)), "finished": t.finished_at.map(|x| time(&x)),
            "error": t.error, "log": t.log.lines().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    if print_structured(ctx, &value)? {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Resource: {key}");
    if let Some(d) = &desired {
        println!("Source:   {}:{}", d.source_file, d.source_line);
        if let Some(c) = &d.git_commit {
            println!("Commit:   {c}{}", if d.git_dirty { " (dirty)" } else { "" });
        }
        println!("Generation: {}", d.generation);
        if let Some(t) = d.tombstoned_at {
            println!(
                "Removed from the manifests at {} (kept until `apply --prune`)",
                time(&t)
            );
        }
        println!("\nSpec:\n{}", indent(&to_yaml(&d.spec["spec"])));
    }
    if key.kind == Kind::Server
        && let Some(lines) = super::servers::describe_lines(ctx, &key.name).await?
    {
        println!("\nServer:");
        for line in lines {
            println!("  {line}");
        }
    }
    match &observed {
        Some(o) => println!(
            "Observed at {}:\n{}",
            time(&o.observed_at),
            indent(&to_yaml(&o.state))
        ),
        None => println!("Observed: nothing (no container found at the last observation)"),
    }
    println!("Recent tasks:");
    if tasks.is_empty() {
        println!("  none");
    }
    for t in &tasks {
        let when = t
            .started_at
            .or(Some(t.created_at))
            .map(|x| time(&x))
            .unwrap_or_default();
        println!(
            "  {when}  {:<8} {:<11} {}",
            t.action,
            t.status,
            t.error.as_deref().unwrap_or("")
        );
        for line in t.log.lines() {
            println!("      {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

pub async fn history(ctx: &Context, resource: &str) -> anyhow::Result<ExitCode> {
    let key = parse_key(resource)?;
    let store = ctx.store().await?;
    let snapshots = store.list_snapshots(key.kind.as_str(), &key.name).await?;
    if snapshots.is_empty() {
        bail!("no snapshots recorded for {key}");
    }
    let value = serde_json::Value::Array(
        snapshots
            .iter()
            .map(|s| serde_json::json!({"at": time(&s.created_at), "change": s.change_type, "state": s.state}))
            .collect(),
    );
    if print_structured(ctx, &value)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut previous = String::new();
    for s in &snapshots {
        println!("{}  {}", time(&s.created_at), s.change_type);
        let current = to_yaml(&s.state);
        let diff = TextDiff::from_lines(&previous, &current);
        for change in diff.iter_all_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Equal => continue,
            };
            print!("    {sign} {change}");
        }
        previous = current;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tasks(ctx: &Context, failed: bool, limit: u64) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let tasks = store
        .list_tasks(TaskFilter {
            kind: None,
            name: None,
            failed_only: failed,
            limit: Some(limit),
        })
        .await?;
    let value = serde_json::Value::Array(
        tasks
            .iter()
            .map(|t| serde_json::json!({
                "id": t.id, "resource": format!("{}/{}", t.kind, t.name), "action": t.action, "status": t.status,
                "attempts": t.attempts, "created": time(&t.created_at), "error": t.error, "log": t.log,
            }))
            .collect(),
    );
    if print_structured(ctx, &value)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["TIME", "RESOURCE", "ACTION", "STATUS", "ERROR"]);
    for task in &tasks {
        t.add_row(vec![
            time(&task.created_at),
            format!("{}/{}", task.kind, task.name),
            task.action.clone(),
            task.status.to_string(),
            task.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(ctx: &Context, limit: u64) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let rows = store.list_audit(limit).await?;
    let verdict = store.verify_audit_chain().await;
    if !print_structured(
        ctx,
        &serde_json::json!({
            "entries": rows.iter().map(|r| serde_json::json!({"seq": r.seq, "at": time(&r.created_at), "actor": r.actor,
                "action": r.action, "summary": r.summary, "gitCommit": r.git_commit, "hash": r.hash})).collect::<Vec<_>>(),
            "chainIntact": verdict.is_ok(),
        }),
    )? {
        let mut t = table(&["SEQ", "TIME", "ACTOR", "ACTION", "COMMIT", "SUMMARY"]);
        for r in &rows {
            let commit = r
                .git_commit
                .as_deref()
                .map(|c| &c[..c.len().min(10)])
                .unwrap_or("-");
            t.add_row(vec![
                r.seq.to_string(),
                time(&r.created_at),
                r.actor.clone(),
                r.action.clone(),
                commit.to_string(),
                r.summary.clone(),
            ]);
        }
        println!("{t}");
    }
    match verdict {
        Ok(n) => {
            eprintln!("audit chain intact ({n} entries)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("AUDIT CHAIN BROKEN: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub async fn events(ctx: &Context, watch: bool, limit: u64) -> anyhow::Result<ExitCode> {
    use ballast_store::EventFilter;
    let store = ctx.store().await?;
    // Newest first from the store; shown oldest first, as a log reads.
    let mut recent = store
        .list_events(EventFilter {
            limit: Some(limit),
            ..Default::default()
        })
        .await?;
    recent.reverse();
    let json = ctx.global.output == Some(Output::Json);
    let print = |e: &ballast_store::EventRow| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!(
                "{}  {:<7} {:<16} {:<24} {}",
                time(&e.created_at),
                e.severity,
                e.kind,
                e.resource.as_deref().unwrap_or("-"),
                e.message
            );
        }
    };
    let mut last = 0;
    for e in &recent {
        print(e);
        last = e.seq;
    }
    if !watch {
        return Ok(ExitCode::SUCCESS);
    }
    if last == 0 {
        last = store
            .list_events(EventFilter {
                limit: Some(1),
                ..Default::default()
            })
            .await?
            .first()
            .map_or(0, |e| e.seq);
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        for e in store
            .list_events(EventFilter {
                since_seq: Some(last),
                ..Default::default()
            })
            .await?
        {
            print(&e);
            last = e.seq;
        }
    }
}
