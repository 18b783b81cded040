//! Whip's REST API over HTTP, served by the real binary on a free port.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(db: &std::path::Path) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--db", s(db), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr
            .read_line(&mut line)
            .expect("serve announces its address");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .expect("address in announcement")
            .to_string();
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server { child, addr }
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        http_get(&self.addr, path)
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, ctype, body) = self.get(path);
        assert_eq!(ctype, "application/json", "{path}");
        (status, serde_json::from_str(&body).expect("json body"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
