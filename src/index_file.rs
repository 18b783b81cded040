//! The persisted index: the lookup structure of a store as one immutable file,
//! mapped read-only by every process that opens the store.
//!
//! RocksDB stays the source of truth; `DB/whipstream.index` is derived from it and
//! records the [`StoreState`] it was built from. Opening a store is a header check:
//! the file is mapped (`mmap`), its header and small metadata are checked, and
//! the pages come in as lookups touch them, shared between processes through the
//! page cache (they count as file-backed, not anonymous, memory).
//!
//! Invariants:
//! - The file is only ever replaced whole: written to `whipstream.index.tmp`,
//!   synced, renamed over the old one, the directory synced, all under an
//!   exclusive lock on `whipstream.index.lock`. A `kill -9` at any moment leaves
//!   the previous file in place; a mapped file is never modified.
//! - A file is used only if its header checksum holds, its length and layout
//!   match the header, and its state equals the store's; with [`Check::Full`]
//!   every section's CRC-32 (which covers the padding after it: every byte of
//!   the file is under a checksum) is checked too. Anything else (missing, stale,
//!   corrupt) is logged and the index is rebuilt from RocksDB and persisted again.
//! - The layout is deterministic: the same history and state give the same bytes,
//!   which `verify` uses to compare the file with the store.
//!
//! Layout (little-endian; each section starts at a multiple of 64 bytes):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `WHIPIDX\0` |
//! | 8..12 | format version (1) |
//! | 12..16 | byte-order mark `0x01020304` |
//! | 16..32 | store id (u128) |
//! | 32..40 | store generation |
//! | 40..48 | file length |
//! | 48..52, 52..56 | IPv4 and global-unicast bucket shifts |
//! | 56..64 | number of sections, reserved |
//! | 64.. | per section: offset (u64), length (u64), CRC-32, reserved |
//! | then | CRC-32 of the header's 4096 bytes but these 4 |
//! | 4096.. | sections, in [`Section`] order |

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::history::{Change, History, NO_LINE};
use crate::index::Index;
use crate::ip::IpKey;
use crate::store::{Mode, Store, StoreError, StoreState};

/// The index file's name inside the store directory.
pub const FILE_NAME: &str = "whipstream.index";
const TMP_NAME: &str = "whipstream.index.tmp";
const LOCK_NAME: &str = "whipstream.index.lock";

const MAGIC: &[u8; 8] = b"WHIPIDX\0";
const VERSION: u32 = 1;
const BYTE_ORDER: u32 = 0x0102_0304;
const HEADER_LEN: usize = 4096;
const SECTION_ENTRY: usize = 24;
const ALIGN: usize = 64;

/// The sections of the file, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// JSON array of the snapshots' metadata, oldest first.
    Snapshots,
    /// Piece starts (u128).
    Starts,
    /// Change offsets per piece (u32, pieces + 1).
    Offsets,
    /// Changes ([`Change`], 8 bytes).
    Changes,
    /// Lines ([`FileLine`]).
    Lines,
    /// Payload offsets into `Payloads` (u32, payloads + 1).
    PayloadOffsets,
    /// Payload bytes (JSON object bodies).
    Payloads,
    /// Bucket tables (u32).
    V4,
    V6,
    Global,
}

const SECTIONS: [Section; 10] = [
    Section::Snapshots,
    Section::Starts,
    Section::Offsets,
    Section::Changes,
    Section::Lines,
    Section::PayloadOffsets,
    Section::Payloads,
    Section::V4,
    Section::V6,
    Section::Global,
];

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Snapshots => "snapshots",
            Section::Starts => "starts",
            Section::Offsets => "offsets",
            Section::Changes => "changes",
            Section::Lines => "lines",
            Section::PayloadOffsets => "payload offsets",
            Section::Payloads => "payloads",
            Section::V4 => "ipv4 table",
            Section::V6 => "ipv6 table",
            Section::Global => "global unicast table",
        }
    }

    /// Size and alignment of one element.
    fn element(self) -> usize {
        match self {
            Section::Snapshots | Section::Payloads => 1,
            Section::Starts => 16,
            Section::Changes => std::mem::size_of::<Change>(),
            Section::Lines => std::mem::size_of::<FileLine>(),
            _ => 4,
        }
    }
}

