//! An index image: the bytes of one index (built in memory, or a mapped file)
//! with its checked header, and typed views of its sections. The index file
//! ([`crate::index_file`]) holds exactly these bytes.
//!
//! Invariants:
//! - An [`Image`] exists only for bytes whose header, length and section layout
//!   were checked; a [`View`] stays inside its section and is never written
//!   through.
//! - Every byte is under a checksum: the header's own, and each section's CRC-32,
//!   which covers the padding after it.
//! - The layout is deterministic: the same history and state give the same bytes.
//!
//! Layout (little-endian; each section starts at a multiple of 64 bytes):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `WHIPIDX\0` |
//! | 8..12 | format version (5) |
//! | 12..16 | byte-order mark `0x01020304` |
//! | 16..32 | store id (u128) |
//! | 32..40 | store generation |
//! | 40..48 | file length |
//! | 48..52, 52..56 | IPv4 and global-unicast bucket shifts |
//! | 56..60 | number of sections |
//! | 60..64 | line bits of a packed change |
//! | 64.. | per section: offset (u64), length (u64), element count (u64), CRC-32, element width in bits |
//! | then | CRC-32 of the header's 4096 bytes but these 4 |
//! | 4096.. | sections, in [`Section`] order |
//!
//! # Layout of this module
//!
//! - this module: an image's bytes, checked, and views of its sections;
//! - [`layout`](self::layout): the sections and laying a history out as an image;
//! - [`header`](self::header): the header's bytes and its checksum;
//! - [`packed`](self::packed): bit-packed arrays, the form of most sections;
//! - [`blocks`](self::blocks): two-level arrays (the change offsets);
//! - [`exceptions`](self::exceptions): the few values kept aside from a
//!   narrow field (wide spans, the low bits of wide starts).

pub(crate) mod blocks;
pub(crate) mod exceptions;
mod header;
mod layout;
pub(crate) mod packed;

use std::path::{Path, PathBuf};

use crate::store::StoreState;
#[cfg(test)]
pub(crate) use header::header_crc_at;
use header::{other_version, read_header, Entry, VERSION};
pub(crate) use header::{state_in_header, HEADER_LEN};
pub(crate) use layout::FENCE;
use layout::{Form, ALIGN, SECTIONS, V4_HIGHS};
pub(crate) use layout::{LayOutError, LineBits, Section, Sink};
use packed::Packed;

/// How much of an image to check when making it from bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Header, layout, state and the snapshot list: constant time.
    Header,
    /// Also every section's checksum: reads the whole file.
    Full,
}

/// Why bytes are not a usable index image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: index format version {found}, this whipstream writes version {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
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
    #[error("a record line would need {0} bits (piece, payload and span), more than 64")]
    LineTooWide(u32),
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
    /// Line bits of a packed change.
    pub(crate) line_bits: u32,
    sections: [Entry; SECTIONS.len()],
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

impl<T> View<T> {
    /// A view of nothing (the unused form of a section).
    pub(crate) fn empty() -> View<T> {
        View {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        }
    }
}

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
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}
impl Plain for u128 {}

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
        let e = self.sections[s as usize];
        &self.bytes.as_slice()[e.off..e.off + e.len]
    }

    /// The number of elements of a section.
    pub(crate) fn count(&self, s: Section) -> usize {
        self.sections[s as usize].count
    }

    /// The element width of a section, in bits.
    pub(crate) fn width(&self, s: Section) -> u32 {
        self.sections[s as usize].width
    }

    /// A packed section (its width and size were checked when the image was
    /// made).
    pub(crate) fn packed(&self, s: Section) -> Packed {
        let e = self.sections[s as usize];
        Packed::new(self.view(s), e.width, e.count)
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
}

impl Image {
    /// Checks the header and layout of the mapped file at `path` (and the
    /// section checksums with [`Check::Full`]) and makes an image of it. The
    /// file must never be modified while mapped.
    pub(crate) fn from_mapped(
        map: memmap2::Mmap,
        path: &Path,
        check: Check,
    ) -> Result<Image, ImageError> {
        Image::from_bytes(Bytes::Mapped(map), path, check)
    }

