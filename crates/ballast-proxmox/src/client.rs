//! [`ProxmoxClient`]: one cluster endpoint, its credentials and its TLS trust, and the request
//! plumbing every call goes through (auth headers, the `{"data": …}` envelope, error
//! classification). The calls themselves are in `api.rs`.
//!
//! One client keeps one connection pool (HTTP/1.1 keep-alive), so a resync's requests reuse a
//! connection. It is cheap to clone and safe to share between tasks.
//!
//! Auth: an API token goes in every request's `Authorization` header. A user and password log in
//! at `POST /access/ticket`; the ticket goes in the `PVEAuthCookie` cookie and its
//! `CSRFPreventionToken` in a header on writes. Tickets live 2 hours: the client logs in again
//! once its ticket is older than [`ClientBuilder::ticket_renew_after`] (default 90 minutes), and
//! once more when a request is answered 401 (the ticket was revoked or the node restarted).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::Params;
use crate::error::{Error, Failure, classify};
use crate::lenient;
use crate::secret::Secret;
use crate::tls::{RejectionSlot, TlsTrust, client_config, rejection_error};

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// `USER@REALM!NAME` and its secret.
    ApiToken { token_id: String, secret: Secret },
    /// A user (`root@pam`) and password: ticket login.
    Password { username: String, password: Secret },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApiToken { token_id, .. } => f
                .debug_struct("ApiToken")
                .field("token_id", token_id)
                .field("secret", &"***")
                .finish(),
            Credentials::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
        }
    }
}

/// Builds a [`ProxmoxClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    credentials: Option<Credentials>,
    tls: TlsTrust,
    timeout: Duration,
    connect_timeout: Duration,
    ticket_renew_after: Duration,
}

