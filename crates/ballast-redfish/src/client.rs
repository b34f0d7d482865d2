//! [`RedfishClient`]: one BMC, one session, every call.
//!
//! The client logs in lazily (first call that needs it), keeps ONE session per BMC for all its
//! clones, logs in again once when the BMC answers 401 (the session expired), and falls back to
//! basic auth when the service offers no sessions. [`RedfishClient::close`] logs out;
//! [`RedfishClient::scoped`] runs a closure and always logs out afterwards, also when the closure
//! failed; a client dropped with its session open logs out in the background as a last resort.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};
use tracing::{debug, warn};

use crate::error::{RedfishError, error_messages};
use crate::model::{
    ApplyTime, ComputerSystem, FirmwareComponent, Manager, ResetType, ServiceRoot, UpdateService,
};
use crate::secret::Secret;
use crate::task::{Operation, TaskMonitor, TaskProgress, parse_task};
use crate::tls::{TlsVerify, client_config};

/// Where a BMC is and how to log in.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    /// `https://host[:port]` (no path).
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    pub tls: TlsVerify,
    /// Time limit of one request (a BMC can be slow; firmware uploads get no limit).
    pub timeout: Duration,
    /// Time limit to open a connection: short, so a rebooting BMC is noticed quickly.
    pub connect_timeout: Duration,
}

impl BmcConfig {
    /// A config for `address` (a host name, an IPv4 or an IPv6 address) and an optional port,
    /// always over HTTPS.
    pub fn new(
        address: &str,
        port: Option<u16>,
        username: impl Into<String>,
        password: impl Into<Secret>,
        tls: TlsVerify,
    ) -> Result<BmcConfig, RedfishError> {
        let address = address.trim();
        if address.is_empty() || address.contains('/') || address.contains(char::is_whitespace) {
            return Err(RedfishError::Config(format!(
                "BMC address `{address}` is not a host name or IP address"
            )));
        }
        let host = if address.contains(':') && !address.starts_with('[') {
            format!("[{address}]")
        } else {
            address.to_string()
        };
        let base_url = match port {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("https://{host}"),
        };
        Ok(BmcConfig::from_url(base_url, username, password, tls))
    }

    /// A config for a base URL as is (`http://` only makes sense against a test emulator).
    pub fn from_url(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<Secret>,
        tls: TlsVerify,
    ) -> BmcConfig {
        BmcConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            username: username.into(),
            password: password.into(),
            tls,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// How the client authenticates, as decided at the first login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `X-Auth-Token` of a session created through `SessionService/Sessions`.
    Session,
    /// HTTP basic auth on every request: the service offers no sessions.
    Basic,
}

enum AuthState {
    /// Not logged in (yet, or again after a logout or an expired session).
    None,
    Session {
        token: Secret,
        /// The session's URI, to log out; `None` when the BMC gave no `Location`.
        location: Option<String>,
    },
    Basic,
}

/// What a whole BMC looks like, read in as few requests as the BMC allows.
#[derive(Debug, Clone, PartialEq)]
pub struct BmcObservation {
    pub root: ServiceRoot,
    pub systems: Vec<ComputerSystem>,
    pub firmware: Vec<FirmwareComponent>,
}

impl BmcObservation {
    /// The BMC's own firmware version, from the inventory entry related to a manager.
    pub fn bmc_firmware_version(&self) -> Option<&str> {
        self.firmware
            .iter()
            .find(|c| c.is_manager_firmware())
            .and_then(|c| c.version.as_deref())
    }
}

/// `SimpleUpdate`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct SimpleUpdate {
    /// The image the BMC downloads.
    pub image_uri: String,
    /// `HTTP`, `HTTPS`, `NFS`, `CIFS`, …; left out when `None` (the URI's scheme says it).
    pub transfer_protocol: Option<String>,
    /// The inventory or system URIs to update; empty: the BMC decides from the image.
    pub targets: Vec<String>,
    pub apply_time: Option<ApplyTime>,
    /// Credentials for the image server, when it needs any.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// `UpdateParameters` of a multipart push.
#[derive(Debug, Clone, Default)]
pub struct PushUpdate {
    pub targets: Vec<String>,
    pub apply_time: Option<ApplyTime>,
}

/// A parsed response: status, headers, body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self, url: &str) -> Result<Value, RedfishError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| RedfishError::Protocol {
            url: url.to_string(),
            reason: format!("the body is not JSON: {e}"),
        })
    }
}

