//! Router tests against a recording fake `NodeApi`: health, envelope, auth on every mutation,
//! body limit and JSON rejections, no shadowing, the OpenAPI document against the router.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::Request;
use lucid_core::NodeKey;
use tower::ServiceExt as _;

use super::*;
use crate::dto::ResourcesView;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct FakeNode {
    ready: AtomicBool,
    calls: Mutex<Vec<String>>,
}

impl FakeNode {
    fn new(ready: bool) -> Arc<Self> {
        Arc::new(FakeNode { ready: AtomicBool::new(ready), calls: Mutex::new(Vec::new()) })
    }

    fn call(&self, what: impl Into<String>) {
        self.calls.lock().unwrap().push(what.into());
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn node_id() -> NodeId {
    NodeKey::from_seed(&[2; 32]).node_id()
}

fn pool_id() -> PoolId {
    PoolId::derive(&node_id(), Slot(1), "alpha")
}

/// The pool every join of the fake refuses as full.
fn full_pool() -> PoolId {
    PoolId::derive(&node_id(), Slot(2), "full")
}

/// A pool whose leader is another node: the fake refuses leader ops on it.
fn foreign_pool() -> PoolId {
    PoolId::derive(&node_id(), Slot(3), "foreign")
}

/// Another node: the leader of every pool in the fake, which cannot be removed; its ledger
/// stands for one whose payer is unreachable.
fn leader_node() -> NodeId {
    NodeKey::from_seed(&[9; 32]).node_id()
}

fn accepted() -> OpAccepted {
    OpAccepted { op_digest: "d".into(), pool_id: pool_id().to_string(), effective_slot: 4 }
}

fn payout_view(id: &str) -> PayoutView {
    PayoutView {
        payout_id: id.into(),
        node_id: node_id().to_string(),
        origin: "withdrawal".into(),
        status: "pending".into(),
        gross: "10.000000".into(),
        fee: "0.100000".into(),
        net: "9.900000".into(),
        to_address: "41".into(),
        idempotency_key: "wd:k".into(),
        attempts: vec![],
        error_code: None,
        created_at: 1,
        updated_at: 1,
        completed_at: None,
    }
}

#[async_trait::async_trait]
impl NodeApi for FakeNode {
    fn health(&self) -> HealthReport {
        let ready = self.ready.load(Ordering::SeqCst);
        HealthReport {
            status: if ready { HealthStatus::Healthy } else { HealthStatus::Unhealthy },
            ready,
            version: "0.0.0",
            node_id: "node_x".into(),
            network: "test".into(),
            slot: Some(1),
            epoch: Some(0),
            uptime_s: 3,
            components: BTreeMap::from([(
                "database",
                ComponentHealth { status: HealthStatus::Healthy, detail: "ok".into() },
            )]),
        }
    }
    fn node_info(&self) -> NodeInfo {
        NodeInfo {
            node_id: "node_x".into(),
            public_key: "x".into(),
            network: "test".into(),
            version: "0.0.0",
            features: vec![],
            ready: true,
            payout_address: None,
            endpoint: None,
            registration_seq: None,
        }
    }
    fn clock(&self) -> ClockInfo {
        ClockInfo {
            network: "test".into(),
            network_id: "00".into(),
            genesis_ms: 0,
            slot_ms: 1000,
            slots_per_epoch: 8,
            slot: Some(1),
            epoch: Some(0),
            slot_start_ms: Some(1000),
            next_slot_start_ms: Some(2000),
        }
    }
    fn metrics(&self) -> String {
        "# TYPE lucid_slot gauge\nlucid_slot 1\n".into()
    }
    fn resources(&self) -> ResourcesView {
        self.call("resources");
        ResourcesView::default()
    }
    async fn nodes(&self, _page: PageQuery) -> Result<Page<NodeSummary>, Failure> {
        self.call("nodes");
        Ok(Page { items: vec![], next_cursor: None })
    }
    async fn node(&self, node: NodeId) -> Result<NodeSummary, Failure> {
        self.call(format!("node {node}"));
        Err(Failure::NotFound(Missing::Node))
    }
    async fn pools(&self, _page: PageQuery) -> Result<Page<PoolView>, Failure> {
        self.call("pools");
        Ok(Page { items: vec![], next_cursor: None })
    }
    async fn pool(&self, pool: PoolId) -> Result<PoolView, Failure> {
        self.call(format!("pool {pool}"));
        Err(Failure::NotFound(Missing::Pool))
    }
    async fn pool_members(&self, pool: PoolId) -> Result<Vec<MemberView>, Failure> {
        self.call(format!("members {pool}"));
        Ok(vec![])
    }
    async fn pool_capacity(&self, pool: PoolId) -> Result<CapacityView, Failure> {
        self.call(format!("capacity {pool}"));
        Err(Failure::NotFound(Missing::Pool))
    }
    async fn create_pool(&self, request: CreatePoolRequest) -> Result<OpAccepted, Failure> {
        self.call(format!("create {} {:?}", request.name, request.max_nodes));
        Ok(accepted())
    }
    async fn join_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        self.call(format!("join {pool}"));
        if pool == full_pool() { Err(Failure::PoolFull) } else { Ok(accepted()) }
    }
    async fn leave_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        self.call(format!("leave {pool}"));
        Ok(accepted())
    }
    async fn update_pool(
        &self,
        pool: PoolId,
        request: UpdatePoolRequest,
    ) -> Result<OpAccepted, Failure> {
        self.call(format!("update {pool} {}", request.max_nodes));
        Ok(accepted())
    }
    async fn remove_member(
        &self,
        pool: PoolId,
        member: NodeId,
        request: RemoveMemberRequest,
    ) -> Result<OpAccepted, Failure> {
        self.call(format!("remove {pool} {member} ban={}", request.ban));
        if member == leader_node() {
            Err(Failure::NotMember)
        } else if pool == foreign_pool() {
            Err(Failure::NotLeader)
        } else if pool == full_pool() {
            Err(Failure::NotFound(Missing::Pool))
        } else {
            Ok(accepted())
        }
    }
    async fn disband_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        self.call(format!("disband {pool}"));
        if pool == foreign_pool() {
            Err(Failure::NotLeader)
        } else if pool == full_pool() {
            Err(Failure::PoolDisbanded)
        } else {
            Ok(accepted())
        }
    }
    async fn submit_pool_op(
        &self,
        message: Vec<u8>,
        _signature: Signature,
    ) -> Result<OpAccepted, Failure> {
        self.call(format!("op {}", message.len()));
        Err(Failure::BadSignature)
    }
    async fn tally(&self, epoch: Epoch) -> Result<TallyView, Failure> {
        self.call(format!("tally {}", epoch.0));
        Err(Failure::NotFound(Missing::Tally))
    }
    async fn leader(&self, slot: Slot) -> Result<ScheduleView, Failure> {
        self.call(format!("leader {}", slot.0));
        Err(Failure::NotFound(Missing::Slot))
    }
    async fn balance(&self, node: NodeId) -> Result<BalanceView, Failure> {
        self.call(format!("balance {node}"));
        Err(Failure::StoreUnavailable)
    }
    async fn payouts(
        &self,
        node: Option<NodeId>,
        _query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        self.call(format!("payouts {}", node.is_some()));
        Ok(Page { items: vec![], next_cursor: None })
    }
    async fn payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        self.call(format!("payout {payout_id}"));
        Err(Failure::NotFound(Missing::Payout))
    }
    async fn ledger(&self, node: NodeId, page: PageQuery) -> Result<LedgerPageView, Failure> {
        self.call(format!("ledger {node} {:?} {:?}", page.limit, page.cursor));
        if node == leader_node() {
            return Err(Failure::PayerUnreachable);
        }
        if node == NodeKey::from_seed(&[8; 32]).node_id() {
            return Err(Failure::NotFound(Missing::Node));
        }
        Ok(LedgerPageView {
            node_id: node.to_string(),
            items: vec![crate::dto::LedgerLineView {
                posting_key: "payout_reserve:payout_1".into(),
                kind: "payout_reserve".into(),
                amount: "-10.000000".into(),
                created_at: 5,
                memo: None,
                balance_after: "2.500000".into(),
            }],
            next_cursor: Some("5:payout_reserve:payout_1".into()),
            authoritative: false,
        })
    }
    async fn payout_config(&self) -> Result<PayoutConfigView, Failure> {
        self.call("config");
        Ok(PayoutConfigView {
            minimum_micro_usdt: 10_000_000,
            maximum_micro_usdt: 10_000_000_000,
            fee_bps: 100,
            fee_min_micro_usdt: 100_000,
            fee_max_micro_usdt: 10_000_000,
            network: "test".into(),
            role: "forwarder".into(),
            rail: None,
            payer_node_id: Some(leader_node().to_string()),
        })
    }
    async fn payout_stats(&self) -> Result<PayoutStats, Failure> {
        self.call("stats");
        Ok(PayoutStats { by_status: BTreeMap::new(), paid_gross: "0.000000".into() })
    }
    async fn request_withdrawal(
        &self,
        node: NodeId,
        idempotency_key: &str,
        amount: Option<MicroUsdt>,
    ) -> Result<Withdrawal, Failure> {
        self.call(format!("withdraw {node} {idempotency_key} {amount:?}"));
        Ok(Withdrawal { created: true, payout: payout_view("payout_1") })
    }
    async fn cancel_payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        self.call(format!("cancel {payout_id}"));
        Err(Failure::InvalidState("not pending".into()))
    }
    async fn submit_withdrawal(&self, withdrawal: SignedMessage) -> Result<Withdrawal, Failure> {
        self.call(format!("signed-withdraw {}", withdrawal.bytes().len()));
        // Bytes starting with `r` stand for a replay of an existing payout.
        let created = !withdrawal.bytes().starts_with(b"r");
        Ok(Withdrawal { created, payout: payout_view("payout_1") })
    }
    async fn submit_payout_cancel(
        &self,
        payout_id: &str,
        cancel: SignedMessage,
    ) -> Result<PayoutView, Failure> {
        self.call(format!("signed-cancel {payout_id} {}", cancel.bytes().len()));
        Ok(payout_view(payout_id))
    }
    async fn trigger_sweep(&self) -> Result<crate::dto::SweepStarted, Failure> {
        self.call("sweep".to_owned());
        Ok(crate::dto::SweepStarted { started: true })
    }
    async fn resolve_payout(
        &self,
        payout_id: &str,
        outcome: crate::dto::ResolveOutcome,
    ) -> Result<PayoutView, Failure> {
        self.call(format!("resolve {payout_id} {outcome:?}"));
        if payout_id == "payout_0a" {
            Ok(payout_view(payout_id))
        } else {
            Err(Failure::InvalidState("not a chain mismatch".into()))
        }
    }
    async fn set_payout_address(&self, payout_address: &str) -> Result<NodeInfo, Failure> {
        self.call(format!("payout address {payout_address}"));
        if payout_address.starts_with('T') {
            Ok(NodeInfo { payout_address: Some(payout_address.into()), ..self.node_info() })
        } else {
            Err(Failure::InvalidInput("payout_address is not a TRON address".into()))
        }
    }
    async fn peers(&self) -> Result<Vec<PeerView>, Failure> {
        self.call("peers");
        Ok(vec![PeerView {
            node_id: node_id().to_string(),
            endpoint: "127.0.0.1:1".into(),
            state: "connected".into(),
            score: 0,
            last_seen: Some(5),
            latency_ms: None,
        }])
    }
    async fn add_peer(&self, endpoint: &str) -> Result<NodeId, Failure> {
        self.call(format!("add peer {endpoint}"));
        endpoint
            .split_once('@')
            .and_then(|(id, _)| id.parse().ok())
            .ok_or_else(|| Failure::InvalidInput("endpoint is not node_<hex>@host:port".into()))
    }
}

