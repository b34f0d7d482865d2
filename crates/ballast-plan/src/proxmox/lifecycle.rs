//! A guest's life as a plan: found (by recorded vmid, else by vmid and name), adopted,
//! created (fresh or cloned, then configured, grown and started), updated in place, powered,
//! replaced (never silently), deleted (only with prune, only ballast's, never protected).
//! [`Kind`] (in `kinds.rs`) is what differs between VMs and containers; the rules are written
//! once, here.

use ballast_model::proxmox::{
    CloneSource, GuestState, ProxmoxContainerSpec, ProxmoxVmSpec, RestartPolicy,
};
use ballast_proxmox::{GuestKind, GuestResource};
use serde_json::{Value, json};

use super::compare::{Compared, drop_removed, flag, set_path, tag_set};
use super::kinds::{CtKind, Kind, VmKind};
use super::steps::{GuestStep, GuestTarget, Power};
use super::{Desired, GuestPlan, Observed, ObservedConfig, PlanError, RecordedGuest};
use crate::Action;

/// Plans a ProxmoxVm (`desired` is `None` once it is removed from the manifests).
pub fn plan_vm(
    desired: Option<&Desired<'_, ProxmoxVmSpec>>,
    recorded: Option<&RecordedGuest>,
    observed: &Observed<'_>,
    prune: bool,
) -> Result<GuestPlan, PlanError> {
    plan::<VmKind>(desired, recorded, observed, prune)
}

/// Plans a ProxmoxContainer (`desired` is `None` once it is removed from the manifests).
pub fn plan_container(
    desired: Option<&Desired<'_, ProxmoxContainerSpec>>,
    recorded: Option<&RecordedGuest>,
    observed: &Observed<'_>,
    prune: bool,
) -> Result<GuestPlan, PlanError> {
    plan::<CtKind>(desired, recorded, observed, prune)
}

/// Whether the VM's config must be read to plan it, and why (`None`: the resource row and the
/// record show nothing to do, so the plan is a no-op without it).
pub fn needs_config_vm(
    desired: &Desired<'_, ProxmoxVmSpec>,
    row: &GuestResource,
    recorded: Option<&RecordedGuest>,
) -> Option<String> {
    needs_config::<VmKind>(desired, row, recorded)
}

/// [`needs_config_vm`] for a container.
pub fn needs_config_container(
    desired: &Desired<'_, ProxmoxContainerSpec>,
    row: &GuestResource,
    recorded: Option<&RecordedGuest>,
) -> Option<String> {
    needs_config::<CtKind>(desired, row, recorded)
}

fn needs_config<K: Kind>(
    d: &Desired<'_, K::Spec>,
    row: &GuestResource,
    recorded: Option<&RecordedGuest>,
) -> Option<String> {
    let Some(r) = recorded else {
        return Some("not recorded yet: its config says whether it can be adopted as it is".into());
    };
    if r.config_digest.is_none() {
        return Some("its config was never read".into());
    }
    if r.applied_hash.as_deref() != Some(d.hash) {
        return Some("the manifest changed since it was last applied".into());
    }
    let status = row.status.as_deref().unwrap_or("unknown");
    if status == "unknown" {
        return None;
    }
    let want = match K::state(d.spec) {
        GuestState::Running if !K::template(d.spec) => "running",
        _ => "stopped",
    };
    if status != want {
        return Some(format!("it is {status}; the manifest wants it {want}"));
    }
    let name = K::guest_name(d);
    if row.name.as_deref() != Some(name) {
        return Some(format!(
            "its name is {}, the manifest says {name}",
            row.name.as_deref().unwrap_or("(none)")
        ));
    }
    if let Some(want) = K::tags(d.spec)
        && tag_set(row.tags.iter().map(String::as_str)) != want
    {
        return Some("its tags differ from the manifest's".into());
    }
    if row.template != K::template(d.spec) {
        return Some("its template flag differs from the manifest's".into());
    }
    if let Some(pool) = K::pool(d.spec)
        && row.pool.as_deref() != Some(pool)
    {
        return Some(format!("it is not in pool {pool}"));
    }
    if let Some(lock) = &row.lock {
        return Some(format!("it is locked ({lock})"));
    }
    let Some(last) = &r.last_row else {
        return Some("its resource row was never recorded".into());
    };
    let seen = [
        ("node", json!(last.node), json!(row.node)),
        ("maxcpu", json!(last.maxcpu), json!(row.maxcpu)),
        ("maxmem", json!(last.maxmem), json!(row.maxmem)),
        ("maxdisk", json!(last.maxdisk), json!(row.maxdisk)),
    ];
    for (what, before, now) in seen {
        if before != now {
            return Some(format!(
                "its {what} changed from {before} to {now} since it was recorded"
            ));
        }
    }
    None
}

