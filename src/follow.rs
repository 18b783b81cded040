//! Following a store that other processes load into: a long-running process
//! (`serve`, `run`) keeps its [`SharedIndex`] current without a restart.
//!
//! A follower thread watches the store's index file ([`crate::index_file`]):
//! every load writes a new file by rename, so a change of the file's identity
//! (inode, size, modification time) means a new state. The follower then opens
//! the store's index the way a new process would (the file is checked against the
//! store's state and rebuilt if it does not match) and swaps it in, unless the
//! index in use is already as new (this process's own loads swap theirs in
//! first). It also reads every section checksum of each index it adopts, in the
//! background, and rebuilds from the store if one fails, so a flipped byte in the
//! file is caught even though opening only checks the header.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::index::{Index, SharedIndex};
use crate::index_file::{self, Check};
use crate::store::StoreState;

/// How often the index file is looked at: a load by another process is seen
/// within this (plus the time to map the new file).
pub const POLL: Duration = Duration::from_millis(500);

/// What identifies one version of the index file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

fn file_id(path: &Path) -> Option<FileId> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileId {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
    })
}

/// Does an index of state `new` replace one of state `current`?
fn supersedes(new: StoreState, current: StoreState) -> bool {
    new.id != current.id || new.generation > current.generation
}

/// Swaps `index` in unless the one in use is already as new; says whether it did.
fn adopt(shared: &SharedIndex, index: Index) -> bool {
    let index = Arc::new(index);
    let mut adopted = false;
    shared.rcu(|current| {
        adopted = supersedes(index.state(), current.state());
        if adopted {
            index.clone()
        } else {
            current.clone()
        }
    });
    adopted
}

/// Reads every checksum of the index in use; on a failure rebuilds it from the
/// store and swaps the rebuilt one in.
fn check_in_use(db: &Path, shared: &SharedIndex, dataset: &str) {
    let current = shared.load_full();
    if !current.image().is_mapped() {
        return; // built in this process, never read from disk
    }
    if let Err(e) = current.image().check_full() {
        tracing::error!(dataset, "{e}: rebuilding the index from the store");
        match index_file::open(db, Check::Full) {
            Ok(index) => {
                shared.store(Arc::new(index));
            }
            Err(e) => tracing::error!(dataset, "cannot rebuild the index: {e}"),
        }
    }
}

/// Starts following the store at `db` for `shared` until `stop` is raised. The
/// index in use is checked in full first.
pub fn spawn(
    dataset: &str,
    db: &Path,
    shared: SharedIndex,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (dataset, db): (String, PathBuf) = (dataset.to_string(), db.to_path_buf());
    std::thread::Builder::new()
        .name(format!("follow {dataset}"))
        .spawn(move || {
            let path = db.join(index_file::FILE_NAME);
            let mut seen = file_id(&path);
            check_in_use(&db, &shared, &dataset);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                let now = file_id(&path);
                if now == seen || now.is_none() {
                    continue;
                }
                seen = now;
                match index_file::open(&db, Check::Header) {
                    Ok(index) => {
                        let snapshots = index.snapshot_count();
                        if adopt(&shared, index) {
                            tracing::info!(
                                dataset,
                                "{}: new index in use ({snapshots} snapshot(s))",
                                db.display()
                            );
                            let i = shared.load();
                            crate::telemetry::index_in_use(
                                i.snapshot_count(),
                                i.piece_count(),
                                i.line_count(),
                            );
                            check_in_use(&db, &shared, &dataset);
                        }
                    }
                    // Another process is creating the store, or it went away:
                    // keep answering from the index in use.
                    Err(e) => tracing::warn!(dataset, "cannot open the new index: {e}"),
                }
            }
        })
        .unwrap_or_else(|e| {
            tracing::error!("cannot start the follower thread: {e}");
            std::thread::spawn(|| {})
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_states_and_other_stores_supersede() {
        let s = |id, generation| StoreState { id, generation };
        assert!(supersedes(s(1, 3), s(1, 2)));
        assert!(!supersedes(s(1, 2), s(1, 2)));
        assert!(!supersedes(s(1, 2), s(1, 3)));
        assert!(supersedes(s(2, 1), s(1, 5)));
    }
}
