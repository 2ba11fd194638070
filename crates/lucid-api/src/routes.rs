//! Routes, the `NodeApi` port the daemon implements, and the JSON shapes of the answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use axum::{Json, Router};
use lucid_core::{Epoch, MicroUsdt, NodeId, PoolId, Signature, SignedMessage, Slot};
use serde::Serialize;

use crate::auth::{Admin, AdminToken, HasAdminToken};
use crate::dto::{
    AddPeerRequest, BalanceView, CapacityView, CreatePoolRequest, EpochStubView, LedgerPageView,
    MemberView, NodeSummary, OpAccepted, Page, PageQuery, PayoutAddressRequest, PayoutConfigView,
    PayoutQuery, PayoutStats, PayoutStubView, PayoutView, PeerQueued, PeerView, PoolView,
    RemoveMemberRequest, ResolveOutcome, ResolveRequest, ResourcesView, ScheduleView, SignedBody,
    SweepStarted, TallyView, UpdatePoolRequest, Withdrawal, WithdrawalRequest,
};
use crate::envelope::{REQUEST_ID, render, request_id};
use crate::extract::{JsonBody, PathParams, QueryParams, parse};
use crate::failure::{Failure, Missing};
use crate::openapi::{Auth, RouteSpec};

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
    /// The registered TRON payout address (`T…`), absent while the node is unregistered.
    pub payout_address: Option<String>,
    /// The registered endpoint (`host:port` or onion address), absent while unregistered.
    pub endpoint: Option<String>,
    /// Sequence number of the current own registration record, absent while unregistered.
    pub registration_seq: Option<u64>,
}

/// The answer of `GET /api/v1/poot/clock`.
#[derive(Clone, Debug, Serialize)]
pub struct ClockInfo {
    /// The network name.
    pub network: String,
    /// The network id every signed message names (hex).
    pub network_id: String,
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

/// What the HTTP layer needs from the node; implemented by the daemon over its stores.
///
/// Every method answers from the stores (no cache is a source of truth) and reports refusals as
/// typed [`Failure`]s; failures of the node's own machinery are logged by the implementation and
/// reported as `StoreUnavailable` or `Internal` without detail.
#[async_trait::async_trait]
pub trait NodeApi: Send + Sync + 'static {
    /// The current health snapshot.
    fn health(&self) -> HealthReport;
    /// The node's public identity.
    fn node_info(&self) -> NodeInfo;
    /// The slot clock.
    fn clock(&self) -> ClockInfo;
    /// The node's own metrics in Prometheus text format (HTTP metrics are appended here).
    fn metrics(&self) -> String;
    /// What the resource monitor published.
    fn resources(&self) -> ResourcesView;

    /// Known nodes (registered or seated), by id.
    async fn nodes(&self, page: PageQuery) -> Result<Page<NodeSummary>, Failure>;
    /// One known node.
    async fn node(&self, node: NodeId) -> Result<NodeSummary, Failure>;

    /// Pools, by id.
    async fn pools(&self, page: PageQuery) -> Result<Page<PoolView>, Failure>;
    /// One pool.
    async fn pool(&self, pool: PoolId) -> Result<PoolView, Failure>;
    /// A pool's seats and bans, by node.
    async fn pool_members(&self, pool: PoolId) -> Result<Vec<MemberView>, Failure>;
    /// A pool's capacity.
    async fn pool_capacity(&self, pool: PoolId) -> Result<CapacityView, Failure>;
    /// The own node signs and submits a Create.
    async fn create_pool(&self, request: CreatePoolRequest) -> Result<OpAccepted, Failure>;
    /// The own node signs and submits a Join.
    async fn join_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure>;
    /// The own node signs and submits a Leave.
    async fn leave_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure>;
    /// The own node (the leader) signs and submits a SetMaxNodes.
    async fn update_pool(
        &self,
        pool: PoolId,
        request: UpdatePoolRequest,
    ) -> Result<OpAccepted, Failure>;
    /// The own node (the leader) signs and submits a Remove of `member`, with a ban or not.
    async fn remove_member(
        &self,
        pool: PoolId,
        member: NodeId,
        request: RemoveMemberRequest,
    ) -> Result<OpAccepted, Failure>;
    /// The own node (the leader) signs and submits a Disband.
    async fn disband_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure>;
    /// Any node's signed pool op.
    async fn submit_pool_op(
        &self,
        message: Vec<u8>,
        signature: Signature,
    ) -> Result<OpAccepted, Failure>;