fn status_of(row: &GuestResource) -> &str {
    row.status.as_deref().unwrap_or("unknown")
}

fn target(kind: GuestKind, row: &GuestResource) -> GuestTarget {
    GuestTarget {
        kind,
        node: row.node.clone(),
        vmid: Some(row.vmid),
    }
}

fn kind_word(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Qemu => "VM",
        GuestKind::Lxc => "container",
    }
}

/// The guest a manifest means when ballast has not recorded one: by its vmid (adopted only if
/// the name matches too), else by its name (adopted if exactly one has it).
fn identify<'a, K: Kind>(
    d: &Desired<'_, K::Spec>,
    rows: &'a [GuestResource],
) -> Result<Option<&'a GuestResource>, PlanError> {
    let name = K::guest_name(d);
    if let Some(vmid) = K::vmid(d.spec) {
        return match rows.iter().find(|g| g.vmid == vmid) {
            None => Ok(None),
            Some(g) if g.kind == K::KIND && g.name.as_deref() == Some(name) => Ok(Some(g)),
            Some(g) => Err(PlanError::Refused(vec![format!(
                "vmid {vmid} is taken by the {} `{}` on {}, which ballast did not create and whose name is not `{name}`; choose another vmid (or name it `{}` to adopt it)",
                kind_word(g.kind),
                g.name.as_deref().unwrap_or("?"),
                g.node,
                g.name.as_deref().unwrap_or("?"),
            )])),
        };
    }
    let matches: Vec<&GuestResource> = rows
        .iter()
        .filter(|g| {
            g.kind == K::KIND
                && g.name.as_deref() == Some(name)
                && g.template == K::template(d.spec)
        })
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        several => Err(PlanError::Refused(vec![format!(
            "{} guests are named `{name}` (vmids {}); set spec.vmid to the one to manage",
            several.len(),
            several
                .iter()
                .map(|g| g.vmid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )])),
    }
}

