//! A VM's cloud-init values: what a create writes, and how the values compare with a config
//! (a missing cloud-init drive is added; a password follows its secret's version, since
//! Proxmox never shows it).

use std::collections::BTreeMap;

use ballast_proxmox::{Drive, PropertyString, is_qemu_disk_key};
use serde_json::json;

use super::compare::{
    Apply, Compared, remove, secret_token, ssh_key_lines, url_decode, url_encode,
};
use super::steps::SecretParam;
use super::vm::{CLOUDINIT_SLOTS, ipconfig_value};
use super::{DesiredVm, RecordedGuest};

pub(crate) fn write(
    d: &DesiredVm<'_>,
    p: &mut BTreeMap<String, String>,
    secrets: &mut Vec<SecretParam>,
) {
    let Some(ci) = &d.spec.cloud_init else { return };
    if let Some(user) = &ci.user {
        p.insert("ciuser".into(), user.value.clone());
    }
    if let Some(password) = &ci.password {
        secrets.push(SecretParam {
            key: "cipassword".into(),
            source: password.clone(),
        });
    }
    if !ci.ssh_keys.is_empty() {
        let keys: Vec<&str> = ci.ssh_keys.iter().map(|k| k.value.trim()).collect();
        p.insert("sshkeys".into(), url_encode(&keys.join("\n")));
    }
    for (i, ip) in ci.ip_config.iter().enumerate() {
        p.insert(
            format!("ipconfig{i}"),
            ipconfig_value(&ip.ip.value, ip.gateway.as_ref().map(|g| g.value.as_str())),
        );
    }
    if let Some(dns) = &ci.dns {
        if !dns.servers.is_empty() {
            let servers: Vec<&str> = dns.servers.iter().map(|s| s.value.as_str()).collect();
            p.insert("nameserver".into(), servers.join(" "));
        }
        if let Some(domain) = &dns.domain {
            p.insert("searchdomain".into(), domain.value.clone());
        }
    }
}

pub(crate) fn compare(
    d: &DesiredVm<'_>,
    cfg: &BTreeMap<String, String>,
    recorded: Option<&RecordedGuest>,
    c: &mut Compared,
) {
    let Some(ci) = &d.spec.cloud_init else { return };
    let get = |k: &str| cfg.get(k).map(String::as_str);
    let has_drive = cfg
        .iter()
        .any(|(k, v)| is_qemu_disk_key(k) && Drive::parse(k, v).is_cloudinit());
    if !has_drive {
        let storage = d.defaults.storage.clone().or_else(|| {
            cfg.iter()
                .filter(|(k, _)| is_qemu_disk_key(k))
                .find_map(|(k, v)| {
                    Drive::parse(k, v)
                        .storage
                        .filter(|_| !v.contains("media=cdrom"))
                })
        });
        let slot = CLOUDINIT_SLOTS
            .iter()
            .find(|s| !cfg.contains_key(**s) && !c.set.contains_key(**s));
        match (storage, slot) {
            (Some(storage), Some(slot)) => c.change(
                "cloudInit",
                slot,
                None,
                Some(json!(format!("a cloud-init drive on {slot}"))),
                Some(format!("{storage}:cloudinit")),
                Apply::NextBoot,
            ),
            (None, _) => c.refusals.push(
                "cloudInit: the VM has no cloud-init drive and there is no storage to make one on (set the cluster's defaults.storage)".to_string(),
            ),
            (_, None) => c.refusals.push(
                "cloudInit: the VM has no cloud-init drive and ide0–ide3 are taken".to_string(),
            ),
        }
    }
    let text_fields = [
        (
            "cloudInit.user",
            "ciuser",
            ci.user.as_ref().map(|u| u.value.clone()),
        ),
        (
            "cloudInit.dns.domain",
            "searchdomain",
            ci.dns
                .as_ref()
                .and_then(|dns| dns.domain.as_ref())
                .map(|s| s.value.clone()),
        ),
    ];
    for (path, key, want) in text_fields {
        if let Some(want) = want
            && get(key) != Some(want.as_str())
        {
            c.change(
                path,
                key,
                get(key).map(|v| json!(v)),
                Some(json!(want)),
                Some(want),
                Apply::NextBoot,
            );
        }
    }
    if let Some(dns) = &ci.dns
        && !dns.servers.is_empty()
    {
        let want: Vec<&str> = dns.servers.iter().map(|s| s.value.as_str()).collect();
        let have: Vec<&str> = get("nameserver")
            .map(|n| n.split_whitespace().collect())
            .unwrap_or_default();
        if want != have {
            c.change(
                "cloudInit.dns.servers",
                "nameserver",
                Some(json!(have)),
                Some(json!(want)),
                Some(want.join(" ")),
                Apply::NextBoot,
            );
        }
    }
    if !ci.ssh_keys.is_empty() {
        let want: Vec<String> = ci
            .ssh_keys
            .iter()
            .map(|k| k.value.trim().to_string())
            .collect();
        let have = get("sshkeys")
            .map(|k| ssh_key_lines(&url_decode(k)))
            .unwrap_or_default();
        if want != have {
            c.change(
                "cloudInit.sshKeys",
                "sshkeys",
                Some(json!(have)),
                Some(json!(want)),
                Some(url_encode(&want.join("\n"))),
                Apply::NextBoot,
            );
        }
    }
    for (i, ip) in ci.ip_config.iter().enumerate() {
        let key = format!("ipconfig{i}");
        let have = PropertyString::parse(get(&key).unwrap_or(""));
        let want_gw = ip.gateway.as_ref().map(|g| g.value.as_str());
        if have.get("ip") != Some(ip.ip.value.as_str()) || have.get("gw") != want_gw {
            // IPv6 settings (ip6, gw6) are not managed and are kept.
            let mut props = have.clone();
            props.set("ip", ip.ip.value.clone());
            remove(&mut props, "gw");
            if let Some(gw) = want_gw {
                props.set("gw", gw);
            }
            let mut from = json!({});
            if let Some(v) = have.get("ip") {
                from["ip"] = json!(v);
            }
            if let Some(v) = have.get("gw") {
                from["gateway"] = json!(v);
            }
            let mut to = json!({"ip": ip.ip.value});
            if let Some(gw) = want_gw {
                to["gateway"] = json!(gw);
            }
            let from = (get(&key).is_some()).then_some(from);
            c.change(
                format!("cloudInit.ipConfig[{i}]"),
                &key,
                from,
                Some(to),
                Some(props.to_string()),
                Apply::NextBoot,
            );
        }
    }
    if let Some(password) = &ci.password {
        let want = secret_token(password, d.secret_versions);
        let last = recorded.and_then(|r| r.secret_versions.get("cipassword"));
        // A password set before ballast recorded it (an adopted VM) is taken as the one
        // the manifest names; from then on a new secret version is a change.
        let unknown_but_set = last.is_none() && get("cipassword").is_some();
        if last != Some(&want) && !unknown_but_set {
            c.secrets.push(SecretParam {
                key: "cipassword".into(),
                source: password.clone(),
            });
            c.changes.push(super::FieldChange {
                path: "cloudInit.password".into(),
                key: "cipassword".into(),
                from: None,
                to: Some(json!("(secret changed)")),
                apply: Apply::NextBoot,
            });
        }
    }
}
