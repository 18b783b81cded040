//! The rules across lines of one snapshot: one datetime, sorted ranges that do
//! not overlap, IPv4 before IPv6; and the payload interner that deduplicates
//! payloads within the file.
//!
//! Payloads are interned by a hash computed with [`LineRules::hasher`] (a
//! random-seeded fast hash, so a hostile file cannot aim at collisions): the
//! parsing threads compute it, the rules thread only looks it up.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use serde::de::Deserializer;

use super::error::Rule;
use super::parse::{check_strict, ip_field, LineVisitor, SeenKeys};
use super::scan::{scan_line, KeyOrder};
use super::Range;
use crate::ip::{Family, IpKey};
use crate::json::raw_str;
use crate::time::Timestamp;

/// The per-file state of validation: previous range, datetime, payload interner.
#[derive(Default)]
pub(super) struct LineRules {
    pub(super) datetime: Option<(Timestamp, String)>,
    pub(super) ranges: Vec<Range>,
    pub(super) payloads: Vec<Box<[u8]>>,
    /// `(hash, id)` of each payload in `payloads`.
    payload_ids: HashTable<(u64, u32)>,
    hasher: PayloadHasher,
    previous_line: u64,
    scratch: LineScratch,
}

/// The hash payloads are interned by (one random seed per file read).
pub(super) type PayloadHasher = foldhash::fast::RandomState;

/// What parsing one line needs besides the line, reused from line to line on
/// one thread: the payload written, the keys seen.
#[derive(Default)]
pub(super) struct LineScratch {
    /// The payload of the line parsed last.
    pub(super) payload: Vec<u8>,
    keys: SeenKeys,
    order: KeyOrder,
}

/// The range fields of one line, parsed; its payload is in the buffer given to
/// [`parse_line`]. Parsing needs nothing of the lines before, so it can run on
/// any thread; the rules across lines are those of [`LineRules`].
pub(super) struct LineFields<'a> {
    pub(super) begin: IpKey,
    pub(super) end: IpKey,
    pub(super) datetime: Cow<'a, str>,
}

/// Parses one line: `begin`, `end` and the `datetime` text, every other field
/// written into `scratch.payload` (cleared first) as `"key":value` bytes. The
/// common line is read by the fast scan ([`scan_line`]), any other by serde
/// (which names the error of a bad line).
pub(super) fn parse_line<'a>(
    line: &'a [u8],
    scratch: &mut LineScratch,
) -> Result<LineFields<'a>, Rule> {
    let LineScratch {
        payload,
        keys,
        order,
    } = scratch;
    if let Some(fields) = scan_line(line, payload, keys, order) {
        return Ok(fields);
    }
    parse_line_serde(line, payload, keys)
}

/// [`parse_line`] by serde alone: what the fast scan must agree with.
pub(super) fn parse_line_serde<'a>(
    line: &'a [u8],
    payload: &mut Vec<u8>,
    keys: &mut SeenKeys,
) -> Result<LineFields<'a>, Rule> {
    payload.clear();
    keys.clear();
    let mut de = serde_json::Deserializer::from_slice(line);
    let parsed = match de.deserialize_map(LineVisitor { payload, keys }) {
        Ok(p) => p,
        Err(e) if e.classify() == serde_json::error::Category::Data => return Err(Rule::NotObject),
        Err(e) => return Err(Rule::Json(e)),
    };
    de.end().map_err(Rule::Json)?;
    if let Some(field) = parsed.duplicate {
        return Err(Rule::DuplicateField(field));
    }
    let begin = ip_field(parsed.begin, "begin")?;
    let end = ip_field(parsed.end, "end")?;
    let dt_raw = parsed.datetime.ok_or(Rule::MissingField("datetime"))?;
    let datetime = raw_str(dt_raw).ok_or(Rule::NotString("datetime"))?;
    Ok(LineFields {
        begin,
        end,
        datetime,
    })
}

