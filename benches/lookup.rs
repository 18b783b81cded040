//! In-process lookups, single thread: random addresses at random times, and
//! latest-only, over a store given by `WHIPSTREAM_BENCH_DB` (e.g. the 41-snapshot
//! history loaded by `benches/store-bench.sh`), or else a store built here from the
//! three shared snapshots.
//!
//!   cargo bench --bench lookup
//!   WHIPSTREAM_BENCH_DB=/path/to/store cargo bench --bench lookup

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use whipstream::history::History;
use whipstream::index_file::Check;
use whipstream::ip::IpKey;
use whipstream::load::{load, open_history, LoadOptions};
use whipstream::time::Timestamp;

const QUERIES: usize = 1 << 20;

/// xorshift64*: deterministic, cheap, good enough to spread queries.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn store() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Ok(db) = std::env::var("WHIPSTREAM_BENCH_DB") {
        return (None, PathBuf::from(db));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let snaps =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/snapshots/geoip-country");
    load(&db, &[snaps], LoadOptions::default()).expect("load shared snapshots");
    (Some(dir), db)
}

/// Queries as users send them: 75% IPv4, 25% IPv6, addresses inside known ranges
/// (picked from random records) and times spread over the whole history.
fn queries(h: &History) -> Vec<(IpKey, Timestamp)> {
    let (v4, v6): (Vec<_>, Vec<_>) = h
        .lines()
        .map(|(_, l)| l)
        .partition(|l| l.begin.as_v4().is_some());
    let first = h
        .snapshots()
        .next()
        .map(|s| s.meta.instant_micros)
        .unwrap_or(0);
    let last = h
        .snapshots()
        .last()
        .map(|s| s.meta.instant_micros)
        .unwrap_or(0);
    let span = (last - first).max(1) as u64 + 30 * 86_400_000_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..QUERIES)
        .map(|_| {
            let pool = if rng.next().is_multiple_of(4) && !v6.is_empty() {
                &v6
            } else {
                &v4
            };
            let line = pool[(rng.next() % pool.len() as u64) as usize];
            let width = line.end.0 - line.begin.0;
            let offset = if width == u128::MAX {
                0
            } else {
                u128::from(rng.next()) % (width + 1)
            };
            let t = first + (rng.next() % span) as i64;
            (IpKey(line.begin.0 + offset), Timestamp::from_micros(t))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (_keep, db) = store();
    // The queries come from the store's history, as they did before the index
    // was a file, so that runs of either version draw the same queries.
    let qs = queries(&open_history(&db).expect("read store"));
    let started = std::time::Instant::now();
    let index = whipstream::index_file::open(&db, Check::Header).expect("open store");
    eprintln!(
        "open to ready: {:.3} s ({} snapshots, {} pieces, {} records)",
        started.elapsed().as_secs_f64(),
        index.snapshot_count(),
        index.piece_count(),
        index.line_count()
    );
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(qs.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("at_random_time", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for &(ip, t) in &qs {
                found += usize::from(index.at(ip, t).is_some());
            }
            black_box(found)
        })
    });
    g.bench_function("at_random_time_batched", |b| {
        let mut out = Vec::with_capacity(qs.len());
        b.iter(|| {
            out.clear();
            index.at_many(&qs, &mut out);
            black_box(out.iter().filter(|m| m.is_some()).count())
        })
    });
    g.bench_function("latest_batched", |b| {
        let latest: Vec<(IpKey, Timestamp)> =
            qs.iter().map(|&(ip, _)| (ip, Timestamp::MAX)).collect();
        let mut out = Vec::with_capacity(qs.len());
        b.iter(|| {
            out.clear();
            index.at_many(&latest, &mut out);
            black_box(out.iter().filter(|m| m.is_some()).count())
        })
    });
    g.bench_function("latest", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for &(ip, _) in &qs {
                found += usize::from(index.latest(ip).is_some());
            }
            black_box(found)
        })
    });
    g.bench_function("at_random_time_to_json", |b| {
        let mut out = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            for &(ip, t) in &qs {
                if let Some(m) = index.at(ip, t) {
                    m.write_json(&mut out);
                }
                if out.len() > 200 * 1024 {
                    out.clear();
                }
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
