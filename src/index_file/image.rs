//! An index image: the bytes of one index (built in memory, or a mapped file)
//! with its checked header, and typed views of its sections.
//!
//! Invariant: an [`Image`] exists only for bytes whose header, length and
//! section layout were checked; a [`View`] stays inside its section and is never
//! written through.

use std::path::{Path, PathBuf};

use super::header::{other_version, read_header, HEADER_LEN};
use super::layout::{FileLine, Section, ALIGN, SECTIONS};
use super::{Check, IndexFileError};
use crate::history::Change;
use crate::store::StoreState;

/// The bytes of an index, in memory or mapped.
pub(super) enum Bytes {
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
    pub(super) bytes: Bytes,
    pub(super) len: usize,
    pub(super) state: StoreState,
    pub(crate) v4_shift: u32,
    pub(crate) global_shift: u32,
    /// Line bits of a packed change; 0 for 8-byte changes.
    pub(crate) line_bits: u32,
    pub(super) sections: [(usize, usize, u32); SECTIONS.len()],
    pub(super) path: Option<PathBuf>,
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
}

impl Image {
    /// Checks the header and layout of `bytes` (and the section checksums with
    /// [`Check::Full`]) and makes an image of them.
    pub(super) fn from_bytes(
        bytes: Bytes,
        path: &Path,
        check: Check,
    ) -> Result<Image, IndexFileError> {
        let corrupt = |what: String| IndexFileError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let b = bytes.as_slice();
        if let Some(found) = other_version(b) {
            return Err(IndexFileError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
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
            && table_ok(Section::Global, 124 - header.global_shift)
            && header.line_bits <= 31
            && (header.line_bits != 0 || header.sections[Section::Changes as usize].1 % 8 == 0);
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
            line_bits: header.line_bits,
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
pub(super) fn covered(off: usize, size: usize, len: usize) -> std::ops::Range<usize> {
    off..(off + size).next_multiple_of(ALIGN).min(len)
}
