//! Remote snapshot sources, through the binary: `whipstream run --watch
//! geo=s3://...` against a real local S3 server (moto's server mode, installed
//! by `scripts/kafka-broker.sh install` as scripts/test.sh does), and `--watch
//! geo=http://...` against a small HTTP server written here (with and without
//! ETag support, and one that cuts its transfers short). The snapshots are the
//! real ones in ../shared/data.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;

/// The three shared country snapshots, oldest first, with their dates.
fn snapshots() -> [(PathBuf, &'static str); 3] {
    let dir = geoip_dir();
    [
        (
            dir.join("geoip-country-202410012341.jsonl.gz"),
            "2024-10-01",
        ),
        (
            dir.join("geoip-country-202605270000.jsonl.gz"),
            "2026-05-27",
        ),
        (
            dir.join("geoip-country-202609260156.jsonl.gz"),
            "2026-09-26",
        ),
    ]
}

fn name_of(p: &Path) -> &str {
    p.file_name().unwrap().to_str().unwrap()
}

/// The date of the snapshot answering the latest lookup of 1.0.1.5.
fn latest_date(d: &Daemon) -> String {
    let (status, answer) = d.get("/ip/1.0.1.5");
    assert_eq!(status, 200, "{answer}");
    answer["datetime"].as_str().unwrap_or("")[..10].to_string()
}

fn metric(d: &Daemon, name: &str, outcome: &str) -> f64 {
    counter(
        &d.metrics(),
        &format!("{name}{{dataset=\"geo\",outcome=\"{outcome}\"}}"),
    )
}

fn loads(d: &Daemon) -> f64 {
    metric(d, "whipstream_snapshots_ingested_total", "loaded")
}

fn polls(d: &Daemon) -> f64 {
    metric(d, "whipstream_remote_polls_total", "ok")
        + metric(d, "whipstream_remote_polls_total", "failed")
}

/// Waits until the daemon has polled its source `n` more times (so that what
/// is asserted next held over several polls).
fn wait_polls(d: &Daemon, n: f64) {
    let from = polls(d);
    d.wait_for("more polls", |d| polls(d) >= from + n);
}

// ---------------------------------------------------------------- S3 (moto)

/// A moto S3 server on a free port of 127.0.0.1, stopped on drop.
struct S3Server {
    child: Child,
    addr: String,
}

impl S3Server {
    fn start() -> S3Server {
        let cache = std::env::var("WHIPSTREAM_KAFKA_CACHE").map_or_else(
            |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/whipstream-kafka"),
            PathBuf::from,
        );
        let server = cache.join("moto-venv/bin/moto_server");
        assert!(
            server.exists(),
            "{} missing: run `bash scripts/kafka-broker.sh install` (scripts/test.sh does)",
            server.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let s3 = S3Server {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while s3.request("GET", "/", b"").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s3
    }

    /// One request with a dummy signature (moto does not check signatures,
    /// but refuses a DELETE without one); the status.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<u16> {
        let mut conn = TcpStream::connect(&self.addr).ok()?;
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\r\n",
            self.addr,
            body.len()
        )
        .ok()?;
        conn.write_all(body).ok()?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).ok()?;
        std::str::from_utf8(raw.get(9..12)?).ok()?.parse().ok()
    }

    fn delete(&self, bucket: &str, key: &str) {
        assert_eq!(
            self.request("DELETE", &format!("/{bucket}/{key}"), b""),
            Some(204),
            "delete {key}"
        );
    }

    fn bucket(&self, name: &str) {
        assert_eq!(self.request("PUT", &format!("/{name}"), b""), Some(200));
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        assert_eq!(
            self.request("PUT", &format!("/{bucket}/{key}"), body),
            Some(200),
            "put {key}"
        );
    }

    /// The environment a daemon reaches this server with.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://{}", self.addr)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(store: &Path, watch: &str, env: &[(&'static str, String)]) -> Daemon {
    start_with(store, watch, env, &["--poll-seconds", "0.2"])
}

