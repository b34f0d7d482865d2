//! Observing a cluster against a real fakepve: `/cluster/resources` lists every guest, node and
//! storage in one request, and the other reads (status, quorum, nodes, storage, configs,
//! pools, next id) come back typed.

mod common;

use ballast_proxmox::GuestKind;
use ballast_test_support::fakepve::{FakePve, NODES, POOL, STORAGES, TEMPLATE_VMID};
use common::{paths, token_client};
use serde_json::json;

#[tokio::test]
async fn one_request_lists_every_guest_with_its_fields() {
    let pve = FakePve::start();
    let c = &pve.control;
    c.add_vm(
        101,
        "web1",
        "pve1",
        "running",
        json!({"cores": 2, "sockets": 2, "memory": "4096", "tags": "prod;web",
               "scsi0": "local-lvm:vm-101-disk-0,size=32G"}),
    )
    .await;
    c.add_vm(102, "db1", "pve2", "stopped", json!({"memory": 2048}))
        .await;
    c.lock_guest(102, "backup").await;
    c.add_ct(
        201,
        "cache",
        "pve3",
        "running",
        json!({"cores": 1, "memory": 512, "tags": "infra"}),
    )
    .await;
    c.add_ct(202, "dns", "pve1", "stopped", json!({})).await;
    let client = token_client(&pve);
    client
        .add_to_pool(POOL, &[202], false)
        .await
        .expect("pool membership");

    pve.control.clear_requests().await;
    let res = client.cluster_resources().await.expect("resources");
    assert_eq!(paths(&pve).await, ["GET /cluster/resources"]);

    let mut vmids: Vec<u32> = res.guests.iter().map(|g| g.vmid).collect();
    vmids.sort_unstable();
    assert_eq!(vmids, [101, 102, 201, 202, TEMPLATE_VMID]);

    let web = res.guest(101).expect("web1");
    assert_eq!(web.kind, GuestKind::Qemu);
    assert_eq!(web.node, "pve1");
    assert_eq!(web.name.as_deref(), Some("web1"));
    assert_eq!(web.status.as_deref(), Some("running"));
    assert_eq!(web.tags, ["prod", "web"]);
    assert_eq!(web.maxcpu, Some(4.0));
    assert_eq!(web.maxmem, Some(4096 << 20));
    assert_eq!(web.maxdisk, Some(32 << 30));
    assert!(!web.template);
    assert!(web.uptime.is_some());

    let db = res.guest(102).expect("db1");
    assert_eq!(db.node, "pve2");
    assert_eq!(db.lock.as_deref(), Some("backup"));
    assert_eq!(db.status.as_deref(), Some("stopped"));

    let cache = res.guest(201).expect("cache");
    assert_eq!(cache.kind, GuestKind::Lxc);
    assert_eq!(cache.node, "pve3");
    assert_eq!(cache.tags, ["infra"]);
    assert_eq!(res.guest(202).and_then(|g| g.pool.as_deref()), Some(POOL));
    assert!(res.guest(TEMPLATE_VMID).expect("template").template);

    let mut nodes: Vec<&str> = res.nodes.iter().map(|n| n.node.as_str()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, NODES);
    assert!(
        res.nodes
            .iter()
            .all(|n| n.is_online() && n.maxmem.is_some())
    );
    for storage in STORAGES {
        assert!(
            res.storage
                .iter()
                .any(|s| s.storage == storage && s.node == "pve1"),
            "{storage} on pve1"
        );
    }
    let ceph = res
        .storage
        .iter()
        .find(|s| s.storage == "ceph-pool")
        .expect("ceph-pool");
    assert!(ceph.shared);
    assert_eq!(ceph.content, ["images", "rootdir"]);
}

#[tokio::test]
async fn a_guest_on_an_offline_node_shows_as_unknown() {
    let pve = FakePve::start();
    pve.control
        .add_vm(103, "far", "pve3", "running", json!({}))
        .await;
    pve.control.set_node_offline("pve3", true).await;
    let res = token_client(&pve)
        .cluster_resources()
        .await
        .expect("resources still answer");
    assert_eq!(
        res.guest(103).and_then(|g| g.status.as_deref()),
        Some("unknown")
    );
    let pve3 = res.nodes.iter().find(|n| n.node == "pve3").expect("pve3");
    assert!(!pve3.is_online());
}

