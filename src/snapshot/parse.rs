//! One JSON line of a Whip file, read without building a tree: `begin`, `end` and
//! `datetime` kept raw, every other field written into the payload buffer as
//! ready-to-write `"key":value` bytes.
//!
//! Invariants: a key appears once per object (duplicates are found in linear
//! time even on hostile lines); a payload accepted here reads the same under a
//! strict JSON parser (escapes, number range, nesting <= [`MAX_DEPTH`]).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::Rule;
use super::MAX_DEPTH;
use crate::ip::IpKey;
use crate::json::{raw_str, Key};

/// What one line holds, before range rules are checked.
pub(super) struct ParsedLine<'a> {
    pub(super) begin: Option<&'a RawValue>,
    pub(super) end: Option<&'a RawValue>,
    pub(super) datetime: Option<&'a RawValue>,
    pub(super) duplicate: Option<String>,
}

/// The keys of one object seen so far, as spans of the payload buffer. Real lines
/// have a handful of fields and a linear scan is fastest; past [`SeenKeys::LINEAR`]
/// keys the spans are also indexed by hash, so that a hostile line with 100,000
/// fields costs linear time, not quadratic.
#[derive(Default)]
pub(super) struct SeenKeys {
    spans: Vec<(usize, usize)>,
    by_hash: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
}

impl SeenKeys {
    pub(super) const LINEAR: usize = 16;

    pub(super) fn clear(&mut self) {
        self.spans.clear();
        self.by_hash.clear();
    }

    /// Records the key at `payload[start..end]`; true when the object already had it.
    pub(super) fn insert(&mut self, payload: &[u8], start: usize, end: usize) -> bool {
        let key = &payload[start..end];
        let seen = if self.spans.len() < Self::LINEAR {
            self.spans.iter().any(|&(s, e)| &payload[s..e] == key)
        } else {
            if self.by_hash.is_empty() {
                for (i, &(s, e)) in self.spans.iter().enumerate() {
                    let h = self.hasher.hash_one(&payload[s..e]);
                    self.by_hash.entry(h).or_default().push(i);
                }
            }
            let h = self.hasher.hash_one(key);
            let spans = &self.spans;
            let same = self.by_hash.get(&h).is_some_and(|ids| {
                ids.iter().any(|&i| {
                    let (s, e) = spans[i];
                    &payload[s..e] == key
                })
            });
            self.by_hash.entry(h).or_default().push(self.spans.len());
            same
        };
        self.spans.push((start, end));
        seen
    }
}

/// Visits the top-level object of a line: keeps begin/end/datetime raw and writes
/// every other field into the payload buffer as `"key":value` pairs.
pub(super) struct LineVisitor<'b> {
    pub(super) payload: &'b mut Vec<u8>,
    pub(super) keys: &'b mut SeenKeys,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = ParsedLine<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParsedLine<'de>, A::Error> {
        let mut out = ParsedLine {
            begin: None,
            end: None,
            datetime: None,
            duplicate: None,
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let slot = match key.as_ref() {
                "begin" => Some(&mut out.begin),
                "end" => Some(&mut out.end),
                "datetime" => Some(&mut out.datetime),
                _ => None,
            };
            match slot {
                Some(slot) => {
                    if slot.replace(value).is_some() && out.duplicate.is_none() {
                        out.duplicate = Some(key.into_owned());
                    }
                }
                None => {
                    if !self.payload.is_empty() {
                        self.payload.push(b',');
                    }
                    let start = self.payload.len();
                    serde_json::to_writer(&mut *self.payload, key.as_ref())
                        .map_err(de::Error::custom)?;
                    let end = self.payload.len();
                    if self.keys.insert(&self.payload[..], start, end) && out.duplicate.is_none() {
                        out.duplicate = Some(key.into_owned());
                    }
                    self.payload.push(b':');
                    self.payload.extend_from_slice(value.get().as_bytes());
                }
            }
        }
        Ok(out)
    }
}

/// Checks a payload (an object body) the way a strict JSON parser reads it (see
/// [`crate::json::check_strict`]). The line was only scanned so far, so such
/// values would otherwise pass through into every enriched line.
pub(super) fn check_strict(payload: &[u8]) -> Result<(), Rule> {
    let mut object = Vec::with_capacity(payload.len() + 2);
    object.push(b'{');
    object.extend_from_slice(payload);
    object.push(b'}');
    // The braces added are one level more than the payload's own.
    crate::json::check_strict(&object, MAX_DEPTH + 1).map_err(|e| match e {
        crate::json::StrictError::TooDeep(_) => Rule::TooDeep,
        crate::json::StrictError::NotStrict(message) => Rule::NotStrictJson(message),
    })
}

pub(super) fn ip_field(raw: Option<&RawValue>, field: &'static str) -> Result<IpKey, Rule> {
    let raw = raw.ok_or(Rule::MissingField(field))?;
    let text = raw_str(raw).ok_or(Rule::NotString(field))?;
    IpKey::parse(&text).map_err(|source| Rule::BadIp { field, source })
}