/// A daemon watching `watch` for data set geo, with `extra` flags (the poll
/// interval among them), once ready.
fn start_with(store: &Path, watch: &str, env: &[(&'static str, String)], extra: &[&str]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (db, watch) = (format!("geo={}", s(store)), format!("geo={watch}"));
    let mut args = vec!["--db", &db, "--watch", &watch, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let d = Daemon::start_with_env(&args, &env);
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    d
}

fn hangup(d: &Daemon) {
    let status = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_bucket_is_followed_broken_objects_are_rejected_and_a_restart_loads_nothing_twice() {
    let s3 = S3Server::start();
    s3.bucket("snapshots");
    let [(a, a_date), (b, b_date), (c, c_date)] = snapshots();
    s3.put(
        "snapshots",
        &format!("geo/{}", name_of(&a)),
        &std::fs::read(&a).unwrap(),
    );
    s3.put("snapshots", "geo/README.txt", b"not a snapshot");
    s3.put("snapshots", "elsewhere.jsonl", b"{}\n");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("geo");
    let mirror = tmp.path().join("geo.mirror");

    // Ready only once the bucket's snapshot is loaded.
    let d = start(&store, "s3://snapshots/geo/", &s3.env());
    assert_eq!(d.snapshots(), 1);
    assert_eq!(latest_date(&d), a_date);

    // A new object: loaded while serving, the answers switch.
    s3.put(
        "snapshots",
        &format!("geo/{}", name_of(&b)),
        &std::fs::read(&b).unwrap(),
    );
    d.wait_for("second snapshot", |d| d.snapshots() == 2);
    assert_eq!(latest_date(&d), b_date);
    assert_eq!(
        d.get(&format!("/ip/1.0.1.5?datetime={a_date}T23:59:59Z")).1["datetime"]
            .as_str()
            .unwrap()[..10],
        *a_date
    );

    // Broken objects while serving: a gzip cut short (refused by the download's
    // check) and a whole file that breaks the rules (rejected by the load).
    let whole = std::fs::read(&c).unwrap();
    s3.put("snapshots", "geo/cut.jsonl.gz", &whole[..whole.len() / 2]);
    let bad = format!("{V2}\n{V1}\n");
    s3.put("snapshots", "geo/unordered.jsonl", bad.as_bytes());
    let (cut_error, bad_error) = (
        mirror.join("rejected/cut.jsonl.gz.error"),
        mirror.join("rejected/unordered.jsonl.error"),
    );
    d.wait_for("both rejected", |_| {
        cut_error.exists() && bad_error.exists()
    });
    let reason = std::fs::read_to_string(&cut_error).unwrap();
    assert!(
        reason.contains("cut.jsonl.gz") && reason.contains("gzip"),
        "{reason}"
    );
    let reason = std::fs::read_to_string(&bad_error).unwrap();
    assert!(reason.contains("unordered.jsonl:"), "{reason}");
    assert!(mirror.join("rejected/cut.jsonl.gz").exists());
    assert!(
        !mirror.join("cut.jsonl.gz").exists(),
        "a cut download is loadable"
    );
    assert_eq!(d.snapshots(), 2);
    assert_eq!(latest_date(&d), b_date);
    // Not tried again until they change.
    let mirrored = metric(&d, "whipstream_remote_objects_total", "mirrored");
    wait_polls(&d, 5.0);
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "mirrored"),
        mirrored
    );
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "refused"),
        1.0
    );
    assert_eq!(
        metric(&d, "whipstream_snapshots_ingested_total", "rejected"),
        2.0
    );
    assert_eq!(loads(&d), 2.0);
    assert!(!mirror.join("README.txt").exists());
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("refused cut.jsonl.gz"), "{stderr}");

    // A restart downloads and loads nothing again, and follows the bucket on.
    let d = start(&store, "s3://snapshots/geo/", &s3.env());
    assert_eq!(d.snapshots(), 2);
    wait_polls(&d, 3.0);
    assert_eq!(loads(&d), 0.0);
    assert_eq!(
        metric(&d, "whipstream_snapshots_ingested_total", "rejected"),
        0.0
    );
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "mirrored"),
        0.0
    );
    s3.put("snapshots", &format!("geo/{}", name_of(&c)), &whole);
    d.wait_for("third snapshot", |d| d.snapshots() == 3);
    assert_eq!(latest_date(&d), c_date);
    assert_eq!(loads(&d), 1.0);
}

