//! Per-document checks of `ProxmoxVm` and `ProxmoxContainer`: every value at its place, and
//! the settings that exclude each other (`clone` and what a clone brings, `ostemplate` and
//! `clone`, a template that should run).

use serde_saphyr::Spanned;

use super::check::{Checker, Placement};
use super::container::ProxmoxContainerSpec;
use super::guest::{CloneSource, CloneSpec, GuestState};
use super::values::{
    bridge_problem, cidr_problem, cpu_type_problem, dns_name_problem, ip_problem, mac_problem,
    net_model_problem, ostemplate_problem, parse_disk_interface, parse_disk_size, parse_mib,
    ssh_key_problem, storage_problem, vlan_problem, vmid_problem,
};
use super::vm::ProxmoxVmSpec;
use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;

/// Proxmox's least memory for a guest, in MiB.
const MIN_MEMORY_MIB: u64 = 16;

fn clone_checks(c: &mut Checker<'_>, clone: &CloneSpec, own_vmid: &Option<Spanned<i64>>) {
    match &clone.from.value {
        CloneSource::Vmid(vmid) => {
            if let Some(why) = vmid_problem(*vmid) {
                c.at(&clone.from, "spec.clone.from", why);
            } else if own_vmid.as_ref().is_some_and(|own| own.value == *vmid) {
                c.at(
                    &clone.from,
                    "spec.clone.from",
                    format!("a guest cannot be cloned from itself (vmid {vmid})"),
                );
            }
        }
        CloneSource::Name(name) => {
            if let Some(why) = dns_name_problem(name) {
                c.at(
                    &clone.from,
                    "spec.clone.from",
                    format!("expected a vmid or a guest's name: {why}"),
                );
            }
        }
    }
    if let Some(storage) = &clone.storage {
        c.text(storage, "spec.clone.storage", storage_problem);
        if !clone.full {
            c.at(
                storage,
                "spec.clone.storage",
                "a linked clone (`full: false`) stays on its source's storage; remove `storage` or set `full: true`",
            );
        }
    }
}

fn size_checks(
    c: &mut Checker<'_>,
    value: &Spanned<String>,
    field: &str,
    parse: impl Fn(&str) -> Result<u64, String>,
) -> Option<u64> {
    match parse(&value.value) {
        Ok(n) => Some(n),
        Err(why) => {
            c.at(value, field, why);
            None
        }
    }
}

fn ssh_keys(c: &mut Checker<'_>, keys: &[Spanned<String>], prefix: &str) {
    for (i, key) in keys.iter().enumerate() {
        c.text(key, &format!("{prefix}[{i}]"), ssh_key_problem);
    }
}

