//! A damaged store, through the real binary, on copies of a real store: a store
//! that lost its `CURRENT` file is called damaged (with how to recover), never
//! "no store"; `whipstream repair` brings it back and says what it kept.

mod common;

use std::path::Path;

use common::*;

/// A copy of the shared real store (three geoip-country snapshots).
fn copy_of_real_store(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(geoip_store()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

const PROBES: [&str; 3] = ["1.0.1.5", "2001:200::1", "8.8.8.8"];

fn answers(db: &Path) -> String {
    let mut args = vec!["lookup", "--db", s(db), "--history"];
    args.extend(PROBES);
    ok(&args)
}

#[test]
fn a_store_without_current_is_damaged_and_repair_keeps_what_it_can() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    copy_of_real_store(&db);
    let before = answers(&db);
    std::fs::remove_file(db.join("CURRENT")).unwrap();

    let how = format!("whipstream repair --db {}", db.display());
    let e = fails(&["lookup", "--db", s(&db), "1.0.1.5"]);
    assert!(e.contains("is damaged") && e.contains(&how), "{e}");
    assert!(!e.contains("no whipstream store"), "{e}");
    // `load` says the same, and writes nothing (no new store over the old files).
    let files_before = std::fs::read_dir(&db).unwrap().count();
    let snapshot = geoip_dir().join(
        std::fs::read_dir(geoip_dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    let e = fails(&["load", "--db", s(&db), s(&snapshot)]);
    assert!(e.contains("is damaged") && e.contains(&how), "{e}");
    assert_eq!(std::fs::read_dir(&db).unwrap().count(), files_before);

    let report = ok(&["repair", "--db", s(&db)]);
    assert!(report.contains("kept 3 snapshots"), "{report}");
    assert!(report.contains("; 0 unreadable table files"), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("kept: ")).count(),
        3,
        "{report}"
    );
    assert_eq!(answers(&db), before, "the repaired store answers as before");
    ok(&["verify", "--db", s(&db)]);
}

#[test]
fn repair_of_a_store_that_lost_its_tables_reports_what_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    copy_of_real_store(&db);
    std::fs::remove_file(db.join("CURRENT")).unwrap();
    let mut tables = 0;
    for entry in std::fs::read_dir(&db).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            // Half of each table: RocksDB cannot read it.
            let len = std::fs::metadata(&path).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(len / 2).unwrap();
            tables += 1;
        }
    }
    assert!(tables > 0, "the real store has table files");
    let out = run(&["repair", "--db", s(&db)], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Whatever was kept is said, with how many files could not be used; a
    // store that does not check out is an error that says what to do.
    assert!(
        stdout.contains(&format!("; {tables} unreadable table files moved to")),
        "{stdout}{stderr}"
    );
    if !out.status.success() {
        assert!(stderr.contains("load the snapshot files again"), "{stderr}");
    }
    // Whatever it says, it is now an openable store, never a silent wrong one.
    let verify = run(&["verify", "--db", s(&db)], None);
    assert_eq!(verify.status.success(), out.status.success(), "{stdout}");
}
