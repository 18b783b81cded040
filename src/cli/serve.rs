//! `whipstream serve`: Whip's REST API over one store, following its loads.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use super::args::ServeArgs;
use super::open_index;
use crate::config::resolve::resolve_http;
use crate::config::HttpSection;
use crate::index_file::Check;
use crate::shutdown::{self, Stop};

/// Where `serve` listens unless `--listen` says otherwise.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

pub fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    let (listen, limits) = resolve_http(&a.http, &HttpSection::default())?;
    let listen = listen.unwrap_or(DEFAULT_LISTEN);
    let index = open_index(&a.db.db, Check::Header)?;
    let shared = Arc::new(ArcSwap::from_pointee(index));
    let runtime = shutdown::runtime().context("cannot start the async runtime")?;
    let stop = Stop::new();
    shutdown::stop_on_signals(&runtime, &stop).context("cannot install the signal handlers")?;
    // Loads by other processes are picked up from the index file they write.
    let follower = crate::follow::spawn("default", &a.db.db, shared.clone(), stop.flag());
    let metrics = crate::telemetry::install_prometheus()?;
    let stopped = stop.stopped();
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "whipstream: serving {} on http://{local}",
            a.db.db.display()
        );
        let state = crate::http::AppState::single(shared, Some(metrics));
        crate::http::serve(listener, state, limits, stopped).await?;
        Ok::<_, anyhow::Error>(())
    });
    stop.raise();
    let _ = follower.join();
    served.map(|()| ExitCode::SUCCESS)
}