#[test]
fn node_identity_payout_address_and_peers_routes() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let reply = call(&router, "GET", "/api/v1/node").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.json()["registration_seq"].is_null());
        let body = r#"{"payout_address":"TXYZ"}"#;
        let reply = admin(&router, "POST", "/api/v1/node/payout-address", body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.json()["payout_address"], "TXYZ");
        let bad = r#"{"payout_address":"nope"}"#;
        admin(&router, "POST", "/api/v1/node/payout-address", bad)
            .await
            .envelope(400, "INVALID_INPUT");
        let long = format!(r#"{{"payout_address":"T{}"}}"#, "1".repeat(100));
        admin(&router, "POST", "/api/v1/node/payout-address", &long)
            .await
            .envelope(400, "INVALID_INPUT");
        let extra = r#"{"payout_address":"TXYZ","seq":9}"#;
        admin(&router, "POST", "/api/v1/node/payout-address", extra)
            .await
            .envelope(400, "INVALID_INPUT");
        let reply = admin(&router, "GET", "/api/v1/peers", "").await;
        assert_eq!(reply.json()[0]["state"], "connected");
        let body = format!(r#"{{"endpoint":"{}@127.0.0.1:9"}}"#, node_id());
        let reply = admin(&router, "POST", "/api/v1/peers", &body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        assert_eq!(reply.json()["node_id"], node_id().to_string());
        let long = format!(r#"{{"endpoint":"{}"}}"#, "x".repeat(400));
        admin(&router, "POST", "/api/v1/peers", &long).await.envelope(400, "INVALID_INPUT");
        // The too-long bodies never reached the node.
        assert!(!fake.calls().iter().any(|c| c.contains("xxxx") || c.contains("1111")));
    });
}

fn app(fake: &Arc<FakeNode>) -> Router {
    router(fake.clone(), AdminToken::new(TOKEN).unwrap())
}

struct Reply {
    status: StatusCode,
    body: String,
    id: Option<String>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Asserts the envelope with `code`.
    fn envelope(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let json = self.json();
        assert_eq!(json["error"]["code"], format!("LUCID_ERR_{code}"), "{}", self.body);
        let id = json["error"]["request_id"].as_str().unwrap();
        assert_eq!(Some(id), self.id.as_deref());
        assert!(!json["error"]["message"].as_str().unwrap().is_empty());
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let id = response.headers().get(REQUEST_ID).map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Reply { status, body: String::from_utf8(bytes.to_vec()).unwrap(), id }
}

async fn call(router: &Router, method: &str, uri: &str) -> Reply {
    send(router, Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await
}

async fn admin(router: &Router, method: &str, uri: &str, json: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "k1")
        .body(Body::from(json.to_owned()))
        .unwrap();
    send(router, request).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A concrete path for a template, with valid ids.
fn concrete(path: &str) -> String {
    path.replace("{node_id}", &node_id().to_string())
        .replace("{pool_id}", &pool_id().to_string())
        .replace("{epoch}", "3")
        .replace("{slot}", "7")
        .replace("{payout_id}", "payout_0a")
}

/// A valid body for each mutation.
fn valid_body(path: &str) -> &'static str {
    match path {
        "/api/v1/pools" => r#"{"name":"alpha","max_nodes":100}"#,
        "/api/v1/pools/{pool_id}" => r#"{"max_nodes":50}"#,
        "/api/v1/pools/ops" => r#"{"message":"AA==","signature":"00"}"#,
        "/api/v1/nodes/{node_id}/withdrawals" => r#"{"amount":"10.5"}"#,
        "/api/v1/payouts/{payout_id}/resolve" => r#"{"outcome":"settle"}"#,
        "/api/v1/node/payout-address" => {
            r#"{"payout_address":"TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"}"#
        }
        "/api/v1/peers" => r#"{"endpoint":"node_0000@127.0.0.1:1"}"#,
        _ => "{}",
    }
}

#[test]
fn health_routes_follow_readiness() {
    runtime().block_on(async {
        let fake = FakeNode::new(false);
        let router = app(&fake);
        assert_eq!(call(&router, "GET", "/health/live").await.status, StatusCode::OK);
        call(&router, "GET", "/health/ready").await.envelope(503, "NOT_READY");
        assert_eq!(call(&router, "GET", "/health").await.status, StatusCode::SERVICE_UNAVAILABLE);
        fake.ready.store(true, Ordering::SeqCst);
        assert_eq!(call(&router, "GET", "/health/ready").await.status, StatusCode::OK);
        let reply = call(&router, "GET", "/health").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["status"], "healthy");
        assert_eq!(reply.json()["components"]["database"]["status"], "healthy");
    });
}

#[test]
fn unknown_routes_and_methods_get_the_envelope() {
    runtime().block_on(async {
        let router = app(&FakeNode::new(true));
        let reply = call(&router, "GET", "/api/v1/nope").await;
        reply.envelope(404, "NOT_FOUND");
        assert!(reply.id.unwrap().starts_with("req-"));
        call(&router, "POST", "/health").await.envelope(405, "METHOD_NOT_ALLOWED");
        call(&router, "DELETE", "/api/v1/pools").await.envelope(405, "METHOD_NOT_ALLOWED");
    });
}

#[test]
fn request_ids_are_echoed_and_metrics_count_by_template() {
    runtime().block_on(async {
        let router = app(&FakeNode::new(true));
        let request = Request::builder()
            .uri(format!("/api/v1/pools/{}", pool_id()))
            .header(REQUEST_ID, "abc-123")
            .body(Body::empty())
            .unwrap();
        let reply = send(&router, request).await;
        reply.envelope(404, "POOL_NOT_FOUND");
        assert_eq!(reply.json()["error"]["request_id"], "abc-123");
        let text = call(&router, "GET", "/metrics").await.body;
        assert!(text.contains("lucid_slot 1"));
        assert!(
            text.contains(
                r#"lucid_http_requests_total{route="/api/v1/pools/{pool_id}",method="GET",status="404"} 1"#
            ),
            "{text}"
        );
        call(&router, "GET", "/no/such/path").await;
        let text = call(&router, "GET", "/metrics").await.body;
        assert!(!text.contains("/no/such/path"));
    });
}

#[test]
fn every_mutation_is_admin_or_signed() {
    let specs = route_specs();
    assert!(specs.iter().filter(|s| s.is_mutation()).count() >= 7);
    for spec in specs.iter().filter(|s| s.is_mutation()) {
        assert_ne!(spec.auth, Auth::Open, "{} {} is an open mutation", spec.method, spec.path);
    }
}

#[test]
fn every_admin_route_refuses_missing_malformed_and_wrong_tokens_before_doing_anything() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let admin_routes: Vec<RouteSpec> =
            route_specs().into_iter().filter(|s| s.auth == Auth::Admin).collect();
        assert!(admin_routes.len() >= 6);
        let wrong = format!("Bearer {}", TOKEN.replace('0', "1"));
        for spec in &admin_routes {
            let uri = concrete(spec.path);
            let method = spec.method.to_uppercase();
            for (header, status, code) in [
                (None, 401, "UNAUTHENTICATED"),
                (Some(format!("Basic {TOKEN}")), 401, "UNAUTHENTICATED"),
                (Some(TOKEN.to_owned()), 401, "UNAUTHENTICATED"),
                (Some(wrong.clone()), 403, "FORBIDDEN"),
            ] {
                let mut request = Request::builder()
                    .method(method.as_str())
                    .uri(&uri)
                    .header("content-type", "application/json")
                    .header("idempotency-key", "k1");
                if let Some(header) = header {
                    request = request.header("authorization", header);
                }
                let request = request.body(Body::from(valid_body(spec.path))).unwrap();
                send(&router, request).await.envelope(status, code);
            }
            assert!(
                fake.calls().is_empty(),
                "{} {} reached the node: {:?}",
                method,
                uri,
                fake.calls()
            );
            let reply = admin(&router, &method, &uri, valid_body(spec.path)).await;
            assert!(
                reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN,
                "{method} {uri}: {}",
                reply.body
            );
            assert_eq!(fake.calls().len(), 1, "{method} {uri}");
            fake.calls.lock().unwrap().clear();
        }
    });
}

