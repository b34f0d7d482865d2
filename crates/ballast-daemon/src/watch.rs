//! Watching the manifest directory: every file event (an editor's save-by-rename, a `git pull`
//! rewriting many files, files created, moved or deleted) ends in one reload once the tree has
//! been quiet for the debounce time.

use std::path::Path;
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
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Access events (a read) change nothing; everything else may.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
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
