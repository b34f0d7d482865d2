//! The corpus of broken Proxmox manifests under `tests/corpus-proxmox/`: each case must fail
//! with the expected message at the expected file, line, column and field, and with nothing
//! else. A case is a file (checked together with `_lab-cluster.yaml`, the cluster the guests
//! name) or a directory (checked on its own). The examples must pass.

use std::path::{Path, PathBuf};

use super::{ProxmoxResource, check_proxmox_set, parse_proxmox_source};
use crate::diagnostic::Diagnostic;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-proxmox")
}

fn load(paths: &[PathBuf]) -> Vec<Diagnostic> {
    let mut resources: Vec<ProxmoxResource> = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let (parsed, found) = parse_proxmox_source(path, &text);
        resources.extend(parsed);
        problems.extend(found);
    }
    problems.extend(check_proxmox_set(&resources));
    problems
}

fn case_files(case: &str) -> Vec<PathBuf> {
    let path = corpus().join(case);
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .map(|e| e.map(|e| e.path()).unwrap_or_default())
            .collect();
        files.sort();
        files
    } else {
        vec![corpus().join("_lab-cluster.yaml"), path]
    }
}

/// (case, file the error is in, line, column, field path, part of the message)
const CASES: &[(&str, &str, u64, u64, &str, &str)] = &[
    (
        "c01-http-endpoint.yaml",
        "c01-http-endpoint.yaml",
        6,
        13,
        "spec.endpoint",
        "`http://pve1.lab:8006` is not an https URL; expected https://HOST:8006 (the Proxmox API is",
    ),
    (
        "c02-token-and-user.yaml",
        "c02-token-and-user.yaml",
        7,
        3,
        "spec.auth",
        "give either `tokenId` (with `tokenSecret`) or `user` (with `password`), not both",
    ),
    (
        "c03-token-without-secret.yaml",
        "c03-token-without-secret.yaml",
        8,
        14,
        "spec.auth.tokenId",
        "an API token needs its `tokenSecret: {secretRef: {name: NAME}}`",
    ),
    (
        "c04-bad-token-id.yaml",
        "c04-bad-token-id.yaml",
        8,
        14,
        "spec.auth.tokenId",
        "`root!ballast` is not an API token id; expected USER@REALM!NAME, e.g. root@pam!ballast",
    ),
    (
        "c05-tls-two-ways.yaml",
        "c05-tls-two-ways.yaml",
        8,
        3,
        "spec.tls",
        "give one of `caFile`, `fingerprint` or `insecureSkipVerify: true`: each says how the certi",
    ),
    (
        "c06-bad-fingerprint.yaml",
        "c06-bad-fingerprint.yaml",
        9,
        18,
        "spec.tls.fingerprint",
        "`AB:CD:EF` is not a SHA-256 fingerprint; expected 32 hex pairs such as AB:CD:… (as `openss",
    ),
    (
        "c07-inline-secret.yaml",
        "c07-inline-secret.yaml",
        9,
        18,
        "spec.auth.tokenSecret",
        "expected `{secretRef: {name: NAME}}`, `{env: VAR}` or `{file: PATH}`; a secret is never wr",
    ),
    (
        "c08-bad-default-bridge.yaml",
        "c08-bad-default-bridge.yaml",
        8,
        22,
        "spec.defaults.bridge",
        "`vmbr 0` is not a bridge name; expected an interface name such as vmbr0 (a letter, then le",
    ),
    (
        "t01-ostemplate-and-clone.yaml",
        "t01-ostemplate-and-clone.yaml",
        7,
        15,
        "spec.ostemplate",
        "`ostemplate` and `clone` exclude each other: a clone's root filesystem comes from its sour",
    ),
    (
        "t02-no-ostemplate.yaml",
        "t02-no-ostemplate.yaml",
        5,
        1,
        "spec",
        "missing `ostemplate`; a container is made from an OS template (e.g. local:vztmpl/debian-12",
    ),
    (
        "t03-bad-ostemplate.yaml",
        "t03-bad-ostemplate.yaml",
        7,
        15,
        "spec.ostemplate",
        "`local:iso/debian-12.iso` is not an OS template volume; expected STORAGE:vztmpl/FILE.tar.z",
    ),
    (
        "t04-relative-mount-path.yaml",
        "t04-relative-mount-path.yaml",
        9,
        26,
        "spec.mountPoints[0].path",
        "`srv/data` is not a mount path; expected an absolute path other than /, e.g. /srv/data",
    ),
    (
        "t05-keyctl-privileged.yaml",
        "t05-keyctl-privileged.yaml",
        11,
        5,
        "spec.features.keyctl",
        "keyctl is for unprivileged containers only; a privileged container has it already",
    ),
    (
        "t06-password-two-sources.yaml",
        "t06-password-two-sources.yaml",
        8,
        3,
        "spec.password",
        "expected exactly one of `secretRef: {name: NAME}`, `file: PATH` or `env: VAR` (a secret is",
    ),
    (
        "t07-ipv6-in-ip.yaml",
        "t07-ipv6-in-ip.yaml",
        9,
        12,
        "spec.network[0].ip",
        "`fd00::5/64` is an IPv6 address; `ip` takes IPv4 (with its prefix), `dhcp` or `manual`",
    ),
    (
        "t08-no-storage",
        "ct.yaml",
        8,
        3,
        "spec.rootfs",
        "no storage: set `storage` here, or `defaults.storage` in ProxmoxCluster `lab`",
    ),
    (
        "t09-clone-with-ssh-keys.yaml",
        "t09-clone-with-ssh-keys.yaml",
        9,
        7,
        "spec.sshKeys[0]",
        "sshKeys are installed only when a container is made from an `ostemplate`; a clone keeps it",
    ),
    (
        "t10-duplicate-interface-name.yaml",
        "t10-duplicate-interface-name.yaml",
        10,
        7,
        "spec.network[1]",
        "interface `eth1` is also spec.network[0]; each needs its own name",
    ),
    (
        "v01-vmid-out-of-range.yaml",
        "v01-vmid-out-of-range.yaml",
        7,
        9,
        "spec.vmid",
        "vmid 42 is out of range; expected 100 to 999999999",
    ),
    (
        "v02-decimal-size.yaml",
        "v02-decimal-size.yaml",
        8,
        16,
        "spec.memory.dedicated",
        "`4GB` uses a decimal unit; sizes are binary here as in Proxmox: write `4GiB`",
    ),
    (
        "v03-bad-disk-interface.yaml",
        "v03-bad-disk-interface.yaml",
        8,
        19,
        "spec.disks[0].interface",
        "`nvme0` is not a disk interface; expected scsi0–scsi30, virtio0–virtio15, sata0–sata5 or i",
    ),
    (
        "v04-duplicate-disk.yaml",
        "v04-duplicate-disk.yaml",
        9,
        19,
        "spec.disks[1].interface",
        "`scsi0` is listed twice (also spec.disks[0]); a VM has one disk per interface",
    ),
    (
        "v05-multicast-mac.yaml",
        "v05-multicast-mac.yaml",
        9,
        12,
        "spec.network[0].mac",
        "`01:00:5E:00:00:01` is a multicast address (the first octet is odd); a NIC needs a unicast",
    ),
    (
        "v06-bad-bridge.yaml",
        "v06-bad-bridge.yaml",
        8,
        16,
        "spec.network[0].bridge",
        "`vmbr 0` is not a bridge name; expected an interface name such as vmbr0 (a letter, then le",
    ),
    (
        "v07-template-running.yaml",
        "v07-template-running.yaml",
        8,
        3,
        "spec.state",
        "a template never runs; remove `state: running` or `template: true`",
    ),
    (
        "v08-linked-clone-with-storage.yaml",
        "v08-linked-clone-with-storage.yaml",
        10,
        14,
        "spec.clone.storage",
        "a linked clone (`full: false`) stays on its source's storage; remove `storage` or set `ful",
    ),
    (
        "v09-clone-from-itself.yaml",
        "v09-clone-from-itself.yaml",
        8,
        17,
        "spec.clone.from",
        "a guest cannot be cloned from itself (vmid 9000)",
    ),
    (
        "v10-unknown-field.yaml",
        "v10-unknown-field.yaml",
        9,
        5,
        "spec.cpu.threads",
        "unknown field `threads`, expected one of cores, sockets, type",
    ),
    (
        "v11-bad-state.yaml",
        "v11-bad-state.yaml",
        7,
        10,
        "spec.state",
        "unknown variant `paused`, expected one of running, stopped",
    ),
    (
        "v12-duplicate-tag.yaml",
        "v12-duplicate-tag.yaml",
        7,
        21,
        "spec.tags[2]",
        "tag `web` is listed twice (also spec.tags[0]); tags are compared without case",
    ),
    (
        "v13-node-not-allowed.yaml",
        "v13-node-not-allowed.yaml",
        7,
        9,
        "spec.node",
        "node `pve3` is not one of allowedNodes (pve1, pve2); the guest is created on `node`, so it",
    ),
    (
        "v14-disk-not-whole-mib.yaml",
        "v14-disk-not-whole-mib.yaml",
        9,
        13,
        "spec.disks[0].size",
        "`1536KiB` is not a whole number of MiB (at least 1MiB); Proxmox sizes disks in MiB",
    ),
    (
        "v15-gateway-with-dhcp.yaml",
        "v15-gateway-with-dhcp.yaml",
        10,
        18,
        "spec.cloudInit.ipConfig[0].gateway",
        "a gateway goes with a static address; with `ip: dhcp` it comes from DHCP",
    ),
    (
        "v16-unknown-cluster",
        "vm.yaml",
        6,
        12,
        "spec.cluster",
        "unknown cluster `lab2`: cluster names a ProxmoxCluster, and the manifests have lab",
    ),
    (
        "v17-no-node",
        "vm.yaml",
        6,
        12,
        "spec.cluster",
        "no node to create ProxmoxVm/web on: set `node`, or `defaults.node` in ProxmoxCluster `lab`",
    ),
    (
        "v18-duplicate-vmid",
        "vms.yaml",
        16,
        9,
        "spec.vmid",
        "vmid 120 of cluster `lab` is already ProxmoxVm/web at",
    ),
    (
        "v19-floating-above-dedicated.yaml",
        "v19-floating-above-dedicated.yaml",
        7,
        39,
        "spec.memory.floating",
        "`4GiB` is more than the dedicated 2GiB; floating is the least the balloon may leave",
    ),
    (
        "v20-bad-vlan.yaml",
        "v20-bad-vlan.yaml",
        8,
        29,
        "spec.network[0].vlan",
        "VLAN 5000 is out of range; expected 1 to 4094",
    ),
];