enum Payload<'a> {
    Empty,
    Json(&'a Value),
    /// A multipart push: built anew for every attempt (a stream can be sent only once).
    Multipart {
        file: &'a Path,
        params: &'a Value,
    },
}

/// A Redfish client for one BMC. Cheap to clone; the clones share the connection pool and the
/// session.
#[derive(Clone)]
pub struct RedfishClient {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    username: String,
    password: Secret,
    http: reqwest::Client,
    root: OnceCell<ServiceRoot>,
    update_service: OnceCell<UpdateService>,
    auth: Mutex<AuthState>,
}

impl std::fmt::Debug for RedfishClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishClient")
            .field("base_url", &self.inner.base_url)
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl RedfishClient {
    /// A client for `config`. Does no I/O: the first call reads the service root and logs in.
    pub fn new(config: BmcConfig) -> Result<RedfishClient, RedfishError> {
        let tls = client_config(&config.tls)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // BMCs close idle connections early; a stale pooled connection would fail a call.
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(4)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| RedfishError::Config(format!("building the HTTP client: {e}")))?;
        Ok(RedfishClient {
            inner: Arc::new(Inner {
                base_url: config.base_url,
                username: config.username,
                password: config.password,
                http,
                root: OnceCell::new(),
                update_service: OnceCell::new(),
                auth: Mutex::new(AuthState::None),
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Runs `f` with this client and logs out afterwards, whether `f` succeeded or not. The
    /// result is `f`'s; a failed logout is only logged when `f` failed too.
    ///
    /// ```no_run
    /// # async fn demo(client: ballast_redfish::RedfishClient) -> Result<(), ballast_redfish::RedfishError> {
    /// let observed = client.scoped(|c| Box::pin(async move { c.observe().await })).await?;
    /// # Ok(()) }
    /// ```
    pub async fn scoped<T, F>(self, f: F) -> Result<T, RedfishError>
    where
        F: for<'c> FnOnce(&'c RedfishClient) -> BoxFuture<'c, Result<T, RedfishError>>,
    {
        let result = f(&self).await;
        let closed = self.close().await;
        match (result, closed) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(logout)) => {
                warn!(bmc = %self.inner.base_url, error = %logout, "logging out after a failure failed");
                Err(e)
            }
        }
    }

    /// Logs out (deletes the session) when one is open. Later calls log in again.
    pub async fn close(&self) -> Result<(), RedfishError> {
        let state = std::mem::replace(&mut *self.inner.auth.lock().await, AuthState::None);
        if let AuthState::Session {
            token,
            location: Some(location),
        } = state
        {
            logout(&self.inner.http, &self.inner.base_url, &location, &token).await?;
        }
        Ok(())
    }

    /// How the client authenticates, once it has logged in.
    pub async fn auth_mode(&self) -> Option<AuthMode> {
        match &*self.inner.auth.lock().await {
            AuthState::None => None,
            AuthState::Session { .. } => Some(AuthMode::Session),
            AuthState::Basic => Some(AuthMode::Basic),
        }
    }

    /// The service root (read once, without credentials, then kept).
    pub async fn service_root(&self) -> Result<&ServiceRoot, RedfishError> {
        self.inner
            .root
            .get_or_try_init(|| async {
                let url = self.url("/redfish/v1/");
                let reply = self.raw(Method::GET, &url, None, &Payload::Empty).await?;
                let reply = check(&url, reply)?;
                Ok(ServiceRoot::parse(&reply.json(&url)?))
            })
            .await
    }

    /// Logs in now (otherwise the first call that needs it does).
    pub async fn login(&self) -> Result<AuthMode, RedfishError> {
        let mut auth = self.inner.auth.lock().await;
        self.ensure_login(&mut auth).await
    }

    /// GET of any resource path, as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, RedfishError> {
        let url = self.url(path);
        let reply = self.send(Method::GET, path, &Payload::Empty).await?;
        reply.json(&url)
    }

    /// The systems, with `$expand` when the service supports it.
    pub async fn systems(&self) -> Result<Vec<ComputerSystem>, RedfishError> {
        let root = self.service_root().await?;
        let Some(uri) = root.systems.clone() else {
            return Ok(Vec::new());
        };
        Ok(self
            .collection(&uri)
            .await?
            .iter()
            .map(ComputerSystem::parse)
            .collect())
    }

    /// One system.
    pub async fn system(&self, uri: &str) -> Result<ComputerSystem, RedfishError> {
        Ok(ComputerSystem::parse(&self.get(uri).await?))
    }

    /// The managers (BMCs) and their firmware versions.
    pub async fn managers(&self) -> Result<Vec<Manager>, RedfishError> {
        let root = self.service_root().await?;
        let Some(uri) = root.managers.clone() else {
            return Ok(Vec::new());
        };
        Ok(self
            .collection(&uri)
            .await?
            .iter()
            .map(Manager::parse)
            .collect())
    }

    /// The UpdateService (read once, then kept).
    pub async fn update_service(&self) -> Result<&UpdateService, RedfishError> {
        self.inner
            .update_service
            .get_or_try_init(|| async {
                let root = self.service_root().await?;
                let uri = root
                    .update_service
                    .clone()
                    .ok_or_else(|| RedfishError::Unsupported {
                        what: format!("the BMC at {} has no UpdateService", self.inner.base_url),
                    })?;
                Ok(UpdateService::parse(&self.get(&uri).await?))
            })
            .await
    }

    /// The firmware inventory, with `$expand` when the service supports it.
    pub async fn firmware_inventory(&self) -> Result<Vec<FirmwareComponent>, RedfishError> {
        let Some(uri) = self.inventory_uri().await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .collection(&uri)
            .await?
            .iter()
            .map(FirmwareComponent::parse)
            .collect())
    }

    /// Systems and firmware inventory: two requests on a service with `$expand` once the root
    /// is read and the session open.
    pub async fn observe(&self) -> Result<BmcObservation, RedfishError> {
        let root = self.service_root().await?.clone();
        let systems = self.systems().await?;
        let firmware = self.firmware_inventory().await?;
        Ok(BmcObservation {
            root,
            systems,
            firmware,
        })
    }

    /// `ComputerSystem.Reset` with `reset`, refused before any request when the system's
    /// `AllowableValues` do not list it.
    pub async fn reset_system(
        &self,
        system: &ComputerSystem,
        reset: &ResetType,
    ) -> Result<Operation, RedfishError> {
        if !system.allows_reset(reset) {
            let allowed: Vec<&str> = system.reset_types.iter().map(ResetType::as_str).collect();
            return Err(RedfishError::Unsupported {
                what: format!(
                    "system {} does not allow ResetType {reset}; it allows {}",
                    system.id,
                    allowed.join(", ")
                ),
            });
        }
        let target = system.reset_target.clone().unwrap_or_else(|| {
            format!(
                "{}/Actions/ComputerSystem.Reset",
                system.uri.trim_end_matches('/')
            )
        });
        self.action(&target, &json!({ "ResetType": reset.as_str() }))
            .await
    }

    /// `UpdateService.SimpleUpdate`: the BMC pulls the image. Returns at once with the task
    /// monitor (202) or `Done`; never waits for the update.
    pub async fn simple_update(&self, update: &SimpleUpdate) -> Result<Operation, RedfishError> {
        let service = self.update_service().await?;
        let target = service
            .simple_update
            .clone()
            .ok_or_else(|| RedfishError::Unsupported {
                what: format!(
                    "the BMC at {} offers no UpdateService.SimpleUpdate",
                    self.inner.base_url
                ),
            })?;
        if let Some(proto) = &update.transfer_protocol
            && !service.transfer_protocols.is_empty()
            && !service
                .transfer_protocols
                .iter()
                .any(|p| p.eq_ignore_ascii_case(proto))
        {
            return Err(RedfishError::Unsupported {
                what: format!(
                    "the BMC does not pull images over {proto}; it offers {}",
                    service.transfer_protocols.join(", ")
                ),
            });
        }
        if let Some(apply) = update.apply_time {
            check_apply_time(service, apply)?;
        }
        let mut body = json!({ "ImageURI": update.image_uri });
        if let Some(proto) = &update.transfer_protocol {
            body["TransferProtocol"] = json!(proto.to_ascii_uppercase());
        }
        if !update.targets.is_empty() {
            body["Targets"] = json!(update.targets);
        }
        if let Some(apply) = update.apply_time {
            body["@Redfish.OperationApplyTime"] = json!(apply.as_str());
        }
        if let Some(user) = &update.username {
            body["Username"] = json!(user);
        }
        if let Some(password) = &update.password {
            body["Password"] = json!(password.expose());
        }
        self.action(&target, &body).await
    }

    /// Uploads `file` to the `MultipartHttpPushUri` with its `UpdateParameters`. Returns at
    /// once with the task monitor or `Done`.
    pub async fn push_update(
        &self,
        file: &Path,
        params: &PushUpdate,
    ) -> Result<Operation, RedfishError> {
        let service = self.update_service().await?;
        let uri = service
            .multipart_push_uri
            .clone()
            .ok_or_else(|| RedfishError::Unsupported {
                what: format!(
                    "the BMC at {} offers no MultipartHttpPushUri",
                    self.inner.base_url
                ),
            })?;
        if let Some(apply) = params.apply_time {
            check_apply_time(service, apply)?;
        }
        // Fail on an unreadable file before anything is sent.
        tokio::fs::metadata(file)
            .await
            .map_err(|source| RedfishError::File {
                path: file.display().to_string(),
                source,
            })?;
        let mut update_parameters = json!({});
        if !params.targets.is_empty() {
            update_parameters["Targets"] = json!(params.targets);
        }
        if let Some(apply) = params.apply_time {
            update_parameters["@Redfish.OperationApplyTime"] = json!(apply.as_str());
        }
        let reply = self
            .send(
                Method::POST,
                &uri,
                &Payload::Multipart {
                    file,
                    params: &update_parameters,
                },
            )
            .await?;
        operation(&self.url(&uri), &reply)
    }

    /// One look at a task monitor (any of [`Operation::Started`]'s URIs, also from an earlier
    /// process). An unreachable BMC is an `Err` of class `Retry`, never a failed task.
    pub async fn poll_task(&self, monitor: &TaskMonitor) -> Result<TaskProgress, RedfishError> {
        let url = self.url(monitor.as_str());
        match self
            .send(Method::GET, monitor.as_str(), &Payload::Empty)
            .await
        {
            Ok(reply) => {
                let body = reply.json(&url).unwrap_or(Value::Null);
                Ok(parse_task(reply.status.as_u16(), &body))
            }
            Err(RedfishError::NotFound { .. }) => Ok(TaskProgress::Gone),
            Err(e) => Err(e),
        }
    }

    /// POST of an action with a JSON body.
    pub async fn action(&self, target: &str, body: &Value) -> Result<Operation, RedfishError> {
        let reply = self
            .send(Method::POST, target, &Payload::Json(body))
            .await?;
        operation(&self.url(target), &reply)
    }

    async fn inventory_uri(&self) -> Result<Option<String>, RedfishError> {
        if let Some(service) = self.inner.update_service.get() {
            return Ok(service.firmware_inventory.clone());
        }
        // The inventory's place is fixed by the schema's URI patterns, so observing need not
        // read the UpdateService first.
        let root = self.service_root().await?;
        Ok(root
            .update_service
            .as_ref()
            .map(|u| format!("{}/FirmwareInventory", u.trim_end_matches('/'))))
    }

    /// The members of a collection: one request with `$expand` (when supported and honoured),
    /// else the collection and then each member. Follows `Members@odata.nextLink`.
    async fn collection(&self, uri: &str) -> Result<Vec<Value>, RedfishError> {
        let root = self.service_root().await?;
        let mut members = Vec::new();
        let mut next = Some(match root.expand.query() {
            Some(q) => format!("{uri}{}{q}", if uri.contains('?') { '&' } else { '?' }),
            None => uri.to_string(),
        });
        while let Some(page) = next.take() {
            let body = self.get(&page).await?;
            if let Some(items) = body.get("Members").and_then(Value::as_array) {
                members.extend(items.iter().cloned());
            }
            next = body
                .get("Members@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        let mut full = Vec::with_capacity(members.len());
        for member in members {
            let is_link = member.as_object().is_some_and(|o| {
                o.keys()
                    .all(|k| k == "@odata.id" || k.starts_with("@odata."))
            });
            match member.get("@odata.id").and_then(Value::as_str) {
                // Not expanded (no $expand, or the BMC ignored it): read the member.
                Some(id) if is_link => full.push(self.get(id).await?),
                _ => full.push(member),
            }
        }
        Ok(full)
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.inner.base_url)
        } else {
            format!("{}/{path}", self.inner.base_url)
        }
    }

    /// An authenticated request: logs in first if needed, and once more on 401.
    async fn send(
        &self,
        method: Method,
        path: &str,
        payload: &Payload<'_>,
    ) -> Result<Reply, RedfishError> {
        let url = self.url(path);
        self.service_root().await?;
        let mut relogged = false;
        loop {
            let header = {
                let mut auth = self.inner.auth.lock().await;
                self.ensure_login(&mut auth).await?;
                self.auth_header(&auth)?
            };
            let reply = self
                .raw(method.clone(), &url, Some(header.clone()), payload)
                .await?;
            if reply.status == StatusCode::UNAUTHORIZED && !relogged {
                let mut auth = self.inner.auth.lock().await;
                if matches!(*auth, AuthState::Session { .. }) {
                    // Another clone may have logged in again already: only drop the session
                    // that was refused.
                    if self.auth_header(&auth).ok().as_ref() == Some(&header) {
                        debug!(bmc = %self.inner.base_url, "session refused (expired?); logging in again");
                        *auth = AuthState::None;
                    }
                    relogged = true;
                    continue;
                }
            }
            return check(&url, reply);
        }
    }

    fn auth_header(&self, auth: &AuthState) -> Result<(&'static str, HeaderValue), RedfishError> {
        match auth {
            AuthState::Session { token, .. } => {
                let mut value =
                    HeaderValue::from_str(token.expose()).map_err(|_| RedfishError::Protocol {
                        url: self.inner.base_url.clone(),
                        reason: "the session token is not a valid header value".into(),
                    })?;
                value.set_sensitive(true);
                Ok(("X-Auth-Token", value))
            }
            AuthState::Basic | AuthState::None => {
                let raw = format!("{}:{}", self.inner.username, self.inner.password.expose());
                let mut value = HeaderValue::from_str(&format!("Basic {}", base64(raw.as_bytes())))
                    .map_err(|_| {
                        RedfishError::Config("the username holds invalid characters".into())
                    })?;
                value.set_sensitive(true);
                Ok(("Authorization", value))
            }
        }
    }

    async fn ensure_login(&self, auth: &mut AuthState) -> Result<AuthMode, RedfishError> {
        match auth {
            AuthState::Session { .. } => return Ok(AuthMode::Session),
            AuthState::Basic => return Ok(AuthMode::Basic),
            AuthState::None => {}
        }
        let root = self.service_root().await?;
        let Some(sessions) = root.sessions.clone() else {
            debug!(bmc = %self.inner.base_url, "no SessionService; using basic auth");
            *auth = AuthState::Basic;
            return Ok(AuthMode::Basic);
        };
        let url = self.url(&sessions);
        let body =
            json!({ "UserName": self.inner.username, "Password": self.inner.password.expose() });
        let reply = self
            .raw(Method::POST, &url, None, &Payload::Json(&body))
            .await?;
        match reply.status.as_u16() {
            200 | 201 | 204 => {
                let token = reply
                    .headers
                    .get("X-Auth-Token")
                    .and_then(|v| v.to_str().ok())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| RedfishError::Protocol {
                        url: url.clone(),
                        reason: "the login answered without an X-Auth-Token".into(),
                    })?;
                let location = reply
                    .headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .or_else(|| {
                        // Without Location the session's own @odata.id is where to log out.
                        reply
                            .json(&url)
                            .ok()
                            .and_then(|b| b.get("@odata.id")?.as_str().map(str::to_string))
                    });
                debug!(bmc = %self.inner.base_url, "session opened");
                *auth = AuthState::Session {
                    token: Secret::new(token),
                    location,
                };
                Ok(AuthMode::Session)
            }
            // The root named sessions but the service has none after all.
            404 | 405 | 501 => {
                debug!(bmc = %self.inner.base_url, "session login not offered; using basic auth");
                *auth = AuthState::Basic;
                Ok(AuthMode::Basic)
            }
            _ => {
                let messages = error_messages(&reply.body);
                if messages.iter().any(|m| {
                    m.is("SessionLimitExceeded")
                        || m.message
                            .to_ascii_lowercase()
                            .contains("maximum number of user sessions")
                }) {
                    return Err(RedfishError::SessionLimit { url, messages });
                }
                Err(check(&url, reply).err().unwrap_or(RedfishError::Protocol {
                    url: self.inner.base_url.clone(),
                    reason: "the login failed".into(),
                }))
            }
        }
    }

    /// One HTTP exchange; transport errors are classified here.
    async fn raw(
        &self,
        method: Method,
        url: &str,
        auth: Option<(&'static str, HeaderValue)>,
        payload: &Payload<'_>,
    ) -> Result<Reply, RedfishError> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        request = match payload {
            Payload::Empty => request,
            Payload::Json(body) => request.json(body),
            Payload::Multipart { file, params } => {
                // An upload of a large image may take long: no overall time limit.
                request
                    .multipart(multipart_form(file, params).await?)
                    .timeout(Duration::from_secs(24 * 3600))
            }
        };
        let response = request.send().await.map_err(|e| transport(url, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(url, &e))?
            .to_vec();
        debug!(%method, %url, status = status.as_u16(), "redfish");
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last resort: a session left open counts against the BMC's few (iDRAC: 8) until it
        // times out. Log out in the background when a runtime is there to do it.
        let state = std::mem::replace(self.auth.get_mut(), AuthState::None);
        if let AuthState::Session {
            token,
            location: Some(location),
        } = state
        {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let http = self.http.clone();
                    let base = self.base_url.clone();
                    handle.spawn(async move {
                        if let Err(e) = logout(&http, &base, &location, &token).await {
                            warn!(bmc = %base, error = %e, "logging out of a dropped client failed");
                        }
                    });
                }
                Err(_) => {
                    warn!(bmc = %self.base_url, "a Redfish client was dropped outside a runtime with its session open; call close()");
                }
            }
        }
    }
}

