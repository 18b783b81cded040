//! Whip's REST API over HTTP, served by the real binary on a free port.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::serve::Server;
use common::*;

#[test]
fn whip_rest_api() {
    let server = Server::start(geoip_store());

    let (status, latest) = server.get_json("/ip/1.0.1.5");
    assert_eq!(status, 200);
    assert_eq!(latest["datetime"], "2026-09-26T01:56:00Z");
    assert_eq!(latest["country"], "CN");

    let (_, at) = server.get_json("/ip/1.0.1.5?datetime=2025-01-01T00:00:00%2B01:00");
    assert_eq!(at["datetime"], "2024-10-01T23:41:00Z");
    let (_, mapped) = server.get_json("/ip/::ffff:1.0.1.5?datetime=2025-01-01");
    assert_eq!(mapped, at);

    let (_, all) = server.get_json("/ip/1.0.1.5?datetime=all");
    let history = all["history"].as_array().expect("history array");
    // 1.0.1.0-1.0.3.255 CN is in all three snapshots unchanged: one version,
    // dated by the snapshot that first had it.
    assert_eq!(history.len(), 1, "{all}");
    let mut first_seen = latest.clone();
    first_seen["datetime"] = "2024-10-01T23:41:00Z".into();
    assert_eq!(history[0], first_seen);

    let (status, none) = server.get_json("/ip/10.1.2.3");
    assert_eq!((status, none), (200, serde_json::json!({})));
    let (_, early) = server.get_json("/ip/1.0.1.5?datetime=2001-01-01");
    assert_eq!(early, serde_json::json!({}));

    for bad in [
        "/ip/999.1.1.1",
        "/ip/hello",
        "/ip/1.0.1.5?datetime=2025-02-30",
    ] {
        let (status, body) = server.get_json(bad);
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (status, body) = server.get_json("/nope");
    assert_eq!(status, 404);
    assert!(body["error"].is_string());

    let (status, health) = server.get_json("/healthz");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["snapshots"], 3);

    let (status, ctype, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let ok_ip_requests = metrics
        .lines()
        .find(|l| {
            l.starts_with("whipstream_http_requests_total")
                && l.contains("route=\"ip\"")
                && l.contains("status=\"200\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(ok_ip_requests, Some(6.0), "{metrics}");
    assert!(metrics.contains("whipstream_snapshots 3"), "{metrics}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(geoip_store());
    assert_eq!(server.get_json("/healthz").0, 200);
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
}

/// Every error answer is JSON with a message that says what is wrong: the
/// corpus of bad requests in `tests/fixtures/bad-http`, and requests too large
/// to keep as files.
#[test]
fn every_error_is_json_with_a_correct_message() {
    let server = Server::start(geoip_store());
    let mut cases: Vec<(String, u16, Vec<u8>)> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(fixture("bad-http"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let status = name[..3].parse().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        cases.push((name, status, text.replace('\n', "\r\n").into_bytes()));
    }
    assert!(cases.len() >= 10, "the corpus is there");
    let long_uri = format!("GET /ip/{} HTTP/1.1\r\nHost: x\r\n\r\n", "1".repeat(70_000));
    cases.push(("uri of 70000 bytes".into(), 414, long_uri.into_bytes()));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    cases.push(("200 headers".into(), 431, many.into_bytes()));
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500 * 1024)
    );
    cases.push(("a header of 500 KiB".into(), 431, huge.into_bytes()));

    for (name, status, request) in &cases {
        let answer = server.raw(request);
        assert_eq!(answer.status, *status, "{name}: {answer:?}");
        let message = answer.json_error();
        assert!(!message.is_empty(), "{name}");
        assert!(!message.contains("zone"), "{name}: {message}");
        match status {
            405 => {
                assert_eq!(answer.header("allow"), Some("get, head"), "{name}");
                assert!(
                    message.starts_with("method not allowed"),
                    "{name}: {message}"
                );
            }
            414 => assert!(message.starts_with("uri too long"), "{name}: {message}"),
            431 => assert!(
                message.starts_with("request header fields too large"),
                "{name}: {message}"
            ),
            _ if name.starts_with("400-ip-") => {
                assert!(
                    message.starts_with("not an IP address"),
                    "{name}: {message}"
                )
            }
            _ => assert!(message.starts_with("bad request"), "{name}: {message}"),
        }
    }
    // The server is still there for everyone else.
    assert_eq!(server.get_json("/ip/1.0.1.5").0, 200);
}

/// A bad request behind good ones on one connection (pipelined) is answered
/// in JSON too, after the good ones' answers.
#[test]
fn a_pipelined_bad_request_is_answered_in_json_after_the_good_ones() {
    let server = Server::start(geoip_store());
    for bad in [
        "GET /x HTTP/1.1\r\nHost x\r\n\r\n".to_string(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
    ] {
        let mut request = "GET /ip/1.0.1.5 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
        request.push_str(&bad);
        let mut conn = server.connect();
        let mut writer = conn.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(request.as_bytes());
        });
        let mut raw = Vec::new();
        let _ = conn.read_to_end(&mut raw);
        sender.join().unwrap();
        let text = String::from_utf8_lossy(&raw);
        let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 21, "{text}");
        for (i, a) in answers.iter().enumerate() {
            assert!(
                a.contains("content-type: application/json"),
                "answer {i}: {a}"
            );
            let want = if i < 20 { "200 " } else { "4" };
            assert!(a.starts_with(want), "answer {i}: {a}");
        }
    }
}
