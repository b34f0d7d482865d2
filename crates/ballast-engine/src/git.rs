//! The git commit of the manifest directory, recorded with the desired state and the audit log
//! so every change can be traced to what was committed (and whether the tree was dirty).

use std::path::Path;
use std::process::Command;

/// Where the manifests came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GitSource {
    /// `HEAD` of the work tree holding the manifests, if it is one.
    pub commit: Option<String>,
    /// Whether the manifests differ from that commit (uncommitted or untracked files).
    pub dirty: bool,
}

/// What the audit log records of a source: `DIRTY_SUFFIX` after the commit when the manifests
/// differed from it, so the hash-chained log says whether what was applied was committed.
pub const DIRTY_SUFFIX: &str = "+dirty";

impl GitSource {
    /// The commit, followed by [`DIRTY_SUFFIX`] when the tree was dirty.
    pub fn label(&self) -> Option<String> {
        let commit = self.commit.as_deref()?;
        Some(if self.dirty {
            format!("{commit}{DIRTY_SUFFIX}")
        } else {
            commit.to_string()
        })
    }
}

/// Asks git about `dir`. Not a work tree, or no git installed: no commit, not dirty.
pub fn source_info(dir: &Path) -> GitSource {
    let dir = if dir.is_file() {
        dir.parent().unwrap_or(Path::new("."))
    } else {
        dir
    };
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = run(&["rev-parse", "--verify", "--quiet", "HEAD"]) else {
        return GitSource::default();
    };
    let dirty = run(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
    GitSource {
        commit: Some(commit),
        dirty,
    }
}
