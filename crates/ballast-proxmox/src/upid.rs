//! [`Upid`]: the id of a Proxmox task, parsed.
//!
//! `UPID:node:pid:pstart:starttime:type:id:user:` — every asynchronous call answers one. The node
//! that runs the task is part of it, so a task can be polled from its id alone (after a restart,
//! from another process): `GET /nodes/{node}/tasks/{upid}/status`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A task id. Displays (and serialises) as the original string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    node: String,
    pid: u32,
    pstart: u64,
    starttime: u64,
    task_type: String,
    id: String,
    user: String,
}

/// Why a string is not a UPID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{upid}` is not a Proxmox task id (UPID:node:pid:pstart:starttime:type:id:user:): {reason}"
)]
pub struct UpidError {
    pub upid: String,
    pub reason: String,
}

impl Upid {
    /// The node that runs the task (and answers for it).
    pub fn node(&self) -> &str {
        &self.node
    }
    /// The worker's process id on the node.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// The process start time (clock ticks since boot), part of the identity.
    pub fn pstart(&self) -> u64 {
        self.pstart
    }
    /// When the task started, seconds since the Unix epoch.
    pub fn starttime(&self) -> u64 {
        self.starttime
    }
    /// `qmclone`, `qmstart`, `vzcreate`, …
    pub fn task_type(&self) -> &str {
        &self.task_type
    }
    /// What the task works on (usually the vmid; may be empty).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Who started it: `root@pam` or a token `user@realm!name`.
    pub fn user(&self) -> &str {
        &self.user
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for Upid {
    type Err = UpidError;

    fn from_str(s: &str) -> Result<Upid, UpidError> {
        let fail = |reason: &str| UpidError {
            upid: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s
            .strip_prefix("UPID:")
            .ok_or_else(|| fail("it does not start with `UPID:`"))?;
        // The user may hold no `:`, and the id none either (PVE escapes it), so a plain split
        // works: 7 fields, then the empty string after the trailing `:`.
        let fields: Vec<&str> = rest.split(':').collect();
        if fields.len() != 8 || !fields[7].is_empty() {
            return Err(fail("it does not have 7 fields and a trailing `:`"));
        }
        let hex = |text: &str, what: &str| {
            u64::from_str_radix(text, 16).map_err(|_| fail(&format!("{what} `{text}` is not hex")))
        };
        let node = fields[0];
        if node.is_empty() {
            return Err(fail("the node is empty"));
        }
        let pid = hex(fields[1], "pid")?;
        let pid = u32::try_from(pid).map_err(|_| fail("pid is out of range"))?;
        let pstart = hex(fields[2], "pstart")?;
        let starttime = hex(fields[3], "starttime")?;
        if fields[4].is_empty() {
            return Err(fail("the task type is empty"));
        }
        if fields[6].is_empty() {
            return Err(fail("the user is empty"));
        }
        Ok(Upid {
            raw: s.to_string(),
            node: node.to_string(),
            pid,
            pstart,
            starttime,
            task_type: fields[4].to_string(),
            id: fields[5].to_string(),
            user: fields[6].to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Upid, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields() {
        let upid: Upid = "UPID:pve2:000C1A2B:0345F9C1:66A1B2C3:qmclone:9000:root@pam!ballast:"
            .parse()
            .expect("a valid UPID");
        assert_eq!(upid.node(), "pve2");
        assert_eq!(upid.pid(), 0x000C_1A2B);
        assert_eq!(upid.pstart(), 0x0345_F9C1);
        assert_eq!(upid.starttime(), 0x66A1_B2C3);
        assert_eq!(upid.task_type(), "qmclone");
        assert_eq!(upid.id(), "9000");
        assert_eq!(upid.user(), "root@pam!ballast");
        assert_eq!(
            upid.to_string(),
            "UPID:pve2:000C1A2B:0345F9C1:66A1B2C3:qmclone:9000:root@pam!ballast:"
        );
    }

    #[test]
    fn an_empty_id_is_allowed() {
        let upid: Upid = "UPID:pve1:00001234:00005678:66A1B2C3:aptupdate::root@pam:"
            .parse()
            .expect("a valid UPID");
        assert_eq!(upid.id(), "");
    }

    #[test]
    fn refuses_what_is_not_a_upid() {
        for bad in [
            "",
            "pve1:1:2:3:qmstart:100:root@pam:",
            "UPID:pve1:xyz:00005678:66A1B2C3:qmstart:100:root@pam:",
            "UPID:pve1:00001234:00005678:66A1B2C3:qmstart:100:root@pam",
            "UPID::00001234:00005678:66A1B2C3:qmstart:100:root@pam:",
            "UPID:pve1:00001234:00005678:66A1B2C3::100:root@pam:",
            "UPID:pve1:00001234:00005678:66A1B2C3:qmstart:100::",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn round_trips_through_serde() {
        let text = "\"UPID:pve1:000003E8:00001B58:6B0CFAB4:qmclone:9000:root@pam:\"";
        let upid: Upid = serde_json::from_str(text).expect("a UPID");
        assert_eq!(serde_json::to_string(&upid).expect("serialises"), text);
    }
}
