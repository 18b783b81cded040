//! The rules across lines of one snapshot: one datetime, sorted ranges that do
//! not overlap, IPv4 before IPv6; and the payload interner that deduplicates
//! payloads within the file.

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
    pub(super) payload_buf: Vec<u8>,
    keys: SeenKeys,
}

impl LineRules {
    pub(super) fn line(&mut self, line: &[u8], line_no: u64) -> Result<(), Rule> {
        self.payload_buf.clear();
        self.keys.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = match de.deserialize_map(LineVisitor {
            payload: &mut self.payload_buf,
            keys: &mut self.keys,
        }) {
            Ok(p) => p,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                return Err(Rule::NotObject)
            }
            Err(e) => return Err(Rule::Json(e)),
        };
        de.end().map_err(Rule::Json)?;
        if let Some(field) = parsed.duplicate {
            return Err(Rule::DuplicateField(field));
        }
        let begin = ip_field(parsed.begin, "begin")?;
        let end = ip_field(parsed.end, "end")?;
        let dt_raw = parsed.datetime.ok_or(Rule::MissingField("datetime"))?;
        let dt_text = raw_str(dt_raw).ok_or(Rule::NotString("datetime"))?;
        match &self.datetime {
            Some((_, first)) if first == dt_text.as_ref() => {}
            Some((first_instant, first)) => {
                let instant = Timestamp::parse(&dt_text).map_err(Rule::BadDatetime)?;
                if instant != *first_instant {
                    return Err(Rule::DatetimeDiffers {
                        found: dt_text.into_owned(),
                        expected: first.clone(),
                    });
                }
            }
            None => {
                let instant = Timestamp::parse(&dt_text).map_err(Rule::BadDatetime)?;
                self.datetime = Some((instant, dt_text.into_owned()));
            }
        }
        self.add_range(begin, end, line_no)
    }

    /// Checks a range against the previous ones and adds it with the payload in
    /// `payload_buf`.
    pub(super) fn add_range(&mut self, begin: IpKey, end: IpKey, line_no: u64) -> Result<(), Rule> {
        self.check_range(begin, end)?;
        let payload = match self.payload_ids.get(self.payload_buf.as_slice()) {
            Some(&id) => id,
            None => {
                // Each distinct payload is checked once: it is written out as is.
                check_strict(&self.payload_buf)?;
                let id = self.payloads.len() as u32;
                let bytes: Box<[u8]> = self.payload_buf.as_slice().into();
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