async fn logout(
    http: &reqwest::Client,
    base: &str,
    location: &str,
    token: &Secret,
) -> Result<(), RedfishError> {
    let url = if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    };
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| RedfishError::Protocol {
        url: url.clone(),
        reason: "the session token is not a valid header value".into(),
    })?;
    value.set_sensitive(true);
    let response = http
        .delete(&url)
        .header("X-Auth-Token", value)
        .send()
        .await
        .map_err(|e| transport(&url, &e))?;
    let status = response.status();
    // 401/404: the session is gone already (expired or deleted), which is what logout wants.
    if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED
    {
        debug!(bmc = %base, "session closed");
        return Ok(());
    }
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default().to_vec();
    check(
        &url,
        Reply {
            status,
            headers,
            body,
        },
    )
    .map(|_| ())
}

async fn multipart_form(
    file: &Path,
    params: &Value,
) -> Result<reqwest::multipart::Form, RedfishError> {
    let open = tokio::fs::File::open(file)
        .await
        .map_err(|source| RedfishError::File {
            path: file.display().to_string(),
            source,
        })?;
    let len = open
        .metadata()
        .await
        .map_err(|source| RedfishError::File {
            path: file.display().to_string(),
            source,
        })?
        .len();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "image.bin".into());
    let stream = tokio_util::io::ReaderStream::new(open);
    let file_part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
            .file_name(name)
            .mime_str("application/octet-stream")
            .map_err(|e| RedfishError::Config(format!("multipart: {e}")))?;
    let params_part = reqwest::multipart::Part::text(params.to_string())
        .mime_str("application/json")
        .map_err(|e| RedfishError::Config(format!("multipart: {e}")))?;
    Ok(reqwest::multipart::Form::new()
        .part("UpdateParameters", params_part)
        .part("UpdateFile", file_part))
}