impl LineRules {
    /// Parses a line and applies the rules to it (one thread, in file order).
    pub(super) fn line(&mut self, line: &[u8], line_no: u64) -> Result<(), Rule> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = parse_line(line, &mut scratch).and_then(|fields| {
            self.check_datetime(&fields.datetime)?;
            self.add_range(fields.begin, fields.end, &scratch.payload, line_no)
        });
        self.scratch = scratch;
        result
    }

    /// The hash [`LineRules::intern`] expects payloads hashed with.
    pub(super) fn hasher(&self) -> &PayloadHasher {
        &self.hasher
    }

    /// Every line names the same instant as the first (the same text, or
    /// another text of the same instant).
    pub(super) fn check_datetime(&mut self, text: &str) -> Result<(), Rule> {
        match &self.datetime {
            Some((_, first)) if first == text => Ok(()),
            Some((first_instant, first)) => {
                let instant = Timestamp::parse(text).map_err(Rule::BadDatetime)?;
                if instant != *first_instant {
                    return Err(Rule::DatetimeDiffers {
                        found: text.to_owned(),
                        expected: first.clone(),
                    });
                }
                Ok(())
            }
            None => {
                let instant = Timestamp::parse(text).map_err(Rule::BadDatetime)?;
                self.datetime = Some((instant, text.to_owned()));
                Ok(())
            }
        }
    }

    /// Checks a range against the previous ones and adds it with its payload.
    pub(super) fn add_range(
        &mut self,
        begin: IpKey,
        end: IpKey,
        payload: &[u8],
        line_no: u64,
    ) -> Result<(), Rule> {
        self.check_range(begin, end)?;
        let id = self.intern(payload, self.hasher.hash_one(payload))?;
        self.push_range(begin, end, id, line_no);
        Ok(())
    }

    /// The id of a payload (`hash` is its [`LineRules::hasher`] hash), interned
    /// if new. Each distinct payload is checked once: it is written out as is.
    pub(super) fn intern(&mut self, payload: &[u8], hash: u64) -> Result<u32, Rule> {
        let payloads = &self.payloads;
        let found = self.payload_ids.find(hash, |&(h, id)| {
            h == hash && *payloads[id as usize] == *payload
        });
        if let Some(&(_, id)) = found {
            return Ok(id);
        }
        check_strict(payload)?;
        let id = self.payloads.len() as u32;
        self.payloads.push(payload.into());
        self.payload_ids
            .insert_unique(hash, (hash, id), |&(h, _)| h);
        Ok(id)
    }

    /// Adds a range that passed [`LineRules::check_range`], with an interned
    /// payload.
    pub(super) fn push_range(&mut self, begin: IpKey, end: IpKey, payload: u32, line_no: u64) {
        self.ranges.push(Range {
            begin,
            end,
            payload,
        });
        self.previous_line = line_no;
    }

    /// The rules of a range against the previous one.
    pub(super) fn check_range(&self, begin: IpKey, end: IpKey) -> Result<(), Rule> {
        if begin.family() != end.family() {
            return Err(Rule::MixedFamilies { begin, end });
        }
        if begin > end {
            return Err(Rule::BeginAfterEnd { begin, end });
        }
        if begin.family() == Family::V6 && begin < IpKey::V4_FIRST && end > IpKey::V4_LAST {
            return Err(Rule::SpansMappedBlock { begin, end });
        }
        if let Some(&prev) = self.ranges.last() {
            let (prev_begin, prev_end) = (prev.begin, prev.end);
            if begin <= prev_end {
                let previous_line = self.previous_line;
                match (begin.family(), prev.begin.family()) {
                    (Family::V4, Family::V6) => {
                        return Err(Rule::V4AfterV6 {
                            begin,
                            previous_line,
                        })
                    }
                    (Family::V6, Family::V4) => {
                        return Err(Rule::LowV6AfterV4 {
                            begin,
                            end,
                            previous_line,
                        })
                    }
                    _ => {}
                }
                if begin >= prev_begin {
                    return Err(Rule::Overlap {
                        begin,
                        end,
                        previous_end: prev.end,
                        previous_line,
                    });
                }
                return Err(Rule::OutOfOrder {
                    begin,
                    end,
                    previous_line,
                });
            }
        }
        Ok(())
    }
}