/// Checks a ProxmoxVm on its own.
pub(crate) fn check_vm(doc: &DocContext, spec: &ProxmoxVmSpec) -> Vec<Diagnostic> {
    let mut c = Checker::new(doc);
    c.placement(&Placement {
        cluster: &spec.cluster,
        node: &spec.node,
        allowed_nodes: &spec.allowed_nodes,
        vmid: &spec.vmid,
        tags: &spec.tags,
        pool: &spec.pool,
    });
    c.opt_text(&spec.name, "spec.name", dns_name_problem);
    if let Some(clone) = &spec.clone {
        clone_checks(&mut c, clone, &spec.vmid);
    }
    if let Some(cpu) = &spec.cpu {
        c.range(&cpu.cores, "spec.cpu.cores", "cores", 1..=1024);
        c.range(&cpu.sockets, "spec.cpu.sockets", "sockets", 1..=64);
        c.opt_text(&cpu.cpu_type, "spec.cpu.type", cpu_type_problem);
    }
    if let Some(memory) = &spec.memory {
        let dedicated = size_checks(&mut c, &memory.dedicated, "spec.memory.dedicated", |t| {
            parse_mib(t, MIN_MEMORY_MIB)
        });
        if let Some(floating) = &memory.floating
            && let Some(min) = size_checks(&mut c, floating, "spec.memory.floating", |t| {
                parse_mib(t, 0)
            })
            && let Some(max) = dedicated
            && min > max
        {
            c.at(
                floating,
                "spec.memory.floating",
                format!(
                    "`{}` is more than the dedicated {}; floating is the least the balloon may leave",
                    floating.value, memory.dedicated.value
                ),
            );
        }
    }
    for (i, disk) in spec.disks.iter().enumerate() {
        let field = format!("spec.disks[{i}].interface");
        match parse_disk_interface(&disk.interface.value) {
            Err(why) => c.at(&disk.interface, &field, why),
            Ok(_) => {
                if let Some(first) = spec.disks[..i]
                    .iter()
                    .position(|d| d.interface.value == disk.interface.value)
                {
                    c.at(
                        &disk.interface,
                        &field,
                        format!(
                            "`{}` is listed twice (also spec.disks[{first}]); a VM has one disk per interface",
                            disk.interface.value
                        ),
                    );
                }
            }
        }
        c.opt_text(
            &disk.storage,
            &format!("spec.disks[{i}].storage"),
            storage_problem,
        );
        size_checks(
            &mut c,
            &disk.size,
            &format!("spec.disks[{i}].size"),
            parse_disk_size,
        );
    }
    for (i, nic) in spec.network.iter().enumerate() {
        c.opt_text(
            &nic.model,
            &format!("spec.network[{i}].model"),
            net_model_problem,
        );
        c.opt_text(
            &nic.bridge,
            &format!("spec.network[{i}].bridge"),
            bridge_problem,
        );
        if let Some(vlan) = &nic.vlan
            && let Some(why) = vlan_problem(vlan.value)
        {
            c.at(vlan, &format!("spec.network[{i}].vlan"), why);
        }
        check_mac(&mut c, &nic.mac, i, spec.network.iter().map(|n| &n.mac));
    }
    if let Some(ci) = &spec.cloud_init {
        c.opt_text(&ci.user, "spec.cloudInit.user", |u| {
            (u.is_empty() || u.chars().any(|ch| ch.is_whitespace() || ch == ':'))
                .then(|| format!("`{u}` is not a user name; expected a name without spaces"))
        });
        if let Some(password) = &ci.password {
            c.credential(&["spec", "cloudInit", "password"], password);
        }
        ssh_keys(&mut c, &ci.ssh_keys, "spec.cloudInit.sshKeys");
        for (i, ip) in ci.ip_config.iter().enumerate() {
            let field = format!("spec.cloudInit.ipConfig[{i}]");
            if ip.ip.value != "dhcp" {
                c.text(&ip.ip, &format!("{field}.ip"), |t| {
                    cidr_problem(t).map(|why| format!("{why}, or `dhcp`"))
                });
            }
            if let Some(gw) = &ip.gateway {
                c.text(gw, &format!("{field}.gateway"), ip_problem);
                if ip.ip.value == "dhcp" {
                    c.at(
                        gw,
                        &format!("{field}.gateway"),
                        "a gateway goes with a static address; with `ip: dhcp` it comes from DHCP",
                    );
                }
            }
            if !spec.network.is_empty() && i >= spec.network.len() {
                c.at(
                    &ip.ip,
                    &format!("{field}.ip"),
                    format!(
                        "ipConfig[{i}] configures net{i}, but `network` lists {} card(s)",
                        spec.network.len()
                    ),
                );
            }
        }
        if let Some(dns) = &ci.dns {
            for (i, server) in dns.servers.iter().enumerate() {
                c.text(
                    server,
                    &format!("spec.cloudInit.dns.servers[{i}]"),
                    ip_problem,
                );
            }
            c.opt_text(&dns.domain, "spec.cloudInit.dns.domain", dns_name_problem);
        }
    }
    if spec.template && spec.state == Some(GuestState::Running) {
        c.path(
            &["spec", "state"],
            "a template never runs; remove `state: running` or `template: true`",
        );
    }
    c.out
}

fn check_mac<'a>(
    c: &mut Checker<'_>,
    mac: &Option<Spanned<String>>,
    i: usize,
    all: impl Iterator<Item = &'a Option<Spanned<String>>>,
) {
    let Some(mac) = mac else { return };
    let field = format!("spec.network[{i}].mac");
    if let Some(why) = mac_problem(&mac.value) {
        c.at(mac, &field, why);
        return;
    }
    let earlier = all.take(i).position(|m| {
        m.as_ref()
            .is_some_and(|m| m.value.eq_ignore_ascii_case(&mac.value))
    });
    if let Some(first) = earlier {
        c.at(
            mac,
            &field,
            format!(
                "MAC {} is also spec.network[{first}].mac; each card needs its own",
                mac.value
            ),
        );
    }
}