impl ClientBuilder {
    /// Authenticate with an API token (`USER@REALM!NAME`).
    pub fn api_token(mut self, token_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        self.credentials = Some(Credentials::ApiToken {
            token_id: token_id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Authenticate with a user (`root@pam`) and password (ticket login).
    pub fn password(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.credentials = Some(Credentials::Password {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// What to trust (default: [`TlsTrust::PublicRoots`]).
    pub fn tls(mut self, trust: TlsTrust) -> Self {
        self.tls = trust;
        self
    }

    /// The time limit of one request (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time limit of opening a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Log in again once the ticket is this old (default 90 minutes; PVE's tickets live 2 h).
    pub fn ticket_renew_after(mut self, age: Duration) -> Self {
        self.ticket_renew_after = age;
        self
    }

    pub fn build(self) -> Result<ProxmoxClient, Error> {
        let base = api_base(&self.endpoint)?;
        let endpoint = base.origin().ascii_serialization();
        let auth = match self.credentials {
            None => {
                return Err(Error::Config(format!(
                    "no credentials for {endpoint}: give an API token or a user and password"
                )));
            }
            Some(Credentials::ApiToken { token_id, secret }) => {
                check_token_id(&token_id)?;
                let mut value =
                    HeaderValue::from_str(&format!("PVEAPIToken={token_id}={}", secret.expose()))
                        .map_err(|_| {
                        Error::Config(format!(
                            "the API token {token_id} holds characters that cannot go in a header"
                        ))
                    })?;
                value.set_sensitive(true);
                Auth::Token { token_id, value }
            }
            Some(Credentials::Password { username, password }) => {
                if username.is_empty() {
                    return Err(Error::Config("the username is empty".to_string()));
                }
                Auth::Ticket(TicketAuth {
                    username,
                    password,
                    session: Mutex::new(None),
                })
            }
        };
        if self.tls == TlsTrust::InsecureSkipVerify {
            tracing::warn!(
                endpoint = %endpoint,
                "TLS certificate verification is OFF for this Proxmox endpoint (insecureSkipVerify)"
            );
        }
        let rejections = Arc::new(RejectionSlot::default());
        let tls = client_config(&self.tls, rejections.clone())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .pool_idle_timeout(Some(Duration::from_secs(90)))
            .user_agent(concat!("ballast-proxmox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(ProxmoxClient {
            inner: Arc::new(Inner {
                http,
                base,
                endpoint,
                auth,
                rejections,
                renew_after: self.ticket_renew_after,
            }),
        })
    }
}

fn check_token_id(token_id: &str) -> Result<(), Error> {
    let ok = match token_id.split_once('@') {
        Some((user, rest)) => {
            !user.is_empty()
                && matches!(rest.split_once('!'), Some((realm, name)) if !realm.is_empty() && !name.is_empty())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{token_id}` is not an API token id: expected USER@REALM!NAME, e.g. root@pam!ballast"
        )))
    }
}

/// `https://host:8006` (or with `/api2/json`) → `https://host:8006/api2/json`.
fn api_base(endpoint: &str) -> Result<Url, Error> {
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        Error::Config(format!(
            "`{endpoint}` is not an endpoint URL ({e}); expected https://host:8006"
        ))
    })?;
    if url.scheme() != "https" {
        return Err(Error::Config(format!(
            "`{endpoint}`: Proxmox VE serves its API over https only; expected https://host:8006"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("`{endpoint}` has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!(
            "`{}` holds credentials; give them as a token or a user and password instead",
            url.origin().ascii_serialization()
        )));
    }
    let path = url.path().trim_end_matches('/');
    if !(path.is_empty() || path == "/api2/json") {
        return Err(Error::Config(format!(
            "`{endpoint}` has a path; expected https://host:8006"
        )));
    }
    let mut base = url.clone();
    base.set_path("/api2/json");
    base.set_query(None);
    base.set_fragment(None);
    Ok(base)
}

enum Auth {
    Token {
        token_id: String,
        value: HeaderValue,
    },
    Ticket(TicketAuth),
}

struct TicketAuth {
    username: String,
    password: Secret,
    session: Mutex<Option<Session>>,
}

#[derive(Clone)]
struct Session {
    ticket: Secret,
    csrf: Secret,
    obtained: Instant,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    endpoint: String,
    auth: Auth,
    rejections: Arc<RejectionSlot>,
    renew_after: Duration,
}

/// A client for one Proxmox VE cluster endpoint. See the crate docs for an example.
#[derive(Clone)]
pub struct ProxmoxClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Token { token_id, .. } => format!("token {token_id}"),
            Auth::Ticket(t) => format!("ticket for {}", t.username),
        };
        f.debug_struct("ProxmoxClient")
            .field("endpoint", &self.inner.endpoint)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// A request path below `/api2/json`, as segments.
#[derive(Debug, Clone)]
pub(crate) struct ApiPath(Vec<String>);

impl ApiPath {
    pub(crate) fn new<I, S>(segments: I) -> ApiPath
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        ApiPath(segments.into_iter().map(|s| s.to_string()).collect())
    }

    /// The node a `/nodes/{node}/…` path addresses.
    fn node(&self) -> Option<&str> {
        match self.0.as_slice() {
            [first, node, ..] if first == "nodes" => Some(node),
            _ => None,
        }
    }
}

impl fmt::Display for ApiPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.0 {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// A successful answer: `data`, and `total` when PVE sends one (paged lists).
pub(crate) struct Answer {
    pub data: Value,
    pub total: Option<u64>,
}

impl ProxmoxClient {
    /// Starts building a client for `endpoint` (`https://host:8006`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            credentials: None,
            tls: TlsTrust::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            ticket_renew_after: Duration::from_secs(90 * 60),
        }
    }

    /// `https://host:port`.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: ApiPath,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        let context = format!("GET {path}");
        let answer = self.send(Method::GET, &path, query, None).await?;
        decode(&context, answer.data)
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &ApiPath,
        query: &[(&str, String)],
        form: Option<&Params>,
    ) -> Result<Answer, Error> {
        let context = format!("{method} {path}");
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| Error::Config(format!("{} cannot take a path", self.inner.endpoint)))?
            .extend(&path.0);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let form = form.map(Params::to_form);
        // A ticket refused with 401 (revoked, expired early, node restarted) is renewed once.
        let mut relogged = false;
        loop {
            let (headers, ticket_used) = self.auth_headers(&method).await?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(headers);
            if let Some(form) = &form {
                request = request.form(form);
            }
            let started = Instant::now();
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(&context, e))?;
            let status = response.status().as_u16();
            tracing::debug!(
                method = %method,
                path = %path,
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "proxmox request"
            );
            if status == 401
                && !relogged
                && let (Auth::Ticket(t), Some(used)) = (&self.inner.auth, ticket_used)
            {
                t.invalidate(&used).await;
                relogged = true;
                continue;
            }
            return self.read_answer(&context, path, response).await;
        }
    }

    async fn read_answer(
        &self,
        context: &str,
        path: &ApiPath,
        response: reqwest::Response,
    ) -> Result<Answer, Error> {
        let status = response.status();
        // Real PVE puts an error's message in the HTTP reason phrase; hyper keeps a
        // non-standard phrase in the response's extensions.
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(context, e))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            let Some(Value::Object(mut object)) = json else {
                return Err(Error::Decode {
                    context: context.to_string(),
                    message: format!(
                        "the body is not a JSON object: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                });
            };
            let total = object.get("total").and_then(|t| lenient::to_u64(t).ok());
            let data = object.remove("data").unwrap_or(Value::Null);
            return Ok(Answer { data, total });
        }
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(|m| lenient::to_string(m).ok())
            .filter(|m| !m.trim().is_empty())
            .or(reason)
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_else(|| "no message".to_string());
        let errors: BTreeMap<String, String> = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let text = lenient::to_string(v).unwrap_or_else(|_| v.to_string());
                        (k.clone(), text.trim().to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(classify(
            context,
            path.node(),
            Failure {
                status: status.as_u16(),
                message,
                errors,
                retry_after,
            },
        ))
    }

    async fn auth_headers(&self, method: &Method) -> Result<(HeaderMap, Option<Secret>), Error> {
        let mut headers = HeaderMap::new();
        match &self.inner.auth {
            Auth::Token { value, .. } => {
                headers.insert(AUTHORIZATION, value.clone());
                Ok((headers, None))
            }
            Auth::Ticket(t) => {
                let session = self.session(t).await?;
                let mut cookie =
                    HeaderValue::from_str(&format!("PVEAuthCookie={}", session.ticket.expose()))
                        .map_err(|_| {
                            self.decode_error("the ticket holds characters a cookie cannot")
                        })?;
                cookie.set_sensitive(true);
                headers.insert(COOKIE, cookie);
                if method != Method::GET && method != Method::HEAD {
                    let mut csrf = HeaderValue::from_str(session.csrf.expose())
                        .map_err(|_| self.decode_error("the CSRF token is not a header value"))?;
                    csrf.set_sensitive(true);
                    headers.insert("CSRFPreventionToken", csrf);
                }
                Ok((headers, Some(session.ticket)))
            }
        }
    }

    fn decode_error(&self, message: &str) -> Error {
        Error::Decode {
            context: "POST /access/ticket".to_string(),
            message: message.to_string(),
        }
    }

    /// A valid ticket: the current one, or a new login when there is none or it is old.
    async fn session(&self, auth: &TicketAuth) -> Result<Session, Error> {
        let mut guard = auth.session.lock().await;
        if let Some(session) = guard.as_ref()
            && session.obtained.elapsed() < self.inner.renew_after
        {
            return Ok(session.clone());
        }
        let session = self.login(auth).await?;
        *guard = Some(session.clone());
        Ok(session)
    }

    async fn login(&self, auth: &TicketAuth) -> Result<Session, Error> {
        let context = "POST /access/ticket";
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| Error::Config(format!("{} cannot take a path", self.inner.endpoint)))?
            .extend(["access", "ticket"]);
        let form = [
            ("username", auth.username.as_str()),
            ("password", auth.password.expose()),
        ];
        let response = self
            .inner
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(context, e))?;
        let answer = self
            .read_answer(context, &ApiPath::new(["access", "ticket"]), response)
            .await?;
        let field = |name: &str| {
            answer
                .data
                .get(name)
                .and_then(|v| lenient::to_string(v).ok())
        };
        if field("NeedTFA").is_some_and(|v| v == "1") {
            return Err(Error::Auth {
                context: context.to_string(),
                status: 401,
                message: format!(
                    "{} needs a second factor to log in; use an API token instead",
                    auth.username
                ),
            });
        }
        let (Some(ticket), Some(csrf)) = (field("ticket"), field("CSRFPreventionToken")) else {
            return Err(self.decode_error("the login answer has no ticket or CSRF token"));
        };
        tracing::debug!(user = %auth.username, "proxmox ticket login");
        Ok(Session {
            ticket: Secret::new(ticket),
            csrf: Secret::new(csrf),
            obtained: Instant::now(),
        })
    }

    fn transport_error(&self, context: &str, error: reqwest::Error) -> Error {
        if let Some(rejection) = self.inner.rejections.take() {
            return rejection_error(&self.inner.endpoint, rejection);
        }
        let chain = error_chain(&error);
        if is_tls_error(&error) {
            return Error::Tls {
                endpoint: self.inner.endpoint.clone(),
                message: format!("TLS with {} failed: {chain}", self.inner.endpoint),
                presented: None,
                expected: None,
            };
        }
        let message = if error.is_timeout() {
            format!("timed out talking to {}: {chain}", self.inner.endpoint)
        } else {
            format!("cannot reach {}: {chain}", self.inner.endpoint)
        };
        Error::Transport {
            context: context.to_string(),
            message,
        }
    }
}

impl TicketAuth {
    /// Forgets the session if it is still the one that was refused (another request may have
    /// logged in again already).
    async fn invalidate(&self, used: &Secret) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| &s.ticket == used) {
            *guard = None;
        }
    }
}

