//! Whip's REST API over the index, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! - `GET /ip/<ip>`: the newest record, `{}` when none;
//! - `GET /ip/<ip>?datetime=<t>`: the record valid at `t`;
//! - `GET /ip/<ip>?datetime=all`: `{"history":[...]}`, newest first;
//! - `&dataset=NAME` picks a data set of the daemon (default: the first);
//! - `/readyz` is 503 until every data set is loaded, then 200.
//!
//! A 200 is always a real answer: until a data set is ready (its store open and
//! its watched directory's content loaded at start) a lookup in it is a 503
//! with a JSON error and `Retry-After`, never a `{}` from data not yet there.
//!
//! Every answer is `application/json`. Bad input gets a 4xx with `{"error":..}`
//! (Whip answered 500). Handlers read the index through [`SharedIndex`], so a load
//! swapping in a new index never blocks a request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::index::SharedIndex;
use crate::ip::IpKey;
use crate::lookup::{write_answer, write_error, When};
use crate::telemetry;
use crate::time::Timestamp;

/// A data set as the API serves it.
#[derive(Clone)]
pub struct Served {
    pub name: String,
    pub index: SharedIndex,
    /// Raised once the data set is loaded; lookups in it are 503 until then.
    pub ready: Arc<AtomicBool>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The data sets by name; the first is the default.
    pub datasets: Vec<Served>,
    pub metrics: Option<PrometheusHandle>,
    /// Raised once every data set is loaded.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// One data set, ready (what `serve` has).
    pub fn single(index: SharedIndex, metrics: Option<PrometheusHandle>) -> AppState {
        AppState {
            datasets: vec![Served {
                name: "whip".into(),
                index,
                ready: Arc::new(AtomicBool::new(true)),
            }],
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Seconds a client is asked to wait before asking a loading data set again.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(serde::Deserialize)]
pub struct IpQuery {
    datetime: Option<String>,
    dataset: Option<String>,
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut body = Vec::new();
    write_error(message, &mut body);
    json(status, body)
}

async fn ip_handler(
    State(state): State<AppState>,
    Path(ip): Path<String>,
    query: Result<Query<IpQuery>, QueryRejection>,
) -> Response {
    let response = answer(&state, &ip, query);
    telemetry::http_request("ip", response.status().as_u16());
    response
}

fn answer(state: &AppState, ip: &str, query: Result<Query<IpQuery>, QueryRejection>) -> Response {
    let ip = match IpKey::parse(ip) {
        Ok(ip) => ip,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let query = match query {
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad query string: {e}")),
        Ok(Query(q)) => q,
    };
    let when = match query.datetime {
        None => When::Latest,
        Some(t) if t == "all" => When::History,
        Some(t) => match Timestamp::parse(&t) {
            Ok(t) => When::At(t),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    let served = match &query.dataset {
        None => state.datasets.first(),
        Some(name) => state.datasets.iter().find(|d| &d.name == name),
    };
    let Some(served) = served else {
        let names: Vec<&str> = state.datasets.iter().map(|d| d.name.as_str()).collect();
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "no data set {:?} (there are: {})",
                query.dataset.unwrap_or_default(),
                names.join(", ")
            ),
        );
    };
    if !served.ready.load(Ordering::Acquire) {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "data set {:?} is still loading; ask again shortly",
                served.name
            ),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
        return response;
    }
    let started = Instant::now();
    let index = served.index.load();
    let mut body = Vec::with_capacity(256);
    write_answer(&index, ip, when, &mut body);
    telemetry::lookup(body.as_slice() != b"{}", started.elapsed());
    json(StatusCode::OK, body)
}

/// Snapshots per data set.
fn snapshot_counts(state: &AppState) -> serde_json::Value {
    state
        .datasets
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                serde_json::Value::from(d.index.load().snapshot_count()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The process is up (even while data sets are still loading).
async fn healthz(State(state): State<AppState>) -> Response {
    telemetry::http_request("healthz", 200);
    let snapshots = state
        .datasets
        .first()
        .map_or(0, |d| d.index.load().snapshot_count());
    let body = serde_json::json!({
        "status": "ok",
        "ready": state.ready.load(Ordering::Acquire),
        "snapshots": snapshots,
        "datasets": snapshot_counts(&state),
    });
    json(StatusCode::OK, body.to_string().into_bytes())
}

/// Ready to enrich and answer: every data set is loaded.
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.ready.load(Ordering::Acquire);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    telemetry::http_request("readyz", status.as_u16());
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "loading" },
        "datasets": snapshot_counts(&state),
    });
    json(status, body.to_string().into_bytes())
}

async fn metrics(State(state): State<AppState>) -> Response {
    telemetry::http_request("metrics", 200);
    if let Some(d) = state.datasets.first() {
        telemetry::index_in_use(&d.index.load());
    }
    telemetry::sample_memory();
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    telemetry::http_request("other", 404);
    error(
        StatusCode::NOT_FOUND,
        "not found: the API is /ip/<ip>[?datetime=<time>|all][&dataset=NAME], /healthz, /readyz, /metrics",
    )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ip/{ip}", get(ip_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
