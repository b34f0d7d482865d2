//! Import: the manifest printed for an existing guest validates, and planning it against that
//! same guest changes nothing (the guest is adopted as it is), for a VM and a container.

mod support;

use std::path::Path;

use ballast_model::proxmox::{ProxmoxSpec, check_proxmox_set, parse_proxmox_source};
use ballast_plan::Action;
use ballast_plan::proxmox::import::{import_container, import_vm};
use ballast_plan::proxmox::{Desired, Observed, plan_container, plan_vm};
use support::*;

fn parsed(yaml: &str) -> ProxmoxSpec {
    let text = format!("{CLUSTER}{yaml}");
    let (resources, mut problems) = parse_proxmox_source(Path::new("import.yaml"), &text);
    problems.extend(check_proxmox_set(&resources));
    assert!(problems.is_empty(), "{text}\n{problems:#?}");
    resources
        .into_iter()
        .nth(1)
        .map(|r| r.spec)
        .expect("the guest")
}

#[test]
fn an_imported_vm_plans_no_change() {
    let mut row = qemu_row(120, "pve2", "Web-1", "running");
    row.tags = vec!["Prod".into(), "web".into()];
    row.pool = Some("homelab".into());
    let cfg = config(&[
        ("name", "Web-1"),
        ("description", "front end\n"),
        ("tags", "web;Prod"),
        ("cores", "2"),
        ("sockets", "1"),
        ("cpu", "host,flags=+aes"),
        ("memory", "current=4096"),
        ("balloon", "0"),
        ("scsi0", "local-lvm:vm-120-disk-0,discard=on,size=32G,ssd=1"),
        ("virtio1", "ceph-pool:vm-120-disk-1,size=1536M"),
        ("ide2", "local-lvm:vm-120-cloudinit,media=cdrom"),
        ("ide0", "local:iso/debian.iso,media=cdrom"),
        ("efidisk0", "local-lvm:vm-120-disk-2,size=4M"),
        (
            "net0",
            "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20,firewall=1",
        ),
        ("net1", "e1000=BC:24:11:00:00:02,bridge=vmbr1"),
        ("ciuser", "debian"),
        ("cipassword", "**********"),
        (
            "sshkeys",
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6%20me%40host%0A",
        ),
        ("ipconfig0", "ip=10.0.20.10/24,gw=10.0.20.1"),
        ("ipconfig1", "ip=dhcp"),
        ("nameserver", "10.0.20.1 1.1.1.1"),
        ("searchdomain", "lab.example"),
        ("onboot", "1"),
        ("protection", "1"),
    ]);
    let import = import_vm("lab", &row, &cfg);
    let yaml = import.to_yaml();
    assert!(
        yaml.contains(
            "# TODO: store the cloud-init password: `ballast secret set web-1-cloudinit-password`"
        ),
        "{yaml}"
    );
    let body = yaml
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let ProxmoxSpec::Vm(spec) = parsed(&body) else {
        panic!("a VM")
    };
    let d = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "web-1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &secrets,
    };
    let rows = [row];
    let p = plan_vm(
        Some(&desired),
        None,
        &Observed {
            guests: &rows,
            config: Some(&cfg),
            clone_source: None,
        },
        false,
    )
    .expect("a plan");
    assert_eq!(
        p.action,
        Action::NoOp,
        "{yaml}\n{:?}\n{:?}",
        p.reasons,
        p.steps
    );
    assert!(p.adopt && p.steps.is_empty());
}

#[test]
fn an_imported_container_plans_no_change() {
    let row = lxc_row(220, "pve1", "dns1", "stopped");
    let cfg = config(&[
        ("hostname", "dns1"),
        ("tags", "dns;infra"),
        ("cores", "1"),
        ("memory", "512"),
        ("swap", "0"),
        ("rootfs", "local-lvm:vm-220-disk-0,size=8G"),
        ("mp0", "local-lvm:vm-220-disk-1,mp=/srv/data,size=16G"),
        (
            "net0",
            "name=eth0,bridge=vmbr0,firewall=1,gw=10.0.20.1,hwaddr=BC:24:11:AA:00:01,ip=10.0.20.53/24,tag=20,type=veth",
        ),
        ("unprivileged", "1"),
        ("features", "keyctl=1,nesting=1"),
        ("ostype", "debian"),
    ]);
    let import = import_container("lab", &row, &cfg, None);
    assert!(
        import.to_fill[0].contains("ostemplate"),
        "{:?}",
        import.to_fill
    );
    let yaml = import.to_yaml();
    let body = yaml
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let ProxmoxSpec::Container(spec) = parsed(&body) else {
        panic!("a container")
    };
    let d = defaults();
    let secrets = no_secrets();
    let desired = Desired {
        name: "dns1",
        spec: &spec,
        defaults: &d,
        hash: "h",
        secret_versions: &secrets,
    };
    let rows = [row];
    let p = plan_container(
        Some(&desired),
        None,
        &Observed {
            guests: &rows,
            config: Some(&cfg),
            clone_source: None,
        },
        false,
    )
    .expect("a plan");
    assert_eq!(
        p.action,
        Action::NoOp,
        "{yaml}\n{:?}\n{:?}",
        p.reasons,
        p.steps
    );
    assert!(p.adopt);
}
