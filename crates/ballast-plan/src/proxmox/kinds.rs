//! What differs between a VM and a container for the plan's rules ([`Kind`]): how each names
//! its guest, where its spec keeps each setting, how it compares and creates, and what only a
//! replace can change.

use std::collections::BTreeMap;

use ballast_model::proxmox::{
    CloneSpec, GuestState, ProxmoxContainerSpec, ProxmoxVmSpec, RestartPolicy,
};
use ballast_proxmox::GuestKind;

use super::compare::{Compared, flag, tag_set};
use super::steps::{GuestStep, GuestTarget};
use super::{Desired, ObservedConfig, RecordedGuest, container, vm};

/// What differs between a VM and a container for the rules of this module.
pub(crate) trait Kind {
    type Spec: serde::Serialize;
    const KIND: GuestKind;
    const NAME: &'static str;
    fn guest_name<'a>(d: &Desired<'a, Self::Spec>) -> &'a str;
    fn vmid(spec: &Self::Spec) -> Option<u32>;
    fn node(spec: &Self::Spec) -> Option<&str>;
    fn allowed_nodes(spec: &Self::Spec) -> Vec<&str>;
    fn clone_spec(spec: &Self::Spec) -> Option<&CloneSpec>;
    fn state(spec: &Self::Spec) -> GuestState;
    fn restart_policy(spec: &Self::Spec) -> RestartPolicy;
    fn tags(spec: &Self::Spec) -> Option<Vec<String>>;
    fn pool(spec: &Self::Spec) -> Option<&str>;
    fn template(spec: &Self::Spec) -> bool;
    fn compare(
        d: &Desired<'_, Self::Spec>,
        values: &BTreeMap<String, String>,
        recorded: Option<&RecordedGuest>,
    ) -> Compared;
    fn as_clone_of(source: &BTreeMap<String, String>, name: &str) -> BTreeMap<String, String>;
    fn create(d: &Desired<'_, Self::Spec>, guest: GuestTarget) -> GuestStep;
    /// Why the guest cannot be changed into what the spec says, only replaced.
    fn replace_reason(d: &Desired<'_, Self::Spec>, config: &ObservedConfig) -> Option<String>;
}

pub(crate) struct VmKind;
pub(crate) struct CtKind;

fn tags_of(tags: &Option<Vec<serde_saphyr::Spanned<String>>>) -> Option<Vec<String>> {
    tags.as_ref()
        .map(|t| tag_set(t.iter().map(|s| s.value.as_str())))
}

impl Kind for VmKind {
    type Spec = ProxmoxVmSpec;
    const KIND: GuestKind = GuestKind::Qemu;
    const NAME: &'static str = "ProxmoxVm";
    fn guest_name<'a>(d: &Desired<'a, ProxmoxVmSpec>) -> &'a str {
        d.spec.guest_name(d.name)
    }
    fn vmid(spec: &ProxmoxVmSpec) -> Option<u32> {
        spec.vmid()
    }
    fn node(spec: &ProxmoxVmSpec) -> Option<&str> {
        spec.node.as_ref().map(|n| n.value.as_str())
    }
    fn allowed_nodes(spec: &ProxmoxVmSpec) -> Vec<&str> {
        spec.allowed_nodes
            .iter()
            .map(|n| n.value.as_str())
            .collect()
    }
    fn clone_spec(spec: &ProxmoxVmSpec) -> Option<&CloneSpec> {
        spec.clone.as_ref()
    }
    fn state(spec: &ProxmoxVmSpec) -> GuestState {
        spec.desired_state()
    }
    fn restart_policy(spec: &ProxmoxVmSpec) -> RestartPolicy {
        spec.restart_policy
    }
    fn tags(spec: &ProxmoxVmSpec) -> Option<Vec<String>> {
        tags_of(&spec.tags)
    }
    fn pool(spec: &ProxmoxVmSpec) -> Option<&str> {
        spec.pool.as_ref().map(|p| p.value.as_str())
    }
    fn template(spec: &ProxmoxVmSpec) -> bool {
        spec.template
    }
    fn compare(
        d: &Desired<'_, ProxmoxVmSpec>,
        values: &BTreeMap<String, String>,
        recorded: Option<&RecordedGuest>,
    ) -> Compared {
        vm::compare(d, values, recorded)
    }
    fn as_clone_of(source: &BTreeMap<String, String>, name: &str) -> BTreeMap<String, String> {
        vm::as_clone_of(source, name)
    }
    fn create(d: &Desired<'_, ProxmoxVmSpec>, guest: GuestTarget) -> GuestStep {
        let (params, secrets) = vm::create_params(d);
        GuestStep::Create {
            guest,
            params,
            secrets,
            pool: Self::pool(d.spec).map(str::to_string),
            ostemplate: None,
            unprivileged: None,
            ssh_public_keys: None,
        }
    }
    fn replace_reason(d: &Desired<'_, ProxmoxVmSpec>, config: &ObservedConfig) -> Option<String> {
        (flag(config.get("template"), false) && !d.spec.template).then(|| {
            "it is a template and the manifest wants a VM; Proxmox cannot turn a template back into a VM".to_string()
        })
    }
}

