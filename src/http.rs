//! Whip's REST API over the index, plus `/healthz` and `/metrics`.
//!
//! - `GET /ip/<ip>`: the newest record, `{}` when none;
//! - `GET /ip/<ip>?datetime=<t>`: the record valid at `t`;
//! - `GET /ip/<ip>?datetime=all`: `{"history":[...]}`, newest first.
//!
//! Every answer is `application/json`. Bad input gets a 4xx with `{"error":..}`
//! (Whip answered 500). Handlers read the index through [`SharedIndex`], so a load
//! swapping in a new index never blocks a request.

use std::future::Future;
use std::time::Instant as WallClock;

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
use crate::time::Instant;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub index: SharedIndex,
    pub metrics: Option<PrometheusHandle>,
}

#[derive(serde::Deserialize)]
pub struct IpQuery {
    datetime: Option<String>,
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
    let when = match query {
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad query string: {e}")),
        Ok(Query(IpQuery { datetime: None })) => When::Latest,
        Ok(Query(IpQuery { datetime: Some(t) })) if t == "all" => When::History,
        Ok(Query(IpQuery { datetime: Some(t) })) => match Instant::parse(&t) {
            Ok(t) => When::At(t),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    let started = WallClock::now();
    let index = state.index.load();
    let mut body = Vec::with_capacity(256);
    write_answer(&index, ip, when, &mut body);
    telemetry::lookup(body.as_slice() != b"{}", started.elapsed());
    json(StatusCode::OK, body)
}

async fn healthz(State(state): State<AppState>) -> Response {
    telemetry::http_request("healthz", 200);
    let index = state.index.load();
    let body = serde_json::json!({
        "status": "ok",
        "snapshots": index.snapshot_count(),
    });
    json(StatusCode::OK, body.to_string().into_bytes())
}

async fn metrics(State(state): State<AppState>) -> Response {
    telemetry::http_request("metrics", 200);
    telemetry::index_in_use(&state.index.load());
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
        "not found: the API is /ip/<ip>[?datetime=<time>|all], /healthz, /metrics",
    )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ip/{ip}", get(ip_handler))
        .route("/healthz", get(healthz))
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
