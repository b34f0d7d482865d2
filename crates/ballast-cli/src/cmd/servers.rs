//! Server views: `get servers` (live, or the `servers` table with `--cached`), the system facts `describe server/NAME`
//! adds, and `logs server/NAME` (the last preparation runs with their steps).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::bail;
use ballast_engine::ServerObservation;
use ballast_store::{DesiredRow, ServerRecord};

use super::observe;
use super::show::{print_structured, table, time};
use crate::context::Context;

fn bytes(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) => {
            let gib = n as f64 / (1u64 << 30) as f64;
            if gib >= 1.0 {
                format!("{gib:.1}Gi")
            } else {
                format!("{:.0}Mi", n as f64 / (1u64 << 20) as f64)
            }
        }
    }
}

/// `get servers`: each server in the recorded desired state, connected to now (concurrently;
/// the same observation `diff --refresh` makes, recorded nowhere), or with `--cached` its
/// `servers` row as last written and how old it is. Servers removed from the manifests are
/// listed from their row, marked, and not connected to.
pub async fn get(ctx: &Context, name: Option<&str>, cached: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let desired = store
        .list_desired(Some(ballast_model::Kind::Server.as_str()), true)
        .await?;
    let wanted: Vec<&DesiredRow> = desired
        .iter()
        .filter(|d| name.is_none_or(|n| n == d.name))
        .collect();
    if let Some(name) = name
        && wanted.is_empty()
    {
        bail!("Server/{name} is not in the recorded desired state (has it been applied?)");
    }
    let records = store.list_servers().await?;
    let now = chrono::Utc::now();
    let (set, notes) = if cached {
        Default::default()
    } else {
        observe::recorded_set(wanted.iter().copied().filter(|d| d.tombstoned_at.is_none()))
    };
    for note in notes {
        eprintln!("note: {note}");
    }
    let engine = ballast_engine::Engine::new(store.clone(), ctx.key_file());
    let observations = futures::future::join_all(set.servers().map(|(resource, _)| {
        let engine = &engine;
        let set = &set;
        async move {
            let key = &resource.key;
            (key.name.clone(), engine.observe_key(set, key).await)
        }
    }))
    .await;
    let mut live: HashMap<String, ServerObservation> = HashMap::new();
    for (server, observation) in observations {
        if let Some(found) = observation?.server(&server) {
            live.insert(server, found.clone());
        }
    }

    let mut rows: Vec<(ServerRecord, serde_json::Value)> = Vec::new();
    for d in wanted {
        let mut record = match records.iter().find(|r| r.name == d.name) {
            Some(r) => r.clone(),
            None => {
                let spec = &d.spec["spec"];
                let mut r = ServerRecord::new(
                    &d.name,
                    spec["address"].as_str().unwrap_or_default(),
                    spec["port"].as_u64().unwrap_or(22) as u16,
                    spec["user"].as_str().unwrap_or("root"),
                );
                r.status_message = Some("not connected yet".into());
                r
            }
        };
        let found = live.get(&d.name);
        if let Some(found) = found {
            let key = ballast_model::ResourceKey::new(ballast_model::Kind::Server, &d.name);
            let spec = set.get(&key).and_then(|r| r.spec.as_server());
            found.update_record(&mut record, spec);
        }
        let mut notes: Vec<String> = Vec::new();
        if d.tombstoned_at.is_some() {
            notes.push(super::show::REMOVED_NOTE.to_string());
        }
        if found.is_some()
            && record.status != "connected"
            && let Some(message) = &record.status_message
        {
            notes.push(message.clone());
        }
        let extra = serde_json::json!({
            "live": found.is_some(),
            "observedAt": if found.is_some() { time(&now) } else { time(&record.updated_at) },
            "age": (found.is_none()).then(|| observe::age(&record.updated_at, now)),
            "removedFromManifestsAt": d.tombstoned_at.map(|t| time(&t)),
            "note": (!notes.is_empty()).then(|| notes.join("; ")),
        });
        rows.push((record, extra));
    }
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|(record, extra)| {
            let mut value = serde_json::to_value(record)?;
            if let (Some(object), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
                object.extend(extra.clone());
            }
            Ok(value)
        })
        .collect::<Result<_, serde_json::Error>>()?;
    if print_structured(ctx, &serde_json::Value::Array(values))? {
        return Ok(ExitCode::SUCCESS);
    }
    let with_notes = rows.iter().any(|(_, extra)| !extra["note"].is_null());
    let mut header = vec![
        "NAME",
        "ADDRESS",
        "STATUS",
        "OS",
        "DOCKER",
        "CPUS",
        "MEMORY",
        "DISK FREE",
        "LAST CONNECTED",
    ];
    if cached {
        header.push("OBSERVED");
    }
    if with_notes {
        header.push("NOTE");
    }
    let mut t = table(&header);
    for (r, extra) in &rows {
        let mut cells = vec![
            r.name.clone(),
            format!("{}@{}:{}", r.user, r.address, r.port),
            r.status.clone(),
            r.os_name.clone().unwrap_or("-".into()),
            match (&r.docker_version, r.docker_installed) {
                (Some(v), _) => v.clone(),
                (None, true) => "installed".into(),
                (None, false) => "-".into(),
            },
            r.cpu_count.map(|c| c.to_string()).unwrap_or("-".into()),
            bytes(r.memory_bytes),
            bytes(r.disk_free_bytes),
            r.last_connected.map(|t| time(&t)).unwrap_or("never".into()),
        ];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        if cached {
            cells.push(text(&extra["age"]));
        }
        if with_notes {
            cells.push(text(&extra["note"]));
        }
        t.add_row(cells);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// The `servers` row as `describe` shows it, or None when the server was never recorded.
pub async fn describe_lines(ctx: &Context, name: &str) -> anyhow::Result<Option<Vec<String>>> {
    let store = ctx.store().await?;
    let Some(r) = store.get_server(name).await? else {
        return Ok(None);
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or("-".into());
    let mut lines = vec![
        format!("Address:   {}@{}:{}", r.user, r.address, r.port),
        format!(
            "Status:    {}{}",
            r.status,
            r.status_message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        format!("Host key:  {}", opt(&r.host_key)),
        format!(
            "System:    {} {} (kernel {}, {})",
            opt(&r.os_name),
            r.os_version.clone().unwrap_or_default(),
            opt(&r.kernel),
            opt(&r.arch)
        ),
        format!(
            "CPU:       {} x {}",
            r.cpu_count.map(|c| c.to_string()).unwrap_or("-".into()),
            opt(&r.cpu_model)
        ),
        format!("Memory:    {}", bytes(r.memory_bytes)),
        format!(
            "Disk (/):  {} free of {}",
            bytes(r.disk_free_bytes),
            bytes(r.disk_total_bytes)
        ),
        format!(
            "Docker:    {}",
            match (&r.docker_version, r.docker_installed) {
                (Some(v), _) => format!("{v} (answering)"),
                (None, true) => "installed, not answering".into(),
                (None, false) => "not installed".into(),
            }
        ),
        format!(
            "Last connected: {}",
            r.last_connected.map(|t| time(&t)).unwrap_or("never".into())
        ),
    ];
    let credentials = store.list_server_credentials(Some(name)).await?;
    for c in credentials {
        lines.push(format!(
            "Credential: {} from {} (sealed, key {})",
            c.purpose, c.source, c.sealed.key_id
        ));
    }
    Ok(Some(lines))
}

pub async fn logs(ctx: &Context, resource: &str, limit: u64) -> anyhow::Result<ExitCode> {
    let key: ballast_model::ResourceKey =
        resource.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    if key.kind != ballast_model::Kind::Server {
        bail!("logs are kept for servers' preparations; expected server/NAME, got {key}");
    }
    let store = ctx.store().await?;
    let runs = store.list_preparations(&key.name, limit).await?;
    if print_structured(ctx, &serde_json::to_value(&runs)?)? {
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("Server/{}: no preparation has run", key.name);
        return Ok(ExitCode::SUCCESS);
    }
    // Oldest first, so the newest run ends the output as in a terminal log.
    for run in runs.iter().rev() {
        println!(
            "Preparation {} (attempt {}), started {}: {}{}",
            run.id,
            run.attempt,
            time(&run.started_at),
            run.status,
            run.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        for step in &run.steps {
            println!(
                "  {:>2}. {:<17} {:<10} {}",
                step.seq, step.step, step.status, step.message
            );
            for (label, text) in [("stdout", &step.stdout), ("stderr", &step.stderr)] {
                let lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let tail = &lines[lines.len().saturating_sub(10)..];
                println!(
                    "      {label} (last {} of {} lines):",
                    tail.len(),
                    lines.len()
                );
                for line in tail {
                    println!("        {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
