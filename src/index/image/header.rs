//! An image's first 4096 bytes: magic, version, byte order, the store state it
//! was built from, the length, the bucket shifts and each section's offset,
//! length, element count, CRC-32 and element width, all under one checksum.

use super::layout::SECTIONS;
use crate::store::StoreState;

const MAGIC: &[u8; 8] = b"WHIPIDX\0";
/// 2: changes packed into u32s, smaller bucket tables.
/// 3: bit-packed changes, lines, offsets and tables; IPv4 piece starts in 4
/// bytes, the others in 8 when they allow.
/// 4: the wide piece starts in 8 bytes with their few nonzero low halves
/// aside, two-level change offsets, line spans narrow with the wide ones aside.
/// 5: IPv4 piece starts in 2 bytes (their low 16 bits) with a table of where
/// each /16 starts among them; every 16th wide start's top half as a fence.
pub(super) const VERSION: u32 = 5;
const BYTE_ORDER: u32 = 0x0102_0304;
pub(crate) const HEADER_LEN: usize = 4096;
const SECTION_ENTRY: usize = 32;

/// The header checksum: every header byte but the checksum's own.
fn header_crc(b: &[u8]) -> u32 {
    let at = header_crc_at();
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..at]);
    h.update(&b[at + 4..HEADER_LEN]);
    h.finalize()
}

/// Why bytes do not start with a usable header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeaderError {
    #[error("{0} bytes long, shorter than a header")]
    Short(usize),
    #[error("not a whipstream index file")]
    Magic,
    #[error("index format version or byte order not supported")]
    Version,
    #[error("header fails its checksum")]
    Checksum,
    #[error("unexpected number of sections")]
    Sections,
}

pub(super) struct Header {
    pub(super) state: StoreState,
    pub(super) len: usize,
    pub(super) v4_shift: u32,
    pub(super) global_shift: u32,
    pub(super) line_bits: u32,
    pub(super) sections: [Entry; SECTIONS.len()],
}

/// Where a section lies, how many elements of how many bits it holds, and
/// the CRC-32 of its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) off: usize,
    pub(crate) len: usize,
    pub(crate) count: usize,
    pub(crate) crc: u32,
    pub(crate) width: u32,
}

pub(crate) fn header_crc_at() -> usize {
    64 + SECTIONS.len() * SECTION_ENTRY
}

pub(super) fn write_header(
    buf: &mut [u8],
    state: StoreState,
    len: usize,
    v4_shift: u32,
    global_shift: u32,
    line_bits: u32,
    sections: &[Entry],
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
    buf[60..64].copy_from_slice(&line_bits.to_le_bytes());
    for (i, s) in sections.iter().enumerate() {
        let e = 64 + i * SECTION_ENTRY;
        buf[e..e + 8].copy_from_slice(&(s.off as u64).to_le_bytes());
        buf[e + 8..e + 16].copy_from_slice(&(s.len as u64).to_le_bytes());
        buf[e + 16..e + 24].copy_from_slice(&(s.count as u64).to_le_bytes());
        buf[e + 24..e + 28].copy_from_slice(&s.crc.to_le_bytes());
        buf[e + 28..e + 32].copy_from_slice(&s.width.to_le_bytes());
    }
    let at = header_crc_at();
    let crc = header_crc(buf);
    buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The version of a whipstream index file written in another format version
/// (an older whipstream's file: rebuilt, not corrupt).
pub(super) fn other_version(b: &[u8]) -> Option<u32> {
    let version = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
    (b.get(0..8)? == MAGIC && version != VERSION).then_some(version)
}

/// The store state recorded in `b`, if it starts with a valid header.
pub(crate) fn state_in_header(b: &[u8]) -> Option<StoreState> {
    read_header(b).ok().map(|h| h.state)
}

pub(super) fn read_header(b: &[u8]) -> Result<Header, HeaderError> {
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
        return Err(HeaderError::Short(b.len()));
    }
    if &b[0..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    if u32_at(8) != Some(VERSION) || u32_at(12) != Some(BYTE_ORDER) {
        return Err(HeaderError::Version);
    }
    let at = header_crc_at();
    if u32_at(at) != Some(header_crc(b)) {
        return Err(HeaderError::Checksum);
    }
    if u32_at(56) != Some(SECTIONS.len() as u32) {
        return Err(HeaderError::Sections);
    }
    let word = |i: usize| {
        u64_at(i)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(usize::MAX)
    };
    let mut sections = [Entry::default(); SECTIONS.len()];
    for (i, s) in sections.iter_mut().enumerate() {
        let e = 64 + i * SECTION_ENTRY;
        *s = Entry {
            off: word(e),
            len: word(e + 8),
            count: word(e + 16),
            crc: u32_at(e + 24).unwrap_or(0),
            width: u32_at(e + 28).unwrap_or(0),
        };
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
        line_bits: u32_at(60).unwrap_or(0),
        sections,
    })
}
