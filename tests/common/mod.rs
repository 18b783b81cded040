//! Helpers shared by the integration tests: run the real binary, find the shared
//! real data, keep temporary stores that are removed on drop.
#![allow(dead_code)]

pub mod daemon;
pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_whipstream")
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` beside the repository, or `$WHIPSTREAM_SHARED_DATA`.
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("WHIPSTREAM_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let p = manifest_dir().join("../shared/data");
    assert!(
        p.is_dir(),
        "shared data not found at {} (set WHIPSTREAM_SHARED_DATA)",
        p.display()
    );
    p
}

pub fn geoip_dir() -> PathBuf {
    shared_data().join("snapshots/geoip-country")
}

pub fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures").join(name)
}

/// Runs the binary with `args`, optional stdin, and returns its output.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("WHIPSTREAM_DB")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn whipstream");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = si.write_all(&input);
        });
    }
    child.wait_with_output().expect("wait whipstream")
}

/// Runs and asserts success; returns stdout as text.
pub fn ok(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "whipstream {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs and asserts failure; returns stderr as text.
pub fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        !out.status.success(),
        "whipstream {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A store with the three shared geoip-country snapshots, loaded once per test
/// binary and shared read-only (tests that write make their own).
pub fn geoip_store() -> &'static Path {
    static STORE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        ok(&["load", "--db", s(&db), s(&geoip_dir())]);
        dir
    });
    Box::leak(dir.path().join("db").into_boxed_path())
}

/// Reads a possibly gzipped text file.
pub fn read_text(path: &Path) -> String {
    use std::io::Read;
    let bytes = std::fs::read(path).expect("read");
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .expect("gunzip");
        s
    } else {
        String::from_utf8(bytes).expect("utf-8")
    }
}

/// A running binary with piped stdin and its stdout lines arriving on a channel
/// (for tests that check answers come back while stdin stays open).
pub struct Interactive {
    pub child: std::process::Child,
    pub stdin: std::process::ChildStdin,
    pub lines: std::sync::mpsc::Receiver<String>,
}

pub fn interactive(args: &[&str]) -> Interactive {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn whipstream");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Interactive {
        child,
        stdin,
        lines,
    }
}

/// GET `path` from `addr` over HTTP/1.1; returns (status, content type, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let (status, head, body) = http_get_with_headers(addr, path);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == "content-type").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, body)
}

/// GET over HTTP/1.1: (status, the head in lower case, body).
pub fn http_get_with_headers(addr: &str, path: &str) -> (u16, String, String) {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    (
        head[9..12].parse().expect("status"),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

/// Asserts that every line of `path` is JSON that Python's `json` reads strictly:
/// no `NaN`/`Infinity`, no number that overflows to infinity, no lone surrogate
/// (Python accepts one in a string; encoding it as UTF-8 then fails).
pub fn assert_strict_json_lines(path: &Path) {
    const CHECK: &str = r#"
import json, math, sys
def const(name):
    raise ValueError("not JSON: " + name)
def number(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range: " + text[:40])
    return value
with open(sys.argv[1], "rb") as f:
    for n, raw in enumerate(f, 1):
        try:
            value = json.loads(raw, parse_constant=const, parse_float=number)
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except Exception as e:
            sys.exit("line %d: %s" % (n, e))
"#;
    let out = Command::new("python3")
        .args(["-c", CHECK, s(path)])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
