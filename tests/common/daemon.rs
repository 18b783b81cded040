//! A running `whipstream run` daemon for tests: stdin, stdout and stderr
//! wired up, its HTTP address read from its first line, helpers to wait on it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, http_get};

pub const V1: &str =
    r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#;
pub const V2: &str =
    r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-06-01T00:00:00Z","cc":"NZ"}"#;

/// A combined-log line for 1.2.3.4 at `day` (e.g. "01/Mar/2024").
pub fn line(n: usize, day: &str) -> String {
    format!("1.2.3.4 - - [{day}:10:00:00 +0000] \"GET /{n} HTTP/1.1\" 200 5 \"-\" \"ua\"\n")
}

/// Puts a snapshot in `dir` the way writers must: a hidden name, then a rename.
pub fn drop_snapshot(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub struct Daemon {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub addr: String,
    /// Enriched lines as they come.
    pub out: mpsc::Receiver<String>,
    /// Everything on stderr, once the process ended.
    err: mpsc::Receiver<String>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    /// As [`Daemon::start`], with these environment variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        // Loads run at normal priority in tests: at the default (idle) a daemon's
        // load waits for an idle core, which a loaded test machine may not have for
        // longer than any wait here; what is tested is what a load does.
        let mut child = Command::new(bin())
            .arg("run")
            .args(args)
            .args(["--load-priority", "normal"])
            .envs(env.iter().copied())
            .env_remove("WHIPSTREAM_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run");
        let stdin = child.stdin.take();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .rsplit("http://")
            .next()
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        let (err_tx, err) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = first;
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            all.push_str(&rest);
            let _ = err_tx.send(all);
        });
        let (out_tx, out) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for l in stdout.lines().map_while(Result::ok) {
                if out_tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            stdin,
            addr,
            out,
            err,
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = http_get(&self.addr, path);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics").2
    }

    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The next `n` enriched lines.
    pub fn take(&self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let l = self
                    .out
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("enriched line {i} of {n} not written"));
                serde_json::from_str(&l).unwrap()
            })
            .collect()
    }

    /// Waits until `check` holds of the daemon (polling), or fails with `what`.
    pub fn wait_for(&self, what: &str, check: impl Fn(&Daemon) -> bool) {
        let started = Instant::now();
        while !check(self) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn snapshots(&self) -> u64 {
        self.get("/healthz").1["datasets"]["geo"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Completed scans of data set "geo"'s watched directory.
    pub fn scans(&self) -> f64 {
        counter(
            &self.metrics(),
            r#"whipstream_watch_scans_total{dataset="geo"}"#,
        )
    }

    /// SIGTERM; returns (exit success, stderr, lines written after the signal).
    pub fn stop(mut self) -> (bool, String, Vec<String>) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let stderr = self
            .err
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        let rest: Vec<String> = self.out.try_iter().collect();
        (status.success(), stderr, rest)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts a metric's value in Prometheus text (0 when absent).
#[track_caller]
pub fn assert_metric(metrics: &str, name_and_labels: &str, want: f64) {
    assert_eq!(
        counter(metrics, name_and_labels),
        want,
        "{name_and_labels}\n{metrics}"
    );
}

/// A counter's value in Prometheus text, 0 when absent.
pub fn counter(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}
