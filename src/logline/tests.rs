//! The parser across formats: addresses, times, fields, directives.

use super::*;
use ::regex::Regex;

fn parser(f: impl FnOnce(&mut ParserConfig)) -> LineParser {
    let mut c = ParserConfig::default();
    f(&mut c);
    LineParser::new(c).unwrap()
}

const COMBINED: &str = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)""#;

#[test]
fn combined_lines() {
    let p = parser(|_| {});
    let l = p.parse(COMBINED).unwrap();
    assert_eq!(l.ip, IpKey::parse("83.149.9.216").unwrap());
    assert_eq!(l.time.unwrap().to_rfc3339(), "2015-05-17T10:05:03Z");
    let c = &l.fields.common;
    assert_eq!(c.method.as_deref(), Some("GET"));
    assert_eq!(c.protocol.as_deref(), Some("HTTP/1.1"));
    assert_eq!(c.status, Some(200));
    assert_eq!(c.bytes, Some(203023));
    assert_eq!(
        c.user_agent.as_deref(),
        Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)")
    );
    assert!(!l.fields.truncated);
}

#[test]
fn common_and_nginx_lines() {
    let p = parser(|_| {});
    let l = p
        .parse(r#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -"#)
        .unwrap();
    assert_eq!(l.ip_text, "2001:db8::1");
    assert_eq!(l.time.unwrap().to_rfc3339(), "2000-10-10T20:55:36Z");
    let c = &l.fields.common;
    assert_eq!(
        (c.user.as_deref(), c.bytes, c.referer.as_deref()),
        (Some("frank"), None, None)
    );
    // nginx's default combined plus an appended "$http_x_forwarded_for".
    let nginx = r#"10.0.0.2 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.0" "203.0.113.9, 10.0.0.1""#;
    let l = p.parse(nginx).unwrap();
    assert_eq!(l.fields.extra, vec!["203.0.113.9, 10.0.0.1"]);
    assert_eq!(l.fields.common.referer, None);
}

#[test]
fn truncated_user_agent_is_kept() {
    let p = parser(|_| {});
    let l = p
        .parse(r#"46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36"#)
        .unwrap();
    assert!(l.fields.truncated);
    assert!(l
        .fields
        .common
        .user_agent
        .unwrap()
        .starts_with("Mozilla/5.0"));
}

#[test]
fn json_lines_with_default_fields() {
    let p = parser(|_| {});
    let l = p
        .parse(
            r#"{"remote_addr":"::ffff:1.2.3.4","time":"2024-01-01T10:00:00+02:00","status":200}"#,
        )
        .unwrap();
    assert_eq!(l.ip, IpKey::parse("1.2.3.4").unwrap());
    assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T08:00:00Z");
    let l = p
        .parse(r#"{"source":{"ip":"2001:db8::5"},"@timestamp":1704103200}"#)
        .unwrap();
    assert_eq!(l.ip_text, "2001:db8::5");
    assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T10:00:00Z");
    let l = p.parse(r#"{"ip":"1.1.1.1","ts":1704103200123}"#).unwrap();
    assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T10:00:00.123Z");
    let l = p.parse(r#"{"ip":"1.1.1.1"}"#).unwrap();
    assert_eq!(l.time, None);
    assert_eq!(p.parse(r#"{"x":1}"#).unwrap_err(), ParseError::NoIp);
    assert!(matches!(
        p.parse(r#"{"ip":"1.1.1.1""#).unwrap_err(),
        ParseError::Json(_)
    ));
    assert!(matches!(
        p.parse(r#"{"ip":"1.1.1.1","time":"2024-02-30"}"#)
            .unwrap_err(),
        ParseError::BadTime(_)
    ));
}

#[test]
fn custom_fields_and_regex() {
    let p = parser(|c| {
        c.format = Format::Json;
        c.ip_fields = vec!["peer".into()];
        c.time_fields = vec!["when".into()];
    });
    let l = p
        .parse(r#"{"peer":"9.9.9.9","when":"10/Oct/2000:13:55:36 -0700"}"#)
        .unwrap();
    assert_eq!(l.ip_text, "9.9.9.9");
    assert!(l.time.is_some());

    let p = parser(|c| {
        c.format = Format::Regex;
        c.regex =
            Some(Regex::new(r"^(?P<time>\S+) client=(?P<ip>\S+) user=(?P<user>\S+)").unwrap());
    });
    let l = p
        .parse("2024-05-01T00:00:00Z client=8.8.8.8 user=bob")
        .unwrap();
    assert_eq!(l.ip_text, "8.8.8.8");
    assert_eq!(l.fields.common.user.as_deref(), Some("bob"));
    assert_eq!(l.fields.raw, Raw::Named(vec![]));
    assert!(matches!(
        p.parse("nope").unwrap_err(),
        ParseError::NoMatch(_)
    ));
    assert!(LineParser::new(ParserConfig {
        format: Format::Regex,
        regex: Some(Regex::new(r"(?P<time>\S+)").unwrap()),
        ..ParserConfig::default()
    })
    .is_err());
}

#[test]
fn regex_times_follow_time_format() {
    let re = || Some(Regex::new(r"^(?P<time>\S+) (?P<ip>\S+)").unwrap());
    let epoch = parser(|c| {
        c.format = Format::Regex;
        c.regex = re();
        c.time_format = TimeFormat::Epoch;
    });
    let l = epoch.parse("1727863200.5 1.2.3.4").unwrap();
    assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-02T10:00:00.5Z");
    assert!(epoch.parse("2024-10-02 1.2.3.4").is_err());
    let ms = parser(|c| {
        c.format = Format::Regex;
        c.regex = re();
        c.time_format = TimeFormat::EpochMillis;
    });
    assert_eq!(
        ms.parse("1727863200000 1.2.3.4")
            .unwrap()
            .time
            .unwrap()
            .to_rfc3339(),
        "2024-10-02T10:00:00Z"
    );
    let clf = parser(|c| {
        c.format = Format::Regex;
        c.regex = Some(Regex::new(r"^\[(?P<time>[^\]]+)\] (?P<ip>\S+)").unwrap());
        c.time_format = TimeFormat::Clf;
    });
    assert_eq!(
        clf.parse("[02/Oct/2024:12:00:00 +0200] 1.2.3.4")
            .unwrap()
            .time
            .unwrap()
            .to_rfc3339(),
        "2024-10-02T10:00:00Z"
    );
    let rfc = parser(|c| {
        c.format = Format::Regex;
        c.regex = re();
        c.time_format = TimeFormat::Rfc3339;
    });
    assert!(rfc.parse("1727863200 1.2.3.4").is_err());
    assert!("nope".parse::<TimeFormat>().is_err());
}

#[test]
fn xff_walks_from_the_right_past_trusted_proxies() {
    let trusted = vec![
        Cidr::parse("10.0.0.0/8").unwrap(),
        Cidr::parse("2001:db8::/32").unwrap(),
    ];
    let p = parser(|c| {
        c.client_ip = ClientIp::Xff;
        c.trusted_proxies = trusted.clone();
    });
    let nginx = r#"10.0.0.2 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.0" "198.51.100.7, 203.0.113.9, 10.0.0.1""#;
    assert_eq!(p.parse(nginx).unwrap().ip_text, "203.0.113.9");
    // An untrusted peer's header is ignored.
    let direct = nginx.replacen("10.0.0.2", "192.0.2.1", 1);
    assert_eq!(p.parse(&direct).unwrap().ip_text, "192.0.2.1");
    let json = r#"{"remote_addr":"2001:db8::1","x_forwarded_for":"203.0.113.5,10.1.1.1","time":"2024-01-01"}"#;
    assert_eq!(p.parse(json).unwrap().ip_text, "203.0.113.5");
    // Without a header the remote address stands.
    let json = r#"{"remote_addr":"10.1.2.3","time":"2024-01-01"}"#;
    assert_eq!(p.parse(json).unwrap().ip_text, "10.1.2.3");
}

#[test]
fn any_mode_takes_the_first_address() {
    let p = parser(|c| {
        c.format = Format::Regex;
        c.regex = Some(Regex::new(r"^(?P<msg>.*)$").unwrap());
        c.client_ip = ClientIp::Any;
    });
    let l = p.parse("Oct 10 sshd[123]: Failed password for root from 2001:db8::7 port 22 at 2024-10-10T10:00:00Z").unwrap();
    assert_eq!(l.ip_text, "2001:db8::7");
    assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-10T10:00:00Z");
    let l = p.parse("blocked 999.1.1.1 then 192.0.2.55:443").unwrap();
    assert_eq!(l.ip_text, "192.0.2.55");
    assert_eq!(p.parse("no address here").unwrap_err(), ParseError::NoIp);
}

#[test]
fn bad_addresses_and_times_are_errors() {
    let p = parser(|_| {});
    let bad_ip = COMBINED.replacen("83.149.9.216", "999.1.1.1", 1);
    assert!(matches!(
        p.parse(&bad_ip).unwrap_err(),
        ParseError::BadIp(_)
    ));
    let zone = COMBINED.replacen("83.149.9.216", "fe80::1%eth0", 1);
    assert!(matches!(p.parse(&zone).unwrap_err(), ParseError::BadIp(_)));
    let bad_time = COMBINED.replacen("17/May/2015", "31/Feb/2015", 1);
    assert!(matches!(
        p.parse(&bad_time).unwrap_err(),
        ParseError::BadTime(_)
    ));
    assert_eq!(p.parse("garbage").unwrap_err(), ParseError::Unrecognised);
    assert_eq!(p.parse("").unwrap_err(), ParseError::Unrecognised);
}

#[test]
fn fields_write_valid_json() {
    let p = parser(|_| {});
    let l = p.parse(COMBINED).unwrap();
    let mut out = b"{\"a\":1".to_vec();
    l.fields.write_json(&mut out);
    out.push(b'}');
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(
        v["path"],
        "/presentations/logstash-monitorama-2013/images/kibana-search.png"
    );
}
