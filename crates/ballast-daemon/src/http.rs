//! The daemon's HTTP API, on a unix socket (and optionally a loopback TCP port): health and
//! readiness for systemd and load balancers, Prometheus metrics, read endpoints for resources,
//! events and tasks, and two actions (reload, reconcile one resource) that need the bearer
//! token from the config. `ballast status` reads `/v1/status` through the socket.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ballast_model::ResourceKey;
use ballast_store::{EventFilter, TaskFilter};
use serde::Deserialize;

use crate::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/resources", get(resources))
        .route("/v1/events", get(events))
        .route("/v1/tasks", get(tasks))
        .route("/v1/reload", post(reload))
        .route("/v1/reconcile/{kind}/{name}", post(reconcile))
        .with_state(shared)
}

/// Serves the router on a unix socket (replacing a stale socket file) until the process ends.
pub(crate) async fn serve_unix(path: &Path, router: Router) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    // Only the owner (and root) may talk to the daemon through the socket.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    axum::serve(listener, router).await
}

pub(crate) async fn serve_tcp(addr: std::net::SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::SeqCst) {
        "ready\n".into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first reload has not finished",
        )
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.status()).into_response()
}

async fn resources(State(shared): State<Arc<Shared>>) -> Response {
    let store = shared.engine.store();
    let (desired, observed) = match (
        store.list_desired(None, true).await,
        store.list_observed("App").await,
    ) {
        (Ok(d), Ok(o)) => (d, o),
        (Err(e), _) | (_, Err(e)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    let rows: Vec<serde_json::Value> = desired
        .iter()
        .map(|d| {
            let live = observed.iter().find(|o| o.name == d.name);
            serde_json::json!({
                "kind": d.kind, "name": d.name, "generation": d.generation,
                "tombstoned": d.tombstoned_at.is_some(), "gitCommit": d.git_commit,
                "observed": live.map(|o| &o.state),
            })
        })
        .collect();
    Json(rows).into_response()
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<i64>,
    limit: Option<u64>,
}

async fn events(State(shared): State<Arc<Shared>>, Query(q): Query<EventsQuery>) -> Response {
    let filter = EventFilter {
        since_seq: q.since,
        limit: Some(q.limit.unwrap_or(100)),
        ..Default::default()
    };
    match shared.engine.store().list_events(filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct TasksQuery {
    failed: Option<bool>,
    limit: Option<u64>,
}

async fn tasks(State(shared): State<Arc<Shared>>, Query(q): Query<TasksQuery>) -> Response {
    let filter = TaskFilter {
        kind: None,
        name: None,
        failed_only: q.failed.unwrap_or(false),
        limit: Some(q.limit.unwrap_or(100)),
    };
    match shared.engine.store().list_tasks(filter).await {
        Ok(rows) => Json(
            rows.iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id, "resource": format!("{}/{}", t.kind, t.name), "action": t.action,
                        "status": t.status, "attempts": t.attempts, "error": t.error, "created": t.created_at,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Actions need `Authorization: Bearer TOKEN` matching the configured token; with no token
/// configured, actions are refused rather than open.
fn denied(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = shared.token.as_deref() else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "actions are disabled: no token-file is configured under [http]",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn reload(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = denied(&shared, &headers) {
        return denied;
    }
    shared.reload_requested.notify_one();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"reload": "requested"})),
    )
        .into_response()
}

async fn reconcile(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath((kind, name)): UrlPath<(String, String)>,
) -> Response {
    if let Some(denied) = denied(&shared, &headers) {
        return denied;
    }
    let key: ResourceKey = match format!("{kind}/{name}").parse() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if shared.snapshot().0.get(&key).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("{key} is not in the desired state"),
        );
    }
    shared.queue.add(key.clone());
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"queued": key.to_string()})),
    )
        .into_response()
}