    /// The current revision of an epoch's tally.
    async fn tally(&self, epoch: Epoch) -> Result<TallyView, Failure>;
    /// The leader schedule of a slot (404 `SLOT_NOT_SCHEDULED` for future or unknown slots).
    async fn leader(&self, slot: Slot) -> Result<ScheduleView, Failure>;

    /// A node's balance.
    async fn balance(&self, node: NodeId) -> Result<BalanceView, Failure>;
    /// A page of a node's ledger entries, newest first; the page size is validated by the
    /// route, the cursor (opaque text) by the implementation (400 `INVALID_INPUT`). A node that
    /// forwards to a payer answers the payer's ledger (503 `PAYER_UNREACHABLE` without it).
    async fn ledger(&self, node: NodeId, page: PageQuery) -> Result<LedgerPageView, Failure>;
    /// The payout configuration a client needs (no secret).
    async fn payout_config(&self) -> Result<PayoutConfigView, Failure>;
    /// A node's pay stub of a settled epoch: 404 `TALLY_NOT_FOUND` without a stored tally,
    /// 409 `INVALID_STATE` while it is not settled.
    async fn epoch_stub(&self, node: NodeId, epoch: Epoch) -> Result<EpochStubView, Failure> {
        let _ = (node, epoch);
        Err(Failure::FeatureDisabled("pay stubs are not wired".to_owned()))
    }
    /// Payouts (of one node, or all), ordered by (created_at, payout_id).
    async fn payouts(
        &self,
        node: Option<NodeId>,
        query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure>;
    /// One payout.
    async fn payout(&self, payout_id: &str) -> Result<PayoutView, Failure>;
    /// Payout counts by status.
    async fn payout_stats(&self) -> Result<PayoutStats, Failure>;
    /// A payout's pay stub (404 `PAYOUT_NOT_FOUND` for an unknown payout).
    async fn payout_stub(&self, payout_id: &str) -> Result<PayoutStubView, Failure> {
        let _ = payout_id;
        Err(Failure::FeatureDisabled("pay stubs are not wired".to_owned()))
    }
    /// A withdrawal for `node` with the client's idempotency key.
    async fn request_withdrawal(
        &self,
        node: NodeId,
        idempotency_key: &str,
        amount: Option<MicroUsdt>,
    ) -> Result<Withdrawal, Failure>;
    /// Cancels a pending payout.
    async fn cancel_payout(&self, payout_id: &str) -> Result<PayoutView, Failure>;
    /// A node-signed `withdrawal` (`POST /api/v1/withdrawals`): the payer creates the payout
    /// (or answers the original one, `created: false`); any other node forwards the request to
    /// the payer and answers what the payer answered (503 `PAYER_UNREACHABLE` without an
    /// answer).
    async fn submit_withdrawal(&self, withdrawal: SignedMessage) -> Result<Withdrawal, Failure> {
        let _ = withdrawal;
        Err(Failure::FeatureDisabled("signed withdrawals are not wired".to_owned()))
    }
    /// A node-signed `payout-cancel` of `payout_id` (the id in the path must be the id signed);
    /// the payer cancels, any other node forwards like [`NodeApi::submit_withdrawal`].
    async fn submit_payout_cancel(
        &self,
        payout_id: &str,
        cancel: SignedMessage,
    ) -> Result<PayoutView, Failure> {
        let _ = (payout_id, cancel);
        Err(Failure::FeatureDisabled("signed cancels are not wired".to_owned()))
    }
    /// The payer's side of `Peer.ForwardWithdrawal`: a signed withdrawal another node forwarded.
    /// A node that is not the payer refuses (`FEATURE_DISABLED`) and never forwards it again.
    async fn payer_withdrawal(&self, withdrawal: SignedMessage) -> Result<Withdrawal, Failure> {
        let _ = withdrawal;
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// The payer's side of `Peer.ForwardCancel`, refused like [`NodeApi::payer_withdrawal`].
    async fn payer_cancel(&self, cancel: SignedMessage) -> Result<PayoutView, Failure> {
        let _ = cancel;
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// The payer's side of `Peer.GetPayouts`: its own records of one node (or all), ordered by
    /// (created_at, payout_id). A node that is not the payer refuses.
    async fn payer_payouts(
        &self,
        node: Option<NodeId>,
        query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        let _ = (node, query);
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// The payer's side of `Peer.GetLedger`: a page of a node's entries in its own ledger. A
    /// node that is not the payer refuses.
    async fn payer_ledger(&self, node: NodeId, page: PageQuery) -> Result<LedgerPageView, Failure> {
        let _ = (node, page);
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// The payer's side of `Peer.GetPayoutStats`: its own payout counts. A node that is not
    /// the payer refuses.
    async fn payer_payout_stats(&self) -> Result<PayoutStats, Failure> {
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// The payer's side of `Peer.GetPayouts` for one payout id.
    async fn payer_payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        let _ = payout_id;
        Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
    }
    /// Starts a payout sweep unless one is running (single flight). A node that is not the
    /// payer answers `FEATURE_DISABLED`.
    async fn trigger_sweep(&self) -> Result<SweepStarted, Failure> {
        Err(Failure::FeatureDisabled("payouts are not enabled on this node".to_owned()))
    }
    /// Ends a payout flagged `CHAIN_MISMATCH` (409 `INVALID_STATE` for any other payout). A
    /// node that is not the payer answers `FEATURE_DISABLED`.
    async fn resolve_payout(
        &self,
        payout_id: &str,
        outcome: ResolveOutcome,
    ) -> Result<PayoutView, Failure> {
        let _ = (payout_id, outcome);
        Err(Failure::FeatureDisabled("payouts are not enabled on this node".to_owned()))
    }

    /// The node's identity with its current registration (`GET /api/v1/node`); the default has
    /// no registration facts.
    async fn identity(&self) -> Result<NodeInfo, Failure> {
        Ok(self.node_info())
    }
    /// Signs a new own registration record (seq + 1) with `payout_address` (Base58Check text,
    /// validated by the implementation) and answers the identity it now has.
    async fn set_payout_address(&self, payout_address: &str) -> Result<NodeInfo, Failure> {
        let _ = payout_address;
        Err(Failure::FeatureDisabled("registration is not wired".to_owned()))
    }
    /// The peer table, by node id.
    async fn peers(&self) -> Result<Vec<PeerView>, Failure> {
        Err(Failure::FeatureDisabled("the peer table is not wired".to_owned()))
    }
    /// Queues a dial of `endpoint` (`node_<hex>@host:port`); answers the peer's id.
    async fn add_peer(&self, endpoint: &str) -> Result<NodeId, Failure> {
        let _ = endpoint;
        Err(Failure::FeatureDisabled("the peer table is not wired".to_owned()))
    }
    /// The node's own id, the default node of the operator's balance and withdrawal calls.
    fn own_node(&self) -> Result<NodeId, Failure> {
        self.node_info().node_id.parse().map_err(|_| Failure::Internal)
    }
    /// Stops the node like SIGTERM: readiness false at once, then the drain and exit 0 (the
    /// operator's `Shutdown` call). Answers once the stop is decided, before the drain.
    fn request_shutdown(&self) -> Result<(), Failure> {
        Err(Failure::FeatureDisabled("shutdown over the API is not wired".to_owned()))
    }
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
    token: Arc<AdminToken>,
    metrics: Arc<HttpMetrics>,
    openapi: Arc<String>,
}

impl HasAdminToken for AppState {
    fn admin_token(&self) -> &AdminToken {
        &self.token
    }
}

/// Builds the router and the table of its routes together: a route is added only with its
/// spec, so the table (and the OpenAPI document made from it) lists exactly what is served.
struct Routes {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Routes {
    fn add(mut self, spec: RouteSpec, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(spec.path, handler);
        self.specs.push(spec);
        self
    }
}

const fn spec(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec { method, path, auth, summary }
}

fn table() -> Routes {
    use Auth::{Admin as A, Open as O, Signed as S};
    Routes { router: Router::new(), specs: Vec::new() }
        .add(spec("get", "/health/live", O, "Liveness"), get(live))
        .add(spec("get", "/health/ready", O, "Readiness"), get(ready))
        .add(spec("get", "/health", O, "Health with components"), get(health))
        .add(spec("get", "/metrics", O, "Prometheus metrics"), get(metrics))
        .add(spec("get", "/api/v1/openapi.json", O, "This document"), get(openapi))
        .add(spec("get", "/api/v1/node", O, "The node's identity"), get(node))
        .add(
            spec("post", "/api/v1/node/payout-address", A, "Register a new payout address"),
            post(set_payout_address),
        )
        .add(spec("get", "/api/v1/nodes", O, "Known nodes"), get(nodes))
        .add(spec("get", "/api/v1/nodes/{node_id}", O, "One node"), get(node_by_id))
        .add(spec("get", "/api/v1/nodes/{node_id}/balance", O, "A node's balance"), get(balance))
        .add(
            spec(
                "get",
                "/api/v1/nodes/{node_id}/ledger",
                O,
                "A node's ledger entries, newest first",
            ),
            get(ledger),
        )
        .add(
            spec("get", "/api/v1/nodes/{node_id}/payouts", O, "A node's payouts"),
            get(node_payouts),
        )
        .add(
            spec(
                "get",
                "/api/v1/nodes/{node_id}/stubs/epochs/{epoch}",
                O,
                "A node's pay stub of a settled epoch",
            ),
            get(epoch_stub),
        )
        .add(
            spec(
                "post",
                "/api/v1/nodes/{node_id}/withdrawals",
                A,
                "Request a withdrawal (Idempotency-Key header)",
            ),
            post(withdraw),
        )
        .add(
            spec(
                "post",
                "/api/v1/withdrawals",
                S,
                "Submit a node-signed withdrawal (forwarded to the payer when this node is not it)",
            ),
            post(signed_withdrawal),
        )
        .add(spec("get", "/api/v1/poot/clock", O, "The slot clock"), get(clock))
        .add(spec("get", "/api/v1/poot/epochs/{epoch}/tally", O, "An epoch's tally"), get(tally))
        .add(
            spec("get", "/api/v1/poot/slots/{slot}/leader", O, "A slot's leader schedule"),
            get(leader),
        )
        .add(spec("get", "/api/v1/pools", O, "Pools"), get(pools))
        .add(spec("post", "/api/v1/pools", A, "The own node creates a pool"), post(create_pool))
        .add(
            spec("post", "/api/v1/pools/ops", S, "Submit any node's signed pool op"),
            post(pool_op),
        )
        .add(spec("get", "/api/v1/pools/{pool_id}", O, "One pool"), get(pool))
        .add(
            spec("patch", "/api/v1/pools/{pool_id}", A, "The own node (leader) sets max_nodes"),
            patch(update_pool),
        )
        .add(
            spec("get", "/api/v1/pools/{pool_id}/members", O, "A pool's members"),
            get(pool_members),
        )
        .add(
            spec("get", "/api/v1/pools/{pool_id}/capacity", O, "A pool's capacity"),
            get(pool_capacity),
        )
        .add(
            spec("post", "/api/v1/pools/{pool_id}/join", A, "The own node joins a pool"),
            post(join_pool),
        )
        .add(
            spec("post", "/api/v1/pools/{pool_id}/leave", A, "The own node leaves a pool"),
            post(leave_pool),
        )
        .add(
            spec(
                "post",
                "/api/v1/pools/{pool_id}/members/{node_id}/remove",
                A,
                "The own node (leader) removes a member, with {\"ban\": true} bans it too",
            ),
            post(remove_member),
        )
        .add(
            spec("post", "/api/v1/pools/{pool_id}/disband", A, "The own node (leader) disbands"),
            post(disband_pool),
        )
        .add(spec("get", "/api/v1/payouts", O, "Payouts"), get(payouts))
        .add(
            spec("get", "/api/v1/payouts/config", O, "Payout limits, fee policy and payer"),
            get(payout_config),
        )
        .add(spec("get", "/api/v1/payouts/stats", O, "Payout counts by status"), get(payout_stats))
        .add(
            spec("post", "/api/v1/payouts/sweep", A, "Start a payout sweep (single flight)"),
            post(trigger_sweep),
        )
        .add(spec("get", "/api/v1/payouts/{payout_id}", O, "One payout"), get(payout))
        .add(
            spec("get", "/api/v1/payouts/{payout_id}/stub", O, "A payout's pay stub"),
            get(payout_stub),
        )
        .add(
            spec(
                "post",
                "/api/v1/payouts/{payout_id}/resolve",
                A,
                "Settle or release a CHAIN_MISMATCH payout",
            ),
            post(resolve_payout),
        )
        .add(
            spec(
                "post",
                "/api/v1/payouts/{payout_id}/cancel",
                A,
                "Cancel a pending payout (admin token, or a node-signed payout-cancel body)",
            ),
            post(cancel_payout),
        )
        .add(spec("get", "/api/v1/resources", O, "Resource monitor readings"), get(resources))
        .add(spec("get", "/api/v1/peers", A, "The peer table"), get(peers))
        .add(spec("post", "/api/v1/peers", A, "Dial a peer (node_<hex>@host:port)"), post(add_peer))
}

/// The spec of every route the router serves, in the order they were added.
pub fn route_specs() -> Vec<RouteSpec> {
    table().specs
}

/// The router of every HTTP route; mutations need `token`.
pub fn router(api: Arc<dyn NodeApi>, token: AdminToken) -> Router {
    let Routes { router, specs } = table();
    let openapi = Arc::new(crate::openapi::document(&specs, crate::routes::VERSION_OF_API));
    let state = AppState {
        api,
        token: Arc::new(token),
        metrics: Arc::new(HttpMetrics::default()),
        openapi,
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// The version written into the OpenAPI document.
pub(crate) const VERSION_OF_API: &str = "1";

/// Serves `api` on `listener` until `shutdown` completes; requests in flight then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn NodeApi>,
    token: AdminToken,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api, token)).with_graceful_shutdown(shutdown).await
}

/// Request ids on every response, every failure rendered into the envelope with that id, and
/// request counting by route template (bounded labels: the template, never the raw path).
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    if let Some(failure) = response.extensions_mut().remove::<Failure>() {
        response = render(&failure, &id);
    } else if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // A body refused by a layer below the extractors still gets the envelope.
        response = render(&Failure::BodyTooLarge, &id);
    }
    state.metrics.record(route, method, response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&id) {
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
        Failure::NotReady.into_response()
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

async fn openapi(State(state): State<AppState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], state.openapi.as_str().to_owned())
        .into_response()
}

async fn node(State(state): State<AppState>) -> Answer<NodeInfo> {
    state.api.identity().await.map(Json)
}

/// Longest payout address text accepted before parsing (a valid one has 34 characters).
const MAX_ADDRESS_TEXT: usize = 64;

async fn set_payout_address(
    _admin: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PayoutAddressRequest>,
) -> Answer<NodeInfo> {
    if request.payout_address.len() > MAX_ADDRESS_TEXT {
        return Err(Failure::InvalidInput("payout_address is not a TRON address".to_owned()));
    }
    state.api.set_payout_address(&request.payout_address).await.map(Json)
}

async fn peers(_admin: Admin, State(state): State<AppState>) -> Answer<Vec<PeerView>> {
    state.api.peers().await.map(Json)
}

/// Longest peer endpoint text (`node_` + 64 hex, `@`, a 255-byte `host:port`).
const MAX_PEER_ENDPOINT: usize = 5 + 64 + 1 + 255;

async fn add_peer(
    _admin: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AddPeerRequest>,
) -> Result<Response, Failure> {
    if request.endpoint.len() > MAX_PEER_ENDPOINT {
        return Err(Failure::InvalidInput("endpoint is too long".to_owned()));
    }
    let node = state.api.add_peer(&request.endpoint).await?;
    let queued = PeerQueued { node_id: node.to_string(), queued: true };
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

async fn clock(State(state): State<AppState>) -> Json<ClockInfo> {
    Json(state.api.clock())
}

async fn resources(State(state): State<AppState>) -> Json<ResourcesView> {
    Json(state.api.resources())
}

type Answer<T> = Result<Json<T>, Failure>;

async fn nodes(
    State(state): State<AppState>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Answer<Page<NodeSummary>> {
    page.limit()?;
    state.api.nodes(page).await.map(Json)
}

async fn node_by_id(
    State(state): State<AppState>,
    PathParams(node_id): PathParams<String>,
) -> Answer<NodeSummary> {
    state.api.node(parse("node_id", &node_id)?).await.map(Json)
}

async fn balance(
    State(state): State<AppState>,
    PathParams(node_id): PathParams<String>,
) -> Answer<BalanceView> {
    state.api.balance(parse("node_id", &node_id)?).await.map(Json)
}

async fn epoch_stub(
    State(state): State<AppState>,
    PathParams((node_id, epoch)): PathParams<(String, String)>,
) -> Answer<EpochStubView> {
    let node = parse("node_id", &node_id)?;
    state.api.epoch_stub(node, Epoch(parse("epoch", &epoch)?)).await.map(Json)
}

async fn ledger(
    State(state): State<AppState>,
    PathParams(node_id): PathParams<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Answer<LedgerPageView> {
    let node = parse("node_id", &node_id)?;
    page.limit()?;
    if page.cursor.as_ref().is_some_and(|cursor| cursor.len() > MAX_CURSOR) {
        return Err(Failure::InvalidInput("cursor is not valid".to_owned()));
    }
    state.api.ledger(node, page).await.map(Json)
}

/// Longest `cursor` accepted: a ledger position is at most 20 digits, `:` and a 128-byte key.
pub(crate) const MAX_CURSOR: usize = 160;

async fn node_payouts(
    State(state): State<AppState>,
    PathParams(node_id): PathParams<String>,
    QueryParams(query): QueryParams<PayoutQuery>,
) -> Answer<Page<PayoutView>> {
    let node = parse("node_id", &node_id)?;
    query.page().limit()?;
    state.api.payouts(Some(node), query).await.map(Json)
}

/// Longest accepted `Idempotency-Key` header.
const MAX_IDEMPOTENCY_KEY: usize = 64;

fn idempotency_key(headers: &HeaderMap) -> Result<&str, Failure> {
    let missing = || Failure::InvalidInput("the Idempotency-Key header is required".to_owned());
    let key = headers.get("idempotency-key").ok_or_else(missing)?;
    let key = key.to_str().map_err(|_| missing())?;
    checked_idempotency_key(key)
}

/// A client's idempotency key as HTTP and gRPC accept it: 1..=64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn checked_idempotency_key(key: &str) -> Result<&str, Failure> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Failure::InvalidInput(
            "Idempotency-Key must be 1..=64 characters of [A-Za-z0-9_-]".to_owned(),
        ));
    }
    Ok(key)
}

/// A withdrawal amount as HTTP and gRPC accept it: absent, or a decimal string with at most six
/// fractional digits.
pub(crate) fn withdrawal_amount(text: Option<&str>) -> Result<Option<MicroUsdt>, Failure> {
    text.map(|text| {
        text.parse::<MicroUsdt>().map_err(|_| {
            Failure::InvalidInput(
                "amount must be a decimal string with at most 6 fractional digits".to_owned(),
            )
        })
    })
    .transpose()
}

async fn withdraw(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(node_id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<WithdrawalRequest>,
) -> Result<Response, Failure> {
    let node = parse("node_id", &node_id)?;
    let key = idempotency_key(&headers)?;
    let amount = withdrawal_amount(request.amount.as_deref())?;
    let Withdrawal { created, payout } = state.api.request_withdrawal(node, key, amount).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(payout)).into_response())
}

async fn tally(
    State(state): State<AppState>,
    PathParams(epoch): PathParams<String>,
) -> Answer<TallyView> {
    state.api.tally(Epoch(parse("epoch", &epoch)?)).await.map(Json)
}

async fn leader(
    State(state): State<AppState>,
    PathParams(slot): PathParams<String>,
) -> Answer<ScheduleView> {
    state.api.leader(Slot(parse("slot", &slot)?)).await.map(Json)
}

async fn pools(
    State(state): State<AppState>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Answer<Page<PoolView>> {
    page.limit()?;
    state.api.pools(page).await.map(Json)
}

async fn pool(
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Answer<PoolView> {
    state.api.pool(parse("pool_id", &pool_id)?).await.map(Json)
}

async fn pool_members(
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Answer<Vec<MemberView>> {
    state.api.pool_members(parse("pool_id", &pool_id)?).await.map(Json)
}

async fn pool_capacity(
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Answer<CapacityView> {
    state.api.pool_capacity(parse("pool_id", &pool_id)?).await.map(Json)
}

fn accepted(op: OpAccepted) -> Response {
    (StatusCode::ACCEPTED, Json(op)).into_response()
}

async fn create_pool(
    _admin: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreatePoolRequest>,
) -> Result<Response, Failure> {
    state.api.create_pool(request).await.map(accepted)
}

async fn pool_op(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SignedBody>,
) -> Result<Response, Failure> {
    let (message, signature) = signed_message(&body)?.into_parts();
    state.api.submit_pool_op(message, signature).await.map(accepted)
}

/// The (bytes, signature) pair of a signed body in the JSON form of consensus.md §4.6 (base64
/// bytes of at most one message's size, 128 hex digits). Nothing is verified here.
fn signed_message(body: &SignedBody) -> Result<SignedMessage, Failure> {
    SignedMessage::from_json_form(&body.message, &body.signature)
        .map_err(|error| Failure::MalformedMessage(error.to_string()))
}

async fn signed_withdrawal(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SignedBody>,
) -> Result<Response, Failure> {
    let Withdrawal { created, payout } =
        state.api.submit_withdrawal(signed_message(&body)?).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(payout)).into_response())
}

async fn update_pool(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
    JsonBody(request): JsonBody<UpdatePoolRequest>,
) -> Result<Response, Failure> {
    let pool = parse("pool_id", &pool_id)?;
    state.api.update_pool(pool, request).await.map(accepted)
}

async fn join_pool(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Result<Response, Failure> {
    let pool = parse("pool_id", &pool_id)?;
    state.api.join_pool(pool).await.map(accepted)
}

async fn leave_pool(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Result<Response, Failure> {
    let pool = parse("pool_id", &pool_id)?;
    state.api.leave_pool(pool).await.map(accepted)
}

/// `POST /pools/{pool_id}/members/{node_id}/remove`: the body `{"ban": bool}` is optional; a
/// request without a `Content-Type` and without a body removes without a ban.
async fn remove_member(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams((pool_id, node_id)): PathParams<(String, String)>,
    request: Request,
) -> Result<Response, Failure> {
    use axum::extract::FromRequest as _;
    let pool = parse("pool_id", &pool_id)?;
    let member = parse("node_id", &node_id)?;
    let body = if request.headers().contains_key(axum::http::header::CONTENT_TYPE) {
        JsonBody::<RemoveMemberRequest>::from_request(request, &state).await?.0
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT_BYTES)
            .await
            .map_err(|_| Failure::BodyTooLarge)?;
        if !bytes.is_empty() {
            return Err(Failure::UnsupportedMediaType);
        }
        RemoveMemberRequest::default()
    };
    state.api.remove_member(pool, member, body).await.map(accepted)
}

async fn disband_pool(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(pool_id): PathParams<String>,
) -> Result<Response, Failure> {
    let pool = parse("pool_id", &pool_id)?;
    state.api.disband_pool(pool).await.map(accepted)
}

async fn payout_config(State(state): State<AppState>) -> Answer<PayoutConfigView> {
    state.api.payout_config().await.map(Json)
}

async fn payouts(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PayoutQuery>,
) -> Answer<Page<PayoutView>> {
    query.page().limit()?;
    state.api.payouts(None, query).await.map(Json)
}

async fn payout_stats(State(state): State<AppState>) -> Answer<PayoutStats> {
    state.api.payout_stats().await.map(Json)
}

/// Longest payout id accepted in a path (`payout_` + 24 hex).
const MAX_PAYOUT_ID: usize = 64;

/// A payout id as HTTP and gRPC accept it (checked before any store is asked).
pub(crate) fn payout_id(text: &str) -> Result<&str, Failure> {
    if text.len() > MAX_PAYOUT_ID || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Failure::InvalidInput("payout_id is not valid".to_owned()));
    }
    Ok(text)
}

async fn payout(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Answer<PayoutView> {
    state.api.payout(payout_id(&id)?).await.map(Json)
}

async fn payout_stub(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Answer<PayoutStubView> {
    state.api.payout_stub(payout_id(&id)?).await.map(Json)
}

/// `POST /payouts/{payout_id}/cancel`: with an `Authorization` header it is the admin's cancel
/// (401/403 as every admin mutation); without one the body must be a node-signed
/// `payout-cancel` (JSON `{message, signature}`); with neither (or a body of another shape) it
/// is 401.
async fn cancel_payout(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    request: Request,
) -> Answer<PayoutView> {
    use axum::extract::FromRequest as _;
    use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
    let headers = request.headers();
    if let Some(header) = headers.get(AUTHORIZATION) {
        crate::auth::check(Some(header.as_bytes()), &state.token)?;
        return state.api.cancel_payout(payout_id(&id)?).await.map(Json);
    }
    if !headers.contains_key(CONTENT_TYPE) {
        return Err(Failure::Unauthenticated);
    }
    // Without a token only a signed body authorises: anything that is not one is as good as no
    // credentials at all (401), like every admin route.
    let JsonBody(body) = JsonBody::<SignedBody>::from_request(request, &state)
        .await
        .map_err(|_| Failure::Unauthenticated)?;
    let signed = signed_message(&body)?;
    state.api.submit_payout_cancel(payout_id(&id)?, signed).await.map(Json)
}

async fn trigger_sweep(_admin: Admin, State(state): State<AppState>) -> Result<Response, Failure> {
    let started = state.api.trigger_sweep().await?;
    Ok((StatusCode::ACCEPTED, Json(started)).into_response())
}

async fn resolve_payout(
    _admin: Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<ResolveRequest>,
) -> Answer<PayoutView> {
    state.api.resolve_payout(payout_id(&id)?, request.outcome).await.map(Json)
}

async fn not_found() -> Failure {
    Failure::NotFound(Missing::Route)
}

async fn method_not_allowed() -> Failure {
    Failure::MethodNotAllowed
}

#[cfg(test)]
mod tests;
