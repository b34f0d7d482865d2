//! Watching the manifest directory: every file event (an editor's save-by-rename, a `git pull`
//! rewriting many files, files created, moved or deleted) ends in one reload once the tree has
//! been quiet for the debounce time.
//!
//! Only events that can change what the loader reads count: paths under a hidden file or
//! directory (`.git`, an editor's `.web.yaml.swp`, a `.ballast/` state directory) and files
//! that are not `*.yaml`/`*.yml` are ignored, exactly as the loader skips them. Without this, a
//! manifest directory that is a git work tree reloads forever: each reload asks `git status`,
//! which refreshes `.git/index`, which is an event.

use std::path::{Component, Path};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the OS watch alive; dropping it stops watching.
pub struct ManifestWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `dir` recursively; a `()` arrives on the returned channel after each burst of
/// changes, `debounce` after the last event of the burst.
pub fn watch(
    dir: &Path,
    debounce: Duration,
) -> notify::Result<(ManifestWatcher, mpsc::Receiver<()>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let root = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            // An error from the OS watch (e.g. an overflowed queue): events may be lost, so
            // reload to be sure.
            let _ = raw_tx.send(());
            return;
        };
        // Access events (a read) change nothing; everything else may.
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        // An event without paths (a rescan) may concern anything.
        if event.paths.is_empty() || event.paths.iter().any(|p| concerns_manifests(&root, p)) {
            let _ = raw_tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Wait for quiet: every further event restarts the wait.
            loop {
                match tokio::time::timeout(debounce, raw_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            // A reload already pending covers this burst too.
            let _ = tx.try_send(());
        }
    });
    Ok((ManifestWatcher { _watcher: watcher }, rx))
}

/// Whether a change at `path` can change what `ballast_model::load_dir(root)` reads: nothing
/// under a hidden name; a `*.yaml`/`*.yml` file; a directory. A path that no longer exists and
/// has another name counts too, since it may have been a directory of manifests (a spurious
/// reload finds the set unchanged and records nothing).
fn concerns_manifests(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        // Not under the root as given (cannot happen with notify's paths): be safe.
        return true;
    };
    let hidden = relative
        .components()
        .any(|c| matches!(c, Component::Normal(name) if name.to_string_lossy().starts_with('.')));
    if hidden {
        return false;
    }
    let Some(name) = relative.file_name() else {
        // The root itself.
        return true;
    };
    let name = name.to_string_lossy();
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        return true;
    }
    // Another name: only a directory (or a path gone, which may have been one) matters.
    match std::fs::metadata(path) {
        Ok(meta) => meta.is_dir(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_loader_reads_concerns_the_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("apps/.hidden")).unwrap();
        std::fs::create_dir_all(root.join(".git/objects/ab")).unwrap();
        for file in [
            "web.yaml",
            "apps/db.yml",
            "README.md",
            "apps/notes.txt",
            ".web.yaml.swp",
            ".git/index",
            "apps/.hidden/x.yaml",
        ] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        let cases = [
            ("", true),
            ("web.yaml", true),
            ("apps/db.yml", true),
            ("apps", true),
            ("gone-dir-or-file", true),
            ("new.yaml", true),
            ("README.md", false),
            ("apps/notes.txt", false),
            (".web.yaml.swp", false),
            (".git", false),
            (".git/index", false),
            (".git/index.lock", false),
            (".git/objects/ab", false),
            (".ballast/ballast.db", false),
            ("apps/.hidden/x.yaml", false),
        ];
        for (path, want) in cases {
            assert_eq!(concerns_manifests(root, &root.join(path)), want, "{path}");
        }
        // Relative roots work the same way, as notify reports paths under the root as given.
        assert!(!concerns_manifests(
            Path::new("manifests"),
            Path::new("manifests/.git/index")
        ));
        assert!(concerns_manifests(
            Path::new("manifests"),
            Path::new("manifests/web.yaml")
        ));
    }
}
