//! The byte layout of keys and values (see the table in [`super`]): order-
//! preserving big-endian keys, LEB128 varints in values.

use super::{PIECE, SNAPSHOT};
use crate::history::{Change, Line, NO_LINE};
use crate::ip::{Family, IpKey};

pub(super) fn snapshot_key(micros: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(SNAPSHOT);
    // Flipping the sign bit makes big-endian bytes sort like the signed value.
    k.extend_from_slice(&((micros as u64) ^ (1 << 63)).to_be_bytes());
    k
}

pub(super) fn piece_key(start: IpKey) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = PIECE;
    k[1..].copy_from_slice(&start.0.to_be_bytes());
    k
}

pub(super) fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = prefix;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

pub(super) fn be_u128(b: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(b.try_into().ok()?))
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u128> {
    let mut v: u128 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift >= 128 {
            return None;
        }
        v |= u128::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

pub(super) fn encode_changes(changes: &[Change], ids: &[u32], out: &mut Vec<u8>) {
    put_varint(out, changes.len() as u128);
    for c in changes {
        put_varint(out, u128::from(ids[usize::from(c.pos)]));
        let line = if c.line == NO_LINE {
            0
        } else {
            u128::from(c.line) + 1
        };
        put_varint(out, line);
    }
}

/// Decodes changes and puts them in snapshot order (ids are not ordered by time).
pub(super) fn decode_changes(b: &[u8], position: &[u16], out: &mut Vec<Change>) -> Option<()> {
    let mut p = 0;
    let n = usize::try_from(get_varint(b, &mut p)?).ok()?;
    let first = out.len();
    for _ in 0..n {
        let id = u32::try_from(get_varint(b, &mut p)?).ok()?;
        let line = get_varint(b, &mut p)?;
        let line = if line == 0 {
            NO_LINE
        } else {
            u32::try_from(line - 1).ok()?
        };
        let pos = *position.get(id as usize)?;
        if pos == u16::MAX {
            return None;
        }
        out.push(Change { pos, line });
    }
    out[first..].sort_by_key(|c| c.pos);
    (p == b.len()).then_some(())
}

pub(super) fn encode_line(line: &Line, out: &mut Vec<u8>) {
    match line.begin.family() {
        Family::V4 => {
            out.push(4);
            out.extend_from_slice(&(line.begin.0 as u32).to_be_bytes());
        }
        Family::V6 => {
            out.push(6);
            out.extend_from_slice(&line.begin.0.to_be_bytes());
        }
    }
    put_varint(out, line.end.0 - line.begin.0);
    put_varint(out, u128::from(line.payload));
}

pub(super) fn decode_line(b: &[u8]) -> Option<Line> {
    let (begin, mut p) = match b.first()? {
        4 => (IpKey::V4_FIRST.0 | u128::from(be_u32(b.get(1..5)?)?), 5),
        6 => (be_u128(b.get(1..17)?)?, 17),
        _ => return None,
    };
    let len = get_varint(b, &mut p)?;
    let payload = u32::try_from(get_varint(b, &mut p)?).ok()?;
    (p == b.len()).then_some(Line {
        begin: IpKey(begin),
        end: IpKey(begin.checked_add(len)?),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_lines_round_trip() {
        for v in [0u128, 1, 127, 128, u64::MAX as u128, u128::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p), Some(v));
            assert_eq!(p, b.len());
        }
        for (b, e) in [
            ("1.2.3.4", "1.2.3.4"),
            ("::", "::ffff"),
            ("2001:db8::", "ffff::"),
        ] {
            let line = Line {
                begin: IpKey::parse(b).unwrap(),
                end: IpKey::parse(e).unwrap(),
                payload: 7,
            };
            let mut out = Vec::new();
            encode_line(&line, &mut out);
            assert_eq!(decode_line(&out), Some(line));
        }
        assert_eq!(decode_line(&[9, 1, 2]), None);
    }
}