#[test]
fn oversized_malformed_mistyped_and_unknown_field_bodies_get_the_envelope_and_reach_nothing() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(BODY_LIMIT_BYTES));
        admin(&router, "POST", "/api/v1/pools", &big).await.envelope(413, "BODY_TOO_LARGE");
        for body in [
            "{",
            "[]",
            "null",
            r#"{"name":"alpha","max_nodes":"100"}"#,
            r#"{"name":"alpha","max_nodes":101000}"#,
            r#"{"name":7}"#,
            r#"{"name":"alpha","admin":true}"#,
            r#"{}"#,
        ] {
            admin(&router, "POST", "/api/v1/pools", body).await.envelope(400, "INVALID_INPUT");
        }
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/pools")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"name":"alpha"}"#))
            .unwrap();
        send(&router, request).await.envelope(415, "UNSUPPORTED_MEDIA_TYPE");
        let withdrawal = format!("/api/v1/nodes/{}/withdrawals", node_id());
        for body in [r#"{"amount":10}"#, r#"{"amount":"1.0000001"}"#, r#"{"amount":"-1"}"#] {
            admin(&router, "POST", &withdrawal, body).await.envelope(400, "INVALID_INPUT");
        }
        let no_key = Request::builder()
            .method("POST")
            .uri(&withdrawal)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        send(&router, no_key).await.envelope(400, "INVALID_INPUT");
        for body in [r#"{"message":"zz","signature":"00"}"#, r#"{"message":"00","signature":"00"}"#]
        {
            let request = Request::builder()
                .method("POST")
                .uri("/api/v1/pools/ops")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            send(&router, request).await.envelope(400, "MALFORMED_MESSAGE");
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let reply = admin(&router, "POST", &withdrawal, r#"{"amount":"10.5"}"#).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(
            fake.calls(),
            vec![format!("withdraw {} k1 Some(MicroUsdt(10500000))", node_id())]
        );
    });
}

