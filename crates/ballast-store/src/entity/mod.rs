//! sea-orm entities, one module per table. The schema itself is defined by the migrations in
//! `migrations/`; these mirror it. Ids are UUID text, JSON columns are TEXT holding serialized
//! JSON (the same on SQLite and PostgreSQL), timestamps are UTC.

pub mod artifacts;
pub mod audit_log;
pub mod containers;
pub mod host_runs;
pub mod hosts;
pub mod leases;
pub mod lxc_containers;
pub mod observed;
pub mod plan_targets;
pub mod preparation_logs;
pub mod proxmox_nodes;
pub mod proxmox_storage;
pub mod redfish_sessions;
pub mod resources;
pub mod secrets;
pub mod server_credentials;
pub mod server_preparations;
pub mod servers;
pub mod state_snapshots;
pub mod store_meta;
pub mod system_events;
pub mod tasks;
pub mod update_plans;
pub mod vms;
