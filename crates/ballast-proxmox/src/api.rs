//! The calls of [`ProxmoxClient`]: reads that observe a cluster, the writes that change guests
//! (each asynchronous one answers its task's [`Upid`] at once, without waiting), pools, and
//! tasks (status, log, [`ProxmoxClient::poll_task`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiPath, ProxmoxClient, decode};
use crate::config::{
    ConfigUpdate, DeleteOptions, DiskSize, LxcClone, LxcConfig, LxcCreate, Params, PendingEntry,
    PowerAction, QemuClone, QemuConfig, QemuCreate,
};
use crate::error::Error;
use crate::lenient;
use crate::task::{TaskLog, TaskLogLine, TaskState, TaskStatus, needs_log, task_state};
use crate::types::{
    ClusterResources, ClusterStatus, GuestKind, GuestRef, NodeResource, NodeStatus, NodeStorage,
    Pool, StorageConfig, Version,
};
use crate::upid::Upid;

/// How many log lines a failed task's [`crate::TaskFailure::log_tail`] keeps.
pub const LOG_TAIL_LINES: u64 = 20;

fn guest_path(kind: GuestKind, node: &str, vmid: u32, rest: &[&str]) -> ApiPath {
    let mut segments = vec![
        "nodes".to_string(),
        node.to_string(),
        kind.as_str().to_string(),
        vmid.to_string(),
    ];
    segments.extend(rest.iter().map(|s| s.to_string()));
    ApiPath::new(segments)
}

impl ProxmoxClient {
    // ------------------------------------------------------------------------ cluster

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, Error> {
        self.get(ApiPath::new(["version"]), &[]).await
    }

