//! Reading a Whip file on every core: one thread cuts the (decompressed,
//! hashed) bytes into blocks of whole lines, workers parse the blocks' lines,
//! and the caller applies the rules across lines ([`LineRules`]) to the parsed
//! blocks in file order.
//!
//! The workers also deduplicate a block's payloads and hash them (with the
//! rules' [`PayloadHasher`]), so that the rules thread interns each distinct
//! payload of a block once, by a hash it does not compute.
//!
//! Invariants: the result is exactly that of reading the lines one by one on one
//! thread — the same ranges, payload ids, line numbers and, for a bad file, the
//! same first error (the rules run in file order, and a block's parse error is
//! reported after the rules of the lines before it). Memory is bounded: at most
//! [`IN_FLIGHT`] blocks per worker are cut and not yet applied, and a line
//! longer than [`MAX_LINE_BYTES`] is refused before it is held whole.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use hashbrown::HashTable;

use super::error::{Rule, SnapshotError};
use super::rules::{parse_line, LineRules, LineScratch, PayloadHasher};
use super::{Hashing, MAX_LINE_BYTES};
use crate::ip::IpKey;
use crate::lines::UTF8_BOM;

/// Bytes of a block (it ends at the first line end past this size).
const BLOCK_BYTES: usize = 1 << 20;
/// Blocks per worker cut ahead of the rules.
const IN_FLIGHT: usize = 3;
/// Bytes asked of the reader at a time.
const READ_BYTES: usize = 256 * 1024;

/// Whole lines of the file, from line `first_line` (1-based).
struct Block {
    seq: usize,
    first_line: u64,
    bytes: Vec<u8>,
    /// The first block: a leading byte order mark is not part of the line.
    file_start: bool,
}

/// One parsed line of a block.
struct Parsed {
    begin: IpKey,
    end: IpKey,
    line_no: u64,
    /// Index into `Lines::payloads`.
    payload: u32,
    /// Index into `Lines::datetimes`.
    datetime: u32,
}

/// One distinct payload of a block: `Lines::payload_bytes[start..end]`, and
/// its hash.
struct Payload {
    start: usize,
    end: usize,
    hash: u64,
}

/// The parsed lines of one block, up to its first parse error.
#[derive(Default)]
struct Lines {
    lines: Vec<Parsed>,
    /// The block's distinct payloads, in the order of their first line.
    payloads: Vec<Payload>,
    payload_bytes: Vec<u8>,
    /// The datetime texts of the block, each once per run of lines that
    /// repeat it (nearly always one).
    datetimes: Vec<String>,
    error: Option<SnapshotError>,
}

type Done = (usize, Lines);

/// Reads `reader` (already counting file bytes) as a Whip file: every range
/// goes through `rules`, in file order. Returns the content's hex SHA-256 and
/// size, or the first broken rule.
pub(super) fn read_lines(
    path: &Path,
    reader: Box<dyn Read + Send>,
    gzip: bool,
    rules: &mut LineRules,
    mut progress: impl FnMut(u64),
) -> Result<(String, u64), SnapshotError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let stop = AtomicBool::new(false);
    let (block_tx, block_rx) = sync_channel::<Block>(workers);
    let block_rx = Mutex::new(block_rx);
    let (done_tx, done_rx) = sync_channel::<Done>(workers * IN_FLIGHT);
    // One token per block cut and not yet applied: bounds what is held.
    let (token_tx, token_rx) = sync_channel::<()>(workers * IN_FLIGHT);
    for _ in 0..workers * IN_FLIGHT {
        let _ = token_tx.send(());
    }
    let hasher = rules.hasher().clone();
    std::thread::scope(|scope| {
        let (stop, block_rx, hasher) = (&stop, &block_rx, &hasher);
        let cutter = {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                cut(
                    path, reader, gzip, block_tx, done_tx, token_rx, stop, hasher,
                )
            })
        };
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            scope.spawn(move || parse_blocks(path, block_rx, done_tx, hasher));
        }
        drop(done_tx);
        let applied = apply_in_order(path, &done_rx, &token_tx, rules, &mut progress);
        // On an error the cutter stops at its next block; workers finish theirs.
        stop.store(true, Ordering::Relaxed);
        drop(token_tx);
        for _ in done_rx.iter() {}
        let cut = cutter.join().ok().flatten();
        let applied = applied?;
        // Every block cut went through the rules, or the file is not read
        // whole: the cutter stops early only after sending an error in
        // sequence (met above), and a lost block (a parsing thread gone)
        // must not pass for the end of the file.
        match cut {
            Some((digest, blocks)) if blocks == applied => Ok(digest),
            _ => Err(SnapshotError::new(
                path,
                None,
                Rule::Io(std::io::Error::other(
                    "the file was not read to its end (a reading thread stopped)",
                )),
            )),
        }
    })
}

