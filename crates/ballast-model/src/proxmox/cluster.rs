//! The `ProxmoxCluster` kind: where a Proxmox VE cluster's API is, how ballast logs in, how it
//! checks the certificate, and the defaults its guests take (node, storage, bridge).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::server::CredentialSource;

fn is_false(value: &bool) -> bool {
    !*value
}

/// A Proxmox VE cluster (or a single node): one API endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxmoxClusterSpec {
    /// `https://HOST:8006`; any node of the cluster answers for all of them.
    #[schemars(with = "String")]
    pub endpoint: Spanned<String>,
    /// An API token (`tokenId` and `tokenSecret`), or a user and password.
    pub auth: ClusterAuth,
    /// How the certificate is checked; without it, against the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTls>,
    /// What guests of this cluster take when they do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ClusterDefaults>,
}

/// How ballast logs in: an API token (recommended), or a user and password (a ticket, renewed
/// before it expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterAuth {
    /// `USER@REALM!NAME`, e.g. `root@pam!ballast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub token_id: Option<Spanned<String>>,
    /// The token's secret: `{secretRef: {name: NAME}}`, `{env: VAR}` or `{file: PATH}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<CredentialSource>,
    /// `USER@REALM`, e.g. `root@pam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CredentialSource>,
}

/// Certificate checking: a CA, a pinned certificate, or (only by name) none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterTls {
    /// A PEM file with the CA that signed the nodes' certificates (Proxmox's own:
    /// `/etc/pve/pve-root-ca.pem` on a node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// The SHA-256 fingerprint of the certificate to accept (`AB:CD:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub fingerprint: Option<Spanned<String>>,
    /// Turns checking off; every command then warns.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}

/// Defaults for the cluster's guests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterDefaults {
    /// The node new guests are created on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub node: Option<Spanned<String>>,
    /// The storage of new disks, root filesystems, mount points and cloud-init drives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
    /// The bridge of network cards that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub bridge: Option<Spanned<String>>,
}

impl ProxmoxClusterSpec {
    /// The names of the secrets the credentials refer to.
    pub fn secret_refs(&self) -> impl Iterator<Item = &str> {
        [&self.auth.token_secret, &self.auth.password]
            .into_iter()
            .flatten()
            .filter_map(|c| c.secret_ref.as_ref().map(|r| r.name.as_str()))
    }

    /// The defaults as plain text (what the plan takes).
    pub fn guest_defaults(&self) -> GuestDefaults {
        let get = |f: fn(&ClusterDefaults) -> &Option<Spanned<String>>| {
            self.defaults
                .as_ref()
                .and_then(|d| f(d).as_ref())
                .map(|s| s.value.clone())
        };
        GuestDefaults {
            node: get(|d| &d.node),
            storage: get(|d| &d.storage),
            bridge: get(|d| &d.bridge),
        }
    }
}

/// A cluster's guest defaults, without source locations: what plans and the set-wide checks
/// take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDefaults {
    pub node: Option<String>,
    pub storage: Option<String>,
    pub bridge: Option<String>,
}
