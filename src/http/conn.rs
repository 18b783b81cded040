//! The HTTP listener's connections: how many, how long, and what an answer that
//! hyper writes by itself looks like.
//!
//! Invariants:
//! - at most [`Limits::max_connections`] connections are served at once; one over
//!   the cap is answered `503` with a JSON error and closed (it never waits in a
//!   queue a slow client could keep full); the close is a lingering one (what
//!   the client still sends is read and dropped for a moment, [`LINGER`]) so
//!   that closing with its request unread does not reset the connection under
//!   the answer;
//! - a request head must arrive whole within [`Limits::header_timeout`] of the
//!   connection starting to wait for it (hyper's header-read timeout: a slowloris
//!   client sending a header line every few seconds is closed, and so is a
//!   keep-alive connection waiting for a next request that does not come);
//! - a connection on which no byte moves either way for [`Limits::idle_timeout`]
//!   while hyper waits on it (a stalled body, a client that does not read its
//!   answer) is closed;
//! - every error answer is `application/json`: the bare `400`, `414` and `431`
//!   that hyper writes by itself for a request it cannot parse are rewritten on
//!   their way out into the same JSON error the API gives ([`JsonErrors`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{sleep, Instant, Sleep};

use crate::lookup::write_error;

/// Bounds on the listener's connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Time for a whole request head to arrive, counted from when the
    /// connection starts waiting for it.
    pub header_timeout: Duration,
    /// Time without a byte read or written after which a connection is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECONDS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECONDS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Default of [`Limits::header_timeout`]: ample for any real client.
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 10;
/// Default of [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;
/// Default of [`Limits::max_connections`]: well under the usual 1024 open files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long open requests may take to finish once the server is told to stop.
const DRAIN: Duration = Duration::from_secs(5);

/// How long a refused connection is read from after its 503 (its request,
/// then the end of it), at most: a client that keeps sending is cut off.
const LINGER: Duration = Duration::from_secs(2);

/// Refused connections lingering at once; beyond that a refusal closes at
/// once (a flood of them must not hold more file descriptors than this).
const MAX_LINGERING: usize = 64;

/// What a lingering refused connection reads, at most.
const LINGER_BYTES: usize = 1 << 20;

/// How long the listener pauses when accepting fails for want of resources
/// (no file descriptor left): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` within `limits` until `shutdown` completes,
/// then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let lingering = Arc::new(Semaphore::new(MAX_LINGERING));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            match lingering.clone().try_acquire_owned() {
                Ok(linger) => {
                    tokio::spawn(async move {
                        refuse_lingering(stream).await;
                        drop(linger);
                    });
                }
                Err(_) => refuse(stream),
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(JsonErrors::new(stream, limits.idle_timeout));
        let conn = builder.serve_connection(io, TowerToHyperService::new(router.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection's end (the client gone, a timeout, a parse error)
            // is the normal life of a server, not something to report.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    // Open requests finish; a client that holds its connection open without
    // a request does not hold the process past the drain time.
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open after {DRAIN:?}: closed");
    }
    Ok(())
}

/// Errors of one incoming connection (it was reset before it was accepted):
/// the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The answer to a connection over the cap.
fn refusal() -> Vec<u8> {
    error_response(
        503,
        "too many connections: the server is at its connection limit; try again shortly",
    )
}

/// Answers a connection over the cap with a 503, ends the sending side, and
/// reads (and drops) what the client sends until it closes, for at most
/// [`LINGER`] and [`LINGER_BYTES`]: a socket closed with unread input is reset,
/// and a reset may overtake the answer on its way to the client.
async fn refuse_lingering(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(&refusal()).await?;
        stream.shutdown().await?;
        let mut sink = vec![0u8; 16 * 1024];
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// Answers a connection over the cap with a 503 and closes it, without waiting
/// on the client: what its buffers take now is all it gets (when too many
/// refused connections linger already).
fn refuse(stream: TcpStream) {
    // Read what the client already sent, so that closing does not reset the
    // connection before it reads the answer.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.try_write(&refusal());
}

/// A whole HTTP/1.1 error answer: status, JSON body, and the connection closed.
fn error_response(status: u16, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    write_error(message, &mut body);
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if status == 503 {
        out.extend_from_slice(b"retry-after: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The message of an answer hyper writes by itself (it has no body).
fn message_for(status: u16) -> &'static str {
    match status {
        414 => "uri too long: the request target is longer than the server reads",
        431 => "request header fields too large: the request head is larger than the server reads",
        _ => "bad request: the request is not valid HTTP/1.1",
    }
}

/// If `head` is an answer hyper wrote by itself for a request it could not
/// parse (an error status and no `content-type`: every answer of the API has
/// one), its status.
fn bare_error_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = std::str::from_utf8(rest.get(2..5)?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    if code < 400 {
        return None;
    }
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    (memchr::memmem::find(&lower, b"\r\ncontent-type:").is_none()).then_some(code)
}

/// A connection's stream, with the idle timeout and the JSON form of hyper's
/// own error answers.
pub struct JsonErrors {
    stream: TcpStream,
    idle_timeout: Duration,
    /// Reset whenever a byte moves; checked while hyper waits on the stream.
    idle: Pin<Box<Sleep>>,
    /// A rewritten answer not yet fully written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
}

impl JsonErrors {
    pub fn new(stream: TcpStream, idle_timeout: Duration) -> JsonErrors {
        JsonErrors {
            stream,
            idle_timeout,
            idle: Box::pin(sleep(idle_timeout)),
            pending: Vec::new(),
            written: 0,
        }
    }

    fn active(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Pending until the idle deadline passes, then the error that ends the
    /// connection.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(self.idle.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "connection idle for longer than the idle timeout",
        ))
    }

    /// The stream's answer to a read or write: any answer restarts the idle
    /// clock; while it is pending, the idle deadline may end the connection.
    fn after_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        io: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match io {
            Poll::Ready(result) => {
                self.active();
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.active();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.poll_idle(cx).map(Err),
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for JsonErrors {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.after_io(cx, read)
    }
}

impl AsyncWrite for JsonErrors {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(status) = bare_error_status(buf) {
            // hyper writes its own answer as one head and closes after it:
            // the whole of `buf` is replaced.
            this.pending = error_response(status, message_for(status));
            this.written = 0;
            return match this.poll_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                // Taken: the rest is written on the next write or flush.
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_io(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
    // Not vectored: hyper then writes each answer as one buffer, which is what
    // lets a bare error head be recognised whole.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_are_recognised_and_api_answers_are_not() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(bare_error_status(bare), Some(431));
        let api = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(bare_error_status(api), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_error_status(ok), None);
        assert_eq!(bare_error_status(b"HTTP/1.1 4"), None);
    }

    #[test]
    fn error_responses_are_json() {
        let r = error_response(414, message_for(414));
        let text = String::from_utf8(r).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().starts_with("uri too long"));
    }
}
