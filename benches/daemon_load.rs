//! Driver for `benches/daemon-bench.sh`: enrichment while a snapshot is loaded.
//!
//!   daemon-load WHIPSTREAM STORE WATCH SNAPSHOT LOG flood|paced:LINES_PER_S [RUN_ARG...]
//!
//! Starts `WHIPSTREAM run` on STORE with WATCH watched, feeds LOG's lines to its
//! stdin (as fast as it takes them, or in batches every 10 ms at the given rate),
//! and reads its output. After 6 s it renames SNAPSHOT (already copied into
//! WATCH under a hidden name) into place, notes when /healthz shows the new
//! snapshot, and goes on 6 s more. RUN_ARGs go to `run` as they are (e.g.
//! `--load-priority=low`). Prints one line per phase (idle, loading,
//! after): lines/s and, when paced, the worst and 99th percentile delay from a
//! batch's write to its last enriched line; then `memory` (the daemon's RssAnon
//! in MB, from `/proc/PID/status`, sampled every 50 ms: at the rename, the
//! highest from the rename until 1 s after the swap, at the swap, and at the
//! end, 6 s after the swap) and `snapshots` (in the store before the load).
//! Batches slower than 20 ms are listed on stderr with their time from the
//! rename and from the swap (where a stall comes from). Without arguments (a
//! plain `cargo bench`) it does nothing.
//!
//! Environment: `DAEMON_TIMEOUT` (seconds, default 60) bounds the whole run (a
//! city-sized load under a flood takes minutes); `DAEMON_STDERR=FILE` keeps the
//! daemon's log there (with e.g. `WHIPSTREAM_LOG=whipstream=debug`: where the
//! load's time goes).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [ws, store, watch, snapshot, log, mode, run_args @ ..] = &args[..] else {
        eprintln!("daemon-load: driven by benches/daemon-bench.sh (nothing to do)");
        return Ok(());
    };
    let paced: Option<u64> = match mode.strip_prefix("paced:") {
        Some(r) => Some(r.parse()?),
        None => None,
    };
    let lines: Vec<Vec<u8>> = BufReader::new(std::fs::File::open(log)?)
        .split(b'\n')
        .map(|l| {
            l.map(|mut l| {
                l.push(b'\n');
                l
            })
        })
        .collect::<std::io::Result<_>>()?;
    let watch = PathBuf::from(watch);
    let name = Path::new(snapshot).file_name().ok_or("snapshot name")?;
    let hidden = watch.join(format!(".{}", name.to_string_lossy()));
    std::fs::create_dir_all(&watch)?;
    std::fs::copy(snapshot, &hidden)?;

    let mut child = Command::new(ws)
        .args([
            "run",
            "--no-line",
            "--listen",
            "127.0.0.1:0",
            "--poll-seconds",
            "0.1",
            // The snapshot is renamed in whole: "loading" is the load itself,
            // not the settle interval before it.
            "--settle-seconds",
            "0",
        ])
        .arg("--db")
        .arg(format!("geo={store}"))
        .arg("--watch")
        .arg(format!("geo={}", watch.display()))
        .args(run_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().ok_or("stderr")?);
    let mut first = String::new();
    stderr.read_line(&mut first)?;
    let addr = first
        .trim()
        .rsplit("http://")
        .next()
        .ok_or("address")?
        .to_string();
    let keep: Box<dyn Write + Send> = match std::env::var_os("DAEMON_STDERR") {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::sink()),
    };
    std::thread::spawn(move || {
        let mut keep = keep;
        let _ = keep.write_all(first.as_bytes());
        std::io::copy(&mut stderr, &mut keep)
    });
    let timeout = Duration::from_secs_f64(match std::env::var("DAEMON_TIMEOUT") {
        Ok(s) => s.parse()?,
        Err(_) => 60.0,
    });
    let pid = child.id();
    let snapshots = |addr: &str| -> u64 {
        let Ok(mut c) = std::net::TcpStream::connect(addr) else {
            return 0;
        };
        let _ = write!(
            c,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut body = String::new();
        let _ = c.read_to_string(&mut body);
        body.split("\"snapshots\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = loop {
        let n = snapshots(&addr);
        if n > 0 {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // Batches written: (lines written so far, when).
    let (batch_tx, batch_rx) = mpsc::channel::<(u64, Instant)>();
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut sent = 0u64;
            let mut i = 0usize;
            let mut buf = Vec::with_capacity(1 << 16);
            let mut tick = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let n = match paced {
                    Some(rate) => (rate / 100).max(1),
                    None => 256,
                };
                buf.clear();
                for _ in 0..n {
                    buf.extend_from_slice(&lines[i % lines.len()]);
                    i += 1;
                }
                stdin.write_all(&buf)?;
                stdin.flush()?;
                sent += n;
                let _ = batch_tx.send((sent, Instant::now()));
                if paced.is_some() {
                    tick += Duration::from_millis(10);
                    if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            Ok(())
        })
    };
    // Output: lines seen so far, and each batch's delay.
    let seen = Arc::new(AtomicU64::new(0));
    let (delay_tx, delay_rx) = mpsc::channel::<(Instant, Duration)>();
    let mut stdout = child.stdout.take().ok_or("stdout")?;
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut count = 0u64;
            let mut pending: Option<(u64, Instant)> = None;
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                seen.store(count, Ordering::Relaxed);
                let now = Instant::now();
                while let Some((end, at)) = pending.take().or_else(|| batch_rx.try_recv().ok()) {
                    if end > count {
                        pending = Some((end, at));
                        break;
                    }
                    let _ = delay_tx.send((at, now - at));
                }
            }
        })
    };

    // Samples of (time, lines out, RssAnon KiB) every 50 ms; the load between
    // two marks.
    let mut samples: Vec<(Instant, u64, u64)> = Vec::new();
    let mut renamed = None;
    let mut swapped = None;
    while started.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
        samples.push((
            Instant::now(),
            seen.load(Ordering::Relaxed),
            rss_anon_kib(pid).unwrap_or(0),
        ));
        if renamed.is_none() && started.elapsed() >= Duration::from_secs(6) {
            std::fs::rename(&hidden, watch.join(name))?;
            renamed = Some(Instant::now());
        }
        if renamed.is_some() && swapped.is_none() && snapshots(&addr) > before {
            swapped = Some(Instant::now());
        }
        if let Some(s) = swapped {
            if s.elapsed() >= Duration::from_secs(6) {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = reader.join();
    let (Some(renamed), Some(swapped)) = (renamed, swapped) else {
        return Err("the snapshot was not loaded within the run".into());
    };
    let delays: Vec<(Instant, Duration)> = delay_rx.try_iter().collect();
    let warm = started + Duration::from_secs(1);
    for (at, d) in &delays {
        if *d >= Duration::from_millis(20) {
            // Signed seconds from `t` to the batch.
            let since = |t: Instant| {
                at.saturating_duration_since(t).as_secs_f64()
                    - t.saturating_duration_since(*at).as_secs_f64()
            };
            eprintln!(
                "slow batch: {:.1} ms, {:+.2} s from the rename, {:+.2} s from the swap",
                d.as_secs_f64() * 1e3,
                since(renamed),
                since(swapped)
            );
        }
    }
    let phases = [
        ("idle", warm, renamed),
        ("loading", renamed, swapped),
        ("after", swapped, swapped + Duration::from_secs(6)),
    ];
    for (phase, from, to) in phases {
        let count_at = |t: Instant| {
            samples
                .iter()
                .rev()
                .find(|(at, ..)| *at <= t)
                .map_or(0, |s| s.1)
        };
        let secs = (to - from).as_secs_f64();
        let rate = (count_at(to) - count_at(from)) as f64 / secs;
        let mut d: Vec<f64> = delays
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, d)| d.as_secs_f64() * 1e3)
            .collect();
        d.sort_by(f64::total_cmp);
        let worst = d.last().copied().unwrap_or(0.0);
        let p99 = d.get(d.len() * 99 / 100).copied().unwrap_or(0.0);
        println!("{phase} {secs:.2} {rate:.0} {worst:.1} {p99:.1}");
    }
    let mb = |kib: u64| kib as f64 / 1024.0;
    let rss_at = |t: Instant| {
        samples
            .iter()
            .rev()
            .find(|(at, ..)| *at <= t)
            .map_or(0, |s| s.2)
    };
    let peak = samples
        .iter()
        .filter(|(at, ..)| *at >= renamed && *at <= swapped + Duration::from_secs(1))
        .map(|s| s.2)
        .max()
        .unwrap_or(0);
    let end = samples.last().map_or(0, |s| s.2);
    println!(
        "memory {:.1} {:.1} {:.1} {:.1}",
        mb(rss_at(renamed)),
        mb(peak),
        mb(rss_at(swapped)),
        mb(end)
    );
    println!("snapshots {before}");
    Ok(())
}

/// The RssAnon of process `pid` in KiB (anonymous memory resident: the heap,
/// not the mapped index file's pages).
fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