    /// Checks the header and layout of `bytes` (and the section checksums with
    /// [`Check::Full`]) and makes an image of them.
    fn from_bytes(bytes: Bytes, path: &Path, check: Check) -> Result<Image, ImageError> {
        let corrupt = |what: String| ImageError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let b = bytes.as_slice();
        if let Some(found) = other_version(b) {
            return Err(ImageError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
        let header = read_header(b).map_err(|e| corrupt(e.to_string()))?;
        if header.len != b.len() {
            return Err(corrupt(format!(
                "{} bytes long, the header says {}",
                b.len(),
                header.len
            )));
        }
        for (s, e) in SECTIONS.iter().zip(&header.sections) {
            if !fits(*s, e, b.len()) {
                return Err(corrupt(format!("section {} out of bounds", s.name())));
            }
        }
        if !layout_fits(&header) {
            return Err(corrupt("section sizes do not fit together".into()));
        }
        let full = check == Check::Full;
        for (s, e) in SECTIONS.iter().zip(&header.sections) {
            // The snapshot list is small and parsed at every open: always checked.
            if (full || *s == Section::Snapshots)
                && crc32fast::hash(&b[covered(e.off, e.len, b.len())]) != e.crc
            {
                return Err(corrupt(format!("section {} fails its checksum", s.name())));
            }
        }
        Ok(Image {
            len: header.len,
            state: header.state,
            v4_shift: header.v4_shift,
            global_shift: header.global_shift,
            line_bits: header.line_bits,
            sections: header.sections,
            bytes,
            path: Some(path.to_path_buf()),
        })
    }

    /// Checks every section's checksum (what [`Check::Full`] adds).
    pub fn check_full(&self) -> Result<(), ImageError> {
        let b = self.bytes.as_slice();
        for (s, e) in SECTIONS.iter().zip(&self.sections) {
            if crc32fast::hash(&b[covered(e.off, e.len, b.len())]) != e.crc {
                return Err(ImageError::Corrupt {
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

/// Whether section `s` as `e` lies inside an image of `len` bytes, aligned,
/// with elements of a width its form allows and exactly the bytes they need.
fn fits(s: Section, e: &Entry, len: usize) -> bool {
    let size = match s.form() {
        Form::Fixed(bits) if e.width == bits => e.count.checked_mul(bits as usize / 8),
        Form::Packed if (1..=packed::MAX_WIDTH).contains(&e.width) => e
            .count
            .checked_mul(e.width as usize)
            .map(|bits| bits.div_ceil(8) + packed::SLACK),
        _ => None,
    };
    size == Some(e.len)
        && e.off >= HEADER_LEN
        && e.off.is_multiple_of(ALIGN)
        && e.off.checked_add(e.len).is_some_and(|end| end <= len)
}

/// Whether the sections' counts and widths fit together: an offset block
/// for every [`blocks::BLOCK`] pieces and one more, an IPv4 /16 entry for
/// every /16 and one more, a fence for every [`FENCE`] wide starts, as many
/// exceptions as their indexes, tables of
/// their sizes, changes and lines wide enough
/// for the fields they split into.
fn layout_fits(h: &header::Header) -> bool {
    let count = |s: Section| h.sections[s as usize].count;
    let width = |s: Section| h.sections[s as usize].width;
    let pieces = count(Section::StartsV4) + count(Section::StartsWide);
    let payloads = count(Section::PayloadOffsets).saturating_sub(1);
    let lines = LineBits::of(pieces, payloads);
    let table_ok = |s: Section, bits: u32| count(s) == (1usize << bits) + 1;
    pieces >= 1
        && count(Section::Offsets) == (pieces + 1).div_ceil(blocks::BLOCK) + 1
        && width(Section::OffsetBits) == 1
        && count(Section::StartsV4High) == V4_HIGHS + 1
        && count(Section::StartsLowAt) == count(Section::StartsLow)
        && count(Section::WideFences) == count(Section::StartsWide).div_ceil(FENCE)
        && count(Section::SpanAt) == count(Section::Spans)
        && count(Section::PayloadOffsets) >= 1
        && (8..=24).contains(&(32u32.wrapping_sub(h.v4_shift)))
        && table_ok(Section::V4, 32 - h.v4_shift)
        && table_ok(Section::V6, 16)
        && (8..=22).contains(&(124u32.wrapping_sub(h.global_shift)))
        && table_ok(Section::Global, 124 - h.global_shift)
        && (1..=32).contains(&h.line_bits)
        && width(Section::Changes) > h.line_bits
        && width(Section::Changes) - h.line_bits <= 16
        && width(Section::Lines) > lines.piece_bits + lines.payload_bits
}

/// The bytes a section's checksum covers: the section and the padding after
/// it, so that every byte of the file is checked.
fn covered(off: usize, size: usize, len: usize) -> std::ops::Range<usize> {
    off..(off + size).next_multiple_of(ALIGN).min(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::{History, Interner, SnapshotMeta};
    use crate::snapshot::SnapshotFile;

    pub(crate) fn history(files: &[&str]) -> History {
        let mut h = History::default();
        let mut interner = Interner::default();
        for (n, text) in files.iter().enumerate() {
            let f = SnapshotFile::from_lines(&format!("f{n}"), text).unwrap();
            h.merge(&mut interner, &f, SnapshotMeta::of_file(&f), false)
                .unwrap();
        }
        h
    }

    pub(crate) const A: &str = r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}
{"begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00Z","cc":"DE"}"#;
    pub(crate) const B: &str =
        r#"{"begin":"1.0.0.0","end":"1.0.0.127","datetime":"2024-02-01T00:00:00Z","cc":"NZ"}"#;

    pub(crate) fn state(generation: u64) -> StoreState {
        StoreState { id: 7, generation }
    }

    #[test]
    fn a_built_image_is_checked_and_its_checksums_hold() {
        let image = Image::build(&history(&[A, B]), state(3)).unwrap();
        assert!(!image.is_mapped());
        assert_eq!(image.state(), state(3));
        assert_eq!(image.as_bytes().len(), image.len());
        assert_eq!(state_in_header(image.as_bytes()), Some(state(3)));
        assert!(image.check_full().is_ok());
    }
}
