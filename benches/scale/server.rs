//! The loopback server of the scale harness: serves [`Model`] pages on
//! 127.0.0.1, renders each on request (no pre-rendered copies, so 100k pages
//! cost no memory), with a strong `ETag` derived from the page state and
//! `If-None-Match` → 304, optional gzip. The generation (or every page's
//! state) is switched by the driver in-process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;

use crate::pages::{Model, PageState, index_of};

/// Request counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub not_modified: AtomicU64,
    pub not_found: AtomicU64,
    pub bytes: AtomicU64,
    pub gzip: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub ok: u64,
    pub not_modified: u64,
    pub not_found: u64,
    pub bytes: u64,
    pub gzip: u64,
}

struct Inner {
    model: Model,
    states: RwLock<Vec<PageState>>,
    conditional: AtomicBool,
    gzip: bool,
    stats: Stats,
}

/// A running server; dropped with the runtime that runs it.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

impl Server {
    /// Binds 127.0.0.1 on `port` (0: an ephemeral one) and serves
    /// generation 0.
    pub async fn start(
        model: Model,
        conditional: bool,
        gzip: bool,
        port: u16,
    ) -> std::io::Result<Server> {
        let states = model.states(0);
        let inner = Arc::new(Inner {
            model,
            states: RwLock::new(states),
            conditional: AtomicBool::new(conditional),
            gzip,
            stats: Stats::default(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Server { inner, addr })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves every page as of generation `g`.
    pub fn set_generation(&self, g: u32) {
        let s = self.inner.model.states(g);
        self.set_states(s);
    }

    /// Serves the given page states.
    pub fn set_states(&self, s: Vec<PageState>) {
        *self.inner.states.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Counters so far; `reset` zeroes them.
    pub fn stats(&self, reset: bool) -> StatsSnapshot {
        let s = &self.inner.stats;
        let get = |a: &AtomicU64| {
            if reset {
                a.swap(0, Ordering::Relaxed)
            } else {
                a.load(Ordering::Relaxed)
            }
        };
        StatsSnapshot {
            requests: get(&s.requests),
            ok: get(&s.ok),
            not_modified: get(&s.not_modified),
            not_found: get(&s.not_found),
            bytes: get(&s.bytes),
            gzip: get(&s.gzip),
        }
    }
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request<Body>) -> Response {
    let st = &inner.stats;
    st.requests.fetch_add(1, Ordering::Relaxed);
    let Some(i) = index_of(req.uri().path(), inner.model.n) else {
        st.not_found.fetch_add(1, Ordering::Relaxed);
        return response(StatusCode::NOT_FOUND, Body::from("not found"));
    };
    let state = inner
        .states
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(i)
        .cloned()
        .unwrap_or_default();
    let conditional = inner.conditional.load(Ordering::Relaxed);
    let etag = inner.model.etag(i, &state);
    if conditional
        && req
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        st.not_modified.fetch_add(1, Ordering::Relaxed);
        let mut r = response(StatusCode::NOT_MODIFIED, Body::empty());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    let body = inner.model.render(i, &state).into_bytes();
    let gz = inner.gzip
        && req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gzip"));
    let body = if gz {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = e.write_all(&body);
        st.gzip.fetch_add(1, Ordering::Relaxed);
        e.finish().unwrap_or_default()
    } else {
        body
    };
    st.ok.fetch_add(1, Ordering::Relaxed);
    st.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut r = response(StatusCode::OK, Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if gz {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if conditional && let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

fn response(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}
