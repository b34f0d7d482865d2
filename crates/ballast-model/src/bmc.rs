//! A Server's BMC (baseboard management controller), reached over Redfish by firmware plans:
//! where it answers, who logs in (the password is always a reference, never the value), how its
//! certificate is trusted, and an optional vendor hint. A Server may have a BMC and no SSH
//! address at all: a machine ballast only updates firmware on and never logs into.
//!
//! The manifest shape is flat (`username`, `password` beside `address`); the Rust type keeps the
//! two login fields together in [`BmcCredentials`], which is what the code that seals and uses
//! them wants. [`BmcFields`] is the shape written in YAML, converted both ways.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;
use crate::server::CredentialSource;

/// The HTTPS port used when `port` is not set.
pub const DEFAULT_BMC_PORT: u16 = 443;

/// Vendor hints a manifest may give, and what each stands for (the names `Vendor::from_hint`
/// of ballast-redfish understands).
pub const VENDOR_HINTS: &[&str] = &[
    "dell",
    "idrac",
    "hpe",
    "hp",
    "ilo",
    "supermicro",
    "smc",
    "lenovo",
    "xcc",
    "generic",
];

/// A BMC reached over Redfish (HTTPS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "BmcFields", into = "BmcFields")]
pub struct Bmc {
    /// Host name or IP address (no scheme, no path).
    pub address: Spanned<String>,
    /// HTTPS port; `None` is 443.
    pub port: Option<u16>,
    pub credentials: BmcCredentials,
    /// How to trust the BMC's certificate; `None` is the public web roots.
    pub tls: Option<BmcTls>,
    /// `dell`, `hpe`, `supermicro`, `lenovo` (or `generic`); detected from the service root
    /// when not given.
    pub vendor: Option<Spanned<String>>,
}

/// Who logs in to the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcCredentials {
    pub username: String,
    pub password: CredentialSource,
}

/// The BMC block as written in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BmcFields {
    /// The BMC's host name or IP address, e.g. `10.0.0.20` (no `https://`, no path).
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// HTTPS port (default 443).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_bmc_port"
    )]
    pub port: Option<u16>,
    /// The Redfish user (iDRAC's default is `root`).
    pub username: String,
    /// The password: `secretRef: {name: NAME}`, `file: PATH` or `env: VAR`; never the value.
    pub password: CredentialSource,
    /// How to trust the BMC's certificate: `caFile`, `fingerprint` or `insecureSkipVerify`.
    /// Without it, the public web roots (which BMC certificates are rarely signed by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BmcTls>,
    /// `dell`, `hpe`, `supermicro`, `lenovo` or `generic`; detected from the BMC when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub vendor: Option<Spanned<String>>,
}

impl From<BmcFields> for Bmc {
    fn from(f: BmcFields) -> Bmc {
        Bmc {
            address: f.address,
            port: f.port,
            credentials: BmcCredentials {
                username: f.username,
                password: f.password,
            },
            tls: f.tls,
            vendor: f.vendor,
        }
    }
}

impl From<Bmc> for BmcFields {
    fn from(b: Bmc) -> BmcFields {
        BmcFields {
            address: b.address,
            port: b.port,
            username: b.credentials.username,
            password: b.credentials.password,
            tls: b.tls,
            vendor: b.vendor,
        }
    }
}

/// How the BMC's certificate is trusted: exactly one of the three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BmcTls {
    /// A CA certificate (PEM file on the machine running ballast) the BMC's certificate is
    /// signed by; its name or IP must match `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// The SHA-256 fingerprint of the BMC's own certificate (`AB:CD:…`, as
    /// `openssl x509 -noout -fingerprint -sha256` prints): the usual way to trust a BMC's
    /// self-signed certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub fingerprint: Option<Spanned<String>>,
    /// Accept any certificate. Only for a lab: anyone on the path can then read the password.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}