/// Checks a ProxmoxContainer on its own.
pub(crate) fn check_container(doc: &DocContext, spec: &ProxmoxContainerSpec) -> Vec<Diagnostic> {
    let mut c = Checker::new(doc);
    c.placement(&Placement {
        cluster: &spec.cluster,
        node: &spec.node,
        allowed_nodes: &spec.allowed_nodes,
        vmid: &spec.vmid,
        tags: &spec.tags,
        pool: &spec.pool,
    });
    c.opt_text(&spec.hostname, "spec.hostname", dns_name_problem);
    match (&spec.ostemplate, &spec.clone) {
        (Some(template), Some(_)) => c.at(
            template,
            "spec.ostemplate",
            "`ostemplate` and `clone` exclude each other: a clone's root filesystem comes from its source; remove one",
        ),
        (None, None) => c.path(
            &["spec"],
            "missing `ostemplate`; a container is made from an OS template (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst) or cloned (`clone: {from: …}`)",
        ),
        _ => {}
    }
    c.opt_text(&spec.ostemplate, "spec.ostemplate", ostemplate_problem);
    if let Some(clone) = &spec.clone {
        clone_checks(&mut c, clone, &spec.vmid);
        if spec.password.is_some() {
            c.path(
                &["spec", "password"],
                "root's password is set only when a container is made from an `ostemplate`; a clone keeps its source's",
            );
        }
        if let Some(key) = spec.ssh_keys.first() {
            c.at(
                key,
                "spec.sshKeys[0]",
                "sshKeys are installed only when a container is made from an `ostemplate`; a clone keeps its source's",
            );
        }
    }
    c.range(&spec.cores, "spec.cores", "cores", 1..=1024);
    if let Some(memory) = &spec.memory {
        size_checks(&mut c, memory, "spec.memory", |t| {
            parse_mib(t, MIN_MEMORY_MIB)
        });
    }
    if let Some(swap) = &spec.swap {
        size_checks(&mut c, swap, "spec.swap", |t| parse_mib(t, 0));
    }
    if let Some(rootfs) = &spec.rootfs {
        c.opt_text(&rootfs.storage, "spec.rootfs.storage", storage_problem);
        size_checks(&mut c, &rootfs.size, "spec.rootfs.size", parse_disk_size);
    }
    for (i, mp) in spec.mount_points.iter().enumerate() {
        let field = format!("spec.mountPoints[{i}]");
        c.opt_text(&mp.storage, &format!("{field}.storage"), storage_problem);
        size_checks(&mut c, &mp.size, &format!("{field}.size"), parse_disk_size);
        let path = &mp.path.value;
        let why = if !path.starts_with('/') || path == "/" {
            Some(format!(
                "`{path}` is not a mount path; expected an absolute path other than /, e.g. /srv/data"
            ))
        } else if path.contains([',', '=']) || path.chars().any(char::is_whitespace) {
            Some(format!(
                "`{path}` contains a comma, `=` or a space, which Proxmox's mount point syntax cannot hold"
            ))
        } else {
            spec.mount_points[..i]
                .iter()
                .position(|m| m.path.value.trim_end_matches('/') == path.trim_end_matches('/'))
                .map(|first| format!("`{path}` is mounted twice (also spec.mountPoints[{first}])"))
        };
        if let Some(why) = why {
            c.at(&mp.path, &format!("{field}.path"), why);
        }
    }
    for (i, nic) in spec.network.iter().enumerate() {
        let field = format!("spec.network[{i}]");
        if let Some(name) = &nic.name {
            let valid = name.value.len() <= 15
                && name.value.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && name
                    .value
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
            if !valid {
                c.at(
                    name,
                    &format!("{field}.name"),
                    format!(
                        "`{}` is not an interface name; expected e.g. eth0 (at most 15 characters)",
                        name.value
                    ),
                );
            }
        }
        let name_of = |j: usize, n: &super::container::CtNic| {
            n.name
                .as_ref()
                .map_or_else(|| format!("eth{j}"), |s| s.value.clone())
        };
        let mine = name_of(i, nic);
        if let Some(first) = spec.network[..i]
            .iter()
            .enumerate()
            .position(|(j, n)| name_of(j, n) == mine)
        {
            c.path(
                &["spec", "network", &i.to_string()],
                format!(
                    "interface `{mine}` is also spec.network[{first}]; each needs its own name"
                ),
            );
        }
        c.opt_text(&nic.bridge, &format!("{field}.bridge"), bridge_problem);
        let static_ip = nic
            .ip
            .as_ref()
            .is_some_and(|ip| ip.value != "dhcp" && ip.value != "manual");
        if let Some(ip) = &nic.ip
            && static_ip
        {
            c.text(ip, &format!("{field}.ip"), |t| {
                match cidr_problem(t) {
                    Some(why) => Some(format!("{why}, `dhcp` or `manual`")),
                    None if t.contains(':') => Some(format!(
                        "`{t}` is an IPv6 address; `ip` takes IPv4 (with its prefix), `dhcp` or `manual`"
                    )),
                    None => None,
                }
            });
        }
        if let Some(gw) = &nic.gateway {
            c.text(gw, &format!("{field}.gateway"), ip_problem);
            if !static_ip {
                c.at(
                    gw,
                    &format!("{field}.gateway"),
                    "a gateway goes with a static `ip` (an address with its prefix length)",
                );
            }
        }
        if let Some(vlan) = &nic.vlan
            && let Some(why) = vlan_problem(vlan.value)
        {
            c.at(vlan, &format!("{field}.vlan"), why);
        }
        check_mac(&mut c, &nic.mac, i, spec.network.iter().map(|n| &n.mac));
    }
    if let Some(features) = &spec.features
        && features.keyctl
        && !spec.unprivileged
    {
        c.path(
            &["spec", "features", "keyctl"],
            "keyctl is for unprivileged containers only; a privileged container has it already",
        );
    }
    if let Some(password) = &spec.password {
        c.credential(&["spec", "password"], password);
    }
    ssh_keys(&mut c, &spec.ssh_keys, "spec.sshKeys");
    c.out
}
