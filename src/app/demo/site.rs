//! A small HTTP server on 127.0.0.1 serving pages that can be changed while
//! it runs: the demo's scenario, and the integration tests' web sites.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::Response;

/// One page: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Page {
    /// A 200 `text/html; charset=utf-8` page.
    pub fn html(body: impl Into<String>) -> Page {
        Page {
            status: 200,
            content_type: "text/html; charset=utf-8".into(),
            headers: vec![],
            body: body.into().into_bytes(),
        }
    }

    /// A 200 `application/json` page.
    pub fn json(body: impl Into<String>) -> Page {
        Page {
            content_type: "application/json".into(),
            ..Page::html(body)
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    pages: Mutex<HashMap<String, Page>>,
    requests: AtomicU64,
    /// Path (with query) and `Authorization` header of every request.
    log: Mutex<Vec<(String, Option<String>)>>,
}

/// A running site. Dropping it does not stop the server task; it ends with
/// the runtime.
#[derive(Debug, Clone)]
pub struct Site {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Site {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> std::io::Result<Site> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %crate::text::chain(&e), "Demo site stopped.");
            }
        });
        Ok(Site { addr, inner })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Full URL of a path (with query).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base(), path_and_query)
    }

    /// Sets (or replaces) the page at a path (with query, e.g. `/p?page=2`).
    pub fn set(&self, path_and_query: &str, page: Page) {
        self.inner
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path_and_query.to_string(), page);
    }

    /// Removes a page (it then answers 404).
    pub fn remove(&self, path_and_query: &str) {
        self.inner
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path_and_query);
    }

    /// Path (with query) and `Authorization` header of every request so
    /// far, in arrival order.
    pub fn request_log(&self) -> Vec<(String, Option<String>)> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }
}

async fn serve(State(inner): State<Arc<Inner>>, req: Request<Body>) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let key = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    {
        let mut log = inner.log.lock().unwrap_or_else(PoisonError::into_inner);
        // A long-running demo site keeps only the recent requests.
        if log.len() >= 10_000 {
            log.drain(..5_000);
        }
        log.push((key.clone(), auth));
    }
    let page = inner
        .pages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .cloned();
    let mut resp = match page {
        Some(p) => {
            let etag = format!("\"{}\"", &blake3::hash(&p.body).to_hex()[..16]);
            let inm = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            if p.status == 200 && inm == Some(etag.as_str()) {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r.headers_mut().insert(header::ETAG, hv(&etag));
                return r;
            }
            let mut r = Response::new(Body::from(p.body));
            *r.status_mut() =
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let h: &mut HeaderMap = r.headers_mut();
            h.insert(header::CONTENT_TYPE, hv(&p.content_type));
            if p.status == 200 {
                h.insert(header::ETAG, hv(&etag));
            }
            for (k, v) in &p.headers {
                if let (Ok(k), Ok(v)) = (
                    header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    h.insert(k, v);
                }
            }
            r
        }
        None => {
            let mut r = Response::new(Body::from("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, hv("no-store"));
    resp
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
