//! Routes, the `NodeApi` port the daemon implements, and the JSON shapes of the answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::envelope::{ApiError, REQUEST_ID, request_id};

/// Overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything required works.
    Healthy,
    /// Serving, with something optional impaired.
    Degraded,
    /// A required part does not work.
    Unhealthy,
}

/// One component's health, without secrets or internal errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// The component's status (`disabled` is reported as healthy with that detail).
    pub status: HealthStatus,
    /// A short, operator-facing explanation.
    pub detail: String,
}

/// The answer of `GET /health`.
#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// Whether `/health/ready` answers 200.
    #[serde(skip)]
    pub ready: bool,
    /// The node software version.
    pub version: &'static str,
    /// The node's id.
    pub node_id: String,
    /// The network name.
    pub network: String,
    /// Current slot, if the clock is past genesis.
    pub slot: Option<u64>,
    /// Current epoch, if the clock is past genesis.
    pub epoch: Option<u64>,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// Components by name.
    pub components: BTreeMap<&'static str, ComponentHealth>,
}

/// The answer of `GET /api/v1/node`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    /// `node_…` id.
    pub node_id: String,
    /// The Ed25519 public key, hex (the id without its prefix).
    pub public_key: String,
    /// The network name.
    pub network: String,
    /// The node software version.
    pub version: &'static str,
    /// Enabled cargo features of the daemon.
    pub features: Vec<&'static str>,
    /// Whether the node is ready.
    pub ready: bool,
}

/// The answer of `GET /api/v1/poot/clock`.
#[derive(Clone, Debug, Serialize)]
pub struct ClockInfo {
    /// The network name.
    pub network: String,
    /// Genesis, RFC 3339 is not used here: unix milliseconds.
    pub genesis_ms: i64,
    /// Slot length in milliseconds.
    pub slot_ms: u64,
    /// Slots per epoch.
    pub slots_per_epoch: u64,
    /// Current slot (absent before genesis).
    pub slot: Option<u64>,
    /// Current epoch (absent before genesis).
    pub epoch: Option<u64>,
    /// Start of the current slot, unix milliseconds.
    pub slot_start_ms: Option<i64>,
    /// Start of the next slot, unix milliseconds.
    pub next_slot_start_ms: Option<i64>,
}

/// What the HTTP layer needs from the node; implemented by the daemon.
pub trait NodeApi: Send + Sync + 'static {
    /// The current health snapshot.
    fn health(&self) -> HealthReport;
    /// The node's public identity.
    fn node_info(&self) -> NodeInfo;
    /// The slot clock.
    fn clock(&self) -> ClockInfo;
    /// The node's own metrics in Prometheus text format (HTTP metrics are appended here).
    fn metrics(&self) -> String;
}

/// Largest accepted request body: 1 MiB.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    fn record(&self, route: String, method: String, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests.entry((route, method, status)).or_insert(0) += 1;
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let requests = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.push_str("# HELP lucid_http_requests_total HTTP requests by route template, method and status.\n");
        out.push_str("# TYPE lucid_http_requests_total counter\n");
        for ((route, method, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "lucid_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
    }
}

#[derive(Clone)]
struct AppState {
    api: Arc<dyn NodeApi>,
    metrics: Arc<HttpMetrics>,
}

/// The router of every HTTP route.
pub fn router(api: Arc<dyn NodeApi>) -> Router {
    let state = AppState { api, metrics: Arc::new(HttpMetrics::default()) };
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/node", get(node))
        .route("/api/v1/poot/clock", get(clock))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Serves `api` on `listener` until `shutdown` completes; requests in flight then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn NodeApi>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api)).with_graceful_shutdown(shutdown).await
}

/// Request ids on every response, and request counting by route template (bounded labels: the
/// template, never the raw path).
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    state.metrics.record(route, method, response.status().as_u16());
    if !response.headers().contains_key(REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(state): State<AppState>) -> Response {
    let report = state.api.health();
    if report.ready {
        (StatusCode::OK, Json(serde_json::json!({ "ready": true }))).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "the node is not ready")
            .into_response()
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let report = state.api.health();
    let status = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(report)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.api.metrics();
    state.metrics.render(&mut text);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn node(State(state): State<AppState>) -> Json<NodeInfo> {
    Json(state.api.node_info())
}

async fn clock(State(state): State<AppState>) -> Json<ClockInfo> {
    Json(state.api.clock())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found("route").with_request_id(request_id(request.headers()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this route",
    )
    .with_request_id(request_id(request.headers()))
}

#[cfg(test)]
mod tests;
