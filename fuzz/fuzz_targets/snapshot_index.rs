//! Fuzzes the snapshot path a load takes: snapshot lines are read and
//! validated, merged into a history, indexed, and looked up. No input may
//! panic; an accepted file must merge and index, and every range it holds must
//! answer at its datetime.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whipstream::history::{History, Interner, SnapshotMeta};
use whipstream::index::Index;
use whipstream::snapshot::SnapshotFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Up to two snapshot files separated by a form feed: the second merges
    // into the history of the first.
    let mut history = History::default();
    let mut interner = Interner::default();
    let mut files = Vec::new();
    for (n, part) in text.splitn(2, '\x0c').enumerate() {
        let Ok(file) = SnapshotFile::from_lines(&format!("f{n}"), part) else {
            continue;
        };
        let meta = SnapshotMeta::of_file(&file);
        if history.merge(&mut interner, &file, meta, false).is_ok() {
            files.push(file);
        }
    }
    let index = match Index::build(&history, Default::default()) {
        Ok(index) => index,
        Err(e) => panic!("a merged history must be indexable: {e}"),
    };
    for file in &files {
        for range in file.ranges.iter() {
            let found = index.at(range.begin, file.datetime);
            assert!(found.is_some() || index.snapshot_count() == 0, "a loaded range must answer");
            let _ = index.history_of(range.end);
        }
    }
});
