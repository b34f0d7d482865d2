//! Test support: starts the real peers the tests need (a Docker engine, PostgreSQL, sshd, a
//! throwaway host) when they are not already running, and makes test images offline. Nothing
//! here is used by product code.

pub mod bmc;
pub mod compose;
pub mod docker;
pub mod fakepve;
pub mod postgres;
pub mod sshd;
pub mod sushy;
pub mod throwaway;

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{Context, Result};

/// Takes an exclusive `flock` on `NAME.lock` in the temp directory, held until the file is
/// dropped: every resource the test processes of a run share (the engine, images, networks) is
/// checked and created under one, so two processes never both create it.
pub(crate) fn shared_lock(name: &str) -> Result<File> {
    let path = std::env::temp_dir().join(format!("{name}.lock"));
    lock_file(&path)
}

fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}
