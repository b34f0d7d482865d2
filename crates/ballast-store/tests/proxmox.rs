//! The Proxmox tables (nodes, storage, vms, lxc_containers), run against both backends: every
//! test below runs once on a SQLite file in a temporary directory and once on a fresh
//! PostgreSQL database (see `ballast_test_support::postgres`).

use std::collections::BTreeMap;

use ballast_store::{
    GuestApplied, GuestClaim, GuestObservation, GuestOwnership, ProxmoxGuestKind, ProxmoxNode,
    ProxmoxStorage, Store, StoreError,
};
use chrono::Utc;

struct Db {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("ballast.db").display());
    Db {
        store: Store::open(&url).await.expect("open sqlite store"),
        _dir: Some(dir),
    }
}

async fn postgres_db() -> Db {
    let url = ballast_test_support::postgres::postgres_url().await;
    Db {
        store: Store::open(&url).await.expect("open postgres store"),
        _dir: None,
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite_db().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres_db().await).await
                }
            )*
        }
    };
}

on_both_backends!(
    nodes_and_storage_are_replaced_per_cluster,
    guests_are_observed_and_what_is_ballasts_stays,
    a_vmid_taken_before_a_create_survives_observations,
    containers_keep_their_os_template,
    applied_state_and_forgetting,
);

fn node(name: &str, status: &str) -> ProxmoxNode {
    ProxmoxNode {
        cluster: String::new(),
        name: name.into(),
        status: status.into(),
        cpu: Some(0.25),
        cpus: Some(16.0),
        // Above i32: these columns must be 64-bit.
        memory_used: Some(12_884_901_888),
        memory_total: Some(68_719_476_736),
        uptime: Some(86_400),
        pve_version: Some("pve-manager/9.0.10/deadbeef".into()),
        last_seen: Utc::now(),
    }
}

fn observation(vmid: u32, name: &str, status: &str) -> GuestObservation {
    GuestObservation {
        vmid,
        node: "pve1".into(),
        name: Some(name.into()),
        status: status.into(),
        cores: Some(2.0),
        memory: Some(4_294_967_296),
        disk: Some(34_359_738_368),
        net_in: Some(10),
        net_out: Some(20),
        uptime: Some(60),
        tags: vec!["Web".into(), "prod".into()],
        ..GuestObservation::default()
    }
}

async fn nodes_and_storage_are_replaced_per_cluster(db: Db) {
    let s = &db.store;
    let before = Utc::now() - chrono::Duration::seconds(5);
    s.record_proxmox_nodes("lab", &[node("pve1", "online"), node("pve2", "offline")])
        .await
        .expect("record");
    s.record_proxmox_nodes("edge", &[node("edge1", "online")])
        .await
        .expect("record");
    let all = s.list_proxmox_nodes(None).await.expect("list");
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|n| (n.cluster.as_str(), n.name.as_str()))
        .collect();
    assert_eq!(names, [("edge", "edge1"), ("lab", "pve1"), ("lab", "pve2")]);
    let pve1 = &all[1];
    assert_eq!(pve1.memory_total, Some(68_719_476_736));
    assert_eq!(pve1.cpu, Some(0.25));
    assert_eq!(
        pve1.pve_version.as_deref(),
        Some("pve-manager/9.0.10/deadbeef")
    );
    assert!(
        pve1.last_seen > before && pve1.last_seen <= Utc::now(),
        "UTC now"
    );
    // A node gone from the cluster is gone from the record; other clusters are untouched.
    s.record_proxmox_nodes("lab", &[node("pve2", "online")])
        .await
        .expect("record");
    let lab = s.list_proxmox_nodes(Some("lab")).await.expect("list");
    assert_eq!(lab.len(), 1);
    assert_eq!(
        (lab[0].name.as_str(), lab[0].status.as_str()),
        ("pve2", "online")
    );
    assert_eq!(
        s.list_proxmox_nodes(Some("edge"))
            .await
            .expect("list")
            .len(),
        1
    );

    let storage = ProxmoxStorage {
        cluster: String::new(),
        name: "ceph-pool".into(),
        storage_type: Some("rbd".into()),
        content: vec!["images".into(), "rootdir".into()],
        enabled: true,
        shared: true,
        total: Some(1_099_511_627_776),
        used: Some(0),
        available: Some(1_099_511_627_776),
        nodes: vec!["pve1".into(), "pve2".into()],
        last_seen: Utc::now(),
    };
    let local = ProxmoxStorage {
        name: "local".into(),
        storage_type: Some("dir".into()),
        content: vec!["iso".into(), "vztmpl".into()],
        shared: false,
        nodes: vec!["pve1".into()],
        ..storage.clone()
    };
    s.record_proxmox_storage("lab", &[storage.clone(), local])
        .await
        .expect("record");
    let listed = s.list_proxmox_storage(Some("lab")).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "ceph-pool");
    assert_eq!(listed[0].content, ["images", "rootdir"]);
    assert_eq!(listed[0].nodes, ["pve1", "pve2"]);
    assert_eq!(listed[0].total, Some(1_099_511_627_776));
    assert!(listed[0].shared && !listed[1].shared);
    s.record_proxmox_storage("lab", &[storage])
        .await
        .expect("record");
    assert_eq!(s.list_proxmox_storage(None).await.expect("list").len(), 1);
}