/// A record line as the file keeps it: its range as the pieces it spans (a
/// line's `begin` always starts a piece, and its `end` always ends one), and
/// its payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileLine {
    pub first_piece: u32,
    pub last_piece: u32,
    pub payload: u32,
}

/// How much of a file to check when mapping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Header, layout, state and the snapshot list: constant time.
    Header,
    /// Also every section's checksum: reads the whole file.
    Full,
}

/// Why a persisted index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexFileError {
    #[error("{}: no index file", path.display())]
    Missing { path: PathBuf },
    #[error("{}: stale: built from store state {found}, the store is at {current}", path.display())]
    Stale {
        path: PathBuf,
        found: String,
        current: String,
    },
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a history cannot be laid out as an index (only a corrupt store does this).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the pieces do not start at address 0 or their offsets do not match them")]
    Pieces,
    #[error("line {line} does not start and end at piece boundaries")]
    LineOffPieces { line: u32 },
    #[error("line {line} refers to missing payload {payload}")]
    MissingPayload { line: u32, payload: u32 },
    #[error("a change refers to missing line {0}")]
    MissingLine(u32),
    #[error("the index would exceed 4 GiB of {0}")]
    TooBig(&'static str),
}

fn state_text(s: &StoreState) -> String {
    format!("{:032x}/{}", s.id, s.generation)
}

/// The bytes of an index, in memory or mapped.
enum Bytes {
    /// Built in this process (16-byte aligned).
    Owned(Vec<u128>),
    Mapped(memmap2::Mmap),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            // SAFETY: any u128 buffer is a valid byte buffer of 16 times its length.
            Bytes::Owned(v) => unsafe {
                std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 16)
            },
            Bytes::Mapped(m) => m,
        }
    }
}

/// One index's bytes with its checked header: what [`Index`] views.
pub struct Image {
    bytes: Bytes,
    len: usize,
    state: StoreState,
    pub(crate) v4_shift: u32,
    pub(crate) global_shift: u32,
    sections: [(usize, usize, u32); SECTIONS.len()],
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("len", &self.len)
            .field("state", &self.state)
            .field("mapped", &matches!(self.bytes, Bytes::Mapped(_)))
            .field("path", &self.path)
            .finish()
    }
}

/// A typed view of one section. Valid while the image it came from is alive
/// and unmoved in memory (a `Vec`'s buffer and a mapping do not move).
pub(crate) struct View<T> {
    ptr: *const T,
    len: usize,
}

// SAFETY: a view reads immutable memory owned by the image beside it.
unsafe impl<T: Sync> Send for View<T> {}
// SAFETY: as above; nothing is ever written through a view.
unsafe impl<T: Sync> Sync for View<T> {}

impl<T> std::ops::Deref for View<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is aligned for T, `len` elements lie inside the image
        // (checked by `Image::view`), the image outlives the view (both are
        // owned by one `Index`), and every bit pattern is a valid T (plain
        // integers and structs of them).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> std::fmt::Debug for View<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "View({} items)", self.len)
    }
}

/// Marker for the plain integer types a section may be viewed as.
pub(crate) trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u32 {}
impl Plain for u128 {}
impl Plain for Change {}
impl Plain for FileLine {}

impl Image {
    pub fn state(&self) -> StoreState {
        self.state
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    fn section_bytes(&self, s: Section) -> &[u8] {
        let (off, len, _) = self.sections[s as usize];
        &self.bytes.as_slice()[off..off + len]
    }

    pub(crate) fn snapshots_json(&self) -> &[u8] {
        self.section_bytes(Section::Snapshots)
    }

    /// A section as a slice of `T`. Alignment and size were checked when the
    /// image was made; the view stays valid as long as `self` lives.
    pub(crate) fn view<T: Plain>(&self, s: Section) -> View<T> {
        let bytes = self.section_bytes(s);
        debug_assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<T>(), 0);
        View {
            ptr: bytes.as_ptr().cast::<T>(),
            len: bytes.len() / std::mem::size_of::<T>(),
        }
    }