fn check_apply_time(service: &UpdateService, apply: ApplyTime) -> Result<(), RedfishError> {
    if !service.apply_times.is_empty() && !service.apply_times.iter().any(|a| a == apply.as_str()) {
        return Err(RedfishError::Unsupported {
            what: format!(
                "the BMC does not support OperationApplyTime {}; it supports {}",
                apply.as_str(),
                service.apply_times.join(", ")
            ),
        });
    }
    Ok(())
}

/// The outcome of an action POST: 202 with a monitor, or done.
fn operation(url: &str, reply: &Reply) -> Result<Operation, RedfishError> {
    let body = reply.json(url).unwrap_or(Value::Null);
    if reply.status == StatusCode::ACCEPTED {
        let monitor = reply
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            // Some BMCs put the task in the body only.
            .or_else(|| body.get("@odata.id")?.as_str().map(str::to_string))
            .ok_or_else(|| RedfishError::Protocol {
                url: url.to_string(),
                reason: "202 Accepted without a Location or a task".into(),
            })?;
        // Keep only the path: the monitor must stay valid if the BMC's address is written
        // differently (name vs IP) by another process.
        let monitor = strip_origin(&monitor);
        return Ok(Operation::Started(TaskMonitor(monitor)));
    }
    let messages = error_messages(&reply.body)
        .into_iter()
        .map(|m| m.to_string())
        .collect();
    Ok(Operation::Done { messages })
}