    /// `GET /cluster/status`: the cluster's name, quorum, and its nodes' membership.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        let rows: Vec<Value> = self.get(ApiPath::new(["cluster", "status"]), &[]).await?;
        ClusterStatus::from_rows(rows).map_err(|message| Error::Decode {
            context: "GET /cluster/status".into(),
            message,
        })
    }

    /// `GET /cluster/resources`: every guest, node and storage of the cluster in one request.
    pub async fn cluster_resources(&self) -> Result<ClusterResources, Error> {
        let rows: Vec<Value> = self
            .get(ApiPath::new(["cluster", "resources"]), &[])
            .await?;
        ClusterResources::from_rows(rows).map_err(|message| Error::Decode {
            context: "GET /cluster/resources".into(),
            message,
        })
    }

    /// `GET /cluster/nextid`: the lowest free vmid.
    pub async fn next_id(&self) -> Result<u32, Error> {
        let value: Value = self.get(ApiPath::new(["cluster", "nextid"]), &[]).await?;
        lenient::to_u64(&value)
            .and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is out of range")))
            .map_err(|message| Error::Decode {
                context: "GET /cluster/nextid".into(),
                message,
            })
    }

    // -------------------------------------------------------------------------- nodes

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeResource>, Error> {
        self.get(ApiPath::new(["nodes"]), &[]).await
    }

    /// `GET /nodes/{node}/status`.
    pub async fn node_status(&self, node: &str) -> Result<NodeStatus, Error> {
        self.get(ApiPath::new(["nodes", node, "status"]), &[]).await
    }

    // ------------------------------------------------------------------------ storage

    /// `GET /storage`: the cluster's storage configuration.
    pub async fn storage(&self) -> Result<Vec<StorageConfig>, Error> {
        self.get(ApiPath::new(["storage"]), &[]).await
    }

    /// `GET /nodes/{node}/storage`: each storage as the node sees it, with its usage.
    pub async fn node_storage(&self, node: &str) -> Result<Vec<NodeStorage>, Error> {
        self.get(ApiPath::new(["nodes", node, "storage"]), &[])
            .await
    }

    // ------------------------------------------------------------------- guest config

    /// `GET /nodes/{node}/qemu/{vmid}/config` (with its digest; pending changes applied, see
    /// [`QemuConfig`]).
    pub async fn qemu_config(&self, node: &str, vmid: u32) -> Result<QemuConfig, Error> {
        let path = guest_path(GuestKind::Qemu, node, vmid, &["config"]);
        let context = format!("GET {path}");
        let map: BTreeMap<String, Value> = self.get(path, &[]).await?;
        QemuConfig::from_map(map).map_err(|message| Error::Decode { context, message })
    }

    /// `GET /nodes/{node}/lxc/{vmid}/config` (with its digest; pending changes applied).
    pub async fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig, Error> {
        let path = guest_path(GuestKind::Lxc, node, vmid, &["config"]);
        let context = format!("GET {path}");
        let map: BTreeMap<String, Value> = self.get(path, &[]).await?;
        LxcConfig::from_map(map).map_err(|message| Error::Decode { context, message })
    }

    /// `GET /nodes/{node}/qemu/{vmid}/pending`: each key's current value and what the next
    /// start changes it to.
    pub async fn qemu_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>, Error> {
        self.pending(GuestKind::Qemu, node, vmid).await
    }

    /// `GET /nodes/{node}/lxc/{vmid}/pending`.
    pub async fn lxc_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>, Error> {
        self.pending(GuestKind::Lxc, node, vmid).await
    }

    async fn pending(
        &self,
        kind: GuestKind,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<PendingEntry>, Error> {
        let path = guest_path(kind, node, vmid, &["pending"]);
        let context = format!("GET {path}");
        let rows: Vec<Value> = self.get(path, &[]).await?;
        rows.iter()
            .map(PendingEntry::from_value)
            .collect::<Result<_, _>>()
            .map_err(|message| Error::Decode { context, message })
    }

    // ------------------------------------------------------------------ guest writes

    /// `POST /nodes/{node}/qemu`: creates a VM; answers the create task's id.
    pub async fn qemu_create(&self, node: &str, request: &QemuCreate) -> Result<Upid, Error> {
        let path = ApiPath::new(["nodes", node, "qemu"]);
        self.write_task(Method::POST, path, &request.to_params())
            .await
    }

    /// `POST /nodes/{node}/lxc`: creates a container; answers the create task's id.
    pub async fn lxc_create(&self, node: &str, request: &LxcCreate) -> Result<Upid, Error> {
        let path = ApiPath::new(["nodes", node, "lxc"]);
        self.write_task(Method::POST, path, &request.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/clone`: answers the clone task's id.
    pub async fn qemu_clone(
        &self,
        node: &str,
        vmid: u32,
        request: &QemuClone,
    ) -> Result<Upid, Error> {
        let path = guest_path(GuestKind::Qemu, node, vmid, &["clone"]);
        self.write_task(Method::POST, path, &request.to_params())
            .await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/clone`: answers the clone task's id.
    pub async fn lxc_clone(
        &self,
        node: &str,
        vmid: u32,
        request: &LxcClone,
    ) -> Result<Upid, Error> {
        let path = guest_path(GuestKind::Lxc, node, vmid, &["clone"]);
        self.write_task(Method::POST, path, &request.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/config`, the asynchronous form: answers the `qmconfig`
    /// task's id (`None` when PVE had nothing to do). A stale digest may be refused at once
    /// ([`Error::StaleDigest`]) or end the task (its [`crate::TaskFailure::error`] is then
    /// `StaleDigest`), depending on where the server checks it.
    pub async fn qemu_update_config(
        &self,
        node: &str,
        vmid: u32,
        update: &ConfigUpdate,
    ) -> Result<Option<Upid>, Error> {
        let path = guest_path(GuestKind::Qemu, node, vmid, &["config"]);
        self.write_optional_task(Method::POST, path, &update.to_params())
            .await
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/config`: synchronous; done when it returns.
    pub async fn lxc_update_config(
        &self,
        node: &str,
        vmid: u32,
        update: &ConfigUpdate,
    ) -> Result<(), Error> {
        let path = guest_path(GuestKind::Lxc, node, vmid, &["config"]);
        self.send(Method::PUT, &path, &[], Some(&update.to_params()))
            .await?;
        Ok(())
    }

    /// `PUT …/resize`: grows a disk (`scsi0`, `rootfs`, `mp0`). PVE 8+ answers a task id;
    /// older versions resize synchronously (`None`).
    pub async fn resize(
        &self,
        guest: &GuestRef,
        disk: &str,
        size: DiskSize,
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let path = guest_path(guest.kind, &guest.node, guest.vmid, &["resize"]);
        let params = Params::new()
            .set("disk", disk)
            .set("size", size)
            .set_opt("digest", digest);
        self.write_optional_task(Method::PUT, path, &params).await
    }

    /// `POST …/status/{start|stop|shutdown|reboot}`: answers the task's id.
    pub async fn power(&self, guest: &GuestRef, action: PowerAction) -> Result<Upid, Error> {
        let path = guest_path(
            guest.kind,
            &guest.node,
            guest.vmid,
            &["status", action.path()],
        );
        self.write_task(Method::POST, path, &action.to_params())
            .await
    }

    /// `POST …/template`: converts a stopped guest into a template. QEMU answers a task id;
    /// LXC is documented as synchronous (`None`), though some servers answer a task id.
    pub async fn convert_to_template(&self, guest: &GuestRef) -> Result<Option<Upid>, Error> {
        let path = guest_path(guest.kind, &guest.node, guest.vmid, &["template"]);
        self.write_optional_task(Method::POST, path, &Params::new())
            .await
    }

    /// `DELETE /nodes/{node}/{qemu|lxc}/{vmid}`: answers the destroy task's id.
    pub async fn delete(&self, guest: &GuestRef, options: DeleteOptions) -> Result<Upid, Error> {
        let path = guest_path(guest.kind, &guest.node, guest.vmid, &[]);
        let context = format!("DELETE {path}");
        let answer = self
            .send(Method::DELETE, &path, &options.to_query(), None)
            .await?;
        upid_of(&context, answer.data)?.ok_or_else(|| Error::Decode {
            context,
            message: "expected a task id, got nothing".into(),
        })
    }

    async fn write_task(
        &self,
        method: Method,
        path: ApiPath,
        params: &Params,
    ) -> Result<Upid, Error> {
        let context = format!("{method} {path}");
        self.write_optional_task(method, path, params)
            .await?
            .ok_or_else(|| Error::Decode {
                context,
                message: "expected a task id, got nothing".into(),
            })
    }

    async fn write_optional_task(
        &self,
        method: Method,
        path: ApiPath,
        params: &Params,
    ) -> Result<Option<Upid>, Error> {
        let context = format!("{method} {path}");
        let answer = self.send(method, &path, &[], Some(params)).await?;
        upid_of(&context, answer.data)
    }

    // -------------------------------------------------------------------------- pools

    /// `GET /pools`: every pool (without members).
    pub async fn pools(&self) -> Result<Vec<Pool>, Error> {
        self.get(ApiPath::new(["pools"]), &[]).await
    }

    /// `GET /pools?poolid=…`: one pool with its members.
    pub async fn pool(&self, poolid: &str) -> Result<Pool, Error> {
        let context = format!("GET /pools?poolid={poolid}");
        let pools: Vec<Pool> = self
            .get(ApiPath::new(["pools"]), &[("poolid", poolid.to_string())])
            .await?;
        pools
            .into_iter()
            .find(|p| p.poolid == poolid)
            .ok_or_else(|| Error::NotFound {
                context,
                message: format!("pool '{poolid}' does not exist"),
            })
    }

    /// `POST /pools`.
    pub async fn create_pool(&self, poolid: &str, comment: Option<&str>) -> Result<(), Error> {
        let params = Params::new()
            .set("poolid", poolid)
            .set_opt("comment", comment);
        self.send(Method::POST, &ApiPath::new(["pools"]), &[], Some(&params))
            .await?;
        Ok(())
    }

    /// `PUT /pools`: adds guests to a pool (`allow_move` takes them out of another pool).
    pub async fn add_to_pool(
        &self,
        poolid: &str,
        vmids: &[u32],
        allow_move: bool,
    ) -> Result<(), Error> {
        let list = vmids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let params = Params::new()
            .set("poolid", poolid)
            .set("vms", list)
            .set_opt("allow-move", allow_move.then_some(1));
        self.send(Method::PUT, &ApiPath::new(["pools"]), &[], Some(&params))
            .await?;
        Ok(())
    }

    /// `PUT /pools` with `delete=1`: takes guests out of a pool.
    pub async fn remove_from_pool(&self, poolid: &str, vmids: &[u32]) -> Result<(), Error> {
        let list = vmids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let params = Params::new()
            .set("poolid", poolid)
            .set("vms", list)
            .set("delete", 1);
        self.send(Method::PUT, &ApiPath::new(["pools"]), &[], Some(&params))
            .await?;
        Ok(())
    }

    /// `DELETE /pools?poolid=…` (the pool must be empty).
    pub async fn delete_pool(&self, poolid: &str) -> Result<(), Error> {
        self.send(
            Method::DELETE,
            &ApiPath::new(["pools"]),
            &[("poolid", poolid.to_string())],
            None,
        )
        .await?;
        Ok(())
    }

    // -------------------------------------------------------------------------- tasks

    /// `GET /nodes/{node}/tasks/{upid}/status`, on the node named in the UPID.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(
            ApiPath::new(["nodes", upid.node(), "tasks", upid.as_str(), "status"]),
            &[],
        )
        .await
    }

    /// `GET /nodes/{node}/tasks/{upid}/log?start=…&limit=…`: lines from `start` (0-based).
    pub async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<TaskLog, Error> {
        let path = ApiPath::new(["nodes", upid.node(), "tasks", upid.as_str(), "log"]);
        let context = format!("GET {path}");
        let answer = self
            .send(
                Method::GET,
                &path,
                &[("start", start.to_string()), ("limit", limit.to_string())],
                None,
            )
            .await?;
        let lines: Vec<TaskLogLine> = decode(&context, answer.data)?;
        Ok(TaskLog {
            lines,
            total: answer.total,
        })
    }

    /// The last `n` lines of a task's log. Uses the log's `total` when the server sends it
    /// (two requests at most); otherwise pages through the log.
    pub async fn task_log_tail(&self, upid: &Upid, n: u64) -> Result<Vec<TaskLogLine>, Error> {
        let n = n.max(1);
        let first = self.task_log(upid, 0, n).await?;
        if let Some(total) = first.total {
            if total <= n {
                return Ok(first.lines);
            }
            return Ok(self.task_log(upid, total - n, n).await?.lines);
        }
        // No total: read on in pages until a short page, keeping the last n lines.
        const PAGE: u64 = 500;
        let mut tail = first.lines;
        let mut start = tail.len() as u64;
        if start < n {
            return Ok(tail);
        }
        loop {
            let page = self.task_log(upid, start, PAGE).await?.lines;
            let got = page.len() as u64;
            tail.extend(page);
            let excess = tail.len().saturating_sub(n as usize);
            tail.drain(..excess);
            if got < PAGE {
                return Ok(tail);
            }
            start += got;
        }
    }

    /// Where a task stands, from its id alone (the node is in the UPID), so any client (after
    /// a restart, in another process) can poll it: `Running` with the last log line as
    /// progress, `Succeeded` (with warnings for `WARNINGS: n`), or `Failed` with the exit
    /// status and the tail of the log. One request for a task that ended `OK`.
    pub async fn poll_task(&self, upid: &Upid) -> Result<TaskState, Error> {
        let status = self.task_status(upid).await?;
        let tail = if needs_log(&status) {
            let lines = if status.is_running() {
                1
            } else {
                LOG_TAIL_LINES
            };
            self.task_log_tail(upid, lines).await?
        } else {
            Vec::new()
        };
        Ok(task_state(&status, &tail))
    }

    /// Polls a task every `interval` until it ends or `timeout` passes
    /// ([`Error::TaskTimeout`]). For tools and tests; a controller polls with
    /// [`ProxmoxClient::poll_task`] and requeues instead of waiting.
    pub async fn wait_task(
        &self,
        upid: &Upid,
        interval: Duration,
        timeout: Duration,
    ) -> Result<TaskState, Error> {
        let started = Instant::now();
        loop {
            let state = self.poll_task(upid).await?;
            if state.is_finished() {
                return Ok(state);
            }
            if started.elapsed() >= timeout {
                return Err(Error::TaskTimeout {
                    upid: upid.to_string(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// The task id of a write's answer: a UPID string, or `null` for a write done synchronously.
fn upid_of(context: &str, data: Value) -> Result<Option<Upid>, Error> {
    match data {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(|e| Error::Decode {
            context: context.to_string(),
            message: format!("expected a task id: {e}"),
        }),
        other => Err(Error::Decode {
            context: context.to_string(),
            message: format!("expected a task id, got {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_write_answers_a_task_id_or_nothing() {
        let upid = "UPID:pve1:000003E8:00001B58:6B0CFAB4:qmconfig:101:root@pam:";
        assert_eq!(
            upid_of("x", json!(upid))
                .expect("a UPID")
                .map(|u| u.to_string()),
            Some(upid.to_string())
        );
        assert_eq!(upid_of("x", json!(null)).expect("null"), None);
        assert_eq!(upid_of("x", json!("")).expect("empty"), None);
        assert!(upid_of("x", json!("not a upid")).is_err());
        assert!(upid_of("x", json!(42)).is_err());
    }

    #[test]
    fn guest_paths() {
        assert_eq!(
            guest_path(GuestKind::Lxc, "pve2", 200, &["status", "start"]).to_string(),
            "/nodes/pve2/lxc/200/status/start"
        );
        assert_eq!(
            guest_path(GuestKind::Qemu, "pve1", 101, &[]).to_string(),
            "/nodes/pve1/qemu/101"
        );
    }
}