#[test]
fn bad_ids_and_page_bounds_are_invalid_input() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        for uri in [
            "/api/v1/pools/not-a-pool",
            "/api/v1/nodes/node_zz/balance",
            "/api/v1/nodes/node_zz/stubs/epochs/1",
            "/api/v1/poot/epochs/-1/tally",
            "/api/v1/poot/slots/x/leader",
            "/api/v1/payouts/..%2Fetc",
            "/api/v1/payouts/..%2Fetc/stub",
            "/api/v1/pools?limit=0",
            "/api/v1/pools?limit=101",
            "/api/v1/pools?limit=abc",
            "/api/v1/pools?order=desc",
            "/api/v1/payouts?limit=1000",
        ] {
            call(&router, "GET", uri).await.envelope(400, "INVALID_INPUT");
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        assert_eq!(call(&router, "GET", "/api/v1/pools?limit=100").await.status, StatusCode::OK);
    });
}

#[test]
fn domain_failures_keep_their_status_and_code() {
    runtime().block_on(async {
        let router = app(&FakeNode::new(true));
        let uri = format!("/api/v1/pools/{}/join", full_pool());
        admin(&router, "POST", &uri, "").await.envelope(409, "POOL_FULL");
        let reply = admin(&router, "POST", &format!("/api/v1/pools/{}/join", pool_id()), "").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.json()["effective_slot"], 4);
        admin(&router, "POST", "/api/v1/payouts/payout_1/cancel", "")
            .await
            .envelope(409, "INVALID_STATE");
        call(&router, "GET", &format!("/api/v1/nodes/{}/balance", node_id()))
            .await
            .envelope(503, "STORE_UNAVAILABLE");
        call(&router, "GET", "/api/v1/poot/slots/9/leader")
            .await
            .envelope(404, "SLOT_NOT_SCHEDULED");
        // A node without the ledger wired says so (the fake keeps the port's default).
        let stub = format!("/api/v1/nodes/{}/stubs/epochs/3", node_id());
        call(&router, "GET", &stub).await.envelope(503, "FEATURE_DISABLED");
        let bad_epoch = format!("/api/v1/nodes/{}/stubs/epochs/-3", node_id());
        call(&router, "GET", &bad_epoch).await.envelope(400, "INVALID_INPUT");
    });
}

