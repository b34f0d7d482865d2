//! Server views: `get servers` (the `servers` table), the system facts `describe server/NAME`
//! adds, and `logs server/NAME` (the last preparation runs with their steps).

use std::process::ExitCode;

use anyhow::bail;
use ballast_store::ServerRecord;

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

pub async fn get(ctx: &Context, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let desired = store
        .list_desired(Some(ballast_model::Kind::Server.as_str()), false)
        .await?;
    let records = store.list_servers().await?;
    let mut rows: Vec<ServerRecord> = Vec::new();
    for d in desired.iter().filter(|d| name.is_none_or(|n| n == d.name)) {
        rows.push(match records.iter().find(|r| r.name == d.name) {
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
        });
    }
    if let Some(name) = name
        && rows.is_empty()
    {
        bail!("Server/{name} is not in the recorded desired state (has it been applied?)");
    }
    if print_structured(ctx, &serde_json::to_value(&rows)?)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "NAME",
        "ADDRESS",
        "STATUS",
        "OS",
        "DOCKER",
        "CPUS",
        "MEMORY",
        "DISK FREE",
        "LAST CONNECTED",
    ]);
    for r in &rows {
        t.add_row(vec![
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
        ]);
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
