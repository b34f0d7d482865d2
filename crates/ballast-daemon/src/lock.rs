//! One daemon per database. Two daemons on one database would both reconcile every resource,
//! mark each other's running tasks interrupted at start, and fight over the API socket, so a
//! second daemon refuses to start and names the first. Two guards, taken before anything else:
//!
//! - **A lock file** held with `flock` (std's `File::try_lock`) for the life of the process:
//!   next to the SQLite file (`ballast.db.daemon.lock`), or for PostgreSQL in the runtime
//!   directory (`$RUNTIME_DIRECTORY`, else `.ballast/`) under a name derived from the database
//!   URL. The kernel drops it when the process ends however it ends, so a crash never leaves a
//!   stale lock; the file holds the owner's pid for the refusal message.
//! - **A lease in the database** (`leases` row `daemon`, 30 s, renewed every 10 s), because a
//!   lock file only guards one machine and PostgreSQL may be shared by several (or reached
//!   under two spellings of its URL). A lease left by a process of this host that no longer
//!   exists is taken over at once; one left by another host expires after 30 s. A daemon that
//!   finds its lease taken (it was paused past the TTL and another daemon started) stops.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ballast_store::Store;

use crate::DaemonError;

/// The lease every daemon of a database takes.
pub const LEASE: &str = "daemon";
/// How long the lease lasts without a renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often it is renewed: three chances before it expires.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);

/// The lock file held for the daemon's life; dropping it releases the lock.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    pub path: PathBuf,
}

/// Where the lock file of the database at `url` (as [`Store::url`] shows it) lives, or `None`
/// for an in-memory database (each process has its own).
pub fn lock_path(url: &str, runtime_dir: &Path) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
            return None;
        }
        let mut name = Path::new(path).file_name()?.to_os_string();
        name.push(".daemon.lock");
        return Some(Path::new(path).with_file_name(name));
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    Some(runtime_dir.join(format!("daemon-{}.lock", &digest[..16])))
}

/// Takes the lock file at `path` without waiting, writing this process's pid into it. Fails
/// with [`DaemonError::AlreadyRunning`] naming the holder's pid when another process holds it.
pub fn lock(path: &Path) -> Result<LockFile, DaemonError> {
    let io = |source| DaemonError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Not truncated on open: the holder's pid must survive a second daemon opening the file.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(DaemonError::AlreadyRunning {
                pid: text.trim().parse().ok(),
                lock: path.to_path_buf(),
            });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    file.set_len(0).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(LockFile {
        _file: file,
        path: path.to_path_buf(),
    })
}

/// This process as a lease holder: `daemon PID@HOST`, as the engine names it in resource
/// leases.
pub fn holder() -> String {
    format!(
        "daemon {}@{}",
        std::process::id(),
        whoami::hostname().unwrap_or_else(|_| "localhost".into())
    )
}

/// Takes the database's daemon lease for `holder`, taking over one whose holder was a process
/// of this host that has exited. Fails with [`DaemonError::LeaseHeld`] naming the holder.
pub async fn acquire_lease(store: &Store, holder: &str) -> Result<(), DaemonError> {
    if store.try_acquire_lease(LEASE, holder, LEASE_TTL).await? {
        return Ok(());
    }
    if let Some(row) = store.get_lease(LEASE).await? {
        if !holder_is_dead_here(&row.holder, holder) {
            return Err(DaemonError::LeaseHeld {
                holder: row.holder,
                expires_at: row.expires_at,
            });
        }
        tracing::info!(holder = %row.holder, "taking over the daemon lease of a process that has exited");
        store.release_lease(LEASE, &row.holder).await?;
    }
    if store.try_acquire_lease(LEASE, holder, LEASE_TTL).await? {
        return Ok(());
    }
    // Someone else took it between the two looks.
    let row = store.get_lease(LEASE).await?;
    Err(DaemonError::LeaseHeld {
        holder: row
            .as_ref()
            .map_or_else(|| "another daemon".to_string(), |r| r.holder.clone()),
        expires_at: row.map_or_else(chrono::Utc::now, |r| r.expires_at),
    })
}

