//! The daemon's HTTP API, on a unix socket (and optionally a loopback TCP port): health and
//! readiness for systemd and load balancers, Prometheus metrics, read endpoints for resources,
//! events and tasks, and two actions (reload, reconcile one resource) that need the bearer
//! token from the config. `ballast status` reads `/v1/status` through the socket.
//!
//! On a TCP address other than loopback (reachable from the network) every endpoint but
//! `/healthz` and `/readyz` needs the token too: the unix socket is guarded by its file mode,
//! a network port by nothing else.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
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

/// Why the API socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(
        "something already answers on the API socket {} (another ballast daemon?); it was left alone. Stop that process, or give this daemon another [http] socket",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error(
        "{} exists and is not a socket; it was left alone. Remove it, or give the daemon another [http] socket",
        path.display()
    )]
    NotASocket { path: PathBuf },
    #[error("cannot listen on the API socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds the API's unix socket. A socket file left by a process that ended (nothing answers
/// on it) is replaced; a live one, or anything that is not a socket, is never touched.
pub(crate) async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(SocketError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match tokio::net::UnixStream::connect(path).await {
            Ok(_) => {
                return Err(SocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
            // Refused: a socket file nobody listens on any more.
            Err(_) => {
                tracing::info!(socket = %path.display(), "replacing a stale API socket");
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    // Only the owner (and root) may talk to the daemon through the socket.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves the router on a bound unix socket until the process ends.
pub(crate) async fn serve_unix(
    listener: tokio::net::UnixListener,
    router: Router,
) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Serves the router on a bound TCP listener until the process ends. Off loopback, every
/// endpoint but health and readiness needs the bearer token.
pub(crate) async fn serve_tcp(
    listener: tokio::net::TcpListener,
    router: Router,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let on_network = listener
        .local_addr()
        .map(|a| !a.ip().is_loopback())
        .unwrap_or(true);
    let router = if on_network {
        router.layer(axum::middleware::from_fn_with_state(shared, network_guard))
    } else {
        router
    };
    axum::serve(listener, router).await
}

/// On a listener reachable from the network: the token for everything but health.
async fn network_guard(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let open = matches!(request.uri().path(), "/healthz" | "/readyz");
    if !open && let Some(denied) = denied(&shared, request.headers()) {
        return denied;
    }
    next.run(request).await
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
    match bearer_token(headers) {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header. The scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work as well.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer_token(&headers).map(str::to_string)
        };
        for value in [
            "Bearer t0ken",
            "bearer t0ken",
            "BEARER t0ken",
            "bEaReR   t0ken ",
        ] {
            assert_eq!(with(value).as_deref(), Some("t0ken"), "{value}");
        }
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "t0ken",
            "Bearert0ken",
        ] {
            assert_eq!(with(value), None, "{value}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_live_socket_is_never_replaced_and_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/ballast.sock");
        let live = bind_unix(&path).await.unwrap();
        assert!(matches!(
            bind_unix(&path).await,
            Err(SocketError::InUse { .. })
        ));
        assert!(path.exists(), "the live socket is still there");
        drop(live);
        // The file stays behind with nobody listening: stale, so it is replaced.
        assert!(path.exists());
        let _again = bind_unix(&path).await.unwrap();

        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            bind_unix(&file).await,
            Err(SocketError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }
}