/// The caller's part: parsed blocks through the rules, in file order. Returns
/// how many blocks went through.
fn apply_in_order(
    path: &Path,
    done_rx: &Receiver<Done>,
    token_tx: &SyncSender<()>,
    rules: &mut LineRules,
    progress: &mut impl FnMut(u64),
) -> Result<usize, SnapshotError> {
    let mut pending: BTreeMap<usize, Lines> = BTreeMap::new();
    let mut want = 0;
    for (seq, lines) in done_rx.iter() {
        pending.insert(seq, lines);
        while let Some(block) = pending.remove(&want) {
            let ranges = block.lines.len() as u64;
            apply(path, block, rules)?;
            progress(ranges);
            want += 1;
            let _ = token_tx.send(());
        }
    }
    Ok(want)
}

fn apply(path: &Path, block: Lines, rules: &mut LineRules) -> Result<(), SnapshotError> {
    // The file's id of each of the block's payloads, once interned.
    const UNSEEN: u32 = u32::MAX;
    let mut ids = vec![UNSEEN; block.payloads.len()];
    for p in &block.lines {
        rules
            .check_datetime(&block.datetimes[p.datetime as usize])
            .and_then(|()| rules.check_range(p.begin, p.end))
            .and_then(|()| {
                let slot = &mut ids[p.payload as usize];
                if *slot == UNSEEN {
                    let d = &block.payloads[p.payload as usize];
                    *slot = rules.intern(&block.payload_bytes[d.start..d.end], d.hash)?;
                }
                rules.push_range(p.begin, p.end, *slot, p.line_no);
                Ok(())
            })
            .map_err(|kind| SnapshotError::new(path, Some(p.line_no), kind))?;
    }
    match block.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The cutting thread: reads, hashes and cuts the bytes into blocks of whole
/// lines. Returns the digest of everything read and the number of blocks
/// sent, or `None` when it stopped early: after sending a read error or an
/// over-long line in sequence (so that errors of earlier lines come first).
#[allow(clippy::too_many_arguments)]
fn cut(
    path: &Path,
    reader: Box<dyn Read + Send>,
    gzip: bool,
    block_tx: SyncSender<Block>,
    done_tx: SyncSender<Done>,
    token_rx: Receiver<()>,
    stop: &AtomicBool,
    hasher: &PayloadHasher,
) -> Option<((String, u64), usize)> {
    let mut reader = Hashing::new(reader);
    let mut carry: Vec<u8> = Vec::new();
    let mut lines_before = 0u64;
    let mut seq = 0usize;
    let mut eof = false;
    while !eof {
        if token_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
            break;
        }
        let mut bytes = std::mem::take(&mut carry);
        bytes.reserve(BLOCK_BYTES + READ_BYTES);
        // Where the last complete line ends in `bytes` (one past its `\n`).
        let mut whole = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
        loop {
            if bytes.len() >= BLOCK_BYTES && whole > 0 {
                break;
            }
            let at = bytes.len();
            bytes.resize(at + READ_BYTES, 0);
            let n = match read_some(&mut reader, &mut bytes[at..]) {
                Ok(n) => n,
                Err(e) => {
                    bytes.truncate(at);
                    let rule = if gzip { Rule::Gzip(e) } else { Rule::Io(e) };
                    // The line being read is the first not complete yet.
                    let line = lines_before + memchr::memchr_iter(b'\n', &bytes).count() as u64 + 1;
                    let error = SnapshotError::new(path, Some(line), rule);
                    send_error(&done_tx, seq, lines_before, bytes, error, hasher);
                    return None;
                }
            };
            bytes.truncate(at + n);
            if n == 0 {
                eof = true;
                whole = bytes.len();
                break;
            }
            if let Some(i) = memchr::memrchr(b'\n', &bytes[at..]) {
                whole = at + i + 1;
            }
            if bytes.len() - whole > MAX_LINE_BYTES {
                // A line past the limit, not held whole: refused where it starts.
                let line =
                    lines_before + memchr::memchr_iter(b'\n', &bytes[..whole]).count() as u64 + 1;
                let error = SnapshotError::new(path, Some(line), Rule::LineTooLong(MAX_LINE_BYTES));
                bytes.truncate(whole);
                send_error(&done_tx, seq, lines_before, bytes, error, hasher);
                return None;
            }
        }
        carry.extend_from_slice(&bytes[whole..]);
        bytes.truncate(whole);
        let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let block = Block {
            seq,
            first_line: lines_before + 1,
            bytes,
            file_start: seq == 0,
        };
        lines_before += lines;
        seq += 1;
        if block_tx.send(block).is_err() {
            break;
        }
    }
    Some((reader.finish(), seq))
}