#[test]
fn sighup_polls_at_once_and_an_object_over_the_size_cap_is_refused_unread() {
    let s3 = S3Server::start();
    s3.bucket("snapshots");
    let [(a, a_date), (b, b_date), (c, _)] = snapshots();
    s3.put("snapshots", name_of(&a), &std::fs::read(&a).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("geo.mirror");
    // Polls an hour apart: only SIGHUP can make the next one come now. The
    // cap lets a and b through (b exactly) and not c.
    let cap = std::fs::metadata(&b).unwrap().len();
    assert!(std::fs::metadata(&c).unwrap().len() > cap);
    let cap = cap.to_string();
    let d = start_with(
        &tmp.path().join("geo"),
        "s3://snapshots",
        &s3.env(),
        &["--poll-seconds", "3600", "--download-max-bytes", &cap],
    );
    assert_eq!(latest_date(&d), a_date);

    s3.put("snapshots", name_of(&b), &std::fs::read(&b).unwrap());
    s3.put("snapshots", name_of(&c), &std::fs::read(&c).unwrap());
    hangup(&d);
    let c_error = mirror.join(format!("rejected/{}.error", name_of(&c)));
    d.wait_for("b loaded and c refused", |d| {
        d.snapshots() == 2 && c_error.exists()
    });
    assert_eq!(latest_date(&d), b_date);
    let reason = std::fs::read_to_string(&c_error).unwrap();
    assert!(
        reason.contains(name_of(&c)) && reason.contains(&format!("size cap of {cap} bytes")),
        "{reason}"
    );
    // Refused without being downloaded: no copy in the mirror nor in rejected/.
    assert!(!mirror.join(name_of(&c)).exists());
    assert!(!mirror.join("rejected").join(name_of(&c)).exists());
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "too_large"),
        1.0
    );
    assert_eq!(
        metric(&d, "whipstream_snapshots_ingested_total", "rejected"),
        1.0
    );
    // Recorded like any refused object: not tried again until it changes.
    let before = polls(&d);
    hangup(&d);
    d.wait_for("another poll", |d| polls(d) > before);
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "too_large"),
        1.0
    );
    assert_eq!((d.snapshots(), loads(&d)), (2, 2.0));
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("SIGHUP: polling remote sources"),
        "{stderr}"
    );
}