fn clone_source<'a>(
    from: &CloneSource,
    kind: GuestKind,
    rows: &'a [GuestResource],
) -> Result<&'a GuestResource, PlanError> {
    let found: Vec<&GuestResource> = rows
        .iter()
        .filter(|g| g.kind == kind)
        .filter(|g| match from {
            CloneSource::Vmid(v) => i64::from(g.vmid) == *v,
            CloneSource::Name(n) => g.name.as_deref() == Some(n.as_str()),
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(PlanError::Refused(vec![format!(
            "clone source `{from}` is not a {} of the cluster",
            kind_word(kind)
        )])),
        several => Err(PlanError::Refused(vec![format!(
            "clone source `{from}` names {} guests (vmids {}); give its vmid",
            several.len(),
            several
                .iter()
                .map(|g| g.vmid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )])),
    }
}

/// The desired document a diff shows.
fn document<K: Kind>(d: &Desired<'_, K::Spec>) -> Value {
    json!({
        "apiVersion": ballast_model::API_VERSION,
        "kind": K::NAME,
        "metadata": {"name": d.name},
        "spec": serde_json::to_value(d.spec).unwrap_or(Value::Null),
    })
}

fn yaml(value: &Value) -> String {
    crate::to_yaml(value)
}

fn empty_plan(node: &str, vmid: Option<u32>) -> GuestPlan {
    GuestPlan {
        action: Action::NoOp,
        vmid,
        node: node.to_string(),
        adopt: false,
        reasons: Vec::new(),
        notes: Vec::new(),
        pending_reboot: Vec::new(),
        changes: Vec::new(),
        steps: Vec::new(),
        before: String::new(),
        after: String::new(),
    }
}

fn plan<K: Kind>(
    desired: Option<&Desired<'_, K::Spec>>,
    recorded: Option<&RecordedGuest>,
    observed: &Observed<'_>,
    prune: bool,
) -> Result<GuestPlan, PlanError> {
    let rows = observed.guests;
    let mut notes = Vec::new();
    let by_record = recorded.and_then(|r| rows.iter().find(|g| g.vmid == r.vmid));
    let mut row = match by_record {
        Some(g) if g.kind == K::KIND => Some(g),
        Some(g) => {
            notes.push(format!(
                "the recorded vmid {} is now the {} `{}`; it is not ballast's",
                g.vmid,
                kind_word(g.kind),
                g.name.as_deref().unwrap_or("?")
            ));
            None
        }
        None => None,
    };
    let Some(d) = desired else {
        return plan_removed::<K>(recorded, row, observed.config, prune);
    };
    let mut adopt = false;
    if row.is_none() {
        row = identify::<K>(d, rows)?;
        adopt = row.is_some();
    }
    let Some(row) = row else {
        return plan_create::<K>(d, recorded, observed, notes);
    };
    let mut plan = empty_plan(&row.node, Some(row.vmid));
    plan.adopt = adopt;
    plan.notes = notes;
    if adopt {
        plan.notes.push(format!(
            "adopting vmid {} on {}: its vmid and name match the manifest",
            row.vmid, row.node
        ));
    }
    if status_of(row) == "unknown" {
        plan.notes.push(format!(
            "node {} does not answer, so the state of {} is unknown; nothing is planned until it is back",
            row.node, row.vmid
        ));
        return Ok(plan);
    }
    let allowed = K::allowed_nodes(d.spec);
    if !allowed.is_empty() && !allowed.contains(&row.node.as_str()) {
        plan.notes.push(format!(
            "it runs on {}, which is not in allowedNodes ({}); ballast does not migrate guests",
            row.node,
            allowed.join(", ")
        ));
    }
    let Some(config) = observed.config else {
        if let Some(why) = needs_config::<K>(d, row, recorded) {
            return Err(PlanError::ConfigNeeded {
                vmid: row.vmid,
                node: row.node.clone(),
                why,
            });
        }
        return Ok(plan);
    };
    let identity_change = recorded
        .filter(|r| by_record.is_some_and(|g| g.vmid == r.vmid))
        .and_then(|r| {
            K::vmid(d.spec)
                .filter(|v| *v != r.vmid)
                .map(|v| (r.vmid, v))
        })
        .map(|(old, new)| {
            format!("its vmid changes from {old} to {new}, and the vmid is a guest's identity")
        });
    if let Some(why) = identity_change.or_else(|| K::replace_reason(d, config)) {
        return plan_replace::<K>(d, row, config, adopt, why, observed);
    }
    let compared = K::compare(d, &config.values, recorded);
    if !compared.refusals.is_empty() {
        return Err(PlanError::Refused(compared.refusals));
    }
    plan_update::<K>(d, row, config, compared, plan)
}

fn plan_removed<K: Kind>(
    recorded: Option<&RecordedGuest>,
    row: Option<&GuestResource>,
    config: Option<&ObservedConfig>,
    prune: bool,
) -> Result<GuestPlan, PlanError> {
    let Some(r) = recorded else {
        return Ok(empty_plan("", None));
    };
    let Some(row) = row else {
        let mut plan = empty_plan("", Some(r.vmid));
        if prune {
            plan.action = Action::Delete;
            plan.reasons.push(format!(
                "removed from the manifests; vmid {} is already gone",
                r.vmid
            ));
            plan.steps.push(GuestStep::Forget { vmid: r.vmid });
        } else {
            plan.reasons.push(format!(
                "removed from the manifests, and vmid {} is gone; use --prune to forget it",
                r.vmid
            ));
        }
        return Ok(plan);
    };
    let mut plan = empty_plan(&row.node, Some(row.vmid));
    if !prune {
        plan.reasons.push(format!(
            "removed from the manifests; vmid {} is kept (use --prune to delete it)",
            row.vmid
        ));
        return Ok(plan);
    }
    let Some(config) = config else {
        return Err(PlanError::ConfigNeeded {
            vmid: row.vmid,
            node: row.node.clone(),
            why: "deleting it needs its protection flag".into(),
        });
    };
    if flag(config.get("protection"), false) {
        return Err(PlanError::Refused(vec![format!(
            "vmid {} has protection on; ballast never deletes a protected guest (turn protection off first)",
            row.vmid
        )]));
    }
    plan.action = Action::Delete;
    plan.reasons.push(format!(
        "removed from the manifests; vmid {} is deleted (--prune)",
        row.vmid
    ));
    if status_of(row) == "running" {
        plan.steps.push(GuestStep::Power {
            guest: target(K::KIND, row),
            action: Power::Stop,
        });
    }
    plan.steps.push(GuestStep::Delete {
        guest: target(K::KIND, row),
        purge: true,
    });
    plan.steps.push(GuestStep::Forget { vmid: row.vmid });
    plan.before = yaml(&json!({
        "kind": K::NAME,
        "spec": {"vmid": row.vmid, "node": row.node, "name": row.name},
    }));
    Ok(plan)
}

/// The steps that make the guest: a create, or a clone and (when the source's config is known)
/// what the clone then needs; then a template conversion or a start.
fn create_steps<K: Kind>(
    d: &Desired<'_, K::Spec>,
    vmid: Option<u32>,
    observed: &Observed<'_>,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<GuestStep>), PlanError> {
    let node = K::node(d.spec)
        .map(str::to_string)
        .or_else(|| d.defaults.node.clone())
        .unwrap_or_default();
    let new = GuestTarget {
        kind: K::KIND,
        node: node.clone(),
        vmid,
    };
    let mut steps = Vec::new();
    match K::clone_spec(d.spec) {
        Some(cs) => {
            let source = clone_source(&cs.from.value, K::KIND, observed.guests)?;
            steps.push(GuestStep::Clone {
                kind: K::KIND,
                source_node: source.node.clone(),
                source_vmid: source.vmid,
                new: new.clone(),
                name: K::guest_name(d).to_string(),
                full: cs.full,
                storage: cs.storage.as_ref().map(|s| s.value.clone()),
                pool: K::pool(d.spec).map(str::to_string),
            });
            match observed.clone_source {
                Some(src) => {
                    let values = K::as_clone_of(&src.values, K::guest_name(d));
                    let compared = K::compare(d, &values, None);
                    if !compared.refusals.is_empty() {
                        return Err(PlanError::Refused(compared.refusals));
                    }
                    if !compared.is_empty() {
                        steps.push(GuestStep::UpdateConfig {
                            guest: new.clone(),
                            set: compared.set,
                            delete: compared.delete,
                            secrets: compared.secrets,
                            digest: None,
                        });
                    }
                    for (disk, from, to) in compared.resizes {
                        steps.push(GuestStep::Resize {
                            guest: new.clone(),
                            disk,
                            from_bytes: from,
                            to_bytes: to,
                        });
                    }
                }
                None => {
                    notes.push(format!(
                        "the clone is configured against its own config once it exists (the config of {} was not read)",
                        source.vmid
                    ));
                    return Ok((node, steps));
                }
            }
        }
        None => steps.push(K::create(d, new.clone())),
    }
    if K::template(d.spec) {
        steps.push(GuestStep::ConvertToTemplate { guest: new });
    } else if K::state(d.spec) == GuestState::Running {
        steps.push(GuestStep::Power {
            guest: new,
            action: Power::Start,
        });
    }
    Ok((node, steps))
}

fn plan_create<K: Kind>(
    d: &Desired<'_, K::Spec>,
    recorded: Option<&RecordedGuest>,
    observed: &Observed<'_>,
    mut notes: Vec<String>,
) -> Result<GuestPlan, PlanError> {
    let taken = |vmid: u32| observed.guests.iter().any(|g| g.vmid == vmid);
    let vmid = K::vmid(d.spec).or_else(|| recorded.map(|r| r.vmid).filter(|v| !taken(*v)));
    let (node, steps) = create_steps::<K>(d, vmid, observed, &mut notes)?;
    let mut plan = empty_plan(&node, vmid);
    let id = vmid.map_or("the next free vmid".to_string(), |v| format!("vmid {v}"));
    let how =
        K::clone_spec(d.spec).map_or(String::new(), |c| format!(", cloned from {}", c.from.value));
    plan.reasons.push(match recorded {
        Some(r) => format!(
            "vmid {} (recorded as ballast's) no longer exists; created again as {id} on {node}{how}",
            r.vmid
        ),
        None => format!("not found on the cluster; created as {id} on {node}{how}"),
    });
    plan.action = Action::Create;
    plan.notes = notes;
    plan.steps = steps;
    plan.after = yaml(&document::<K>(d));
    Ok(plan)
}

fn plan_replace<K: Kind>(
    d: &Desired<'_, K::Spec>,
    row: &GuestResource,
    config: &ObservedConfig,
    adopt: bool,
    why: String,
    observed: &Observed<'_>,
) -> Result<GuestPlan, PlanError> {
    if adopt {
        return Err(PlanError::Refused(vec![format!(
            "vmid {} matches the manifest but would have to be replaced to adopt it ({why}); ballast replaces only guests it owns",
            row.vmid
        )]));
    }
    if flag(config.get("protection"), false) {
        return Err(PlanError::Refused(vec![format!(
            "vmid {} must be replaced ({why}), which deletes it, and it has protection on; turn protection off first",
            row.vmid
        )]));
    }
    let mut notes = Vec::new();
    let vmid = K::vmid(d.spec).unwrap_or(row.vmid);
    if let Some(other) = observed
        .guests
        .iter()
        .find(|g| g.vmid == vmid && g.vmid != row.vmid)
    {
        return Err(PlanError::Refused(vec![format!(
            "vmid {} must be replaced by vmid {vmid} ({why}), but vmid {vmid} is taken by the {} `{}` on {}",
            row.vmid,
            kind_word(other.kind),
            other.name.as_deref().unwrap_or("?"),
            other.node
        )]));
    }
    let mut steps = Vec::new();
    if status_of(row) == "running" {
        steps.push(GuestStep::Power {
            guest: target(K::KIND, row),
            action: Power::Stop,
        });
    }
    steps.push(GuestStep::Delete {
        guest: target(K::KIND, row),
        purge: true,
    });
    let (node, create) = create_steps::<K>(d, Some(vmid), observed, &mut notes)?;
    steps.extend(create);
    let mut plan = empty_plan(&node, Some(vmid));
    plan.action = Action::Replace;
    plan.reasons.push(format!(
        "vmid {} must be deleted and created again: {why}",
        row.vmid
    ));
    plan.notes = notes;
    plan.steps = steps;
    plan.before = yaml(&json!({
        "kind": K::NAME,
        "spec": {"vmid": row.vmid, "node": row.node, "name": row.name},
    }));
    plan.after = yaml(&document::<K>(d));
    Ok(plan)
}

fn plan_update<K: Kind>(
    d: &Desired<'_, K::Spec>,
    row: &GuestResource,
    config: &ObservedConfig,
    compared: Compared,
    mut plan: GuestPlan,
) -> Result<GuestPlan, PlanError> {
    let guest = target(K::KIND, row);
    let status = status_of(row);
    let running = status == "running";
    let is_template = flag(config.get("template"), false);
    let to_template = K::template(d.spec) && !is_template;
    let want_running = K::state(d.spec) == GuestState::Running && !K::template(d.spec);
    let mut steps = Vec::new();
    let mut reasons: Vec<String> = compared.changes.iter().map(|c| c.reason()).collect();
    let stop_first = running && (!want_running || to_template);
    if stop_first {
        steps.push(GuestStep::Power {
            guest: guest.clone(),
            action: Power::Shutdown,
        });
        reasons.push("running → stopped".into());
    }
    if !compared.is_empty() {
        steps.push(GuestStep::UpdateConfig {
            guest: guest.clone(),
            set: compared.set.clone(),
            delete: compared.delete.clone(),
            secrets: compared.secrets.clone(),
            digest: Some(config.digest.clone()),
        });
    }
    for (disk, from, to) in &compared.resizes {
        steps.push(GuestStep::Resize {
            guest: guest.clone(),
            disk: disk.clone(),
            from_bytes: *from,
            to_bytes: *to,
        });
    }
    if let Some(pool) = K::pool(d.spec)
        && row.pool.as_deref() != Some(pool)
    {
        steps.push(GuestStep::AddToPool {
            guest: guest.clone(),
            pool: pool.to_string(),
        });
        reasons.push(format!(
            "pool: {} → {pool}",
            row.pool.as_deref().unwrap_or("(none)")
        ));
    }
    if to_template {
        steps.push(GuestStep::ConvertToTemplate {
            guest: guest.clone(),
        });
        reasons.push("converted into a template".into());
    } else if want_running && status == "stopped" {
        steps.push(GuestStep::Power {
            guest: guest.clone(),
            action: Power::Start,
        });
        reasons.push("stopped → running".into());
    } else if want_running && !running {
        plan.notes.push(format!(
            "it is {status}; ballast starts stopped guests only (resume it by hand)"
        ));
    }
    // What waits for a boot: what this plan changes that needs one, and what was pending.
    if running && want_running && !stop_first {
        let mut waiting = compared.next_boot_keys();
        waiting.extend(config.pending.iter().cloned());
        waiting.sort();
        waiting.dedup();
        if !waiting.is_empty() {
            match K::restart_policy(d.spec) {
                RestartPolicy::Auto => {
                    steps.push(GuestStep::Power {
                        guest: guest.clone(),
                        action: Power::Reboot,
                    });
                    reasons.push(format!(
                        "rebooted for {} (restartPolicy: auto)",
                        waiting.join(", ")
                    ));
                }
                RestartPolicy::Never => {
                    plan.notes.push(format!(
                        "waiting for a reboot to apply {} (restartPolicy: never)",
                        waiting.join(", ")
                    ));
                    plan.pending_reboot = waiting;
                }
            }
        }
    }
    plan.notes.extend(compared.notes.iter().cloned());
    if let Some(lock) = row.lock.as_ref().filter(|_| !steps.is_empty()) {
        plan.notes.push(format!(
            "it is locked ({lock}); its steps are retried until the lock is released"
        ));
    }
    if steps.is_empty() {
        return Ok(plan);
    }
    plan.action = Action::Update;
    plan.reasons = reasons;
    plan.steps = steps;
    let after = document::<K>(d);
    let mut before = after.clone();
    for change in &compared.changes {
        set_path(
            &mut before,
            &format!("spec.{}", change.path),
            change.from.clone(),
        );
    }
    if stop_first || (want_running && status == "stopped") {
        set_path(&mut before, "spec.state", Some(json!(status)));
    }
    if to_template {
        set_path(&mut before, "spec.template", Some(json!(false)));
    }
    if let Some(pool) = K::pool(d.spec)
        && row.pool.as_deref() != Some(pool)
    {
        set_path(
            &mut before,
            "spec.pool",
            row.pool.as_ref().map(|p| json!(p)),
        );
    }
    drop_removed(&mut before);
    plan.before = yaml(&before);
    plan.after = yaml(&after);
    plan.changes = compared.changes;
    Ok(plan)
}
