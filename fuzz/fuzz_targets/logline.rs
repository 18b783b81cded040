//! Fuzzes the access-log line parser in every format, and the enriched JSON it
//! feeds: no input may panic, and a line that parses must yield an address and
//! fields that the JSON writer turns into a line strict parsers accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whipstream::logline::{FileState, Format, LineParser, ParserConfig};

const FORMATS: &[Format] = &[
    Format::Auto,
    Format::Combined,
    Format::Json,
    Format::W3c,
    Format::Haproxy,
    Format::Elb,
    Format::Squid,
    Format::Envoy,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    PARSERS.with(|parsers| {
        if let Some(parser) = &parsers[usize::from(selector) % FORMATS.len()] {
            parse(parser, text);
        }
    });
});

thread_local! {
    /// One parser per format, built once as a run builds it once (building
    /// compiles the formats' regexes: per input, it took nearly all the time).
    static PARSERS: Vec<Option<LineParser>> = FORMATS
        .iter()
        .map(|&format| {
            LineParser::new(ParserConfig {
                format,
                ..ParserConfig::default()
            })
            .ok()
        })
        .collect();
}

fn parse(parser: &LineParser, text: &str) {
    // A file: directives update the state of the lines after them.
    let mut file = FileState::after(None);
    for line in text.split('\n') {
        let _ = parser.parse_in(line, &mut file);
    }
    // A message that belongs to no file.
    let _ = parser.parse(text);
}