    /// Lays out `history` (built from the store at `state`) as an index image.
    pub fn build(history: &History, state: StoreState) -> Result<Image, BuildError> {
        let starts = &history.starts;
        if starts.first() != Some(&IpKey::MIN) || history.offsets.len() != starts.len() + 1 {
            return Err(BuildError::Pieces);
        }
        // Dense ids for the live payloads and lines, in id order.
        let mut payload_id = vec![u32::MAX; history.payloads.len()];
        let mut payload_offsets = vec![0u32];
        let mut payload_total = 0usize;
        for (id, p) in history.payloads.iter().enumerate() {
            if let Some(p) = p {
                payload_id[id] = (payload_offsets.len() - 1) as u32;
                payload_total += p.len();
                let end =
                    u32::try_from(payload_total).map_err(|_| BuildError::TooBig("payloads"))?;
                payload_offsets.push(end);
            }
        }
        let mut line_id = vec![NO_LINE; history.lines.len()];
        let mut lines = Vec::with_capacity(history.lines.len());
        for (id, line) in history.lines.iter().enumerate() {
            let Some(line) = line else { continue };
            let id = id as u32;
            let first = history.piece_of(line.begin);
            let last = history.piece_of(line.end);
            let ends_a_piece = match starts.get(last + 1) {
                Some(next) => next.0.checked_sub(1) == Some(line.end.0),
                None => line.end == IpKey::MAX,
            };
            if starts[first] != line.begin || !ends_a_piece {
                return Err(BuildError::LineOffPieces { line: id });
            }
            let payload = *payload_id
                .get(line.payload as usize)
                .filter(|&&p| p != u32::MAX)
                .ok_or(BuildError::MissingPayload {
                    line: id,
                    payload: line.payload,
                })?;
            line_id[id as usize] = lines.len() as u32;
            lines.push(FileLine {
                first_piece: first as u32,
                last_piece: last as u32,
                payload,
            });
        }
        let mut changes = Vec::with_capacity(history.changes.len());
        for c in &history.changes {
            let line = if c.line == NO_LINE {
                NO_LINE
            } else {
                *line_id
                    .get(c.line as usize)
                    .filter(|&&l| l != NO_LINE)
                    .ok_or(BuildError::MissingLine(c.line))?
            };
            changes.push(Change { pos: c.pos, line });
        }
        let tables = crate::index::Tables::of(history);
        let metas: Vec<_> = history.snapshots.iter().map(|s| &s.meta).collect();
        // Serialising plain metadata into a Vec cannot fail.
        let snapshots_json = serde_json::to_vec(&metas).unwrap_or_default();

        let mut sections = [(0usize, 0usize, 0u32); SECTIONS.len()];
        let sizes = [
            snapshots_json.len(),
            starts.len() * 16,
            history.offsets.len() * 4,
            changes.len() * std::mem::size_of::<Change>(),
            lines.len() * std::mem::size_of::<FileLine>(),
            payload_offsets.len() * 4,
            payload_total,
            tables.v4.len() * 4,
            tables.v6.len() * 4,
            tables.global.len() * 4,
        ];
        let mut at = HEADER_LEN;
        for (s, size) in sections.iter_mut().zip(sizes) {
            *s = (at, size, 0);
            at = (at + size).next_multiple_of(ALIGN);
        }
        let len = at;
        let mut words = vec![0u128; len.div_ceil(16)];
        // SAFETY: the u128 buffer viewed as bytes; u8 has no alignment needs.
        let buf: &mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        let at = |s: Section| sections[s as usize].0..sections[s as usize].0 + sizes[s as usize];
        buf[at(Section::Snapshots)].copy_from_slice(&snapshots_json);
        fill(&mut buf[at(Section::Starts)], starts, |s| s.0.to_le_bytes());
        fill(&mut buf[at(Section::Offsets)], &history.offsets, |o| {
            o.to_le_bytes()
        });
        fill(&mut buf[at(Section::Changes)], &changes, |c| {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&c.pos.to_le_bytes());
            b[4..].copy_from_slice(&c.line.to_le_bytes());
            b
        });
        fill(&mut buf[at(Section::Lines)], &lines, |l| {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&l.first_piece.to_le_bytes());
            b[4..8].copy_from_slice(&l.last_piece.to_le_bytes());
            b[8..].copy_from_slice(&l.payload.to_le_bytes());
            b
        });
        fill(
            &mut buf[at(Section::PayloadOffsets)],
            &payload_offsets,
            |o| o.to_le_bytes(),
        );
        let mut dst = &mut buf[at(Section::Payloads)];
        for p in history.payloads.iter().flatten() {
            let (head, rest) = dst.split_at_mut(p.len());
            head.copy_from_slice(p);
            dst = rest;
        }
        fill(&mut buf[at(Section::V4)], &tables.v4, |v| v.to_le_bytes());
        fill(&mut buf[at(Section::V6)], &tables.v6, |v| v.to_le_bytes());
        fill(&mut buf[at(Section::Global)], &tables.global, |v| {
            v.to_le_bytes()
        });
        for s in &mut sections {
            s.2 = crc32fast::hash(&buf[covered(s.0, s.1, len)]);
        }
        write_header(
            buf,
            state,
            len,
            tables.v4_shift,
            tables.global_shift,
            &sections,
        );
        Ok(Image {
            bytes: Bytes::Owned(words),
            len,
            state,
            v4_shift: tables.v4_shift,
            global_shift: tables.global_shift,
            sections,
            path: None,
        })
    }

    /// Checks the header and layout of `bytes` (and the section checksums with
    /// [`Check::Full`]) and makes an image of them.
    fn from_bytes(bytes: Bytes, path: &Path, check: Check) -> Result<Image, IndexFileError> {
        let corrupt = |what: String| IndexFileError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let b = bytes.as_slice();
        let header = read_header(b).map_err(corrupt)?;
        if header.len != b.len() {
            return Err(corrupt(format!(
                "{} bytes long, the header says {}",
                b.len(),
                header.len
            )));
        }
        for (s, &(off, size, _)) in SECTIONS.iter().zip(&header.sections) {
            let fits = off >= HEADER_LEN
                && off % ALIGN == 0
                && off.checked_add(size).is_some_and(|end| end <= b.len())
                && size % s.element() == 0;
            if !fits {
                return Err(corrupt(format!("section {} out of bounds", s.name())));
            }
        }
        let count = |s: Section| header.sections[s as usize].1 / s.element();
        let pieces = count(Section::Starts);
        let table_ok = |s: Section, bits: u32| count(s) == (1usize << bits) + 1;
        let layout_ok = pieces >= 1
            && count(Section::Offsets) == pieces + 1
            && count(Section::PayloadOffsets) >= 1
            && (8..=24).contains(&(32u32.wrapping_sub(header.v4_shift)))
            && table_ok(Section::V4, 32 - header.v4_shift)
            && table_ok(Section::V6, 16)
            && (8..=22).contains(&(124u32.wrapping_sub(header.global_shift)))
            && table_ok(Section::Global, 124 - header.global_shift);
        if !layout_ok {
            return Err(corrupt("section sizes do not fit together".into()));
        }
        let full = check == Check::Full;
        for (s, &(off, size, crc)) in SECTIONS.iter().zip(&header.sections) {
            // The snapshot list is small and parsed at every open: always checked.
            if (full || *s == Section::Snapshots)
                && crc32fast::hash(&b[covered(off, size, b.len())]) != crc
            {
                return Err(corrupt(format!("section {} fails its checksum", s.name())));
            }
        }
        Ok(Image {
            len: header.len,
            state: header.state,
            v4_shift: header.v4_shift,
            global_shift: header.global_shift,
            sections: header.sections,
            bytes,
            path: Some(path.to_path_buf()),
        })
    }

    /// Checks every section's checksum (what [`Check::Full`] adds).
    pub fn check_full(&self) -> Result<(), IndexFileError> {
        let b = self.bytes.as_slice();
        for (s, &(off, size, crc)) in SECTIONS.iter().zip(&self.sections) {
            if crc32fast::hash(&b[covered(off, size, b.len())]) != crc {
                return Err(IndexFileError::Corrupt {
                    path: self.path.clone().unwrap_or_default(),
                    what: format!("section {} fails its checksum", s.name()),
                });
            }
        }
        Ok(())
    }

    /// The whole image as bytes (what the file holds).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes.as_slice()[..self.len]
    }
}