async fn guests_are_observed_and_what_is_ballasts_stays(db: Db) {
    let s = &db.store;
    let vm = ProxmoxGuestKind::Vm;
    let mut web = observation(100, "web", "running");
    web.config_digest = Some("d1".into());
    s.record_proxmox_guests(vm, "lab", &[web.clone(), observation(101, "db", "stopped")])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(vm, "lab", 100)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.tags, ["prod", "web"], "tags as a lower-case set");
    assert_eq!(
        (got.memory, got.disk),
        (Some(4_294_967_296), Some(34_359_738_368))
    );
    assert_eq!(got.config_digest.as_deref(), Some("d1"));
    assert_eq!(got.ownership(), None);

    s.claim_proxmox_guest(
        vm,
        &GuestClaim {
            cluster: "lab".into(),
            vmid: 100,
            node: "pve1".into(),
            resource: "web".into(),
            ownership: GuestOwnership::Adopted,
        },
    )
    .await
    .expect("claim");
    let claimed = s
        .find_proxmox_guest(vm, "web")
        .await
        .expect("find")
        .expect("row");
    assert_eq!(
        (claimed.vmid, claimed.ownership()),
        (100, Some(GuestOwnership::Adopted))
    );
    assert_eq!(claimed.status, "running", "a claim keeps what was observed");

    // Neither is listed now: ballast's stays as `missing`, the other is forgotten.
    s.record_proxmox_guests(vm, "lab", &[])
        .await
        .expect("record");
    let list = s.list_proxmox_guests(vm, Some("lab")).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].vmid, list[0].status.as_str()), (100, "missing"));
    assert_eq!(list[0].resource.as_deref(), Some("web"));

    // Back, HA moved to another node, without its config read: the digest stays.
    let mut moved = observation(100, "web", "running");
    moved.node = "pve3".into();
    s.record_proxmox_guests(vm, "lab", &[moved])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(vm, "lab", 100)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        (got.node.as_str(), got.status.as_str()),
        ("pve3", "running")
    );
    assert_eq!(got.config_digest.as_deref(), Some("d1"));
    assert_eq!(got.ownership(), Some(GuestOwnership::Adopted));
    assert!(got.first_seen <= got.last_seen);
    // A config read in an observation replaces the digest.
    let mut read = observation(100, "web", "running");
    read.config_digest = Some("d2".into());
    s.record_proxmox_guests(vm, "lab", &[read])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(vm, "lab", 100)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.config_digest.as_deref(), Some("d2"));
    // The container table is another table.
    assert!(
        s.list_proxmox_guests(ProxmoxGuestKind::Container, None)
            .await
            .expect("list")
            .is_empty()
    );
}