impl Kind for CtKind {
    type Spec = ProxmoxContainerSpec;
    const KIND: GuestKind = GuestKind::Lxc;
    const NAME: &'static str = "ProxmoxContainer";
    fn guest_name<'a>(d: &Desired<'a, ProxmoxContainerSpec>) -> &'a str {
        d.spec.host_name(d.name)
    }
    fn vmid(spec: &ProxmoxContainerSpec) -> Option<u32> {
        spec.vmid()
    }
    fn node(spec: &ProxmoxContainerSpec) -> Option<&str> {
        spec.node.as_ref().map(|n| n.value.as_str())
    }
    fn allowed_nodes(spec: &ProxmoxContainerSpec) -> Vec<&str> {
        spec.allowed_nodes
            .iter()
            .map(|n| n.value.as_str())
            .collect()
    }
    fn clone_spec(spec: &ProxmoxContainerSpec) -> Option<&CloneSpec> {
        spec.clone.as_ref()
    }
    fn state(spec: &ProxmoxContainerSpec) -> GuestState {
        spec.state
    }
    fn restart_policy(spec: &ProxmoxContainerSpec) -> RestartPolicy {
        spec.restart_policy
    }
    fn tags(spec: &ProxmoxContainerSpec) -> Option<Vec<String>> {
        tags_of(&spec.tags)
    }
    fn pool(spec: &ProxmoxContainerSpec) -> Option<&str> {
        spec.pool.as_ref().map(|p| p.value.as_str())
    }
    fn template(_: &ProxmoxContainerSpec) -> bool {
        false
    }
    fn compare(
        d: &Desired<'_, ProxmoxContainerSpec>,
        values: &BTreeMap<String, String>,
        recorded: Option<&RecordedGuest>,
    ) -> Compared {
        container::compare(d, values, recorded)
    }
    fn as_clone_of(source: &BTreeMap<String, String>, name: &str) -> BTreeMap<String, String> {
        container::as_clone_of(source, name)
    }
    fn create(d: &Desired<'_, ProxmoxContainerSpec>, guest: GuestTarget) -> GuestStep {
        let (params, secrets, keys) = container::create_params(d);
        GuestStep::Create {
            guest,
            params,
            secrets,
            pool: Self::pool(d.spec).map(str::to_string),
            ostemplate: d.spec.ostemplate.as_ref().map(|t| t.value.clone()),
            unprivileged: Some(d.spec.unprivileged),
            ssh_public_keys: keys,
        }
    }
    fn replace_reason(
        d: &Desired<'_, ProxmoxContainerSpec>,
        config: &ObservedConfig,
    ) -> Option<String> {
        let have = flag(config.get("unprivileged"), false);
        (have != d.spec.unprivileged).then(|| {
            format!(
                "it is {} and the manifest wants it {}; Proxmox fixes that when a container is created",
                if have { "unprivileged" } else { "privileged" },
                if d.spec.unprivileged { "unprivileged" } else { "privileged" }
            )
        })
    }
}