#[test]
fn literal_segments_are_never_shadowed_by_parameters() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        assert_eq!(call(&router, "GET", "/api/v1/payouts/stats").await.status, StatusCode::OK);
        assert_eq!(fake.calls(), vec!["stats".to_owned()]);
        fake.calls.lock().unwrap().clear();
        assert_eq!(call(&router, "GET", "/api/v1/payouts/config").await.status, StatusCode::OK);
        assert_eq!(fake.calls(), vec!["config".to_owned()]);
        fake.calls.lock().unwrap().clear();
        call(&router, "GET", "/api/v1/payouts/payout_ab").await.envelope(404, "PAYOUT_NOT_FOUND");
        assert_eq!(fake.calls(), vec!["payout payout_ab".to_owned()]);
        fake.calls.lock().unwrap().clear();
        // `ops` is a literal under /pools: GET does not fall through to `/pools/{pool_id}`.
        call(&router, "GET", "/api/v1/pools/ops").await.envelope(405, "METHOD_NOT_ALLOWED");
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/pools/ops")
            .header("content-type", "application/json")
            .body(Body::from(signed_json(&[0])))
            .unwrap();
        send(&router, request).await.envelope(400, "BAD_SIGNATURE");
        assert_eq!(fake.calls(), vec!["op 1".to_owned()]);
        // Every literal route's path is matched by itself, never by a template with parameters.
        let specs = route_specs();
        for literal in specs.iter().filter(|s| !s.path.contains('{')) {
            for template in specs.iter().filter(|s| s.path.contains('{')) {
                let (a, b): (Vec<&str>, Vec<&str>) =
                    (literal.path.split('/').collect(), template.path.split('/').collect());
                let overlaps = a.len() == b.len()
                    && a.iter().zip(&b).all(|(x, y)| x == y || y.starts_with('{'));
                if overlaps {
                    let reply = call(&router, &literal.method.to_uppercase(), literal.path).await;
                    assert!(
                        !reply.body.contains("_NOT_FOUND")
                            && reply.status != StatusCode::BAD_REQUEST,
                        "{} is shadowed by {}: {}",
                        literal.path,
                        template.path,
                        reply.body
                    );
                }
            }
        }
    });
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let reply = call(&router, "GET", "/api/v1/openapi.json").await;
        assert_eq!(reply.status, StatusCode::OK);
        let document = reply.json();
        assert_eq!(document["openapi"], "3.1.0");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, methods) in document["paths"].as_object().unwrap() {
            for (method, operation) in methods.as_object().unwrap() {
                documented.push((method.clone(), path.clone()));
                assert!(operation["summary"].as_str().is_some());
            }
        }
        documented.sort();
        let mut specs: Vec<(String, String)> =
            route_specs().iter().map(|s| (s.method.to_owned(), s.path.to_owned())).collect();
        specs.sort();
        assert_eq!(documented, specs);
        for spec in route_specs() {
            let operation = &document["paths"][spec.path][spec.method];
            assert_eq!(operation["security"].is_array(), spec.auth == Auth::Admin, "{}", spec.path);
            // Served: the route answers something other than "no such route" or 405.
            let reply = if spec.is_mutation() {
                admin(
                    &router,
                    &spec.method.to_uppercase(),
                    &concrete(spec.path),
                    valid_body(spec.path),
                )
                .await
            } else {
                call(&router, &spec.method.to_uppercase(), &concrete(spec.path)).await
            };
            assert!(
                !reply.body.contains("LUCID_ERR_NOT_FOUND\"")
                    && reply.status != StatusCode::METHOD_NOT_ALLOWED,
                "{} {} is documented but not served: {}",
                spec.method,
                spec.path,
                reply.body
            );
            // Every other method on a documented path is refused.
            for other in ["get", "post", "put", "patch", "delete"] {
                if route_specs().iter().any(|s| s.path == spec.path && s.method == other) {
                    continue;
                }
                let reply = call(&router, &other.to_uppercase(), &concrete(spec.path)).await;
                assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{other} {}", spec.path);
            }
        }
    });
}

