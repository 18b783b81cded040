//! Symbolic links in directories whipstream reads, through the real binary: a
//! watched snapshot directory and an `enrich` log directory follow links to
//! files; a dangling link is an error that names it, never a file skipped
//! silently.

mod common;

use common::daemon::{line, Daemon, V1, V2};
use common::*;

#[test]
fn a_watched_directory_loads_linked_snapshots_and_names_a_dangling_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch, releases) = (
        tmp.path().join("store"),
        tmp.path().join("incoming"),
        tmp.path().join("releases"),
    );
    std::fs::create_dir(&watch).unwrap();
    std::fs::create_dir(&releases).unwrap();
    std::fs::write(releases.join("v1.jsonl"), format!("{V1}\n")).unwrap();
    std::fs::write(releases.join("v2.jsonl"), format!("{V2}\n")).unwrap();
    std::os::unix::fs::symlink(releases.join("v1.jsonl"), watch.join("geo-1.jsonl")).unwrap();
    std::os::unix::fs::symlink(releases.join("v2.jsonl"), watch.join("geo-2.jsonl")).unwrap();
    std::os::unix::fs::symlink(releases.join("gone.jsonl"), watch.join("geo-3.jsonl")).unwrap();
    let d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--poll-seconds",
        "0.2",
        "--settle-seconds",
        "0",
    ]);
    d.wait_for("both linked snapshots loaded", |d| d.snapshots() == 2);
    assert_eq!(d.get("/ip/1.2.3.4?datetime=2024-03-01").1["cc"], "AU");
    assert_eq!(d.get("/ip/1.2.3.4").1["cc"], "NZ");
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    let dangling = watch.join("geo-3.jsonl").display().to_string();
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&dangling) && l.contains("dangling symbolic link"))
        .collect();
    assert_eq!(named.len(), 1, "named once, not at every scan: {stderr}");
    // The links and their targets are where they were: nothing rejected.
    assert!(!watch.join("rejected").exists());
    assert!(watch.join("geo-1.jsonl").exists());
}

#[test]
fn enrich_reads_linked_log_files_in_a_directory_and_names_a_dangling_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, logs, real) = (
        tmp.path().join("store"),
        tmp.path().join("logs"),
        tmp.path().join("real"),
    );
    std::fs::create_dir(&logs).unwrap();
    std::fs::create_dir(&real).unwrap();
    let snapshot = tmp.path().join("v1.jsonl");
    std::fs::write(&snapshot, format!("{V1}\n")).unwrap();
    ok(&["load", "--db", s(&store), s(&snapshot)]);
    std::fs::write(real.join("a.log"), line(1, "01/Mar/2024")).unwrap();
    std::fs::write(logs.join("b.log"), line(2, "01/Mar/2024")).unwrap();
    std::os::unix::fs::symlink(real.join("a.log"), logs.join("a.log")).unwrap();

    let out = ok(&["enrich", "--db", s(&store), "--no-line", s(&logs)]);
    let paths: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["whip"]["cc"], "AU", "{l}");
            v["path"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        paths,
        ["/1", "/2"],
        "the linked file is read, in name order"
    );

    std::os::unix::fs::symlink(real.join("nowhere.log"), logs.join("c.log")).unwrap();
    let err = fails(&["enrich", "--db", s(&store), "--no-line", s(&logs)]);
    assert!(
        err.contains(&format!(
            "{}: dangling symbolic link",
            logs.join("c.log").display()
        )),
        "{err}"
    );
}
