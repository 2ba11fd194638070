//! Router tests against a fake `NodeApi`.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt as _;

use super::*;

struct FakeNode {
    ready: AtomicBool,
}

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
        }
    }
    fn clock(&self) -> ClockInfo {
        ClockInfo {
            network: "test".into(),
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
}

async fn call(router: &Router, method: &str, uri: &str) -> (StatusCode, String, Option<String>) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let id = response.headers().get(REQUEST_ID).map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap(), id)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn health_routes_follow_readiness() {
    runtime().block_on(async {
        let fake = Arc::new(FakeNode { ready: AtomicBool::new(false) });
        let router = router(fake.clone());
        assert_eq!(call(&router, "GET", "/health/live").await.0, StatusCode::OK);
        let (status, body, id) = call(&router, "GET", "/health/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("LUCID_ERR_NOT_READY"), "{body}");
        assert!(id.is_some());
        assert_eq!(call(&router, "GET", "/health").await.0, StatusCode::SERVICE_UNAVAILABLE);
        fake.ready.store(true, Ordering::SeqCst);
        assert_eq!(call(&router, "GET", "/health/ready").await.0, StatusCode::OK);
        let (status, body, _) = call(&router, "GET", "/health").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "healthy");
        assert_eq!(json["components"]["database"]["status"], "healthy");
    });
}

#[test]
fn unknown_routes_and_methods_get_the_envelope() {
    runtime().block_on(async {
        let router = router(Arc::new(FakeNode { ready: AtomicBool::new(true) }));
        let (status, body, _) = call(&router, "GET", "/api/v1/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], "LUCID_ERR_NOT_FOUND");
        assert!(json["error"]["request_id"].as_str().unwrap().starts_with("req-"));
        let (status, body, _) = call(&router, "POST", "/health").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("LUCID_ERR_METHOD_NOT_ALLOWED"));
    });
}

#[test]
fn request_ids_are_echoed_and_metrics_count_by_template() {
    runtime().block_on(async {
        let router = router(Arc::new(FakeNode { ready: AtomicBool::new(true) }));
        let request = Request::builder()
            .uri("/api/v1/node")
            .header(REQUEST_ID, "abc-123")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers().get(REQUEST_ID).unwrap(), "abc-123");
        let (_, text, _) = call(&router, "GET", "/metrics").await;
        assert!(text.contains("lucid_slot 1"));
        assert!(
            text.contains(
                r#"lucid_http_requests_total{route="/api/v1/node",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        let (_, text, _) = call(&router, "GET", "/no/such/path").await;
        assert!(!text.contains("/no/such/path"));
    });
}
