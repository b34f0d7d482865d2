//! Read-only views: `get` (live from the engines unless `--cached`), and what the store recorded:
//! `describe`, `history`, `tasks`, `audit`.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use ballast_engine::DIRTY_SUFFIX;
use ballast_model::app::LOCAL_SERVER;
use ballast_model::{Kind, ResourceKey};
use ballast_plan::to_yaml;
use ballast_store::{DesiredRow, Store, TaskFilter};
use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::NOTHING};
use similar::TextDiff;

use super::observe;
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

/// An app as seen: its state, when, and whether it comes from the engine just now.
struct Seen {
    state: serde_json::Value,
    at: DateTime<Utc>,
    live: bool,
    /// Why the state is not live, when it is not.
    note: Option<String>,
}

/// What `removed from the manifests` means for a tombstoned resource, as `describe` says it.
pub(crate) const REMOVED_NOTE: &str = "removed from the manifests; kept until `apply --prune`";

pub async fn get(
    ctx: &Context,
    kind: &str,
    name: Option<&str>,
    cached: bool,
) -> anyhow::Result<ExitCode> {
    let kind: Kind = kind.parse().map_err(|e: String| anyhow!(e))?;
    if kind == Kind::Server {
        return super::servers::get(ctx, name, cached).await;
    }
    let store = ctx.store().await?;
    // Tombstoned rows too: an app removed from the manifests keeps running until a prune.
    let desired = store.list_desired(Some(kind.as_str()), true).await?;
    let now = Utc::now();
    let seen = if cached {
        recorded_apps(&store).await?
    } else {
        live_apps(ctx, &store, &desired, now).await?
    };
    let mut names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    names.extend(
        seen.keys()
            .map(String::as_str)
            .filter(|n| !desired.iter().any(|d| d.name == *n)),
    );
    let mut rows = Vec::new();
    for app in names.into_iter().filter(|n| name.is_none_or(|w| w == *n)) {
        let d = desired.iter().find(|d| d.name == app);
        let found = seen.get(app);
        let notes: Vec<&str> = [
            match d {
                Some(d) if d.tombstoned_at.is_some() => Some(REMOVED_NOTE),
                Some(_) => None,
                None => Some("not in the recorded desired state"),
            },
            found.and_then(|f| f.note.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let at = found.map(|f| f.at).or((!cached).then_some(now));
        rows.push(serde_json::json!({
            "kind": kind.as_str(), "name": app,
            "generation": d.map(|d| d.generation),
            "source": d.map(|d| format!("{}:{}", d.source_file, d.source_line)),
            "gitCommit": d.and_then(|d| d.git_commit.clone()),
            "desired": d.map(|d| d.spec.clone()),
            "removedFromManifestsAt": d.and_then(|d| d.tombstoned_at).map(|t| time(&t)),
            "observed": found.map(|f| f.state.clone()),
            "observedAt": at.map(|t| time(&t)),
            "live": found.is_none_or(|f| f.live) && !cached,
            "age": at.filter(|_| cached || found.is_some_and(|f| !f.live)).map(|t| observe::age(&t, now)),
            "note": (!notes.is_empty()).then(|| notes.join("; ")),
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
    let with_notes = rows.iter().any(|r| !r["note"].is_null());
    let mut header = vec![
        "NAME",
        "IMAGE",
        "WANT",
        "STATE",
        "STATUS",
        "CONTAINER",
        "GEN",
    ];
    if cached {
        header.push("OBSERVED");
    }
    if with_notes {
        header.push("NOTE");
    }
    let mut t = table(&header);
    for row in &rows {
        let spec = &row["desired"]["spec"];
        let obs = &row["observed"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        let mut cells = vec![
            text(&row["name"]),
            spec["image"]
                .as_str()
                .map_or_else(|| text(&obs["image"]), str::to_string),
            if !row["removedFromManifestsAt"].is_null() {
                "(removed)".to_string()
            } else if spec.is_null() {
                "-".to_string()
            } else {
                spec["state"].as_str().unwrap_or("running").to_string()
            },
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
            row["generation"]
                .as_i64()
                .map_or("-".to_string(), |g| g.to_string()),
        ];
        if cached {
            cells.push(text(&row["age"]));
        }
        if with_notes {
            cells.push(text(&row["note"]));
        }
        t.add_row(cells);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// The apps' state as the last observation (by `apply` or the daemon) recorded it.
async fn recorded_apps(store: &Store) -> anyhow::Result<BTreeMap<String, Seen>> {
    Ok(store
        .list_observed(Kind::App.as_str())
        .await?
        .into_iter()
        .map(|row| {
            let seen = Seen {
                state: row.state,
                at: row.observed_at,
                live: false,
                note: None,
            };
            (row.name, seen)
        })
        .collect())
}

/// The apps' state now: every engine an app runs or ran on is listed once, through the engine
/// crate; an engine that cannot be reached leaves its apps at their recorded state, said so.
/// Writes nothing.
async fn live_apps(
    ctx: &Context,
    store: &Store,
    desired: &[DesiredRow],
    now: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<String, Seen>> {
    let recorded = recorded_apps(store).await?;
    if desired.is_empty() && recorded.is_empty() {
        // Nothing was ever applied: no engine to ask.
        return Ok(recorded);
    }
    // The servers those apps run or ran on, to reach their engines.
    let hosts: HashSet<&str> = desired
        .iter()
        .filter_map(|d| d.spec["spec"]["server"].as_str())
        .chain(recorded.values().filter_map(|s| s.state["server"].as_str()))
        .collect();
    let servers = store
        .list_desired(Some(Kind::Server.as_str()), true)
        .await?;
    let (set, notes) = observe::recorded_set(
        desired
            .iter()
            .chain(servers.iter().filter(|s| hosts.contains(s.name.as_str()))),
    );
    for note in notes {
        eprintln!("note: {note}");
    }
    let engine = ballast_engine::Engine::new(store.clone(), ctx.key_file());
    let observation = engine.observe(&set).await.context(
        "cannot observe the apps live; `ballast get apps --cached` shows the state recorded at the last observation",
    )?;
    let reached = |server: &str| {
        !observation.unreachable.contains_key(server)
            && (server == LOCAL_SERVER
                || set.get(&ResourceKey::new(Kind::Server, server)).is_some())
    };
    let mut seen = BTreeMap::new();
    for (name, app) in &observation.observed.apps {
        let entry = if reached(&app.server) {
            Seen {
                state: serde_json::to_value(app)?,
                at: now,
                live: true,
                note: None,
            }
        } else {
            let at = recorded.get(name).map_or(now, |r| r.at);
            Seen {
                state: serde_json::to_value(app)?,
                at,
                live: false,
                note: Some(format!(
                    "recorded {}: its engine was not reached ({})",
                    observe::age(&at, now),
                    observation
                        .unreachable
                        .get(&app.server)
                        .map_or("its server was not observed", String::as_str)
                )),
            }
        };
        seen.insert(name.clone(), entry);
    }
    // Recorded on an engine that was not asked (its server is not in the recorded desired
    // state): shown as recorded, said so. Recorded on an engine that was asked and not found
    // there: gone.
    for (name, mut old) in recorded {
        let server = old.state["server"].as_str().unwrap_or(LOCAL_SERVER);
        if seen.contains_key(&name) || reached(server) {
            continue;
        }
        old.note = Some(format!(
            "recorded {}: Server/{server} was not observed",
            observe::age(&old.at, now)
        ));
        seen.insert(name, old);
    }
    Ok(seen)
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
    // JSON keeps the state exactly as recorded; YAML and text are read by people.
    let readable = ctx.global.output != Some(Output::Json);
    let state = |s: &ballast_store::SnapshotRow| {
        if readable {
            readable_state(&s.state)
        } else {
            s.state.clone()
        }
    };
    let value = serde_json::Value::Array(
        snapshots
            .iter()
            .map(|s| serde_json::json!({"at": time(&s.created_at), "change": s.change_type, "state": state(s)}))
            .collect(),
    );
    if print_structured(ctx, &value)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut previous = String::new();
    for s in &snapshots {
        println!("{}  {}", time(&s.created_at), s.change_type);
        let current = to_yaml(&state(s));
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

/// An audit row's commit and whether the tree was dirty: the engine records `COMMIT+dirty`
/// when the manifests differed from their commit.
fn commit_of(r: &ballast_store::AuditRow) -> Option<(&str, bool)> {
    r.git_commit
        .as_deref()
        .map(|c| match c.strip_suffix(DIRTY_SUFFIX) {
            Some(commit) => (commit, true),
            None => (c, false),
        })
}

/// A recorded state as people read it: the applied spec a container carries in its
/// `ballast.spec` label is JSON text; shown as a nested mapping it renders as YAML, as `diff`
/// shows specs, instead of one escaped line.
fn readable_state(state: &serde_json::Value) -> serde_json::Value {
    let mut state = state.clone();
    if let Some(label) = state
        .get_mut("labels")
        .and_then(|labels| labels.get_mut(ballast_plan::app::labels::SPEC))
        && let Some(parsed) = label
            .as_str()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
    {
        *label = parsed;
    }
    state
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
                "action": r.action, "summary": r.summary, "gitCommit": commit_of(r).map(|(c, _)| c),
                "gitDirty": commit_of(r).is_some_and(|(_, dirty)| dirty), "hash": r.hash})).collect::<Vec<_>>(),
            "chainIntact": verdict.is_ok(),
        }),
    )? {
        let mut t = table(&["SEQ", "TIME", "ACTOR", "ACTION", "COMMIT", "SUMMARY"]);
        for r in &rows {
            let commit = match commit_of(r) {
                Some((c, dirty)) => format!(
                    "{}{}",
                    &c[..c.len().min(10)],
                    if dirty { DIRTY_SUFFIX } else { "" }
                ),
                None => "-".to_string(),
            };
            t.add_row(vec![
                r.seq.to_string(),
                time(&r.created_at),
                r.actor.clone(),
                r.action.clone(),
                commit,
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
