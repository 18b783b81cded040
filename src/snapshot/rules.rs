//! The rules across lines of one snapshot: one datetime, sorted ranges that do
//! not overlap, IPv4 before IPv6; and the payload interner that deduplicates
//! payloads within the file.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::Deserializer;

use super::error::Rule;
use super::parse::{check_strict, ip_field, LineVisitor, SeenKeys};
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
    payload_ids: HashMap<Box<[u8]>, u32>,
    previous_line: u64,
    payload_buf: Vec<u8>,
    keys: SeenKeys,
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
/// written into `payload` (cleared first) as `"key":value` bytes.
pub(super) fn parse_line<'a>(
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
        let mut payload = std::mem::take(&mut self.payload_buf);
        let result = parse_line(line, &mut payload, &mut self.keys).and_then(|fields| {
            self.check_datetime(&fields.datetime)?;
            self.add_range(fields.begin, fields.end, &payload, line_no)
        });
        self.payload_buf = payload;
        result
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
        let payload = match self.payload_ids.get(payload) {
            Some(&id) => id,
            None => {
                // Each distinct payload is checked once: it is written out as is.
                check_strict(payload)?;
                let id = self.payloads.len() as u32;
                let bytes: Box<[u8]> = payload.into();
                self.payloads.push(bytes.clone());
                self.payload_ids.insert(bytes, id);
                id
            }
        };
        self.ranges.push(Range {
            begin,
            end,
            payload,
        });
        self.previous_line = line_no;
        Ok(())
    }

    fn check_range(&self, begin: IpKey, end: IpKey) -> Result<(), Rule> {
        if begin.family() != end.family() {
            return Err(Rule::MixedFamilies { begin, end });
        }
        if begin > end {
            return Err(Rule::BeginAfterEnd { begin, end });
        }
        if begin.family() == Family::V6 && begin < IpKey::V4_FIRST && end > IpKey::V4_LAST {
            return Err(Rule::SpansMappedBlock { begin, end });
        }
        if let Some(prev) = self.ranges.last() {
            if begin <= prev.end {
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
                if begin >= prev.begin {
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