/// The trust a [`BmcTls`] block names, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmcTrust<'a> {
    PublicRoots,
    CaFile(&'a str),
    Fingerprint(&'a str),
    InsecureSkipVerify,
}

impl Bmc {
    /// The port to connect to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_BMC_PORT)
    }

    /// The trust to use (validation guarantees at most one choice in `tls`).
    pub fn trust(&self) -> BmcTrust<'_> {
        match &self.tls {
            None => BmcTrust::PublicRoots,
            Some(tls) => match (&tls.ca_file, &tls.fingerprint, tls.insecure_skip_verify) {
                (Some(ca), _, _) => BmcTrust::CaFile(&ca.value),
                (None, Some(fp), _) => BmcTrust::Fingerprint(&fp.value),
                (None, None, true) => BmcTrust::InsecureSkipVerify,
                (None, None, false) => BmcTrust::PublicRoots,
            },
        }
    }

    /// The vendor hint, lower-case, if given.
    pub fn vendor_hint(&self) -> Option<String> {
        self.vendor
            .as_ref()
            .map(|v| v.value.trim().to_ascii_lowercase())
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn deserialize_bmc_port<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    let n = u64::deserialize(deserializer)?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "port {n} is out of range; expected 1 to 65535 (default {DEFAULT_BMC_PORT})"
            ))
        })
}

/// Why `address` is not a BMC host name or IP address, if it is not.
pub fn bmc_address_problem(address: &str) -> Option<String> {
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Some("expected the BMC's host name or IP address, e.g. 10.0.0.20".to_string());
    }
    if let Some((scheme, _)) = trimmed.split_once("://") {
        return Some(format!(
            "`{trimmed}` is a URL; expected the BMC's host name or IP address alone (ballast always speaks HTTPS; give `port` when it is not 443), not `{scheme}://…`"
        ));
    }
    if trimmed.contains('/') || trimmed.contains(char::is_whitespace) {
        return Some(format!(
            "`{trimmed}` is not a host name or IP address; expected e.g. 10.0.0.20 or bmc1.lab.example (no path, no spaces)"
        ));
    }
    None
}

/// Checks a credential reference at a field path, adding what is wrong to the list.
pub(crate) type CheckSource<'a> = dyn Fn(&[&str], &CredentialSource, &mut Vec<Diagnostic>) + 'a;

/// The checks of a Server's `bmc` block, shaped like the other Server checks: each problem at
/// its file:line:column with its field path. `check_source` checks a credential reference
/// (the Server's own rule for `secretRef`/`file`/`env`).
pub(crate) fn check_bmc(
    ctx: &DocContext,
    bmc: &Bmc,
    check_source: &CheckSource<'_>,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(problem) = bmc_address_problem(&bmc.address.value) {
        out.push(ctx.diag(&bmc.address.referenced, "spec.bmc.address", problem));
    }
    let user = &bmc.credentials.username;
    if user.trim().is_empty() || user.chars().any(char::is_whitespace) {
        out.push(ctx.diag_at_path(
            &["spec", "bmc", "username"],
            "expected the BMC user name without spaces (iDRAC's default is `root`)",
        ));
    }
    check_source(&["spec", "bmc", "password"], &bmc.credentials.password, out);
    if let Some(tls) = &bmc.tls {
        check_tls(ctx, tls, out);
    }
    if let Some(vendor) = &bmc.vendor {
        let hint = vendor.value.trim().to_ascii_lowercase();
        if !VENDOR_HINTS.contains(&hint.as_str()) {
            out.push(ctx.diag(
                &vendor.referenced,
                "spec.bmc.vendor",
                format!(
                    "unknown vendor `{}`; expected dell, hpe, supermicro, lenovo or generic (or leave it out: the BMC tells)",
                    vendor.value
                ),
            ));
        }
    }
}

fn check_tls(ctx: &DocContext, tls: &BmcTls, out: &mut Vec<Diagnostic>) {
    let chosen = [
        tls.ca_file.is_some(),
        tls.fingerprint.is_some(),
        tls.insecure_skip_verify,
    ]
    .into_iter()
    .filter(|c| *c)
    .count();
    if chosen != 1 {
        out.push(ctx.diag_at_path(
            &["spec", "bmc", "tls"],
            if chosen == 0 {
                "expected one of `caFile: PATH`, `fingerprint: SHA256` or `insecureSkipVerify: true` (or no `tls` for the public web roots)"
            } else {
                "give one of `caFile`, `fingerprint` or `insecureSkipVerify`, not several"
            },
        ));
    }
    if let Some(ca) = &tls.ca_file
        && !(ca.value.starts_with('/') || ca.value.starts_with("~/"))
    {
        out.push(ctx.diag(
            &ca.referenced,
            "spec.bmc.tls.caFile",
            format!(
                "`{}` is not an absolute path; expected /path or ~/path to a PEM file",
                ca.value
            ),
        ));
    }
    if let Some(fp) = &tls.fingerprint
        && let Err(e) = ballast_redfish::parse_fingerprint(&fp.value)
    {
        out.push(ctx.diag(&fp.referenced, "spec.bmc.tls.fingerprint", e.to_string()));
    }
}
