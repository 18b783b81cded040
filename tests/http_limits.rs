//! The HTTP listener's bounds, through the real binary: slow clients and idle
//! connections are closed by the server, a connection over the cap is answered
//! 503, and everyone else is still served throughout.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::serve::{closed_by_server, Answer, Server};
use common::*;

/// Long enough for any loaded test machine; a socket still open after it was
/// not closed by the server.
const PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn slowloris_clients_are_closed_and_others_still_served() {
    let server = Server::start_with(
        geoip_store(),
        &["--http-header-timeout", "1", "--http-idle-timeout", "3600"],
    );
    let slow = 50;
    let (done, closed) = mpsc::channel();
    for _ in 0..slow {
        let mut socket = server.connect();
        let done = done.clone();
        std::thread::spawn(move || {
            // A request head that never ends: a header line at a time, each
            // soon after the last, as a slowloris client sends them.
            let mut ok = socket
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .is_ok();
            let started = Instant::now();
            let mut was_closed = !ok;
            while ok && started.elapsed() < PATIENCE {
                if closed_by_server(&mut socket, Duration::from_millis(300)) {
                    was_closed = true;
                    break;
                }
                ok = socket.write_all(b"X-Slow: 1\r\n").is_ok();
                was_closed = !ok;
            }
            let _ = done.send(was_closed);
        });
    }
    drop(done);
    // While they hang on, a normal client is answered.
    let (status, body) = server.get_json("/ip/1.0.1.5");
    assert_eq!(status, 200, "{body}");
    let closed: Vec<bool> = closed.iter().collect();
    assert_eq!(closed.len(), slow);
    assert!(
        closed.iter().all(|&c| c),
        "the server closed {} of {slow} slow sockets",
        closed.iter().filter(|&&c| c).count()
    );
    assert_eq!(server.get_json("/ip/1.0.1.5").0, 200);
}

#[test]
fn idle_connections_are_closed() {
    // The header timeout is far away: what closes these is the idle timeout.
    let server = Server::start_with(
        geoip_store(),
        &["--http-header-timeout", "3600", "--http-idle-timeout", "1"],
    );
    // A keep-alive connection after its answer, and one that never spoke.
    let mut kept = server.connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(kept.read(&mut byte).unwrap(), 1, "an answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut silent = server.connect();
    assert!(
        closed_by_server(&mut kept, PATIENCE),
        "idle keep-alive socket closed"
    );
    assert!(
        closed_by_server(&mut silent, PATIENCE),
        "silent socket closed"
    );
    assert_eq!(server.get_json("/healthz").0, 200);
}

#[test]
fn connections_over_the_cap_are_answered_503_and_the_rest_served() {
    let server = Server::start_with(
        geoip_store(),
        &[
            "--http-max-connections",
            "3",
            "--http-header-timeout",
            "3600",
            "--http-idle-timeout",
            "3600",
        ],
    );
    // Three connections take every place (accepted in order, before the next).
    let mut held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let mut over = server.connect();
    let mut raw = Vec::new();
    over.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = over.read_to_end(&mut raw);
    let answer = Answer::parse(&raw);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer.json_error().starts_with("too many connections"),
        "{answer:?}"
    );
    assert_eq!(answer.header("retry-after"), Some("1"));

    // One place freed: a client is served again.
    drop(held.pop());
    let end = Instant::now() + PATIENCE;
    loop {
        let mut conn = server.connect();
        let _ = conn.write_all(b"GET /ip/1.0.1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut raw = Vec::new();
        let _ = conn.read_to_end(&mut raw);
        if raw.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < end, "never served after a place was freed");
    }
}

/// A refused client that has sent its request (more than a socket reads in
/// one go) reads the whole 503 and then the end of the connection, never a
/// reset: the server reads what it sends before closing.
#[test]
fn a_refused_client_reads_its_503_and_a_clean_close() {
    let server = Server::start_with(
        geoip_store(),
        &[
            "--http-max-connections",
            "1",
            "--http-header-timeout",
            "3600",
            "--http-idle-timeout",
            "3600",
        ],
    );
    // The one place, taken (served once, so it is surely accepted).
    let mut held = server.connect();
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(held.read(&mut byte).unwrap(), 1);
    let headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    for i in 0..30 {
        let mut over = server.connect();
        let mut writer = over.try_clone().unwrap();
        let request = request.clone();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&request);
        });
        over.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut raw = Vec::new();
        let end = over.read_to_end(&mut raw);
        assert!(end.is_ok(), "try {i}: {end:?} after {} bytes", raw.len());
        let answer = Answer::parse(&raw);
        assert_eq!(answer.status, 503, "try {i}: {answer:?}");
        assert!(answer.json_error().starts_with("too many connections"));
        sender.join().unwrap();
    }
}