#[test]
fn an_object_deleted_from_the_bucket_stays_loaded_and_is_said_once() {
    let s3 = S3Server::start();
    s3.bucket("snapshots");
    let [(a, _), (b, b_date), _] = snapshots();
    for f in [&a, &b] {
        s3.put("snapshots", name_of(f), &std::fs::read(f).unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("geo");
    let d = start(&store, "s3://snapshots", &s3.env());
    assert_eq!(d.snapshots(), 2);

    s3.delete("snapshots", name_of(&b));
    d.wait_for("the deletion seen", |d| {
        metric(d, "whipstream_remote_objects_total", "deleted") == 1.0
    });
    wait_polls(&d, 4.0);
    // Still loaded and answering; nothing downloaded, loaded or rejected.
    assert_eq!(d.snapshots(), 2);
    assert_eq!(latest_date(&d), b_date);
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "deleted"),
        1.0
    );
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "mirrored"),
        2.0
    );
    assert_eq!(loads(&d), 2.0);
    assert_eq!(
        metric(&d, "whipstream_snapshots_ingested_total", "rejected"),
        0.0
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    let said = format!("{} was deleted from the bucket", name_of(&b));
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    assert!(
        !stderr.contains(" ERROR ") && !stderr.contains(" WARN "),
        "{stderr}"
    );

    // A restart neither says it again nor loads anything.
    let d = start(&store, "s3://snapshots", &s3.env());
    wait_polls(&d, 3.0);
    assert_eq!((d.snapshots(), loads(&d)), (2, 0.0));
    assert_eq!(
        metric(&d, "whipstream_remote_objects_total", "deleted"),
        0.0
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(!stderr.contains(&said), "{stderr}");
}

#[test]
fn two_daemons_on_one_bucket_converge_and_answer_alike() {
    let s3 = S3Server::start();
    s3.bucket("shared");
    let [(a, _), (b, _), (c, c_date)] = snapshots();
    for f in [&a, &b] {
        s3.put("shared", name_of(f), &std::fs::read(f).unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let one = start(&tmp.path().join("one"), "s3://shared", &s3.env());
    let two = start(&tmp.path().join("two"), "s3://shared/", &s3.env());
    assert_eq!((one.snapshots(), two.snapshots()), (2, 2));
    s3.put("shared", name_of(&c), &std::fs::read(&c).unwrap());
    for d in [&one, &two] {
        d.wait_for("third snapshot", |d| d.snapshots() == 3);
        assert_eq!(latest_date(d), c_date);
    }
    let mut answered = 0;
    for ip in [
        "1.0.1.5",
        "8.8.8.8",
        "81.2.69.160",
        "2001:200::1",
        "2a00:1450::1",
        "203.0.113.9",
    ] {
        for at in [
            "",
            "?datetime=2025-01-01",
            "?datetime=2026-06-01",
            "?datetime=all",
        ] {
            let path = format!("/ip/{ip}{at}");
            let (x, y) = (one.get(&path), two.get(&path));
            assert_eq!(x, y, "{path}");
            answered += usize::from(x.1.get("begin").is_some() || x.1.get("history").is_some());
        }
    }
    assert!(answered >= 15, "too few answers to compare: {answered}");
}

// ------------------------------------------------------ HTTP (served here)

/// What the test server sends for its one file.
#[derive(Clone)]
struct Served {
    body: Vec<u8>,
    /// Sent as `ETag` and honoured in `If-None-Match`; none: every GET is a 200.
    etag: Option<String>,
    /// Announce the whole length but send only this many bytes.
    cut_at: Option<usize>,
}

/// A one-file HTTP/1.1 server on 127.0.0.1, counting the bodies it sends.
struct FileServer {
    addr: String,
    served: Arc<Mutex<Served>>,
    bodies: Arc<AtomicUsize>,
}

impl FileServer {
    fn start(first: Served) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = Arc::new(Mutex::new(first));
        let bodies = Arc::new(AtomicUsize::new(0));
        let (s, n) = (served.clone(), bodies.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, n) = (s.clone(), n.clone());
                std::thread::spawn(move || answer(conn, &s, &n));
            }
        });
        FileServer {
            addr,
            served,
            bodies,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/data/geo.jsonl.gz", self.addr)
    }

    fn serve(&self, next: Served) {
        *self.served.lock().unwrap() = next;
    }

    fn bodies(&self) -> usize {
        self.bodies.load(Ordering::SeqCst)
    }
}

fn answer(mut conn: TcpStream, served: &Mutex<Served>, bodies: &AtomicUsize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let if_none_match = head
        .lines()
        .find_map(|l| l.strip_prefix("if-none-match:"))
        .map(|v| v.trim().to_string());
    let s = served.lock().unwrap().clone();
    if let Some(etag) = &s.etag {
        if if_none_match.as_deref() == Some(etag.to_ascii_lowercase().as_str()) {
            let _ = write!(
                conn,
                "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
            );
            return;
        }
    }
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n",
        s.body.len()
    );
    if let Some(etag) = &s.etag {
        response.push_str(&format!("ETag: {etag}\r\n"));
    }
    response.push_str("\r\n");
    bodies.fetch_add(1, Ordering::SeqCst);
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.write_all(&s.body[..s.cut_at.unwrap_or(s.body.len())]);
}

fn served(path: &Path, etag: Option<&str>) -> Served {
    Served {
        body: std::fs::read(path).unwrap(),
        etag: etag.map(str::to_string),
        cut_at: None,
    }
}

fn http_env() -> Vec<(&'static str, String)> {
    vec![("NO_PROXY", "127.0.0.1,localhost".into())]
}

