//! `kill -9` at random moments of a real `load`: the store is always as before or
//! as after the load, never between (checked with `verify` and lookups), and so
//! is the index file: a kill while it is written leaves the previous file, which
//! is either still right (killed before the commit) or recognised as stale and
//! rebuilt by the next open; never a half-written file in use. Table files a
//! killed commit left are removed by the next load.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Answers for a fixed sample of real (ip, t) queries.
fn answers(db: &Path, queries: &[u8]) -> String {
    let out = run(&["lookup", "--db", s(db), "--batch"], Some(queries));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn snapshot_files(db: &Path) -> String {
    ok(&["snapshots", "--db", s(db), "--json"])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}\n", v["datetime"], v["sha256"])
        })
        .collect()
}

/// A small deterministic generator (xorshift) so a failing run can be repeated.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_during_load_leaves_the_store_before_or_after() {
    let files: Vec<_> = {
        let mut f: Vec<_> = std::fs::read_dir(geoip_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        f.sort();
        f
    };
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    ok(&["load", "--db", s(&base), s(&files[0])]);

    let expected =
        read_text(&shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"));
    let queries: String = expected
        .lines()
        .step_by(50)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}\n", serde_json::json!({"ip": v["ip"], "t": v["t"]}))
        })
        .collect();
    let before = (snapshot_files(&base), answers(&base, queries.as_bytes()));
    let full = geoip_store();
    let after = (snapshot_files(full), answers(full, queries.as_bytes()));
    assert_ne!(before, after);

    // How long an uninterrupted load of the other two snapshots takes.
    let timing = work.path().join("timing");
    copy_dir(&base, &timing);
    let t0 = Instant::now();
    ok(&["load", "--db", s(&timing), s(&files[1]), s(&files[2])]);
    let full_load = t0.elapsed();

    let seed: u64 = std::env::var("WHIPSTREAM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    let mut rng = Rng(seed);
    let rounds = 8;
    let (mut saw_before, mut saw_after, mut saw_leftovers) = (0, 0, 0);
    for round in 0..rounds {
        let db = work.path().join(format!("round{round}"));
        copy_dir(&base, &db);
        // Points spread over the whole load, the last round past its end.
        let frac = (rng.next() % 1000) as f64 / 1000.0;
        let delay = full_load.mul_f64(if round == rounds - 1 { 3.0 } else { frac * 1.1 });
        let mut child = Command::new(bin())
            .args(["load", "--db", s(&db), s(&files[1]), s(&files[2])])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();

        let verify = ok(&["verify", "--db", s(&db)]);
        assert!(verify.starts_with("ok:"), "round {round}: {verify}");
        let index_state = if verify.contains("index file ok") {
            "valid"
        } else {
            "stale or missing"
        };
        let state = (snapshot_files(&db), answers(&db, queries.as_bytes()));
        // The lookups above opened the store: its index file is valid now.
        let verify = ok(&["verify", "--db", s(&db)]);
        assert!(
            verify.contains("index file ok"),
            "round {round} (index was {index_state}): {verify}"
        );
        if state == before {
            saw_before += 1;
        } else if state == after {
            saw_after += 1;
        } else {
            panic!(
                "round {round} (seed {seed}, killed after {delay:?}, {status}): store is neither before nor after\n{}",
                state.0
            );
        }
        // Table files of a commit killed while they were written: the next
        // load removes them, and goes through.
        if db.join("ingest.tmp").exists() {
            saw_leftovers += 1;
            ok(&["load", "--db", s(&db), s(&files[1]), s(&files[2])]);
            assert!(!db.join("ingest.tmp").exists(), "round {round}");
            let state = (snapshot_files(&db), answers(&db, queries.as_bytes()));
            assert!(state == after, "round {round}: the load after the kill");
        }
        std::fs::remove_dir_all(&db).unwrap();
    }
    eprintln!(
        "kill test (seed {seed}, load takes {full_load:?}): {saw_before} rounds before, {saw_after} after, {saw_leftovers} left table files"
    );
    assert_eq!(saw_before + saw_after, rounds);
    assert!(
        saw_after >= 1,
        "the round killed after the end must see the load"
    );
}
