//! The Proxmox kinds: `ProxmoxCluster` (an API endpoint and how to log in), `ProxmoxVm` (a
//! QEMU virtual machine) and `ProxmoxContainer` (an LXC container): their specs, the syntax of
//! their values ([`values`]), and their checks, each at file:line:column with the field path.
//!
//! The kinds are not registered with the loader yet: [`parse_proxmox_source`] and
//! [`check_proxmox_set`] parse and check Proxmox documents on their own until they are.

mod check;
mod check_guest;
mod cluster;
mod container;
mod guest;
mod parse;
mod refs;
pub mod values;
mod vm;

#[cfg(test)]
mod corpus;

pub use cluster::{ClusterAuth, ClusterDefaults, ClusterTls, GuestDefaults, ProxmoxClusterSpec};
pub use container::{CtNic, Features, MountPoint, ProxmoxContainerSpec, RootFs};
pub use guest::{CloneSource, CloneSpec, GuestState, RestartPolicy};
pub use parse::{
    ProxmoxKind, ProxmoxResource, ProxmoxSpec, check_proxmox_set, parse_proxmox_source,
};
pub use vm::{CloudInit, Dns, IpConfig, ProxmoxVmSpec, VmCpu, VmDisk, VmMemory, VmNic};