#[test]
fn an_http_file_with_an_etag_is_loaded_once_per_version() {
    let [(a, a_date), (b, b_date), _] = snapshots();
    let server = FileServer::start(served(&a, Some("\"v1\"")));
    let tmp = tempfile::tempdir().unwrap();
    let d = start(&tmp.path().join("geo"), &server.url(), &http_env());
    assert_eq!(latest_date(&d), a_date);
    // Unchanged: asked for, never sent again, never reloaded.
    wait_polls(&d, 4.0);
    assert_eq!(server.bodies(), 1);
    assert_eq!(loads(&d), 1.0);

    server.serve(served(&b, Some("\"v2\"")));
    d.wait_for("second version", |d| d.snapshots() == 2);
    assert_eq!(latest_date(&d), b_date);
    wait_polls(&d, 4.0);
    assert_eq!((server.bodies(), loads(&d)), (2, 2.0));
    // Each version is a file of its own in the mirror.
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("geo.mirror"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files
        .iter()
        .all(|f| f.starts_with("geo.") && f.ends_with(".jsonl.gz")));
}

#[test]
fn an_http_file_without_an_etag_is_never_reloaded_unchanged() {
    let [(a, a_date), (b, b_date), _] = snapshots();
    let server = FileServer::start(served(&a, None));
    let tmp = tempfile::tempdir().unwrap();
    let d = start(&tmp.path().join("geo"), &server.url(), &http_env());
    assert_eq!(latest_date(&d), a_date);
    // Sent in full every poll, recognised by its checksum.
    wait_polls(&d, 4.0);
    assert!(server.bodies() >= 4, "{}", server.bodies());
    assert_eq!(loads(&d), 1.0);
    assert!(metric(&d, "whipstream_remote_objects_total", "unchanged") >= 3.0);

    server.serve(served(&b, None));
    d.wait_for("changed file", |d| d.snapshots() == 2);
    assert_eq!(latest_date(&d), b_date);
    wait_polls(&d, 3.0);
    assert_eq!(loads(&d), 2.0);
}

#[test]
fn a_truncated_download_is_refused() {
    let [(a, a_date), (b, b_date), _] = snapshots();
    // The connection is closed halfway through the announced length: a new
    // daemon with an empty store is not ready (a lookup is a 503, not `{}`).
    let mut cut = served(&a, Some("\"v1\""));
    cut.cut_at = Some(cut.body.len() / 2);
    let server = FileServer::start(cut);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("geo");
    let env: Vec<(&str, String)> = http_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start_with_env(
        &[
            "--db",
            &format!("geo={}", s(&store)),
            "--watch",
            &format!("geo={}", server.url()),
            "--listen",
            "127.0.0.1:0",
            "--poll-seconds",
            "0.2",
        ],
        &env,
    );
    d.wait_for("a failed download", |d| {
        metric(d, "whipstream_remote_objects_total", "failed") >= 1.0
    });
    assert_eq!(d.get("/readyz").0, 503);
    assert_eq!(d.get("/ip/1.0.1.5").0, 503);
    let mirror = tmp.path().join("geo.mirror");
    let loadable = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.path().is_file())
            .count()
    };
    assert_eq!(loadable(&mirror), 0);

    // Whole again: loaded, ready.
    server.serve(served(&a, Some("\"v1\"")));
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    assert_eq!(latest_date(&d), a_date);

    // A version that is complete by its length but is a gzip cut short (the
    // object itself is broken): refused into rejected/, kept serving, and not
    // fetched again until it changes.
    let whole = std::fs::read(&b).unwrap();
    server.serve(Served {
        body: whole[..whole.len() - 100].to_vec(),
        etag: Some("\"v2-broken\"".into()),
        cut_at: None,
    });
    d.wait_for("refused", |d| {
        metric(d, "whipstream_remote_objects_total", "refused") == 1.0
    });
    let sent = server.bodies();
    wait_polls(&d, 4.0);
    assert_eq!(server.bodies(), sent);
    assert_eq!(d.snapshots(), 1);
    assert_eq!(latest_date(&d), a_date);
    let rejected: Vec<String> = std::fs::read_dir(mirror.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected.iter().any(|n| n.ends_with(".jsonl.gz.error")),
        "{rejected:?}"
    );

    server.serve(served(&b, Some("\"v2\"")));
    d.wait_for("fixed version", |d| d.snapshots() == 2);
    assert_eq!(latest_date(&d), b_date);
}