/// Sends the lines read before an error as a last block whose parse ends with
/// that error.
fn send_error(
    done_tx: &SyncSender<Done>,
    seq: usize,
    lines_before: u64,
    mut bytes: Vec<u8>,
    error: SnapshotError,
    hasher: &PayloadHasher,
) {
    let whole = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
    bytes.truncate(whole);
    let block = Block {
        seq,
        first_line: lines_before + 1,
        bytes,
        file_start: seq == 0,
    };
    let mut lines = parse_block(&block, &error.path, hasher);
    lines.error.get_or_insert(error);
    let _ = done_tx.send((seq, lines));
}

/// Reads into `buf`, retrying interruptions.
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A worker: parses blocks until there are none.
fn parse_blocks(
    path: &Path,
    block_rx: &Mutex<Receiver<Block>>,
    done_tx: SyncSender<Done>,
    hasher: &PayloadHasher,
) {
    loop {
        let block = match block_rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(block) = block else { return };
        let lines = parse_block(&block, path, hasher);
        if done_tx.send((block.seq, lines)).is_err() {
            return;
        }
    }
}

/// Parses the lines of a block, up to the first that breaks a rule of its own.
fn parse_block(block: &Block, path: &Path, hasher: &PayloadHasher) -> Lines {
    let mut out = Lines::default();
    let mut scratch = LineScratch::default();
    // Indexes into `out.payloads`, by hash.
    let mut distinct: HashTable<u32> = HashTable::new();
    let mut bytes = &block.bytes[..];
    if block.file_start {
        bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    }
    let mut line_no = block.first_line - 1;
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut line = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                line
            }
            None => std::mem::take(&mut rest),
        };
        line_no += 1;
        if line.len() > MAX_LINE_BYTES {
            out.error = Some(SnapshotError::new(
                path,
                Some(line_no),
                Rule::LineTooLong(MAX_LINE_BYTES),
            ));
            return out;
        }
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let fields = match parse_line(line, &mut scratch) {
            Ok(f) => f,
            Err(kind) => {
                out.error = Some(SnapshotError::new(path, Some(line_no), kind));
                return out;
            }
        };
        // Compared with the last text only: lines nearly always repeat it, and
        // a search of every text seen would be quadratic on a file whose
        // lines write one instant in many ways.
        if out.datetimes.last().is_none_or(|d| *d != fields.datetime) {
            out.datetimes.push(fields.datetime.into_owned());
        }
        let datetime = (out.datetimes.len() - 1) as u32;
        let payload = block_payload(&mut out, &mut distinct, &scratch.payload, hasher);
        out.lines.push(Parsed {
            begin: fields.begin,
            end: fields.end,
            line_no,
            payload,
            datetime,
        });
    }
    out
}

