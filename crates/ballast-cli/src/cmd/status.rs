//! `ballast status`: the running daemon's own view, read from its API socket.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::Output;
use crate::context::Context;

/// GET `path` from the daemon's unix socket.
async fn get(socket: &PathBuf, path: &str) -> anyhow::Result<serde_json::Value> {
    let stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            bail!(
                "the daemon is not running (nothing answers on {}); start it with `ballast daemon` or `systemctl start ballast`",
                socket.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot connect to {}", socket.display())),
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "ballast")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "the daemon answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

pub async fn run(ctx: &Context, socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let socket = ctx.socket(socket);
    let status = get(&socket, "/v1/status").await?;
    if matches!(ctx.global.output, Some(Output::Json)) {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    println!(
        "daemon:      {}",
        if status["ready"] == true {
            "ready"
        } else {
            "starting"
        }
    );
    let commit = status["lastReloadCommit"]
        .as_str()
        .map(|c| c[..c.len().min(12)].to_string());
    let reload_ok = status["lastReloadError"].is_null();
    println!(
        "last reload: {} {}{} — {}",
        text(&status["lastReloadAt"]),
        commit.unwrap_or_else(|| "(not a git work tree)".into()),
        if status["lastReloadDirty"] == true {
            " (dirty)"
        } else {
            ""
        },
        if reload_ok {
            "ok"
        } else {
            "FAILED, running on the last good state"
        }
    );
    if let Some(error) = status["lastReloadError"].as_str() {
        for line in error.lines() {
            println!("  {line}");
        }
    }
    println!(
        "resources:   {} ({} in sync, {} drifted, {} failing, {} queued)",
        status["resources"],
        status["inSync"],
        status["drifted"].as_array().map_or(0, Vec::len),
        status["failing"].as_array().map_or(0, Vec::len),
        status["queueDepth"]
    );
    for (label, field) in [("drifted", "drifted"), ("failing", "failing")] {
        for key in status[field].as_array().into_iter().flatten() {
            println!("  {label}: {}", text(key));
        }
    }
    Ok(if reload_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
