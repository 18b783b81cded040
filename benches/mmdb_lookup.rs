//! Driver for `benches/mmdb-bench.sh`: lookups per second, one thread, over the
//! same addresses, through the `maxminddb` crate reading the database files
//! directly and through whipstream's index of a store loaded from them.
//!
//!   mmdb-lookup STORE ADDRESSES MMDB_FILE...
//!
//! ADDRESSES: one IP per line. Each side answers every address with the whole
//! record as JSON bytes (maxminddb: lookup, decode to a JSON value, serialise;
//! whipstream: lookup, write the stored record), and also without the JSON
//! (maxminddb: lookup and decode; whipstream: lookup only). Prints
//! `name seconds_to_open lookups_per_second matched`. Without arguments it does
//! nothing (a plain `cargo bench`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use whipstream::ip::IpKey;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs `f` over all addresses until at least 2 s have passed; lookups/s.
fn rate(n: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let started = Instant::now();
    let mut rounds = 0;
    let mut matched = 0;
    while started.elapsed() < Duration::from_secs(2) || rounds == 0 {
        matched = f();
        rounds += 1;
    }
    (
        (n * rounds) as f64 / started.elapsed().as_secs_f64(),
        matched,
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [store, addresses, files @ ..] = &args[..] else {
        eprintln!("mmdb-lookup: driven by benches/mmdb-bench.sh (nothing to do)");
        return Ok(());
    };
    let ips: Vec<IpAddr> = std::fs::read_to_string(addresses)?
        .lines()
        .map(|l| l.trim().parse())
        .collect::<std::result::Result<_, _>>()?;
    let n = ips.len();

    let t = Instant::now();
    let readers = files
        .iter()
        .map(maxminddb::Reader::open_readfile)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let open_mmdb = t.elapsed().as_secs_f64();
    // The file for an address: IPv4 to an ip_version 4 file if there is one.
    let pick = |ip: &IpAddr| {
        let want_v4 = ip.is_ipv4();
        readers
            .iter()
            .find(|r| (r.metadata().ip_version == 4) == want_v4)
            .or(readers.first())
    };
    let mut buf = Vec::with_capacity(1024);
    let (mm_json, mm_matched) = rate(n, || {
        let mut matched = 0;
        for ip in &ips {
            buf.clear();
            let Some(r) = pick(ip) else { continue };
            if let Ok(res) = r.lookup(*ip) {
                if let Ok(Some(v)) = res.decode::<serde_json::Value>() {
                    let _ = serde_json::to_writer(&mut buf, &v);
                    matched += 1;
                }
            }
        }
        matched
    });
    let (mm_decode, _) = rate(n, || {
        let mut matched = 0;
        for ip in &ips {
            let Some(r) = pick(ip) else { continue };
            if let Ok(res) = r.lookup(*ip) {
                if let Ok(Some(v)) = res.decode::<serde_json::Value>() {
                    matched += usize::from(!v.is_null());
                }
            }
        }
        matched
    });

    let t = Instant::now();
    let index = whipstream::index_file::open(
        std::path::Path::new(store),
        whipstream::index_file::Check::Header,
    )?;
    let open_ws = t.elapsed().as_secs_f64();
    let keys: Vec<IpKey> = ips.iter().map(|ip| IpKey::from_ip(*ip)).collect();
    let (ws_json, ws_matched) = rate(n, || {
        let mut matched = 0;
        for &k in &keys {
            buf.clear();
            if let Some(m) = index.latest(k) {
                m.write_json(&mut buf);
                matched += 1;
            }
        }
        matched
    });
    let (ws_lookup, _) = rate(n, || {
        keys.iter().filter(|&&k| index.latest(k).is_some()).count()
    });
    let latest = whipstream::time::Timestamp::MAX;
    let queries: Vec<(IpKey, whipstream::time::Timestamp)> =
        keys.iter().map(|&k| (k, latest)).collect();
    let mut answers = Vec::with_capacity(n);
    let (ws_batched, _) = rate(n, || {
        answers.clear();
        index.at_many(&queries, &mut answers);
        let mut matched = 0;
        for m in answers.iter().flatten() {
            buf.clear();
            m.write_json(&mut buf);
            matched += 1;
        }
        matched
    });
    println!("maxminddb_json {open_mmdb:.3} {mm_json:.0} {mm_matched}");
    println!("maxminddb_decode {open_mmdb:.3} {mm_decode:.0} {mm_matched}");
    println!("whipstream_json {open_ws:.3} {ws_json:.0} {ws_matched}");
    println!("whipstream_lookup {open_ws:.3} {ws_lookup:.0} {ws_matched}");
    println!("whipstream_batched_json {open_ws:.3} {ws_batched:.0} {ws_matched}");
    Ok(())
}