/// The messages of an error and its sources, joined. `io::Error::source` skips the error it
/// wraps, so its inner error is read with `get_ref`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => {
                let text = inner.to_string();
                if parts.last() != Some(&text) {
                    parts.push(text);
                }
                inner.source()
            }
            None => e.source(),
        };
    }
    parts.join(": ")
}

fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && inner.is::<rustls::Error>()
        {
            return true;
        }
        current = e.source();
    }
    false
}

pub(crate) fn decode<T: DeserializeOwned>(context: &str, data: Value) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Decode {
        context: context.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_the_api_base() {
        let cases = [
            ("https://pve.lan:8006", "https://pve.lan:8006/api2/json"),
            ("https://pve.lan:8006/", "https://pve.lan:8006/api2/json"),
            (
                "https://pve.lan:8006/api2/json",
                "https://pve.lan:8006/api2/json",
            ),
            (
                "https://10.0.0.2:8006/api2/json/",
                "https://10.0.0.2:8006/api2/json",
            ),
            ("https://pve.example", "https://pve.example/api2/json"),
        ];
        for (endpoint, want) in cases {
            assert_eq!(
                api_base(endpoint).map(|u| u.to_string()).ok().as_deref(),
                Some(want),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        let cases = [
            ("http://pve.lan:8006", "https only"),
            ("pve.lan:8006", "https only"),
            ("pve.lan", "not an endpoint URL"),
            ("https://pve.lan:8006/elsewhere", "has a path"),
            ("https://root:pw@pve.lan:8006", "holds credentials"),
        ];
        for (endpoint, want) in cases {
            let err = api_base(endpoint).expect_err(endpoint).to_string();
            assert!(err.contains(want), "{endpoint}: {err}");
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn token_ids_must_name_user_realm_and_token() {
        for good in ["root@pam!ballast", "ops@pve!ci-1"] {
            assert!(check_token_id(good).is_ok(), "{good}");
        }
        for bad in ["root@pam", "root!x", "@pam!x", "root@!x", "root@pam!", ""] {
            assert!(check_token_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_never_shows_its_secrets() {
        let client = ProxmoxClient::builder("https://pve.lan:8006")
            .api_token("root@pam!ballast", "token-secret-value")
            .build()
            .expect("builds");
        let text = format!("{client:?}");
        assert!(text.contains("root@pam!ballast"), "{text}");
        assert!(!text.contains("token-secret-value"), "{text}");

        let creds = Credentials::Password {
            username: "root@pam".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
        let builder = ProxmoxClient::builder("https://pve.lan:8006").credentials(creds);
        assert!(!format!("{builder:?}").contains("hunter2"));
    }

    #[test]
    fn a_client_needs_credentials() {
        let err = ProxmoxClient::builder("https://pve.lan:8006")
            .build()
            .expect_err("no credentials");
        assert!(err.to_string().contains("no credentials"), "{err}");
    }

    fn answer(status: u16, reason: Option<&'static str>, body: &'static str) -> reqwest::Response {
        let mut response = http::Response::builder()
            .status(status)
            .header("Retry-After", "12")
            .body(body)
            .expect("a response");
        if let Some(reason) = reason {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        reqwest::Response::from(response)
    }

    async fn read(response: reqwest::Response) -> Result<Answer, Error> {
        let client = ProxmoxClient::builder("https://pve.lan:8006")
            .api_token("root@pam!ballast", "x")
            .build()
            .expect("builds");
        let path = ApiPath::new(["nodes", "pve1", "qemu", "101", "config"]);
        client
            .read_answer("PUT /nodes/pve1/qemu/101/config", &path, response)
            .await
    }

    #[tokio::test]
    async fn the_message_comes_from_the_reason_phrase_as_real_pve_sends_it() {
        // Real PVE: the message in the status line, `{"data":null}` as the body.
        let err = read(answer(
            500,
            Some("cluster not ready - no quorum?"),
            r#"{"data":null}"#,
        ))
        .await
        .err()
        .expect("an error");
        assert!(matches!(err, Error::NoQuorum { .. }), "{err:?}");
        // A 400 with its per-parameter errors and the reason phrase as the message.
        let err = read(answer(
            400,
            Some("Parameter verification failed."),
            r#"{"data":null,"errors":{"cores":"type check ('integer') failed - got 'x'\n"}}"#,
        ))
        .await
        .err()
        .expect("an error");
        assert_eq!(
            err.to_string(),
            "PUT /nodes/pve1/qemu/101/config: bad request: Parameter verification failed: \
             cores: type check ('integer') failed - got 'x'"
        );
    }

    #[tokio::test]
    async fn a_503_keeps_its_retry_after_header_and_a_body_message_wins() {
        let err = read(answer(503, None, "<html>busy</html>"))
            .await
            .err()
            .expect("an error");
        assert_eq!(
            err.action(),
            crate::Action::Retry {
                after: Some(Duration::from_secs(12))
            }
        );
        let err = read(answer(
            500,
            Some("short reason"),
            r#"{"data":null,"message":"VM is locked (backup)\n"}"#,
        ))
        .await
        .err()
        .expect("an error");
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_success_reads_data_and_total() {
        let Ok(ok) = read(answer(
            200,
            None,
            r#"{"data":[{"n":1,"t":"x"}],"total":"7"}"#,
        ))
        .await
        else {
            panic!("a success should read");
        };
        assert_eq!(ok.total, Some(7));
        assert!(ok.data.is_array());
        let err = read(answer(200, None, "not json"))
            .await
            .err()
            .expect("bad body");
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }

    #[test]
    fn api_paths_know_their_node() {
        let p = ApiPath::new(["nodes", "pve2", "qemu", "101", "config"]);
        assert_eq!(p.node(), Some("pve2"));
        assert_eq!(p.to_string(), "/nodes/pve2/qemu/101/config");
        assert_eq!(ApiPath::new(["cluster", "resources"]).node(), None);
    }
}
