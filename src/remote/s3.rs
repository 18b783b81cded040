//! An S3 bucket prefix as a snapshot source (AWS, MinIO, Ceph, GCS's S3 API),
//! through `object_store`.
//!
//! Endpoint, region and credentials come from the usual environment
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, web identity
//! and container credentials, the instance metadata service;
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). The objects directly under
//! the prefix whose names are snapshot names are the source's files, as a
//! watched directory's; an object is downloaded at the version listed (the GET
//! asks for its ETag), and its length must be the length listed.

use std::sync::atomic::AtomicBool;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, ObjectMeta, ObjectStore, RetryConfig,
};

use super::fetch::{with_retries, FetchError};
use super::mirror::Staging;
use super::{ClientError, Limits};
use crate::load::is_snapshot_name;

/// A listed object: its name (the mirror file's) and its version.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub meta: ObjectMeta,
}

pub struct S3Source {
    store: AmazonS3,
    prefix: Option<ObjectPath>,
    limits: Limits,
}

impl S3Source {
    pub fn new(bucket: &str, prefix: &str, limits: Limits) -> Result<S3Source, ClientError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: limits.backoff,
                ..BackoffConfig::default()
            },
            max_retries: limits.retries as usize,
            retry_timeout: limits.timeout,
        };
        super::install_tls_provider();
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            // A key, not `with_client_options`: that would replace the client
            // settings read from the environment (AWS_ALLOW_HTTP, proxy).
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}s", limits.timeout.as_secs()),
            )
            .build()
            .map_err(|source| ClientError::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                source,
            })?;
        let prefix = prefix.trim_end_matches('/');
        Ok(S3Source {
            store,
            prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
            limits,
        })
    }

    /// The snapshot objects directly under the prefix, by name.
    pub async fn list(&self) -> Result<Vec<Listed>, FetchError> {
        let listing = self
            .store
            .list_with_delimiter(self.prefix.as_ref())
            .await
            .map_err(transport)?;
        let mut out: Vec<Listed> = listing
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                is_snapshot_name(&name).then_some(Listed { name, meta })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Downloads `object` at its listed version into a fresh staging file
    /// from `stage` (retried with backoff); the length must be the listed one.
    pub async fn download(
        &self,
        object: &Listed,
        stop: &AtomicBool,
        stage: impl Fn() -> std::io::Result<Staging>,
    ) -> Result<Staging, FetchError> {
        if object.meta.size > self.limits.max_bytes {
            return Err(FetchError::TooLarge {
                cap: self.limits.max_bytes,
            });
        }
        let what = format!("{}", object.meta.location);
        let stage = &stage;
        with_retries(&self.limits, stop, &what, || async move {
            let mut staging = stage()?;
            let options = GetOptions {
                if_match: object.meta.e_tag.clone(),
                ..GetOptions::default()
            };
            let got = self
                .store
                .get_opts(&object.meta.location, options)
                .await
                .map_err(transport)?;
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                staging.write(&chunk.map_err(transport)?)?;
            }
            if staging.bytes() != object.meta.size {
                return Err(FetchError::Short {
                    got: staging.bytes(),
                    want: object.meta.size,
                });
            }
            Ok(staging)
        })
        .await
    }
}

/// An S3 failure: a missing object or a changed version (it changed after
/// the listing) are for the next poll; the rest is the network or the server.
fn transport(e: object_store::Error) -> FetchError {
    match e {
        object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. } => {
            FetchError::Refused(e.to_string())
        }
        e => FetchError::Transport(e.to_string()),
    }
}