/// Whether a lease holder (`ROLE PID@HOST`) is a process on this host that has exited.
fn holder_is_dead_here(holder: &str, ours: &str) -> bool {
    let host_of = |h: &str| h.rsplit_once('@').map(|(_, host)| host.to_string());
    let pid_of = |h: &str| {
        h.rsplit_once('@')
            .and_then(|(who, _)| who.rsplit(' ').next())
            .and_then(|pid| pid.parse::<u32>().ok())
    };
    match (host_of(holder), host_of(ours), pid_of(holder)) {
        (Some(theirs), Some(mine), Some(pid)) if theirs == mine => {
            !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_paths_follow_the_database() {
        let run = Path::new("/run/ballast");
        let cases: &[(&str, Option<&str>)] = &[
            (
                "sqlite:///var/lib/ballast/ballast.db",
                Some("/var/lib/ballast/ballast.db.daemon.lock"),
            ),
            (
                "sqlite://.ballast/ballast.db",
                Some(".ballast/ballast.db.daemon.lock"),
            ),
            (
                "sqlite://state/b.db?mode=rwc",
                Some("state/b.db.daemon.lock"),
            ),
            ("sqlite:state.db", Some("state.db.daemon.lock")),
            ("sqlite::memory:", None),
            ("sqlite://file.db?mode=memory", None),
        ];
        for (url, want) in cases {
            assert_eq!(lock_path(url, run).as_deref(), want.map(Path::new), "{url}");
        }
        let pg = lock_path("postgres://ballast:***@db.lan/ballast", run).unwrap();
        assert!(pg.starts_with(run), "{}", pg.display());
        assert_eq!(
            lock_path("postgres://ballast:***@db.lan/ballast", run),
            Some(pg.clone()),
            "stable for one URL"
        );
        assert_ne!(
            lock_path("postgres://ballast:***@db.lan/other", run),
            Some(pg),
            "another database, another lock"
        );
    }

    #[test]
    fn a_held_lock_file_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ballast.db.daemon.lock");
        let held = lock(&path).unwrap();
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(content.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open in this process
        // contends exactly as a second daemon would.
        match lock(&path) {
            Err(DaemonError::AlreadyRunning { pid, lock }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(lock, path);
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "the refused daemon leaves the holder's pid in place"
        );
        drop(held);
        let again = lock(&path).unwrap();
        assert_eq!(again.path, path);
    }

    #[tokio::test]
    async fn the_daemon_lease_admits_one_holder_and_takes_over_from_the_dead() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let me = holder();
        let host = me.rsplit_once('@').unwrap().1.to_string();
        let remote = "daemon 77@another-host";
        assert!(
            store
                .try_acquire_lease(LEASE, remote, LEASE_TTL)
                .await
                .unwrap()
        );
        match acquire_lease(&store, &me).await {
            Err(DaemonError::LeaseHeld { holder, .. }) => assert_eq!(holder, remote),
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
        let message = acquire_lease(&store, &me).await.unwrap_err().to_string();
        assert!(message.contains(remote), "{message}");

        store.release_lease(LEASE, remote).await.unwrap();
        let dead = format!("daemon 4294967@{host}");
        assert!(
            store
                .try_acquire_lease(LEASE, &dead, LEASE_TTL)
                .await
                .unwrap()
        );
        acquire_lease(&store, &me).await.unwrap();
        assert_eq!(store.get_lease(LEASE).await.unwrap().unwrap().holder, me);
        // Taking it again is a renewal.
        acquire_lease(&store, &me).await.unwrap();
    }

    #[test]
    fn only_exited_holders_on_this_host_are_dead() {
        let me = format!("daemon {}@host-a", std::process::id());
        assert!(!holder_is_dead_here(&me, &me), "this process is alive");
        assert!(holder_is_dead_here("daemon 4294967@host-a", &me));
        assert!(!holder_is_dead_here("daemon 4294967@host-b", &me));
        assert!(!holder_is_dead_here("garbage", &me));
    }
}
