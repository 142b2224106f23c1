//! `run`'s Companies House streams (`stream = true` in
//! `[registries.companies_house]`): one long-lived connection per stream,
//! its last timepoint kept in the store and sent on reconnect, reconnects
//! after `retry::stream_backoff`, a `416` (timepoint too old) answered by
//! checking every Companies House source. An event about a watched company
//! makes that company's sources due now; every other event costs one
//! cheap parse (`registry::stream::parse_event`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::fetch::{Auth, FetchError, Fetcher};
use crate::model::Adapter;
use crate::registry::stream::{STREAMS, parse_event};

use super::Shared;
use super::scheduler::Wake;

/// Silence on a stream longer than this is a broken connection
/// (Companies House sends a heartbeat line much more often).
const IDLE: Duration = Duration::from_secs(120);
/// The timepoint is written to the store at most this often (and at every
/// matched event and every disconnect).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Company number → sources watching it (`entity/source`).
fn index(config: &Config) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (_, s) in config.sources() {
        if let Some(Adapter::CompaniesHouse { company_number }) = &s.adapter {
            m.entry(company_number.to_ascii_uppercase())
                .or_default()
                .push(s.key());
        }
    }
    m
}

/// Starts one task per stream when the settings ask for them.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    wakes: &mpsc::UnboundedSender<Wake>,
    stop: &watch::Receiver<bool>,
    background: &mut JoinSet<()>,
) {
    let config = shared.config();
    let ch = &config.settings.registries.companies_house;
    if !ch.stream || ch.stream_url.is_none() {
        return;
    }
    for (name, path) in STREAMS {
        background.spawn(follow(
            name,
            path,
            shared.clone(),
            wakes.clone(),
            stop.clone(),
        ));
    }
}

/// What one connection ended with.
enum Ended {
    Stop,
    /// The server closed it or it broke; whether any line arrived.
    Closed {
        got_data: bool,
        error: Option<FetchError>,
    },
}