fn strip_origin(uri: &str) -> String {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            return rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_else(|| "/".into());
        }
    }
    uri.to_string()
}

/// A non-2xx reply as the error that says what to do.
fn check(url: &str, reply: Reply) -> Result<Reply, RedfishError> {
    let status = reply.status;
    if status.is_success() {
        return Ok(reply);
    }
    let url = url.to_string();
    let messages = error_messages(&reply.body);
    Err(match status.as_u16() {
        401 | 403 => RedfishError::Auth { url, messages },
        404 => RedfishError::NotFound { url },
        409 => RedfishError::Conflict { url, messages },
        412 => RedfishError::Stale { url, messages },
        429 | 503 => RedfishError::Busy {
            url,
            status: status.as_u16(),
            retry_after: reply
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            messages,
        },
        500..=599 => RedfishError::Server {
            url,
            status: status.as_u16(),
            messages,
        },
        code => RedfishError::Rejected {
            url,
            status: code,
            messages,
        },
    })
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (date.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// A transport error: TLS failures stop, everything else (refused, reset, timeout) is the BMC
/// not answering, which is retried.
fn transport(url: &str, error: &reqwest::Error) -> RedfishError {
    if let Some(reason) = tls_cause(error) {
        return RedfishError::Tls {
            url: url.to_string(),
            reason,
        };
    }
    let mut reasons: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        source = e.source();
    }
    RedfishError::Unreachable {
        url: url.to_string(),
        reason: reasons.join(": "),
    }
}

/// The rustls error somewhere in the chain. `io::Error::source` skips the error it wraps, so
/// wrapped io errors are opened with `get_ref` (hyper-util wraps tokio-rustls' io error in
/// another io error).
fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![error];
    let mut seen = 0;
    while let Some(e) = pending.pop() {
        seen += 1;
        if seen > 32 {
            break;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            pending.push(inner);
        }
        if let Some(next) = e.source() {
            pending.push(next);
        }
    }
    None
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("root:calvin", "cm9vdDpjYWx2aW4="),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn addresses() {
        let c = BmcConfig::new(
            "10.0.0.5",
            Some(8443),
            "root",
            "pw",
            TlsVerify::InsecureSkipVerify,
        )
        .unwrap();
        assert_eq!(c.base_url, "https://10.0.0.5:8443");
        let c =
            BmcConfig::new("fe80::1", None, "root", "pw", TlsVerify::InsecureSkipVerify).unwrap();
        assert_eq!(c.base_url, "https://[fe80::1]");
        assert!(
            BmcConfig::new(
                "http://x/y",
                None,
                "root",
                "pw",
                TlsVerify::InsecureSkipVerify
            )
            .is_err()
        );
        let c = BmcConfig::new(
            "bmc1",
            None,
            "root",
            "calvin-secret",
            TlsVerify::PublicRoots,
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            debug.contains("Secret(***)") && !debug.contains("calvin-secret"),
            "{debug}"
        );
    }

    #[test]
    fn monitor_keeps_the_path_only() {
        assert_eq!(
            strip_origin("https://10.0.0.5/redfish/v1/TaskService/Tasks/7"),
            "/redfish/v1/TaskService/Tasks/7"
        );
        assert_eq!(
            strip_origin("/redfish/v1/TaskService/Tasks/7"),
            "/redfish/v1/TaskService/Tasks/7"
        );
    }
}
