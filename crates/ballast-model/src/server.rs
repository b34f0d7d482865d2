//! The `Server` kind: a machine reached over SSH, optionally prepared (Docker and packages
//! installed) so that Apps can run on its Docker engine, with an optional BMC for firmware plans.
//! A Server may also have only a BMC and no SSH `address`: a machine ballast updates firmware on
//! but never logs into.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

use crate::app::SecretRef;
pub use crate::bmc::{Bmc, BmcCredentials, BmcFields, BmcTls, BmcTrust, DEFAULT_BMC_PORT};

/// The Docker socket path used when `dockerSocket` is not set.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn default_port() -> u16 {
    22
}
fn default_user() -> String {
    "root".to_string()
}
fn default_docker_socket() -> String {
    DEFAULT_DOCKER_SOCKET.to_string()
}
fn is_false(value: &bool) -> bool {
    !*value
}
fn is_default_port(port: &u16) -> bool {
    *port == 22
}
fn yes() -> bool {
    true
}
/// No SSH address: a BMC-only Server.
fn no_address() -> Spanned<String> {
    Spanned::new(String::new(), Location::UNKNOWN, Location::UNKNOWN)
}
fn is_no_address(address: &Spanned<String>) -> bool {
    address.value.is_empty()
}
fn is_no_auth(auth: &ServerAuth) -> bool {
    *auth == ServerAuth::default()
}

/// A port number, with the same words as an app's ports when it is out of range (serde's own
/// would be "invalid value ..., expected u16").
fn deserialize_port<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let n = u64::deserialize(deserializer)?;
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "port {n} is out of range; expected 1 to 65535 (default 22)"
        ))
    })
}

/// A machine ballast reaches over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// Host name or IP address for SSH. Left out for a machine reached only through its `bmc`.
    #[serde(default = "no_address", skip_serializing_if = "is_no_address")]
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// SSH port.
    #[serde(
        default = "default_port",
        skip_serializing_if = "is_default_port",
        deserialize_with = "deserialize_port"
    )]
    pub port: u16,
    /// The user to log in as; anything but root needs password-less sudo for preparation.
    #[serde(default = "default_user")]
    pub user: String,
    /// How to log in: `key` (with an optional `passphrase`) or `password`. Required with an
    /// `address`.
    #[serde(default, skip_serializing_if = "is_no_auth")]
    pub auth: ServerAuth,
    /// The host key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`). Without it the
    /// connection is refused, showing the fingerprint to pin, unless `trustOnFirstUse` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub host_key: Option<Spanned<String>>,
    /// Record the first host key seen and refuse any other later (as ssh's
    /// `StrictHostKeyChecking accept-new`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub trust_on_first_use: bool,
    /// The Docker engine's socket on the server.
    #[serde(default = "default_docker_socket")]
    #[schemars(default = "default_docker_socket")]
    pub docker_socket: String,
    /// Free-form labels, shown by `ballast get servers`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    /// What to install; without it the server is only observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare: Option<Prepare>,
    /// The server's BMC (Redfish), for firmware plans: `address`, `port`, `username`,
    /// `password`, `tls` and a `vendor` hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<Bmc>,
}

/// How ballast logs in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerAuth {
    /// A private key (OpenSSH or PEM; ed25519, ECDSA or RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CredentialSource>,
    /// The key's passphrase, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<CredentialSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CredentialSource>,
}

/// Where a credential's value comes from; never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialSource {
    /// A secret stored with `ballast secret set NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// A file on the machine running ballast (absolute, or `~/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An environment variable of the ballast process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// One credential source, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Secret(&'a str),
    File(&'a str),
    Env(&'a str),
}

impl CredentialSource {
    /// The one source this names (validation guarantees exactly one).
    pub fn source(&self) -> Option<Source<'_>> {
        match (&self.secret_ref, &self.file, &self.env) {
            (Some(r), None, None) => Some(Source::Secret(&r.name)),
            (None, Some(f), None) => Some(Source::File(f)),
            (None, None, Some(e)) => Some(Source::Env(e)),
            _ => None,
        }
    }

    /// `secret:NAME`, `file:PATH` or `env:VAR`: what the store records about where it came from.
    pub fn describe(&self) -> String {
        match self.source() {
            Some(Source::Secret(name)) => format!("secret:{name}"),
            Some(Source::File(path)) => format!("file:{path}"),
            Some(Source::Env(var)) => format!("env:{var}"),
            None => "invalid".to_string(),
        }
    }
}

/// What preparation installs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Prepare {
    /// Install Docker (the distribution's package), enable and start it.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub docker: bool,
    /// Distribution packages to install (apt, dnf or apk names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub packages: Vec<Spanned<String>>,
}

impl ServerSpec {
    /// The names of the secrets this server's credentials refer to.
    pub fn secret_refs(&self) -> impl Iterator<Item = &str> {
        let auth = [&self.auth.key, &self.auth.passphrase, &self.auth.password];
        let bmc = self.bmc.as_ref().map(|b| &b.credentials.password);
        auth.into_iter()
            .flatten()
            .chain(bmc)
            .filter_map(|c| c.secret_ref.as_ref().map(|r| r.name.as_str()))
    }

    /// Whether ballast reaches this server over SSH (it has an `address`); a Server with only a
    /// `bmc` has none.
    pub fn has_ssh(&self) -> bool {
        !self.address.value.is_empty()
    }

    /// The prepare spec with defaults applied (nothing to install without `prepare`).
    pub fn wants_docker(&self) -> bool {
        self.prepare.as_ref().is_some_and(|p| p.docker)
    }
}

/// Problems with a package name; the names reach a shell command line, so only the characters
/// package managers allow are accepted.
pub fn package_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._:".contains(c));
    (!ok).then(|| {
        format!(
            "`{name}` is not a package name; expected letters, digits and + - . _ : (no spaces or shell characters)"
        )
    })
}

/// Problems with a host-key pin.
pub fn host_key_problem(pin: &str) -> Option<String> {
    let Some(b64) = pin.strip_prefix("SHA256:") else {
        return Some(format!(
            "`{pin}` is not a host-key fingerprint; expected `SHA256:` followed by 43 base64 characters, as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints"
        ));
    };
    let valid = b64.len() == 43
        && b64
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    (!valid).then(|| {
        format!(
            "`{pin}` is not a host-key fingerprint; expected `SHA256:` followed by 43 base64 characters (no `=` padding)"
        )
    })
}