#[test]
fn sweep_answers_202_and_resolve_takes_exactly_settle_or_release() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let reply = admin(&router, "POST", "/api/v1/payouts/sweep", "").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        assert_eq!(reply.json()["started"], true);
        // GET of the literal is not a payout lookup.
        call(&router, "GET", "/api/v1/payouts/sweep").await.envelope(405, "METHOD_NOT_ALLOWED");
        assert_eq!(fake.calls(), vec!["sweep".to_owned()]);
        fake.calls.lock().unwrap().clear();
        let uri = "/api/v1/payouts/payout_0a/resolve";
        for body in [
            "",
            "{}",
            r#"{"outcome":"SETTLE"}"#,
            r#"{"outcome":"pay"}"#,
            r#"{"outcome":1}"#,
            r#"{"outcome":"settle","to":"T1"}"#,
            r#"{"outcome":null}"#,
        ] {
            admin(&router, "POST", uri, body).await.envelope(400, "INVALID_INPUT");
        }
        admin(&router, "POST", "/api/v1/payouts/..%2F/resolve", r#"{"outcome":"settle"}"#)
            .await
            .envelope(400, "INVALID_INPUT");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let reply = admin(&router, "POST", uri, r#"{"outcome":"release"}"#).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        admin(&router, "POST", "/api/v1/payouts/payout_1/resolve", r#"{"outcome":"settle"}"#)
            .await
            .envelope(409, "INVALID_STATE");
        assert_eq!(
            fake.calls(),
            vec!["resolve payout_0a Release".to_owned(), "resolve payout_1 Settle".to_owned()]
        );
    });
}

/// A body in the JSON form with `message` as its bytes and a zero signature (the fake node
/// verifies nothing; it records the length).
fn signed_json(message: &[u8]) -> String {
    let signed = SignedMessage::new(message.to_vec(), Signature::from_bytes([0; 64]));
    format!(
        r#"{{"message":"{}","signature":"{}"}}"#,
        signed.message_base64(),
        signed.signature().to_hex()
    )
}

async fn post_json(router: &Router, uri: &str, json: &str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(json.to_owned()))
        .unwrap();
    send(router, request).await
}

