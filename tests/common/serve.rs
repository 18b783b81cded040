//! `whipstream serve` on a free port, killed on drop, and raw HTTP/1.1 over a
//! socket (for what a well-behaved client never sends).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, http_get, s};

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(db: &std::path::Path) -> Server {
        Server::start_with(db, &[])
    }

    /// `serve` with `extra` arguments.
    pub fn start_with(db: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--db", s(db), "--listen", "127.0.0.1:0"])
            .args(extra)
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

    pub fn get(&self, path: &str) -> (u16, String, String) {
        http_get(&self.addr, path)
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, ctype, body) = self.get(path);
        assert_eq!(ctype, "application/json", "{path}");
        (status, serde_json::from_str(&body).expect("json body"))
    }

    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.addr).expect("connect")
    }

    /// Sends `request` as it is and reads the answer until the server closes.
    pub fn raw(&self, request: &[u8]) -> Answer {
        let mut conn = self.connect();
        // The server may answer and close before it has read all of a huge
        // request: a failed write is then expected, the answer is what counts.
        let _ = conn.write_all(request);
        let mut raw = Vec::new();
        let _ = conn.read_to_end(&mut raw);
        Answer::parse(&raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status, head in lower case, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn parse(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
        Answer {
            status: head
                .get(9..12)
                .and_then(|c| c.parse().ok())
                .expect("status"),
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == name).then(|| v.trim())
        })
    }

    /// The body as a JSON error, checking the content type.
    pub fn json_error(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let v: Value = serde_json::from_str(&self.body).expect("json body");
        v["error"].as_str().expect("an error message").to_string()
    }
}

/// Waits until `socket` is closed by the server (EOF or reset), up to
/// `limit`; true if it was. Reads whatever the server sends first.
pub fn closed_by_server(socket: &mut TcpStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 1024];
    while Instant::now() < end {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return true,
        }
    }
    false
}