async fn a_vmid_taken_before_a_create_survives_observations(db: Db) {
    let s = &db.store;
    let vm = ProxmoxGuestKind::Vm;
    s.claim_proxmox_guest(
        vm,
        &GuestClaim {
            cluster: "lab".into(),
            vmid: 120,
            node: "pve2".into(),
            resource: "web1".into(),
            ownership: GuestOwnership::Created,
        },
    )
    .await
    .expect("claim");
    let got = s
        .find_proxmox_guest(vm, "web1")
        .await
        .expect("find")
        .expect("row");
    assert_eq!(
        (got.vmid, got.status.as_str(), got.node.as_str()),
        (120, "creating", "pve2")
    );
    // The create has not shown up yet: the reservation is kept as it is.
    s.record_proxmox_guests(vm, "lab", &[observation(101, "db", "running")])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(vm, "lab", 120)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.status, "creating");
    s.record_proxmox_guests(vm, "lab", &[observation(120, "web1", "running")])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(vm, "lab", 120)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.status, "running");
    assert!(got.created_by_ballast && !got.adopted);
    // A vmid that does not fit the column is refused, not wrapped.
    let err = s
        .record_proxmox_guests(vm, "lab", &[observation(3_000_000_000, "x", "running")])
        .await
        .expect_err("too large");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
}

async fn containers_keep_their_os_template(db: Db) {
    let s = &db.store;
    let ct = ProxmoxGuestKind::Container;
    let template = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
    s.claim_proxmox_guest(
        ct,
        &GuestClaim {
            cluster: "lab".into(),
            vmid: 220,
            node: "pve1".into(),
            resource: "dns1".into(),
            ownership: GuestOwnership::Created,
        },
    )
    .await
    .expect("claim");
    s.record_proxmox_guests(ct, "lab", &[observation(220, "dns1", "running")])
        .await
        .expect("record");
    let applied = GuestApplied {
        applied_hash: "h1".into(),
        config_digest: Some("cd".into()),
        secret_versions: BTreeMap::from([("password".into(), "secret:dns1-root#2".into())]),
        os_template: Some(template.into()),
    };
    s.set_proxmox_guest_applied(ct, "lab", 220, &applied)
        .await
        .expect("applied");
    let got = s
        .get_proxmox_guest(ct, "lab", 220)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.os_template.as_deref(), Some(template));
    assert_eq!(got.applied_hash.as_deref(), Some("h1"));
    assert_eq!(got.secret_versions["password"], "secret:dns1-root#2");
    // An observation keeps what is ballast's.
    s.record_proxmox_guests(ct, "lab", &[observation(220, "dns1", "stopped")])
        .await
        .expect("record");
    let got = s
        .get_proxmox_guest(ct, "lab", 220)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        (got.status.as_str(), got.os_template.as_deref()),
        ("stopped", Some(template))
    );
    assert_eq!(got.applied_hash.as_deref(), Some("h1"));
}

async fn applied_state_and_forgetting(db: Db) {
    let s = &db.store;
    let vm = ProxmoxGuestKind::Vm;
    let applied = GuestApplied {
        applied_hash: "h".into(),
        ..GuestApplied::default()
    };
    let err = s
        .set_proxmox_guest_applied(vm, "lab", 150, &applied)
        .await
        .expect_err("none");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    s.record_proxmox_guests(vm, "lab", &[observation(150, "a", "running")])
        .await
        .expect("record");
    s.record_proxmox_guests(vm, "edge", &[observation(150, "b", "running")])
        .await
        .expect("record");
    s.record_proxmox_nodes("lab", &[node("pve1", "online")])
        .await
        .expect("nodes");
    s.set_proxmox_guest_applied(vm, "lab", 150, &applied)
        .await
        .expect("applied");
    let got = s
        .get_proxmox_guest(vm, "lab", 150)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.applied_hash.as_deref(), Some("h"));
    assert!(got.secret_versions.is_empty());
    assert!(
        s.forget_proxmox_guest(vm, "lab", 150)
            .await
            .expect("forget")
    );
    assert!(
        !s.forget_proxmox_guest(vm, "lab", 150)
            .await
            .expect("forget")
    );
    s.forget_proxmox_cluster("edge")
        .await
        .expect("forget cluster");
    assert!(
        s.list_proxmox_guests(vm, None)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        s.list_proxmox_nodes(None).await.expect("list").len(),
        1,
        "lab's nodes stay"
    );
}
