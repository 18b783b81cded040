//! The persisted index file, through the real binary: a truncated file, flipped
//! bytes and a file older than the store are each detected, rebuilt from the store
//! and answered from correctly; `verify` tells; and a `serve` process sees a load
//! made by another process without a restart.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const INDEX: &str = "whipstream.index";

fn snapshot_files() -> Vec<PathBuf> {
    let mut f: Vec<_> = std::fs::read_dir(geoip_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    f.sort();
    f
}

/// Queries over the three snapshots' time span: addresses of the shared
/// acceptance log at several instants.
fn queries() -> String {
    let expected =
        read_text(&shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"));
    let mut out = String::new();
    for (i, l) in expected.lines().step_by(40).enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = ["2024-01-01", "2025-06-01", "2030-01-01"][i % 3];
        out.push_str(&format!(
            "{}\n",
            serde_json::json!({"ip": v["ip"], "t": v["t"]})
        ));
        out.push_str(&format!("{}\n", serde_json::json!({"ip": v["ip"], "t": t})));
    }
    out
}

/// `lookup --batch` answers and the log it wrote.
fn answers(db: &Path, queries: &str) -> (String, String) {
    let out = run(
        &["lookup", "--db", s(db), "--batch"],
        Some(queries.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A private copy of the shared three-snapshot store and its answers.
fn store_copy(work: &Path, name: &str) -> PathBuf {
    let db = work.join(name);
    copy_dir(geoip_store(), &db);
    db
}

fn index_ok(db: &Path) -> bool {
    let out = run(&["verify", "--db", s(db)], None);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("index file ok")
}

#[test]
fn a_load_leaves_a_valid_index_file_that_the_next_open_maps() {
    let work = tempfile::tempdir().unwrap();
    let db = store_copy(work.path(), "db");
    assert!(db.join(INDEX).is_file());
    assert!(index_ok(&db));
    let before = std::fs::metadata(db.join(INDEX))
        .unwrap()
        .modified()
        .unwrap();
    let (_, log) = answers(&db, &queries());
    assert!(!log.contains("rebuilding"), "{log}");
    let after = std::fs::metadata(db.join(INDEX))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a valid index file is not rewritten");
}

#[test]
fn a_truncated_index_file_is_rebuilt_and_answers_stay_right() {
    let work = tempfile::tempdir().unwrap();
    let db = store_copy(work.path(), "db");
    let q = queries();
    let (expected, _) = answers(&db, &q);
    let path = db.join(INDEX);
    for len in [100u64, std::fs::metadata(&path).unwrap().len() - 1] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let status = run(&["verify", "--db", s(&db)], None);
        assert!(!status.status.success(), "verify must fail at length {len}");
        let (got, log) = answers(&db, &q);
        assert!(
            log.contains("corrupt") && log.contains("rebuilding"),
            "{len}: {log}"
        );
        assert_eq!(got, expected, "truncated to {len}");
        assert!(index_ok(&db), "rebuilt and persisted after length {len}");
    }
}

#[test]
fn flipped_bytes_are_detected_and_the_index_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let db = store_copy(work.path(), "db");
    let q = queries();
    let (expected, _) = answers(&db, &q);
    let path = db.join(INDEX);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    // In the header, the snapshot list, and spread over the sections after it.
    let mut places = vec![20, 4096 + 10];
    places.extend((1..5).map(|k| 4096 + k * (len - 4096) / 5 + k));
    for (n, at) in places.into_iter().enumerate() {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        if n % 2 == 0 {
            let v = run(&["verify", "--db", s(&db)], None);
            assert!(!v.status.success(), "verify must fail for byte {at}");
        }
        let (got, log) = answers(&db, &q);
        assert!(log.contains("rebuilding"), "byte {at}: {log}");
        assert_eq!(got, expected, "byte {at} flipped");
        assert!(index_ok(&db), "rebuilt after byte {at}");
    }
}

#[test]
fn an_index_file_older_than_the_store_is_rebuilt() {
    let files = snapshot_files();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    ok(&["load", "--db", s(&db), s(&files[0])]);
    let old = std::fs::read(db.join(INDEX)).unwrap();
    ok(&["load", "--db", s(&db), s(&files[1]), s(&files[2])]);
    let q = queries();
    let (expected, _) = answers(geoip_store(), &q);
    std::fs::write(db.join(INDEX), &old).unwrap();
    let v = ok(&["verify", "--db", s(&db)]);
    assert!(
        v.contains("rebuilt on the next open") && v.contains("stale"),
        "{v}"
    );
    let (got, log) = answers(&db, &q);
    assert!(log.contains("stale") && log.contains("rebuilding"), "{log}");
    assert_eq!(got, expected);
    assert!(index_ok(&db));
    // And a missing file is built again too.
    std::fs::remove_file(db.join(INDEX)).unwrap();
    let (got, log) = answers(&db, &q);
    assert!(log.contains("no index file"), "{log}");
    assert_eq!(got, expected);
    assert!(index_ok(&db));
}

/// A `serve` process whose stderr is scanned for its address and kept drained.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(db: &Path) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--db", s(db), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "serve ended");
            if let Some(a) = line.trim().rsplit_once("http://") {
                break a.1.to_string();
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server { child, addr }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = http_get(&self.addr, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits (up to a minute on a slow machine) until `check` holds.
    fn wait_for(&self, what: &str, check: impl Fn(&Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_sees_a_load_made_by_another_process() {
    let files = snapshot_files();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    ok(&["load", "--db", s(&db), s(&files[0])]);
    let server = Server::start(&db);
    let snapshots = |srv: &Server| srv.get("/healthz")["snapshots"].as_u64();
    assert_eq!(snapshots(&server), Some(1));
    // An address whose latest record the later snapshots change.
    let q = queries();
    let ip = q
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ip"].clone())
        .find(|ip| {
            let ip = ip.as_str().unwrap();
            let one = ok(&["lookup", "--db", s(&db), ip]);
            let all = ok(&["lookup", "--db", s(geoip_store()), ip]);
            one != all
        })
        .expect("an address that changes");
    let ip = ip.as_str().unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&ok(&["lookup", "--db", s(geoip_store()), ip])).unwrap();

    ok(&["load", "--db", s(&db), s(&files[1]), s(&files[2])]);
    server.wait_for("the new snapshots", |srv| snapshots(srv) == Some(3));
    assert_eq!(server.get(&format!("/ip/{ip}")), want);
}

#[test]
fn serve_rebuilds_an_index_whose_body_was_corrupted_after_it_was_mapped() {
    let work = tempfile::tempdir().unwrap();
    let db = store_copy(work.path(), "db");
    // Flip a byte in the body and keep the header valid: opening checks only
    // the header, the background check reads every section.
    let path = db.join(INDEX);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let server = Server::start(&db);
    server.wait_for("the rebuilt index file", |_| index_ok(&db));
    let ip = "1.0.1.5";
    let want: serde_json::Value =
        serde_json::from_str(&ok(&["lookup", "--db", s(geoip_store()), ip])).unwrap();
    assert_eq!(server.get(&format!("/ip/{ip}")), want);
}
