//! Who does the work: the identity a ballast process holds leases and owns tasks under,
//! `ROLE PID@HOST` (`apply 4242@nas01`), and how another process tells whether that owner is
//! still there.
//!
//! Liveness, as seen from process `me`:
//! - the same process is alive;
//! - a process on the same host is alive while `/proc/PID` exists (a `kill -9`'d apply is seen
//!   as gone at once, so the next apply need not wait for its leases to expire);
//! - a process on another host cannot be seen: its liveness is its lease. A holder renews its
//!   lease while it acts, so a lease that expired means its holder stopped (or lost touch with
//!   the database for longer than the lease lasts, which is the same for everyone else).
//!
//! Limits: the host is the hostname, so two machines must not share one; a pid reused by an
//! unrelated process keeps the old owner "alive" until that process exits too.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::LeaseRow;

/// A process that takes leases and runs tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    role: String,
    pid: u32,
    host: String,
}

/// Whether a holder is still running, as far as one process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// On another host (or no `/proc` here): only its lease can tell.
    Unknown,
}

impl Holder {
    /// `role` is one word (`apply`, `daemon`); `host` is the hostname.
    pub fn new(role: &str, pid: u32, host: &str) -> Holder {
        let clean = |text: &str, fallback: &str| {
            let text: String = text.split_whitespace().collect::<Vec<_>>().join("-");
            if text.is_empty() {
                fallback.to_string()
            } else {
                text
            }
        };
        Holder {
            role: clean(role, "ballast"),
            pid,
            host: clean(host, "localhost").replace('@', "-"),
        }
    }

    /// Parses `ROLE PID@HOST`; None for anything else (rows written by hand or by an older
    /// ballast), which callers treat as "cannot tell".
    pub fn parse(text: &str) -> Option<Holder> {
        let (who, host) = text.rsplit_once('@')?;
        let (role, pid) = who.rsplit_once(' ')?;
        let pid = pid.parse().ok()?;
        if role.is_empty() || host.is_empty() {
            return None;
        }
        Some(Holder {
            role: role.to_string(),
            pid,
            host: host.to_string(),
        })
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether this holder is still running, as seen from `me`.
    pub fn liveness_from(&self, me: &Holder) -> Liveness {
        if self == me || (self.pid == me.pid && self.host == me.host) {
            return Liveness::Alive;
        }
        if self.host != me.host || !Path::new("/proc/self").exists() {
            return Liveness::Unknown;
        }
        if Path::new(&format!("/proc/{}", self.pid)).exists() {
            Liveness::Alive
        } else {
            Liveness::Gone
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}@{}", self.role, self.pid, self.host)
    }
}

/// Whether work owned by `owner` (a holder's text, None on rows from before owners were
/// recorded) on the resource guarded by `lease` was abandoned: its owner is gone, or, when
/// that cannot be seen from here, the owner no longer holds a live lease on the resource.
/// Work without a recorded owner is abandoned unless anyone holds a live lease on it.
pub(crate) fn abandoned(
    owner: Option<&str>,
    lease: Option<&LeaseRow>,
    me: &Holder,
    at: DateTime<Utc>,
) -> bool {
    let live_lease = lease.filter(|l| !l.is_expired_at(at));
    match owner.and_then(Holder::parse) {
        Some(holder) => match holder.liveness_from(me) {
            Liveness::Alive => false,
            Liveness::Gone => true,
            Liveness::Unknown => live_lease.is_none_or(|l| owner != Some(l.holder.as_str())),
        },
        None => live_lease.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, expires_in_secs: i64) -> LeaseRow {
        let at = Utc::now();
        LeaseRow {
            name: "App/web".to_string(),
            holder: holder.to_string(),
            acquired_at: at,
            renewed_at: at,
            expires_at: at + chrono::Duration::seconds(expires_in_secs),
        }
    }

    #[test]
    fn holders_print_and_parse() {
        let h = Holder::new("apply", 4242, "nas01");
        assert_eq!(h.to_string(), "apply 4242@nas01");
        assert_eq!(Holder::parse("apply 4242@nas01"), Some(h));
        assert_eq!(
            Holder::new("my role", 1, "a@b").to_string(),
            "my-role 1@a-b"
        );
        for bad in ["", "apply", "apply 12", "apply x@h", " 12@h", "apply 12@"] {
            assert_eq!(Holder::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn liveness_by_pid_here_and_by_lease_elsewhere() {
        let me = Holder::new("apply", std::process::id(), "host-a");
        assert_eq!(me.liveness_from(&me), Liveness::Alive);
        let sibling = Holder::new("daemon", std::process::id(), "host-a");
        assert_eq!(sibling.liveness_from(&me), Liveness::Alive);
        let dead = Holder::new("apply", 4_294_967, "host-a");
        assert_eq!(dead.liveness_from(&me), Liveness::Gone);
        let remote = Holder::new("apply", 4_294_967, "host-b");
        assert_eq!(remote.liveness_from(&me), Liveness::Unknown);

        let now = Utc::now();
        let remote_text = remote.to_string();
        let owner = Some(remote_text.as_str());
        assert!(!abandoned(owner, Some(&lease(&remote_text, 60)), &me, now));
        assert!(abandoned(owner, Some(&lease(&remote_text, -1)), &me, now));
        assert!(abandoned(
            owner,
            Some(&lease("other 1@host-c", 60)),
            &me,
            now
        ));
        assert!(abandoned(owner, None, &me, now));
        let dead_text = dead.to_string();
        assert!(abandoned(
            Some(&dead_text),
            Some(&lease(&dead_text, 60)),
            &me,
            now
        ));
        let me_text = me.to_string();
        assert!(!abandoned(Some(&me_text), None, &me, now));
        // No owner recorded: alive while anyone holds a live lease on the resource.
        assert!(!abandoned(None, Some(&lease("x 1@host-c", 60)), &me, now));
        assert!(abandoned(None, Some(&lease("x 1@host-c", -1)), &me, now));
        assert!(abandoned(None, None, &me, now));
    }
}