#[test]
fn signed_withdrawals_need_no_token_and_are_checked_at_the_edge() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let reply = post_json(&router, "/api/v1/withdrawals", &signed_json(b"new")).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.json()["payout_id"], "payout_1");
        let replay = post_json(&router, "/api/v1/withdrawals", &signed_json(b"replay")).await;
        assert_eq!(replay.status, StatusCode::OK);
        assert_eq!(fake.calls(), vec!["signed-withdraw 3", "signed-withdraw 6"]);
        fake.calls.lock().unwrap().clear();
        // Malformed, wrong type, unknown fields, oversized: refused before the node is asked.
        let not_base64 = r#"{"message":"zz","signature":"00"}"#;
        post_json(&router, "/api/v1/withdrawals", not_base64)
            .await
            .envelope(400, "MALFORMED_MESSAGE");
        let unpadded = signed_json(b"unpadded").replace('=', "");
        post_json(&router, "/api/v1/withdrawals", &unpadded)
            .await
            .envelope(400, "MALFORMED_MESSAGE");
        let short_signature = r#"{"message":"bmV3","signature":"00"}"#;
        post_json(&router, "/api/v1/withdrawals", short_signature)
            .await
            .envelope(400, "MALFORMED_MESSAGE");
        let extra = r#"{"message":"AA==","signature":"00","amount":"5"}"#;
        post_json(&router, "/api/v1/withdrawals", extra).await.envelope(400, "INVALID_INPUT");
        let too_long = signed_json(&vec![1; lucid_core::message::MAX_MESSAGE_BYTES + 1]);
        post_json(&router, "/api/v1/withdrawals", &too_long)
            .await
            .envelope(400, "MALFORMED_MESSAGE");
        let huge = format!(r#"{{"message":"{}","signature":"00"}}"#, "ab".repeat(600_000));
        post_json(&router, "/api/v1/withdrawals", &huge).await.envelope(413, "BODY_TOO_LARGE");
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/withdrawals")
            .body(Body::from(signed_json(b"x")))
            .unwrap();
        send(&router, request).await.envelope(415, "UNSUPPORTED_MEDIA_TYPE");
        assert!(fake.calls().is_empty());
    });
}

#[test]
fn a_cancel_is_the_admins_or_signed_by_the_owner() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let uri = "/api/v1/payouts/payout_7/cancel";
        // The signed form needs no token.
        let reply = post_json(&router, uri, &signed_json(b"cancel")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(fake.calls(), vec!["signed-cancel payout_7 6"]);
        fake.calls.lock().unwrap().clear();
        // Neither a token nor a body: 401; a wrong token: 403 even with a signed body.
        let request = Request::builder().method("POST").uri(uri).body(Body::empty()).unwrap();
        send(&router, request).await.envelope(401, "UNAUTHENTICATED");
        let request = Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", "Bearer wrong")
            .header("content-type", "application/json")
            .body(Body::from(signed_json(b"cancel")))
            .unwrap();
        send(&router, request).await.envelope(403, "FORBIDDEN");
        // A malformed signed body, a bad payout id.
        post_json(&router, uri, r#"{"message":"0g","signature":"00"}"#)
            .await
            .envelope(400, "MALFORMED_MESSAGE");
        post_json(&router, "/api/v1/payouts/payout-7/cancel", &signed_json(b"c"))
            .await
            .envelope(400, "INVALID_INPUT");
        assert!(fake.calls().is_empty());
        // The admin form.
        admin(&router, "POST", uri, "").await.envelope(409, "INVALID_STATE");
        assert_eq!(fake.calls(), vec!["cancel payout_7"]);
    });
}

#[test]
fn remove_and_disband_are_the_leaders_admin_ops() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let member = node_id();
        let remove = format!("/api/v1/pools/{}/members/{member}/remove", pool_id());
        // Without a body (and without a Content-Type) a remove bans nobody; `{"ban": true}`
        // bans; `{}` is the default.
        let request = Request::builder()
            .method("POST")
            .uri(&remove)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let reply = send(&router, request).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        assert_eq!(reply.json()["effective_slot"], 4);
        assert_eq!(reply.json()["pool_id"], pool_id().to_string());
        let reply = admin(&router, "POST", &remove, r#"{"ban":true}"#).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        admin(&router, "POST", &remove, "{}").await;
        assert_eq!(
            fake.calls(),
            vec![
                format!("remove {} {member} ban=false", pool_id()),
                format!("remove {} {member} ban=true", pool_id()),
                format!("remove {} {member} ban=false", pool_id()),
            ]
        );
        fake.calls.lock().unwrap().clear();
        // Malformed ids, bodies of the wrong shape or type, a body without a Content-Type, an
        // oversized body: refused before the node is asked.
        let short = &member.to_string()[..20];
        let upper = member.to_string().to_uppercase();
        for uri in [
            format!("/api/v1/pools/pool_zz/members/{member}/remove"),
            format!("/api/v1/pools/{}/members/{short}/remove", pool_id()),
            format!("/api/v1/pools/{}/members/{upper}/remove", pool_id()),
            format!("/api/v1/pools/{}/members/node_{}/remove", pool_id(), "g".repeat(64)),
            format!("/api/v1/pools/{}/members/{member}00/remove", pool_id()),
            format!("/api/v1/pools/{}/members/{}/remove", pool_id(), pool_id()),
        ] {
            admin(&router, "POST", &uri, "{}").await.envelope(400, "INVALID_INPUT");
        }
        for body in
            [r#"{"ban":"yes"}"#, r#"{"ban":1}"#, r#"{"ban":true,"reason":"x"}"#, "[", "null"]
        {
            admin(&router, "POST", &remove, body).await.envelope(400, "INVALID_INPUT");
        }
        let request = Request::builder()
            .method("POST")
            .uri(&remove)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(r#"{"ban":true}"#))
            .unwrap();
        send(&router, request).await.envelope(415, "UNSUPPORTED_MEDIA_TYPE");
        let huge = format!(r#"{{"ban":true,"x":"{}"}}"#, "a".repeat(BODY_LIMIT_BYTES));
        admin(&router, "POST", &remove, &huge).await.envelope(413, "BODY_TOO_LARGE");
        let request = Request::builder()
            .method("POST")
            .uri(&remove)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from("a".repeat(BODY_LIMIT_BYTES + 1)))
            .unwrap();
        send(&router, request).await.envelope(413, "BODY_TOO_LARGE");
        admin(&router, "POST", "/api/v1/pools/pool_1/disband", "")
            .await
            .envelope(400, "INVALID_INPUT");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        // The domain's refusals keep their codes.
        let leader = leader_node();
        let uri = format!("/api/v1/pools/{}/members/{leader}/remove", pool_id());
        admin(&router, "POST", &uri, "{}").await.envelope(409, "NOT_MEMBER");
        let uri = format!("/api/v1/pools/{}/members/{member}/remove", foreign_pool());
        admin(&router, "POST", &uri, "{}").await.envelope(403, "NOT_LEADER");
        let uri = format!("/api/v1/pools/{}/members/{member}/remove", full_pool());
        admin(&router, "POST", &uri, "{}").await.envelope(404, "POOL_NOT_FOUND");
        let reply =
            admin(&router, "POST", &format!("/api/v1/pools/{}/disband", pool_id()), "").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        let uri = format!("/api/v1/pools/{}/disband", foreign_pool());
        admin(&router, "POST", &uri, "").await.envelope(403, "NOT_LEADER");
        let uri = format!("/api/v1/pools/{}/disband", full_pool());
        admin(&router, "POST", &uri, "").await.envelope(409, "POOL_DISBANDED");
        // GET on the op routes is not a read.
        call(&router, "GET", &remove).await.envelope(405, "METHOD_NOT_ALLOWED");
        assert_eq!(fake.calls().len(), 6, "{:?}", fake.calls());
    });
}