/// The index of `payload` among the block's distinct payloads, added if new.
/// The line before's payload is tried first (neighbouring ranges often share
/// one).
fn block_payload(
    out: &mut Lines,
    distinct: &mut HashTable<u32>,
    payload: &[u8],
    hasher: &PayloadHasher,
) -> u32 {
    let Lines {
        lines,
        payloads,
        payload_bytes,
        ..
    } = out;
    if let Some(last) = lines.last() {
        let d = &payloads[last.payload as usize];
        if payload_bytes[d.start..d.end] == *payload {
            return last.payload;
        }
    }
    let hash = hasher.hash_one(payload);
    let found = distinct.find(hash, |&i| {
        let d = &payloads[i as usize];
        d.hash == hash && payload_bytes[d.start..d.end] == *payload
    });
    if let Some(&i) = found {
        return i;
    }
    let i = payloads.len() as u32;
    let start = payload_bytes.len();
    payload_bytes.extend_from_slice(payload);
    payloads.push(Payload {
        start,
        end: payload_bytes.len(),
        hash,
    });
    distinct.insert_unique(hash, i, |&j| payloads[j as usize].hash);
    i
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::snapshot::{ReadProgress, SnapshotFile};

    /// A file of `n` lines big enough for several blocks, with a payload that
    /// repeats every few lines (interning across blocks).
    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let ip = 0x0100_0000u32 + (i as u32) * 4;
                let a = std::net::Ipv4Addr::from(ip);
                let b = std::net::Ipv4Addr::from(ip + 2);
                format!(
                    r#"{{"begin":"{a}","end":"{b}","datetime":"2024-01-01T00:00:00Z","city":"c{}","pad":"{}"}}"#,
                    i % 7,
                    "x".repeat(200)
                )
            })
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read(path: &Path) -> Result<SnapshotFile, SnapshotError> {
        SnapshotFile::read(path, &ReadProgress::default())
    }

    /// What one thread reading line by line gives.
    fn sequential(text: &str) -> Result<SnapshotFile, SnapshotError> {
        SnapshotFile::from_lines("t.jsonl", text)
    }

    #[test]
    fn blocks_give_what_one_thread_gives() {
        let dir = tempfile::tempdir().unwrap();
        // About 5 MB: several blocks; CRLF, blank lines and a BOM on the way.
        let mut text = String::from("\u{feff}");
        for (i, l) in lines(20_000).iter().enumerate() {
            text.push_str(l);
            text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
            if i % 1000 == 0 {
                text.push_str("  \n");
            }
        }
        text.push_str(&lines(20_001)[20_000]); // no final newline
        let path = write(dir.path(), "big.jsonl", text.as_bytes());
        assert!(text.len() > 4 * BLOCK_BYTES);
        let a = read(&path).unwrap();
        let b = sequential(&text).unwrap();
        assert_eq!(a.ranges, b.ranges);
        assert_eq!(a.payloads, b.payloads);
        assert_eq!(a.ranges.len(), 20_001);
        assert_eq!(a.payloads.len(), 7);
        assert_eq!(a.bytes, text.len() as u64);
        assert_eq!(a.sha256, b.sha256);
    }

    #[test]
    fn the_first_error_wins_with_its_line_wherever_the_blocks_end() {
        let dir = tempfile::tempdir().unwrap();
        let base = lines(15_000);
        // A parse error, a rule across lines and a datetime, each in a late
        // block, with a second error after it that must not be the one named.
        let cases: Vec<(usize, String)> = vec![
            (9_000, "{not json".into()),
            (9_001, base[3].clone()),
            (
                12_345,
                base[12_345].replace("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
            ),
            (4_200, base[4_200].replace(r#""city""#, r#""begin""#)),
        ];
        for (at, bad) in cases {
            let mut ls = base.clone();
            ls[at] = bad.clone();
            ls[at + 100] = "[1]".into();
            let text = ls.join("\n");
            let path = write(dir.path(), "bad.jsonl", text.as_bytes());
            let a = read(&path).unwrap_err();
            let b = sequential(&text).unwrap_err();
            assert_eq!(a.line, Some(at as u64 + 1), "{bad}: {a}");
            assert_eq!(a.line, b.line, "{bad}");
            assert_eq!(a.kind.to_string(), b.kind.to_string(), "{bad}");
        }
    }

    #[test]
    fn an_over_long_line_is_refused_before_it_is_held_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut ls = lines(6_000);
        // Longer than the limit, with no line end for a while after it.
        ls[5_000] = "y".repeat(3 * MAX_LINE_BYTES);
        let path = write(dir.path(), "long.jsonl", ls.join("\n").as_bytes());
        let e = read(&path).unwrap_err();
        assert_eq!(e.line, Some(5_001));
        assert!(matches!(e.kind, Rule::LineTooLong(_)), "{e}");
        // Exactly at the limit is a line like any other (here: not JSON).
        ls[5_000] = "y".repeat(MAX_LINE_BYTES);
        let path = write(dir.path(), "limit.jsonl", ls.join("\n").as_bytes());
        let e = read(&path).unwrap_err();
        assert_eq!(e.line, Some(5_001));
        assert!(matches!(e.kind, Rule::Json(_)), "{e}");
    }

    #[test]
    fn truncated_gzip_is_named_after_the_lines_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = lines(12_000).join("\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let whole = write(dir.path(), "ok.jsonl.gz", &gz);
        assert_eq!(read(&whole).unwrap().ranges.len(), 12_000);
        let cut = write(dir.path(), "cut.jsonl.gz", &gz[..gz.len() / 2]);
        let e = read(&cut).unwrap_err();
        assert!(matches!(e.kind, Rule::Gzip(_)), "{e}");
        assert!(e.line.is_some_and(|l| l > 1000 && l < 12_000), "{e}");
        // A bad line before the cut is the error named, not the cut.
        let mut ls = lines(12_000);
        ls[10] = "{".into();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(ls.join("\n").as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let cut = write(dir.path(), "cut2.jsonl.gz", &gz[..gz.len() / 2]);
        let e = read(&cut).unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
    }
}
