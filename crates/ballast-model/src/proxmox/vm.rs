//! The `ProxmoxVm` kind: a QEMU virtual machine on a Proxmox cluster, created fresh or cloned
//! from a template, with what a homelab sets (CPU, memory, disks, network cards, cloud-init,
//! power state), in the words of Terraform's bpg/proxmox provider.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::guest::{CloneSpec, GuestState, RestartPolicy, vmid_of};
use crate::server::CredentialSource;

fn is_false(value: &bool) -> bool {
    !*value
}
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A QEMU virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxmoxVmSpec {
    /// The ProxmoxCluster it lives on.
    #[schemars(with = "String")]
    pub cluster: Spanned<String>,
    /// The node to create it on (default: the cluster's `defaults.node`). Only where it is
    /// created: a VM that HA moved elsewhere is found there, not created again.
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
    /// The VM's name in Proxmox (default: metadata.name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Compared as a set without case, so their order never shows as a change. Without
    /// `tags` the VM's tags are left as they are; `tags: []` removes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<String>>")]
    pub tags: Option<Vec<Spanned<String>>>,
    /// The resource pool it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub pool: Option<Spanned<String>>,
    /// Create it as a clone of another VM or template (only at create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<VmCpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<VmMemory>,
    /// Disks by interface. Listed disks are created or grown (never shrunk); disks not listed
    /// are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<VmDisk>,
    /// Network cards in order: the first is net0, the second net1, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<VmNic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,
    /// `running` (default) or `stopped`; a template is always stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<GuestState>,
    /// Start it when its node boots.
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_boot: bool,
    /// Proxmox refuses to delete it, and so does ballast.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protection: bool,
    /// Convert it into a template after it is created and configured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub template: bool,
    /// `never` (default): a change that needs a reboot is applied and reported as pending;
    /// `auto`: ballast reboots the VM for it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub restart_policy: RestartPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmCpu {
    /// Cores per socket (Proxmox's default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub cores: Option<Spanned<i64>>,
    /// Sockets (Proxmox's default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub sockets: Option<Spanned<i64>>,
    /// The CPU type: `host`, `x86-64-v2-AES` (Proxmox's default), `kvm64`, …
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub cpu_type: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmMemory {
    /// The VM's memory: `4GiB`, `512MiB`.
    #[schemars(with = "String")]
    pub dedicated: Spanned<String>,
    /// The least the balloon driver may leave it (`0` turns ballooning off); not managed when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub floating: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmDisk {
    /// `scsi0`–`scsi30`, `virtio0`–`virtio15`, `sata0`–`sata5` or `ide0`–`ide3`.
    #[schemars(with = "String")]
    pub interface: Spanned<String>,
    /// Where a new disk is allocated (default: the cluster's `defaults.storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
    /// `32GiB` (whole MiB). A larger size grows the disk; a smaller one is refused.
    #[schemars(with = "String")]
    pub size: Spanned<String>,
    /// Pass TRIM/discard to the storage.
    #[serde(default, skip_serializing_if = "is_false")]
    pub discard: bool,
    /// Tell the guest the disk is an SSD.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ssd: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmNic {
    /// `virtio` (default), `e1000`, `vmxnet3`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub model: Option<Spanned<String>>,
    /// Default: the cluster's `defaults.bridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub bridge: Option<Spanned<String>>,
    /// The VLAN tag, 1 to 4094 (none when absent).
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

/// Cloud-init values, given to the VM through its cloud-init drive at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudInit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// The user's password: a secret reference, never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CredentialSource>,
    /// Public keys (`ssh-ed25519 AAAA… user@host`), one per entry; not secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub ssh_keys: Vec<Spanned<String>>,
    /// One per network card, in order: `ip: dhcp` or `ip: 10.0.0.5/24` with a `gateway`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_config: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpConfig {
    /// `dhcp`, or an address with its prefix length.
    #[schemars(with = "String")]
    pub ip: Spanned<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dns {
    /// Name servers, by address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub servers: Vec<Spanned<String>>,
    /// The search domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub domain: Option<Spanned<String>>,
}

impl ProxmoxVmSpec {
    /// The vmid, once validated.
    pub fn vmid(&self) -> Option<u32> {
        vmid_of(&self.vmid)
    }

    /// The VM's name: `name`, else the resource's name.
    pub fn guest_name<'a>(&'a self, resource_name: &'a str) -> &'a str {
        self.name
            .as_ref()
            .map_or(resource_name, |n| n.value.as_str())
    }

    /// The power state it should be in: a template is never running.
    pub fn desired_state(&self) -> GuestState {
        match self.state {
            _ if self.template => GuestState::Stopped,
            Some(state) => state,
            None => GuestState::Running,
        }
    }

    /// The names of the secrets the spec refers to.
    pub fn secret_refs(&self) -> impl Iterator<Item = &str> {
        self.cloud_init
            .as_ref()
            .and_then(|c| c.password.as_ref())
            .and_then(|p| p.secret_ref.as_ref())
            .map(|r| r.name.as_str())
            .into_iter()
    }
}
