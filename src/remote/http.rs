//! One URL as a snapshot source, polled with conditional GETs.
//!
//! The request carries the last version's `ETag` (`If-None-Match`) and
//! `Last-Modified` (`If-Modified-Since`); a `304` is "nothing new". A server
//! that supports neither sends the whole file each time: the poller then
//! compares its checksum with the last one, so an unchanged file is never
//! loaded again. TLS uses the system's root certificates; a proxy is taken
//! from `HTTPS_PROXY`/`HTTP_PROXY` (and `NO_PROXY`). The client is the one
//! `object_store` brings (reqwest with rustls, see [`super::install_tls_provider`]).

use std::sync::atomic::AtomicBool;

use reqwest::header::{CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use super::fetch::{with_retries, FetchError};
use super::mirror::Staging;
use super::state::ObjectState;
use super::{ClientError, Limits};

pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    limits: Limits,
}

/// What a GET brought.
pub enum Got {
    /// `304`: the version recorded is current.
    NotModified,
    /// A whole body in the staging file, with the version's headers.
    Body {
        staging: Box<Staging>,
        etag: Option<String>,
        last_modified: Option<String>,
        /// Whether the server announced the length (a body without one may
        /// be cut short by a closed connection without anyone knowing).
        length_known: bool,
    },
}

impl HttpSource {
    pub fn new(url: &str, limits: Limits) -> Result<HttpSource, ClientError> {
        super::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(limits.timeout)
            .user_agent(concat!("whipstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Http {
                url: url.to_string(),
                source,
            })?;
        Ok(HttpSource {
            client,
            url: url.to_string(),
            limits,
        })
    }

    /// GETs the URL, conditional on `last` (retried with backoff).
    pub async fn get(
        &self,
        last: Option<&ObjectState>,
        stop: &AtomicBool,
        stage: impl Fn() -> std::io::Result<Staging>,
    ) -> Result<Got, FetchError> {
        let stage = &stage;
        with_retries(&self.limits, stop, &self.url, || async move {
            let mut request = self.client.get(&self.url);
            if let Some(etag) = last.and_then(|l| l.etag.as_deref()) {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(time) = last.and_then(|l| l.last_modified.as_deref()) {
                request = request.header(IF_MODIFIED_SINCE, time);
            }
            let mut response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Got::NotModified);
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(FetchError::Transport(format!(
                    "{}: HTTP {status}",
                    self.url
                )));
            }
            if !status.is_success() {
                return Err(FetchError::Refused(format!("{}: HTTP {status}", self.url)));
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
            let length = header(CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
            if length.is_some_and(|l| l > self.limits.max_bytes) {
                return Err(FetchError::TooLarge {
                    cap: self.limits.max_bytes,
                });
            }
            let mut staging = stage()?;
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                staging.write(&chunk)?;
            }
            if let Some(want) = length.filter(|&l| l != staging.bytes()) {
                return Err(FetchError::Short {
                    got: staging.bytes(),
                    want,
                });
            }
            Ok(Got::Body {
                staging: Box::new(staging),
                etag,
                last_modified,
                length_known: length.is_some(),
            })
        })
        .await
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    // The chain has the cause (connection reset, TLS, a body cut short).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clients are built without a bundled TLS provider: one built for
    /// `https` must find the one [`super::super::install_tls_provider`] sets.
    #[test]
    fn an_https_client_builds_with_the_installed_provider() {
        HttpSource::new(
            "https://example.org/db/GeoLite2-City.mmdb",
            Limits::default(),
        )
        .unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        super::super::s3::S3Source::new("bucket", "prefix/", Limits::default()).unwrap();
    }
}
