//! The `ProxmoxContainer` kind: an LXC container on a Proxmox cluster, created from an OS
//! template or cloned, with its resources, root filesystem, mount points and network.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::guest::{CloneSpec, GuestState, RestartPolicy, vmid_of};
use crate::server::CredentialSource;

fn is_false(value: &bool) -> bool {
    !*value
}
fn is_true(value: &bool) -> bool {
    *value
}
fn yes() -> bool {
    true
}
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// An LXC container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxmoxContainerSpec {
    /// The ProxmoxCluster it lives on.
    #[schemars(with = "String")]
    pub cluster: Spanned<String>,
    /// The node to create it on (default: the cluster's `defaults.node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub node: Option<Spanned<String>>,
    /// The nodes it may run on; one found elsewhere is reported (ballast does not migrate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub allowed_nodes: Vec<Spanned<String>>,
    /// 100 to 999999999; without it the cluster's next free id is taken at create and recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>", range(min = 100, max = 999_999_999))]
    pub vmid: Option<Spanned<i64>>,
    /// The container's host name (default: metadata.name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub hostname: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Compared as a set without case; without `tags` they are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<String>>")]
    pub tags: Option<Vec<Spanned<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub pool: Option<Spanned<String>>,
    /// The OS template volume (`local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`);
    /// required unless `clone` is given, used only at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ostemplate: Option<Spanned<String>>,
    /// Create it as a clone of another container (only at create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub cores: Option<Spanned<i64>>,
    /// `1GiB`, `512MiB` (Proxmox's default 512MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
    /// `512MiB`; `0MiB` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub swap: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
    /// Volumes mounted in the container, in order: the first is mp0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Network interfaces, in order: the first is net0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<CtNic>,
    /// An unprivileged container (default). Fixed at create.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    #[schemars(default = "yes")]
    pub unprivileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// root's password, at create: a secret reference, never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CredentialSource>,
    /// Public keys for root, at create (`ssh-ed25519 AAAA…`); not secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub ssh_keys: Vec<Spanned<String>>,
    /// `running` (default) or `stopped`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub state: GuestState,
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_boot: bool,
    /// Proxmox refuses to delete it, and so does ballast.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protection: bool,
    /// `never` (default) or `auto`: reboot for a change that needs it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub restart_policy: RestartPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RootFs {
    /// Default: the cluster's `defaults.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
    /// `8GiB` (whole MiB); grown, never shrunk.
    #[schemars(with = "String")]
    pub size: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MountPoint {
    /// Default: the cluster's `defaults.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
    /// `8GiB` (whole MiB); grown, never shrunk.
    #[schemars(with = "String")]
    pub size: Spanned<String>,
    /// Where it is mounted in the container, e.g. /srv/data.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CtNic {
    /// The interface's name in the container (default eth0, eth1, … by position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Default: the cluster's `defaults.bridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub bridge: Option<Spanned<String>>,
    /// `dhcp` (default), `manual`, or an address with its prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ip: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u16>")]
    pub vlan: Option<Spanned<i64>>,
    /// A fixed MAC address; without it Proxmox picks one and ballast keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub mac: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub firewall: bool,
}

/// LXC features; changing them takes effect at the next start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Features {
    /// Containers inside the container (Docker in LXC needs it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub nesting: bool,
    /// The keyctl() system call (unprivileged containers only; systemd and Docker use it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub keyctl: bool,
    /// FUSE mounts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fuse: bool,
}

impl ProxmoxContainerSpec {
    /// The vmid, once validated.
    pub fn vmid(&self) -> Option<u32> {
        vmid_of(&self.vmid)
    }

    /// The host name: `hostname`, else the resource's name.
    pub fn host_name<'a>(&'a self, resource_name: &'a str) -> &'a str {
        self.hostname
            .as_ref()
            .map_or(resource_name, |n| n.value.as_str())
    }

    /// The names of the secrets the spec refers to.
    pub fn secret_refs(&self) -> impl Iterator<Item = &str> {
        self.password
            .as_ref()
            .and_then(|p| p.secret_ref.as_ref())
            .map(|r| r.name.as_str())
            .into_iter()
    }
}
