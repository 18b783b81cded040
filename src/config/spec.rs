//! Data set arguments: `--db [NAME=]DIR` and `--watch NAME=WHERE`, and the rules
//! for a data set's name (it becomes a key of every enriched line).
//!
//! A watch is parsed in [`parse_watch`] alone; what its place names (a
//! directory, `s3://`, `http(s)://`) is told apart by [`WatchSource::parse`].

use std::path::PathBuf;

use crate::output_fields;
use crate::remote::{WatchError, WatchSource};

/// Why a data set argument or name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("data set name {0:?}: use 1 to 64 letters, digits, _ and -")]
    BadName(String),
    #[error("data set name {0:?} is an output field name; choose another")]
    Reserved(String),
    #[error("{0:?}: expected NAME=DIR")]
    NoDir(String),
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// A data set name and what keeps it current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameWatch {
    pub name: String,
    pub watch: WatchSource,
}

/// A data set name and its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameDir {
    pub name: String,
    pub dir: PathBuf,
}

/// The name of the data set given as a bare `DIR`.
pub const DEFAULT_NAME: &str = "whip";

/// A plain name: it becomes a JSON key.
pub fn valid_dataset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a data set name, for every command and the file alike: plain (it
/// becomes a JSON key) and not a key the output already has.
pub fn check_dataset_name(name: &str) -> Result<(), SpecError> {
    if !valid_dataset_name(name) {
        return Err(SpecError::BadName(name.to_string()));
    }
    if output_fields::is_output_field(name) {
        return Err(SpecError::Reserved(name.to_string()));
    }
    Ok(())
}

/// `--db`: `NAME=DIR`, or `DIR` for the data set named "whip" (also when what
/// comes before a `=` cannot be a name: the `=` is then part of the path). The
/// name is checked ([`check_dataset_name`]).
pub fn parse_db(spec: &str) -> Result<NameDir, SpecError> {
    match spec.split_once('=') {
        Some((name, dir)) if valid_dataset_name(name) => {
            check_dataset_name(name)?;
            if dir.is_empty() {
                return Err(SpecError::NoDir(spec.to_string()));
            }
            Ok(NameDir {
                name: name.to_string(),
                dir: dir.into(),
            })
        }
        _ => Ok(NameDir {
            name: DEFAULT_NAME.to_string(),
            dir: spec.into(),
        }),
    }
}

/// `--watch NAME=WHERE`: the directory, `s3://BUCKET/PREFIX/` or
/// `http(s)://HOST/PATH/FILE` that keeps data set NAME current (`WHERE` alone:
/// the data set "whip", as `--db`).
pub fn parse_watch(spec: &str) -> Result<NameWatch, SpecError> {
    let NameDir { name, dir } = parse_db(spec)?;
    let watch = WatchSource::parse(&dir.to_string_lossy())?;
    Ok(NameWatch { name, watch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_not_output_fields() {
        assert!(check_dataset_name("geo-2").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert_eq!(check_dataset_name(bad), Err(SpecError::BadName(bad.into())));
        }
        for reserved in ["status", "time_source", "ip", "line"] {
            assert_eq!(
                check_dataset_name(reserved),
                Err(SpecError::Reserved(reserved.into()))
            );
        }
    }

    #[test]
    fn a_spec_is_name_and_dir_or_a_dir() {
        let nd = |n: &str, d: &str| NameDir {
            name: n.into(),
            dir: d.into(),
        };
        assert_eq!(parse_db("geo=/s"), Ok(nd("geo", "/s")));
        assert_eq!(parse_db("/s"), Ok(nd("whip", "/s")));
        assert_eq!(parse_db("/a=b"), Ok(nd("whip", "/a=b")));
        assert_eq!(parse_db("geo="), Err(SpecError::NoDir("geo=".into())));
        assert_eq!(
            parse_db("status=/s"),
            Err(SpecError::Reserved("status".into()))
        );
        assert_eq!(
            parse_watch("geo=/in"),
            Ok(NameWatch {
                name: "geo".into(),
                watch: WatchSource::Dir("/in".into())
            })
        );
    }
}