async fn follow(
    name: &'static str,
    path: &'static str,
    shared: Arc<Shared>,
    wakes: mpsc::UnboundedSender<Wake>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let config = shared.config();
        let ch = &config.settings.registries.companies_house;
        let (Some(base), true) = (ch.stream_url.clone(), ch.stream) else {
            return; // turned off by a reload
        };
        let h = &config.settings.http;
        let fetcher = match Fetcher::new(h.fetch_options(h.allow_private_addresses)) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(stream = name, error = %crate::text::chain(&e), "Cannot build the stream's HTTP client.");
                return;
            }
        };
        let auth = match ch.stream_key.as_ref().or(ch.api_key.as_ref()) {
            Some(k) => Auth::Basic {
                user: k.expose().to_string(),
            },
            None => Auth::None,
        };
        let store = shared.store.clone();
        let stored = crate::store::blocking(move || store.stream_timepoint(name))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(stream = name, error = %crate::text::chain(&e), "Cannot read the stream's timepoint; starting from now.");
                None
            });
        let mut url = crate::registry::join(&base, &[path]);
        if let Some(tp) = stored {
            url.query_pairs_mut()
                .append_pair("timepoint", &tp.to_string());
        }
        let opened = tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            r = fetcher.open_stream(&url, &auth) => r,
        };
        let ended = match opened {
            Err(FetchError::HttpStatus { status: 416, .. }) => {
                tracing::warn!(
                    stream = name,
                    timepoint = stored,
                    "The stream no longer has the stored timepoint (416): checking every Companies House source, then following the stream from now."
                );
                let store = shared.store.clone();
                if let Err(e) =
                    crate::store::blocking(move || store.put_stream_timepoint(name, None)).await
                {
                    tracing::warn!(stream = name, error = %crate::text::chain(&e), "Cannot clear the stream's timepoint.");
                }
                let _ = wakes.send(Wake::Adapter("companies-house"));
                Ended::Closed {
                    got_data: true,
                    error: None,
                }
            }
            Err(e) => Ended::Closed {
                got_data: false,
                error: Some(e),
            },
            Ok(s) => {
                tracing::info!(
                    stream = name,
                    timepoint = stored,
                    "Following the Companies House stream."
                );
                read(name, s, &shared, &wakes, &mut stop).await
            }
        };
        match ended {
            Ended::Stop => return,
            Ended::Closed { got_data, error } => {
                failures = if got_data {
                    0
                } else {
                    failures.saturating_add(1)
                };
                let wait = crate::retry::stream_backoff(failures);
                match &error {
                    Some(e) => {
                        tracing::warn!(stream = name, error = %crate::text::chain(e), retry_in_s = wait.as_secs(), "Stream connection failed.")
                    }
                    None => tracing::info!(
                        stream = name,
                        retry_in_s = wait.as_secs(),
                        "Stream ended; reconnecting."
                    ),
                }
                let wait = match &error {
                    Some(e) => e.retry_after().map_or(wait, |r| r.max(wait)),
                    None => wait,
                };
                tokio::select! {
                    _ = stop.wait_for(|v| *v) => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Reads one connection until it ends or `stop`.
async fn read(
    name: &'static str,
    mut s: crate::fetch::ByteStream,
    shared: &Arc<Shared>,
    wakes: &mpsc::UnboundedSender<Wake>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut config = shared.config();
    let mut watched = index(&config);
    let mut buf: Vec<u8> = Vec::new();
    let mut got_data = false;
    let mut last_tp: Option<u64> = None;
    let mut saved_tp: Option<u64> = None;
    let mut last_save = tokio::time::Instant::now();
    let save = |tp: Option<u64>| {
        let store = shared.store.clone();
        async move {
            if let Some(tp) = tp
                && let Err(e) =
                    crate::store::blocking(move || store.put_stream_timepoint(name, Some(tp))).await
            {
                tracing::warn!(stream = name, error = %crate::text::chain(&e), "Cannot store the stream's timepoint.");
            }
        }
    };
    let end = loop {
        let chunk = tokio::select! {
            _ = stop.wait_for(|v| *v) => break None,
            c = s.next_chunk(IDLE) => c,
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => break Some(None),
            Err(e) => break Some(Some(e)),
        };
        got_data = true;
        buf.extend_from_slice(&chunk);
        let fresh = shared.config();
        if !Arc::ptr_eq(&fresh, &config) {
            config = fresh;
            watched = index(&config);
        }
        let (mut seen, mut matched) = (0u64, 0u64);
        let mut lag = None;
        let mut wake = Vec::new();
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + i];
            start += i + 1;
            match parse_event(line) {
                None => {}
                Some(Err(e)) => {
                    tracing::debug!(stream = name, error = %e, "Not a stream event; skipped.");
                }
                Some(Ok(ev)) => {
                    seen += 1;
                    last_tp = Some(ev.timepoint);
                    if let Some(p) = ev.published_at {
                        lag = (Utc::now() - p).to_std().ok().or(Some(Duration::ZERO));
                    }
                    if let Some(keys) = ev.company.as_ref().and_then(|c| watched.get(c)) {
                        matched += 1;
                        wake.extend(keys.iter().cloned());
                    }
                }
            }
        }
        buf.drain(..start);
        if seen > 0 {
            shared.metrics.stream_events(name, seen, matched, lag);
        }
        if !wake.is_empty() {
            wake.sort();
            wake.dedup();
            tracing::info!(stream = name, sources = ?wake, "Stream event for a watched company.");
            let _ = wakes.send(Wake::Sources(wake));
        }
        if last_tp != saved_tp && (matched > 0 || last_save.elapsed() >= SAVE_EVERY) {
            save(last_tp).await;
            saved_tp = last_tp;
            last_save = tokio::time::Instant::now();
        }
    };
    if last_tp != saved_tp {
        save(last_tp).await;
    }
    match end {
        None => Ended::Stop,
        Some(error) => Ended::Closed { got_data, error },
    }
}