#[tokio::test]
async fn cluster_status_nodes_storage_and_next_id() {
    let pve = FakePve::start();
    let client = token_client(&pve);

    let status = client.cluster_status().await.expect("status");
    assert!(status.quorate);
    assert_eq!(status.nodes.len(), 3);
    assert!(status.nodes.iter().all(|n| n.online));
    pve.control.lose_quorum().await;
    assert!(!client.cluster_status().await.expect("status").quorate);

    let nodes = client.nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n.ssl_fingerprint.is_some()));
    let node = client.node_status("pve2").await.expect("node status");
    assert!(node.uptime.is_some());

    let storage = client.storage().await.expect("storage config");
    let local = storage
        .iter()
        .find(|s| s.storage == "local")
        .expect("local");
    assert_eq!(local.storage_type, "dir");
    assert!(local.content.contains(&"vztmpl".to_string()));
    let on_node = client.node_storage("pve1").await.expect("node storage");
    let lvm = on_node
        .iter()
        .find(|s| s.storage == "local-lvm")
        .expect("local-lvm");
    assert!(lvm.total.is_some() && lvm.used.is_some() && lvm.avail.is_some());
    assert_eq!(lvm.enabled, Some(true));

    // PVE answers the next id as a string.
    assert_eq!(client.next_id().await.expect("next id"), 100);
    pve.control
        .add_vm(100, "first", "pve1", "stopped", json!({}))
        .await;
    assert_eq!(client.next_id().await.expect("next id"), 101);

    let pools = client.pools().await.expect("pools");
    assert!(pools.iter().any(|p| p.poolid == POOL));
}

#[tokio::test]
async fn numbers_given_as_strings_parse_in_configs() {
    let pve = FakePve::start();
    let client = token_client(&pve);
    // The template was seeded with numbers; fakepve (like PVE) answers `memory` as a string.
    let template = client
        .qemu_config("pve1", TEMPLATE_VMID)
        .await
        .expect("config");
    assert_eq!(template.memory_mib, Some(1024));
    assert_eq!(template.cores, Some(1));
    assert!(template.template);
    assert!(!template.digest.is_empty());
    let disk = template.drive("scsi0").expect("scsi0");
    assert_eq!(disk.size_bytes, Some(4 << 30));
    assert_eq!(template.networks()[0].bridge.as_deref(), Some("vmbr0"));

    // Values stored as strings, as a form update leaves them.
    pve.control
        .add_vm(
            150,
            "strings",
            "pve1",
            "stopped",
            json!({"cores": "4", "sockets": "2", "memory": "8192", "onboot": "1",
                   "protection": "0", "balloon": "0"}),
        )
        .await;
    let cfg = client.qemu_config("pve1", 150).await.expect("config");
    assert_eq!(cfg.cores, Some(4));
    assert_eq!(cfg.sockets, Some(2));
    assert_eq!(cfg.memory_mib, Some(8192));
    assert_eq!(cfg.onboot, Some(true));
    assert!(!cfg.protection);
    assert_eq!(cfg.balloon_mib, Some(0));

    pve.control
        .add_ct(
            250,
            "ct-strings",
            "pve2",
            "stopped",
            json!({"cores": "2", "memory": "1024", "swap": "256", "unprivileged": "1",
                   "rootfs": "local-lvm:vm-250-disk-0,size=8G"}),
        )
        .await;
    let ct = client.lxc_config("pve2", 250).await.expect("config");
    assert_eq!(ct.cores, Some(2));
    assert_eq!(ct.memory_mib, Some(1024));
    assert_eq!(ct.swap_mib, Some(256));
    assert!(ct.unprivileged);
    assert_eq!(ct.hostname.as_deref(), Some("ct-strings"));
    assert_eq!(ct.rootfs.and_then(|r| r.size_bytes), Some(8 << 30));
}
