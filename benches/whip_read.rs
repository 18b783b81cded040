//! Reading Whip files alone (no store): how long `SnapshotFile::read` takes and
//! what it costs in CPU and memory, one file after the other.
//!
//!   whip-read FILE...
//!
//! Prints, per file, `file wall_s user_s sys_s ranges payloads sha256`, then the
//! process's peak RSS. Without arguments it does nothing (a plain `cargo bench`).

use std::path::Path;
use std::time::Instant;

use whipstream::snapshot::{ReadProgress, SnapshotFile};

/// User and system CPU seconds of the process so far.
fn cpu() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(u.ru_utime), s(u.ru_stime))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    for file in &files {
        let (u0, s0) = cpu();
        let started = Instant::now();
        let snapshot = SnapshotFile::read(Path::new(file), &ReadProgress::default())?;
        let wall = started.elapsed().as_secs_f64();
        let (u1, s1) = cpu();
        println!(
            "{file} {wall:.2} {:.2} {:.2} {} {} {}",
            u1 - u0,
            s1 - s0,
            snapshot.ranges.len(),
            snapshot.payloads.len(),
            snapshot.sha256
        );
    }
    if !files.is_empty() {
        let status = std::fs::read_to_string("/proc/self/status")?;
        if let Some(peak) = status.lines().find(|l| l.starts_with("VmHWM")) {
            println!("{peak}");
        }
    }
    Ok(())
}
