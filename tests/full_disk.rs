//! A full disk, through the real binary: a first load that fails leaves nothing
//! behind, and `enrich` names the output that filled up, how many lines reached
//! it, and still prints its summary. Full disks are small tmpfs mounts (when
//! this runs as root) and `/dev/full` (always).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of `size` mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where mounting is not allowed (not root): the caller says so.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(dir.path()),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            eprintln!("full_disk: cannot mount a tmpfs here (not root?): tmpfs case not run");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn snapshot_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(geoip_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_first_load_that_fails_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"begin\":\"1.2.3.0\"}\n").unwrap();
    // A store directory that did not exist, and one that was empty.
    let missing = tmp.path().join("new-store");
    let e = fails(&["load", "--db", s(&missing), s(&bad)]);
    assert!(e.contains("bad.jsonl:1"), "{e}");
    assert!(
        !missing.exists(),
        "the failed first load left {}",
        missing.display()
    );
    let empty = tmp.path().join("empty-store");
    std::fs::create_dir(&empty).unwrap();
    fails(&["load", "--db", s(&empty), s(&bad)]);
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "left files in the empty directory"
    );

    // A disk that fills up during the first load (the real snapshots need
    // far more than 2 MB).
    if let Some(disk) = Tmpfs::mount("2m") {
        let db = disk.path().join("db");
        let mut args = vec!["load", "--db", s(&db)];
        let files = snapshot_files();
        args.extend(files.iter().map(|p| s(p)));
        let e = fails(&args);
        assert!(e.contains("No space left on device"), "{e}");
        assert!(!db.exists(), "the failed first load left {}", db.display());
        assert_eq!(std::fs::read_dir(disk.path()).unwrap().count(), 0);
    }

    // A store that exists is never removed by a failed load.
    let good = tmp.path().join("v1.jsonl");
    std::fs::write(&good, format!("{}\n", common::daemon::V1)).unwrap();
    let store = tmp.path().join("store");
    ok(&["load", "--db", s(&store), s(&good)]);
    fails(&["load", "--db", s(&store), s(&bad)]);
    assert!(ok(&["lookup", "--db", s(&store), "1.2.3.4"]).contains("AU"));
}

/// A store whose disk fills up while a load writes its table files: the load
/// fails with the reason, the store is as before (verified, same answers), no
/// table file is left behind, and the same load succeeds where there is room.
#[test]
fn a_load_that_fills_the_disk_leaves_the_store_as_before() {
    let files = snapshot_files();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    ok(&["load", "--db", s(&first), s(&files[0])]);
    let probes = [
        "lookup",
        "--db",
        s(&first),
        "--history",
        "1.0.1.5",
        "8.8.8.8",
    ];
    let before = ok(&probes);
    let used: u64 = std::fs::read_dir(&first)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // Room for the store and 1 MB: the other two snapshots' tables need more.
    let Some(disk) = Tmpfs::mount(&format!("{}k", used / 1024 + 1024)) else {
        return;
    };
    let db = disk.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for e in std::fs::read_dir(&first).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), db.join(e.file_name())).unwrap();
    }
    let e = fails(&["load", "--db", s(&db), s(&files[1]), s(&files[2])]);
    assert!(e.contains("No space left on device"), "{e}");
    assert!(!db.join("ingest.tmp").exists(), "table files left behind");
    let verify = ok(&["verify", "--db", s(&db)]);
    assert!(verify.starts_with("ok: 1 snapshots"), "{verify}");
    let probes_db = ["lookup", "--db", s(&db), "--history", "1.0.1.5", "8.8.8.8"];
    assert_eq!(ok(&probes_db), before);

    // Where there is room, the same load goes through.
    let roomy = tmp.path().join("roomy");
    std::fs::create_dir(&roomy).unwrap();
    for e in std::fs::read_dir(&db).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), roomy.join(e.file_name())).unwrap();
        }
    }
    ok(&["load", "--db", s(&roomy), s(&files[1]), s(&files[2])]);
    let verify = ok(&["verify", "--db", s(&roomy)]);
    assert!(verify.starts_with("ok: 3 snapshots"), "{verify}");
}

/// The real access log, enriched into `output`: (success, stderr).
fn enrich_into(output: &Path, extra: &[&str]) -> (bool, String) {
    let log = shared_data().join("logs/accept-apache_logs.log");
    let mut args = vec!["enrich", "--db", s(geoip_store()), "--output", s(output)];
    args.extend(extra);
    args.push(s(&log));
    let out = run(&args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enrich_on_a_full_disk_names_the_output_and_what_reached_it() {
    // An output that takes nothing.
    let (success, e) = enrich_into(Path::new("/dev/full"), &[]);
    assert!(!success);
    assert!(
        e.contains("cannot write to the output file /dev/full: No space left on device"),
        "{e}"
    );
    assert!(e.contains("; 0 whole lines were written to it"), "{e}");
    assert!(
        e.contains("whipstream enrich: ") && e.contains(" lines read, "),
        "no summary: {e}"
    );

    // An output that fills up part way: the count is what the file holds.
    if let Some(disk) = Tmpfs::mount("256k") {
        let output = disk.path().join("out.jsonl");
        let (success, e) = enrich_into(&output, &[]);
        assert!(!success);
        let name = format!("cannot write to the output file {}", output.display());
        assert!(e.contains(&name), "{e}");
        let held = std::fs::read(&output).unwrap();
        let lines = held.iter().filter(|&&b| b == b'\n').count();
        assert!(lines > 0, "some lines fit");
        assert!(
            e.contains(&format!("; {lines} whole lines were written to it")),
            "{lines} lines in the file: {e}"
        );
        assert!(e.contains(" lines read, "), "no summary: {e}");
    }
}

#[test]
fn dead_letters_on_a_full_disk_name_their_file() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("bad.log");
    std::fs::write(&log, "not a log line\n".repeat(10)).unwrap();
    let out = run(
        &[
            "enrich",
            "--db",
            s(geoip_store()),
            "--output",
            s(&tmp.path().join("out.jsonl")),
            "--dead-letter",
            "/dev/full",
            s(&log),
        ],
        None,
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("cannot write to the dead-letter file /dev/full: No space left on device"),
        "{e}"
    );
    assert!(e.contains(" lines read, "), "no summary: {e}");
}