#[test]
fn the_ledger_is_paged_and_its_parameters_checked_at_the_edge() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let node = node_id();
        let reply = call(&router, "GET", &format!("/api/v1/nodes/{node}/ledger")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let json = reply.json();
        assert_eq!(json["node_id"], node.to_string());
        assert_eq!(json["items"][0]["amount"], "-10.000000");
        assert_eq!(json["items"][0]["balance_after"], "2.500000");
        assert_eq!(json["items"][0]["kind"], "payout_reserve");
        assert_eq!(json["next_cursor"], "5:payout_reserve:payout_1");
        assert_eq!(json["authoritative"], false);
        let uri = format!("/api/v1/nodes/{node}/ledger?limit=100&cursor=5:payout_reserve:payout_1");
        assert_eq!(call(&router, "GET", &uri).await.status, StatusCode::OK);
        assert_eq!(
            fake.calls(),
            vec![
                format!("ledger {node} None None"),
                format!("ledger {node} Some(100) Some(\"5:payout_reserve:payout_1\")"),
            ]
        );
        fake.calls.lock().unwrap().clear();
        let long_cursor = "1".repeat(MAX_CURSOR + 1);
        for query in [
            "limit=0".to_owned(),
            "limit=101".to_owned(),
            "limit=-1".to_owned(),
            "limit=99999999999".to_owned(),
            "limit=ten".to_owned(),
            "after=3".to_owned(),
            "order=asc".to_owned(),
            format!("cursor={long_cursor}"),
        ] {
            call(&router, "GET", &format!("/api/v1/nodes/{node}/ledger?{query}"))
                .await
                .envelope(400, "INVALID_INPUT");
        }
        let short = &node.to_string()[..30];
        for id in
            [short.to_owned(), "node_zz".to_owned(), format!("{node}0"), pool_id().to_string()]
        {
            call(&router, "GET", &format!("/api/v1/nodes/{id}/ledger"))
                .await
                .envelope(400, "INVALID_INPUT");
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        // A node nobody knows.
        let unknown = NodeKey::from_seed(&[8; 32]).node_id();
        call(&router, "GET", &format!("/api/v1/nodes/{unknown}/ledger"))
            .await
            .envelope(404, "NODE_NOT_FOUND");
        // A payer that does not answer is a 503, not an empty ledger.
        call(&router, "GET", &format!("/api/v1/nodes/{}/ledger", leader_node()))
            .await
            .envelope(503, "PAYER_UNREACHABLE");
    });
}

#[test]
fn the_payout_config_is_open_and_holds_no_secret() {
    runtime().block_on(async {
        let fake = FakeNode::new(true);
        let router = app(&fake);
        let reply = call(&router, "GET", "/api/v1/payouts/config").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let json = reply.json();
        assert_eq!(json["minimum_micro_usdt"], 10_000_000);
        assert_eq!(json["maximum_micro_usdt"], 10_000_000_000u64);
        assert_eq!(json["fee_bps"], 100);
        assert_eq!(json["role"], "forwarder");
        assert_eq!(fake.calls(), vec!["config".to_owned()]);
        for secret in ["key", "token", "secret", "wallet", "password"] {
            assert!(!reply.body.to_lowercase().contains(secret), "{secret}: {}", reply.body);
        }
        call(&router, "POST", "/api/v1/payouts/config").await.envelope(405, "METHOD_NOT_ALLOWED");
    });
}
