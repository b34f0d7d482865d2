//! The test-only executor of plan steps for `plan_against_fakepve.rs`: each step becomes its
//! client call, and each task is waited for (the controller will record the UPID and poll
//! instead), plus the observation of a guest's config with its pending changes.

use std::collections::BTreeMap;

use ballast_plan::proxmox::{
    GuestStep, ObservedConfig, Power, SHUTDOWN_TIMEOUT_SECS, assign_vmid, needs_vmid,
};
use ballast_proxmox::{
    ConfigUpdate, DeleteOptions, DiskSize, GuestKind, GuestRef, GuestResource, LxcClone, LxcCreate,
    Params, PowerAction, ProxmoxClient, QemuClone, QemuCreate, Secret,
};

use crate::common::succeed;

/// The test's secret store: secret name → value.
pub fn secret_value(source: &ballast_model::server::CredentialSource) -> Secret {
    let name = source.secret_ref.as_ref().map_or("", |r| r.name.as_str());
    Secret::new(format!("value-of-{name}"))
}

pub fn params(map: &BTreeMap<String, String>) -> Params {
    map.iter()
        .fold(Params::new(), |p, (k, v)| p.set(k.as_str(), v))
}

fn guest_ref(kind: GuestKind, node: &str, vmid: u32) -> GuestRef {
    GuestRef {
        kind,
        node: node.to_string(),
        vmid,
    }
}

/// Runs a plan's steps through the client, waiting for each task (the controller will
/// instead record the UPID and poll). Returns the vmid acted on.
pub async fn execute(client: &ProxmoxClient, steps: &[GuestStep]) -> Option<u32> {
    let mut steps = steps.to_vec();
    if needs_vmid(&steps) {
        assign_vmid(&mut steps, client.next_id().await.expect("next id"));
    }
    let mut vmid = None;
    for step in &steps {
        let target = step.target().cloned();
        let id = target.as_ref().and_then(|t| t.vmid);
        vmid = vmid.or(id);
        let vmid_of = || id.expect("a vmid was assigned");
        let upid = match step {
            GuestStep::Clone {
                kind,
                source_node,
                source_vmid,
                new,
                name,
                full,
                storage,
                pool,
            } => {
                let target = (new.node != *source_node).then(|| new.node.clone());
                match kind {
                    GuestKind::Qemu => {
                        client
                            .qemu_clone(
                                source_node,
                                *source_vmid,
                                &QemuClone {
                                    newid: vmid_of(),
                                    name: Some(name.clone()),
                                    full: Some(*full),
                                    target,
                                    storage: storage.clone(),
                                    pool: pool.clone(),
                                    ..QemuClone::default()
                                },
                            )
                            .await
                    }
                    GuestKind::Lxc => {
                        client
                            .lxc_clone(
                                source_node,
                                *source_vmid,
                                &LxcClone {
                                    newid: vmid_of(),
                                    hostname: Some(name.clone()),
                                    full: Some(*full),
                                    target,
                                    storage: storage.clone(),
                                    pool: pool.clone(),
                                    ..LxcClone::default()
                                },
                            )
                            .await
                    }
                }
                .map(Some)
            }
            GuestStep::Create {
                guest,
                params: p,
                secrets,
                pool,
                ostemplate,
                unprivileged,
                ssh_public_keys,
            } => {
                let mut config = params(p);
                match guest.kind {
                    GuestKind::Qemu => {
                        for s in secrets {
                            config = config.set_secret(s.key.as_str(), secret_value(&s.source));
                        }
                        client
                            .qemu_create(
                                &guest.node,
                                &QemuCreate {
                                    vmid: vmid_of(),
                                    config,
                                    pool: pool.clone(),
                                    ..QemuCreate::default()
                                },
                            )
                            .await
                    }
                    GuestKind::Lxc => {
                        client
                            .lxc_create(
                                &guest.node,
                                &LxcCreate {
                                    vmid: vmid_of(),
                                    ostemplate: ostemplate.clone().expect("an OS template"),
                                    config,
                                    pool: pool.clone(),
                                    password: secrets.first().map(|s| secret_value(&s.source)),
                                    ssh_public_keys: ssh_public_keys.clone(),
                                    unprivileged: *unprivileged,
                                    ..LxcCreate::default()
                                },
                            )
                            .await
                    }
                }
                .map(Some)
            }
            GuestStep::UpdateConfig {
                guest,
                set,
                delete,
                secrets,
                digest,
            } => {
                let mut update = ConfigUpdate {
                    set: params(set),
                    delete: delete.clone(),
                    digest: digest.clone(),
                };
                for s in secrets {
                    update.set = update
                        .set
                        .set_secret(s.key.as_str(), secret_value(&s.source));
                }
                match guest.kind {
                    GuestKind::Qemu => {
                        client
                            .qemu_update_config(&guest.node, vmid_of(), &update)
                            .await
                    }
                    GuestKind::Lxc => client
                        .lxc_update_config(&guest.node, vmid_of(), &update)
                        .await
                        .map(|()| None),
                }
            }
            GuestStep::Resize {
                guest,
                disk,
                to_bytes,
                ..
            } => {
                client
                    .resize(
                        &guest_ref(guest.kind, &guest.node, vmid_of()),
                        disk,
                        DiskSize::To(*to_bytes),
                        None,
                    )
                    .await
            }
            GuestStep::Power { guest, action } => {
                let action = match action {
                    Power::Start => PowerAction::Start,
                    Power::Stop => PowerAction::Stop,
                    Power::Shutdown => PowerAction::Shutdown {
                        timeout_secs: Some(SHUTDOWN_TIMEOUT_SECS),
                        force_stop: true,
                    },
                    Power::Reboot => PowerAction::Reboot { timeout_secs: None },
                };
                client
                    .power(&guest_ref(guest.kind, &guest.node, vmid_of()), action)
                    .await
                    .map(Some)
            }
            GuestStep::ConvertToTemplate { guest } => {
                client
                    .convert_to_template(&guest_ref(guest.kind, &guest.node, vmid_of()))
                    .await
            }
            GuestStep::AddToPool { pool, .. } => client
                .add_to_pool(pool, &[vmid_of()], true)
                .await
                .map(|()| None),
            GuestStep::Delete { guest, purge } => client
                .delete(
                    &guest_ref(guest.kind, &guest.node, vmid_of()),
                    DeleteOptions {
                        purge: *purge,
                        ..DeleteOptions::default()
                    },
                )
                .await
                .map(Some),
            GuestStep::Forget { .. } => Ok(None),
        };
        let upid = upid.unwrap_or_else(|e| panic!("{} ({}): {e}", step.describe(), step.call()));
        if let Some(upid) = upid {
            succeed(client, &upid).await;
        }
    }
    vmid
}

/// What the controller will observe: the cluster's rows, and the guest's config with its
/// pending changes when one is asked for.
pub async fn config_of(client: &ProxmoxClient, row: &GuestResource) -> ObservedConfig {
    match row.kind {
        GuestKind::Qemu => {
            let cfg = client
                .qemu_config(&row.node, row.vmid)
                .await
                .expect("config");
            let pending = client
                .qemu_pending(&row.node, row.vmid)
                .await
                .expect("pending");
            ObservedConfig::qemu(&cfg, &pending)
        }
        GuestKind::Lxc => {
            let cfg = client
                .lxc_config(&row.node, row.vmid)
                .await
                .expect("config");
            let pending = client
                .lxc_pending(&row.node, row.vmid)
                .await
                .expect("pending");
            ObservedConfig::lxc(&cfg, &pending)
        }
    }
}