/// The bytes a section's checksum covers: the section and the padding after
/// it, so that every byte of the file is checked.
fn covered(off: usize, size: usize, len: usize) -> std::ops::Range<usize> {
    off..(off + size).next_multiple_of(ALIGN).min(len)
}

/// The header checksum: every header byte but the checksum's own.
fn header_crc(b: &[u8]) -> u32 {
    let at = header_crc_at();
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..at]);
    h.update(&b[at + 4..HEADER_LEN]);
    h.finalize()
}

/// Writes each item's `N` bytes one after the other into `dst`.
fn fill<T, const N: usize>(dst: &mut [u8], items: &[T], bytes: impl Fn(&T) -> [u8; N]) {
    for (d, item) in dst.chunks_exact_mut(N).zip(items) {
        d.copy_from_slice(&bytes(item));
    }
}

struct Header {
    state: StoreState,
    len: usize,
    v4_shift: u32,
    global_shift: u32,
    sections: [(usize, usize, u32); SECTIONS.len()],
}

fn header_crc_at() -> usize {
    64 + SECTIONS.len() * SECTION_ENTRY
}

fn write_header(
    buf: &mut [u8],
    state: StoreState,
    len: usize,
    v4_shift: u32,
    global_shift: u32,
    sections: &[(usize, usize, u32)],
) {
    buf[0..8].copy_from_slice(MAGIC);
    buf[8..12].copy_from_slice(&VERSION.to_le_bytes());
    buf[12..16].copy_from_slice(&BYTE_ORDER.to_le_bytes());
    buf[16..32].copy_from_slice(&state.id.to_le_bytes());
    buf[32..40].copy_from_slice(&state.generation.to_le_bytes());
    buf[40..48].copy_from_slice(&(len as u64).to_le_bytes());
    buf[48..52].copy_from_slice(&v4_shift.to_le_bytes());
    buf[52..56].copy_from_slice(&global_shift.to_le_bytes());
    buf[56..60].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    for (i, &(off, size, crc)) in sections.iter().enumerate() {
        let e = 64 + i * SECTION_ENTRY;
        buf[e..e + 8].copy_from_slice(&(off as u64).to_le_bytes());
        buf[e + 8..e + 16].copy_from_slice(&(size as u64).to_le_bytes());
        buf[e + 16..e + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let at = header_crc_at();
    let crc = header_crc(buf);
    buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

fn read_header(b: &[u8]) -> Result<Header, String> {
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    };
    let u64_at = |i: usize| {
        b.get(i..i + 8)
            .and_then(|x| x.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if b.len() < HEADER_LEN {
        return Err(format!("{} bytes long, shorter than a header", b.len()));
    }
    if &b[0..8] != MAGIC {
        return Err("not a whipstream index file".into());
    }
    if u32_at(8) != Some(VERSION) || u32_at(12) != Some(BYTE_ORDER) {
        return Err("index format version or byte order not supported".into());
    }
    let at = header_crc_at();
    if u32_at(at) != Some(header_crc(b)) {
        return Err("header fails its checksum".into());
    }
    if u32_at(56) != Some(SECTIONS.len() as u32) {
        return Err("unexpected number of sections".into());
    }
    let word = |i: usize| {
        u64_at(i)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(usize::MAX)
    };
    let mut sections = [(0usize, 0usize, 0u32); SECTIONS.len()];
    for (i, s) in sections.iter_mut().enumerate() {
        let e = 64 + i * SECTION_ENTRY;
        *s = (word(e), word(e + 8), u32_at(e + 16).unwrap_or(0));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[16..32]);
    Ok(Header {
        state: StoreState {
            id: u128::from_le_bytes(id),
            generation: u64_at(32).unwrap_or(0),
        },
        len: word(40),
        v4_shift: u32_at(48).unwrap_or(0),
        global_shift: u32_at(52).unwrap_or(0),
        sections,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexFileError + '_ {
    move |source| IndexFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps the index file of the store at `db` and checks it against `state`.
pub fn map(db: &Path, state: StoreState, check: Check) -> Result<Image, IndexFileError> {
    let path = db.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexFileError::Missing { path })
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let len = file.metadata().map_err(io_err(&path))?.len();
    if len < HEADER_LEN as u64 {
        return Err(IndexFileError::Corrupt {
            path,
            what: format!("{len} bytes long, shorter than a header"),
        });
    }
    // SAFETY: the file is never modified once renamed into place (a new index
    // replaces it by rename), so the mapping's contents cannot change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
    let image = Image::from_bytes(Bytes::Mapped(map), &path, check)?;
    if image.state != state {
        return Err(IndexFileError::Stale {
            found: state_text(&image.state),
            current: state_text(&state),
            path,
        });
    }
    Ok(image)
}

/// An exclusive lock on the store's index lock file, released on drop.
struct WriteLock(File);

impl WriteLock {
    fn take(db: &Path) -> std::io::Result<WriteLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(db.join(LOCK_NAME))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(WriteLock(file))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor (closing it would too).
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.0), libc::LOCK_UN) };
    }
}

/// Writes `image` as the store's index file, atomically: temp file, sync,
/// rename, directory sync. Keeps the file in place instead when it already holds
/// a newer state of the same store (another process got there first). Returns
/// whether it wrote.
pub fn persist(db: &Path, image: &Image) -> Result<bool, IndexFileError> {
    let path = db.join(FILE_NAME);
    let tmp = db.join(TMP_NAME);
    let _lock = WriteLock::take(db).map_err(io_err(&db.join(LOCK_NAME)))?;
    if let Some(found) = persisted_state(&path) {
        // A newer state of the same store is never replaced by an older one.
        if found.id == image.state.id && found.generation > image.state.generation {
            return Ok(false);
        }
    }
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(image.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(db)
        .and_then(|d| d.sync_all())
        .map_err(io_err(db))?;
    Ok(true)
}

/// The state recorded in the header of the index file at `path`, if it has a
/// valid header.
fn persisted_state(path: &Path) -> Option<StoreState> {
    let mut head = vec![0u8; HEADER_LEN];
    let mut f = File::open(path).ok()?;
    std::io::Read::read_exact(&mut f, &mut head).ok()?;
    read_header(&head).ok().map(|h| h.state)
}

/// Opens the index of the store at `db`: maps the persisted file when it is
/// valid for the store's current state; otherwise (missing, stale, corrupt) says
/// why in the log, rebuilds it from the store, persists it for the next process
/// (best effort: a read-only directory still gets answers) and maps that.
pub fn open(db: &Path, check: Check) -> Result<Index, StoreError> {
    let store = Store::open(db, Mode::ReadOnly)?;
    let state = store.state()?;
    match map(db, state, check) {
        Ok(image) => {
            drop(store);
            return index_of(db, image);
        }
        Err(e) => tracing::warn!("{e}: rebuilding the index from the store"),
    }
    let history = store.read_history()?;
    drop(store);
    rebuild(db, &history, state)
}

/// Lays out `history` (the store at `state`), persists it and maps the file;
/// when the file cannot be written the index stays in memory.
pub fn rebuild(db: &Path, history: &History, state: StoreState) -> Result<Index, StoreError> {
    let image = Image::build(history, state).map_err(|e| StoreError::Corrupt {
        path: db.to_path_buf(),
        what: e.to_string(),
    })?;
    if let Err(e) = persist(db, &image) {
        tracing::warn!("cannot write the index file: {e}; using it from memory");
        return index_of(db, image);
    }
    match map(db, state, Check::Header) {
        Ok(mapped) => index_of(db, mapped),
        // Replaced by a newer state meanwhile: the one built here is right for
        // the state read.
        Err(_) => index_of(db, image),
    }
}

fn index_of(db: &Path, image: Image) -> Result<Index, StoreError> {
    Index::from_image(image).map_err(|e| StoreError::Corrupt {
        path: db.join(FILE_NAME),
        what: e.to_string(),
    })
}

/// What `verify` finds about the index file of a store.
#[derive(Debug)]
pub enum Status {
    /// Valid and byte for byte what the store's history gives.
    Ok { bytes: u64 },
    /// Missing or stale: rebuilt on the next open (not a fault: a killed load
    /// leaves the previous one).
    WillRebuild(String),
    /// Corrupt, or valid but different from what the store gives.
    Bad(String),
}

/// Compares the index file with the index `history` (the store at `state`) gives.
pub fn verify(db: &Path, history: &History, state: StoreState) -> Status {
    let image = match map(db, state, Check::Full) {
        Ok(image) => image,
        Err(e @ (IndexFileError::Missing { .. } | IndexFileError::Stale { .. })) => {
            return Status::WillRebuild(e.to_string())
        }
        Err(e) => return Status::Bad(e.to_string()),
    };
    match Image::build(history, state) {
        Ok(expected) if expected.as_bytes() == image.as_bytes() => Status::Ok {
            bytes: image.len() as u64,
        },
        Ok(_) => Status::Bad(format!(
            "{}: differs from the index the store gives",
            db.join(FILE_NAME).display()
        )),
        Err(e) => Status::Bad(format!("the store's history cannot be indexed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Interner, SnapshotMeta};
    use crate::snapshot::SnapshotFile;
    use crate::time::Timestamp;

    fn history(files: &[&str]) -> History {
        let mut h = History::default();
        let mut interner = Interner::default();
        for (n, text) in files.iter().enumerate() {
            let f = SnapshotFile::from_lines(&format!("f{n}"), text).unwrap();
            h.merge(&mut interner, &f, SnapshotMeta::of_file(&f), false)
                .unwrap();
        }
        h
    }

    const A: &str = r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}
{"begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00Z","cc":"DE"}"#;
    const B: &str =
        r#"{"begin":"1.0.0.0","end":"1.0.0.127","datetime":"2024-02-01T00:00:00Z","cc":"NZ"}"#;

    fn state(generation: u64) -> StoreState {
        StoreState { id: 7, generation }
    }

    fn answers(index: &Index) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for ip in ["1.0.0.5", "1.0.0.200", "2001:db8::1", "9.9.9.9"] {
            for t in ["2023-01-01", "2024-01-15", "2024-03-01"] {
                let ip = IpKey::parse(ip).unwrap();
                out.push(
                    index
                        .at(ip, Timestamp::parse(t).unwrap())
                        .map(|m| m.to_json()),
                );
            }
        }
        out
    }

    #[test]
    fn a_persisted_image_maps_to_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        let built = Image::build(&h, state(3)).unwrap();
        let in_memory = Index::from_image(Image::build(&h, state(3)).unwrap()).unwrap();
        assert!(persist(dir.path(), &built).unwrap());
        let mapped = map(dir.path(), state(3), Check::Full).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped.as_bytes(), built.as_bytes());
        let mapped = Index::from_image(mapped).unwrap();
        assert_eq!(answers(&mapped), answers(&in_memory));
        assert_eq!(mapped.state(), state(3));
        assert!(answers(&mapped).iter().flatten().count() >= 4);
        assert_eq!(
            mapped.first_snapshot(),
            Some(Timestamp::parse("2024-01-01").unwrap())
        );
    }

    #[test]
    fn stale_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::build(&history(&[A]), state(1)).unwrap();
        assert!(matches!(
            map(dir.path(), state(1), Check::Header),
            Err(IndexFileError::Missing { .. })
        ));
        persist(dir.path(), &image).unwrap();
        assert!(matches!(
            map(dir.path(), state(2), Check::Header),
            Err(IndexFileError::Stale { .. })
        ));
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in [0, 17, header_crc_at() + 100, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(
                    map(dir.path(), state(1), Check::Full),
                    Err(IndexFileError::Corrupt { .. })
                ),
                "byte {at}"
            );
        }
        std::fs::write(&path, &good[..good.len() - 64]).unwrap();
        assert!(matches!(
            map(dir.path(), state(1), Check::Header),
            Err(IndexFileError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_newer_file_is_not_replaced_by_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        assert!(persist(dir.path(), &Image::build(&h, state(5)).unwrap()).unwrap());
        assert!(!persist(dir.path(), &Image::build(&h, state(4)).unwrap()).unwrap());
        assert!(map(dir.path(), state(5), Check::Full).is_ok());
        // The same state again, or another store's, is written.
        assert!(persist(dir.path(), &Image::build(&h, state(5)).unwrap()).unwrap());
        let other = StoreState {
            id: 8,
            generation: 1,
        };
        assert!(persist(dir.path(), &Image::build(&h, other).unwrap()).unwrap());
    }

    #[test]
    fn lines_off_piece_boundaries_are_refused() {
        let mut h = history(&[A]);
        if let Some(Some(line)) = h.lines.first_mut() {
            line.end = IpKey(line.end.0 - 1);
        }
        assert!(matches!(
            Image::build(&h, state(1)),
            Err(BuildError::LineOffPieces { .. })
        ));
    }
}