#[test]
fn every_case_fails_where_expected_and_only_there() {
    let mut listed: Vec<String> = std::fs::read_dir(corpus())
        .expect("the corpus directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_'))
        .collect();
    listed.sort();
    let mut covered: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    covered.sort();
    covered.dedup();
    assert_eq!(
        listed, covered,
        "every corpus file has a case, and only those"
    );
    for case in &listed {
        let problems = load(&case_files(case));
        let expected: Vec<_> = CASES.iter().filter(|c| c.0 == case).collect();
        let shown: Vec<String> = problems.iter().map(|d| d.to_string()).collect();
        assert_eq!(problems.len(), expected.len(), "{case}: {shown:#?}");
        for (_, file, line, column, field, message) in expected {
            let found = problems.iter().any(|d| {
                d.pos.file.file_name().is_some_and(|f| f == *file)
                    && d.pos.line == *line
                    && d.pos.column == *column
                    && d.field == *field
                    && d.message.contains(message)
            });
            assert!(
                found,
                "{case}: expected {file}:{line}:{column}: {field}: …{message}…, got {shown:#?}"
            );
        }
    }
}

#[test]
fn a_secret_written_inline_is_not_repeated_in_the_message() {
    let problems = load(&case_files("c07-inline-secret.yaml"));
    for d in &problems {
        assert!(!d.to_string().contains("8f14e45f"), "{d}");
    }
}

#[test]
fn the_examples_pass() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files: Vec<PathBuf> = [
        "proxmox-cluster.yaml",
        "proxmox-vm.yaml",
        "proxmox-container.yaml",
    ]
    .iter()
    .map(|f| examples.join(f))
    .collect();
    let problems = load(&files);
    let shown: Vec<String> = problems.iter().map(|d| d.to_string()).collect();
    assert!(problems.is_empty(), "{shown:#?}");
}

/// Every top-level spec field of the kind's schema is shown in its example (written, or as a
/// commented alternative where two fields exclude each other).
fn example_shows_every_field<S: schemars::JsonSchema>(example: &str) {
    let schema = serde_json::to_value(schemars::schema_for!(S)).unwrap_or_default();
    let fields: Vec<String> = schema["properties"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert!(fields.len() >= 4, "{example}: {fields:?}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    for field in fields {
        assert!(
            text.contains(&format!("\n  {field}:")) || text.contains(&format!("\n  # {field}:")),
            "{example} does not show `{field}`"
        );
    }
}

#[test]
fn the_examples_show_every_field() {
    example_shows_every_field::<super::ProxmoxClusterSpec>("proxmox-cluster.yaml");
    example_shows_every_field::<super::ProxmoxVmSpec>("proxmox-vm.yaml");
    example_shows_every_field::<super::ProxmoxContainerSpec>("proxmox-container.yaml");
}
