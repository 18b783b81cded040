//! The one convention by which a setting's text becomes a value of an enum
//! (`FromStr` through [`pick`]), and the error naming what was expected.

/// A setting's text that names none of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected {expected})")]
pub struct UnknownValue {
    /// What the value is of, e.g. "time format".
    pub what: &'static str,
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: String,
}

/// The value named `s` in `names` (name, value pairs; aliases allowed).
pub fn pick<T: Copy>(what: &'static str, s: &str, names: &[(&str, T)]) -> Result<T, UnknownValue> {
    names
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| UnknownValue {
            what,
            value: s.to_string(),
            expected: names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_picks_its_value_and_an_unknown_one_lists_the_names() {
        let names = [("a", 1), ("b", 2), ("bee", 2)];
        assert_eq!(pick("letter", "bee", &names), Ok(2));
        let e = pick("letter", "c", &names).unwrap_err();
        assert_eq!(e.to_string(), "unknown letter \"c\" (expected a, b, bee)");
    }
}
