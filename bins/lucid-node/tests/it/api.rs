//! `/api/v1` through the real binary: the admin token on every mutation, refused bodies that
//! change nothing, one pool filled to 100 with signed ops and the 101st join refused, and
//! restart keeping the pool, on SQLite and PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use lucid_core::{NodeKey, PoolId, Slot};
use lucid_pools::Op;
use serde_json::Value;

use crate::harness::{
    NodeClock, Running, TempDir, command, get, json, request, run_to_end, test_network,
    wait_until_json,
};

fn init(dir: &TempDir) -> String {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "init failed: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read_to_string(dir.path().join("admin.token")).unwrap().trim().to_owned()
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).unwrap();
    (status, json(&body))
}

fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json"), ("Idempotency-Key", "k1")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let (status, body) = request(addr, "POST", path, &headers, body.as_bytes()).unwrap();
    (status, json(&body))
}

fn assert_envelope(reply: &(u16, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["error"]["code"], format!("LUCID_ERR_{code}"), "{}", reply.1);
    assert!(reply.1["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

fn member_key(i: u32) -> NodeKey {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    NodeKey::from_seed(&seed)
}

/// Creates a pool through the admin API, fills it to 100 seats with 99 signed joins, checks the
/// 101st is refused before and after the joins take effect, restarts, and checks the pool.
fn fill_a_pool_to_100_and_restart(database_url: Option<&str>) {
    let dir = TempDir::new();
    let token = init(&dir);
    let env = test_network("api-it", database_url);
    let mut node = Running::start_with(dir.path(), &env);
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let addr = node.addr;
    let created =
        post(addr, "/api/v1/pools", Some(&token), r#"{"name":"hundred","max_nodes":100}"#);
    assert_eq!(created.0, 202, "{}", created.1);
    let pool_id = created.1["pool_id"].as_str().unwrap().to_owned();
    let pool: PoolId = pool_id.parse().unwrap();
    let pool_path = format!("/api/v1/pools/{pool_id}");
    // The Create takes effect three slots later.
    let view = wait_until_json(addr, &pool_path, Duration::from_secs(10), |p| p["seats"] == 1);
    assert_eq!(view["status"], "forming");
    let clock = NodeClock::of(addr);
    for i in 0..99 {
        let reply = post(
            addr,
            "/api/v1/pools/ops",
            None,
            &clock.signed_op(&member_key(i), Op::Join { pool }),
        );
        assert_eq!(reply.0, 202, "join {i}: {}", reply.1);
        assert_eq!(reply.1["pool_id"], pool_id.as_str());
    }
    // 1 seat + 99 pending joins: the 101st node is refused at once.
    let refused =
        post(addr, "/api/v1/pools/ops", None, &clock.signed_op(&member_key(99), Op::Join { pool }));
    assert_envelope(&refused, 409, "POOL_FULL");
    // The own node (the founder) cannot join again.
    let again = post(addr, &format!("{pool_path}/join"), Some(&token), "");
    assert_envelope(&again, 409, "ALREADY_IN_POOL");
    // A forged join (the signature of another key) is refused and counts nothing.
    let mut forged = json(&clock.signed_op(&member_key(500), Op::Join { pool }));
    forged["signature"] =
        json(&clock.signed_op(&member_key(501), Op::Join { pool }))["signature"].clone();
    let reply = post(addr, "/api/v1/pools/ops", None, &forged.to_string());
    assert_envelope(&reply, 400, "BAD_SIGNATURE");
    let full = wait_until_json(addr, &pool_path, Duration::from_secs(15), |p| p["seats"] == 100);
    assert_eq!(full["pending_joins"], 0);
    assert_eq!(full["is_at_capacity"], true);
    assert_eq!(full["status"], "active");
    let refused = post(
        addr,
        "/api/v1/pools/ops",
        None,
        &clock.signed_op(&member_key(100), Op::Join { pool }),
    );
    assert_envelope(&refused, 409, "POOL_FULL");
    let (_, capacity) = get_json(addr, &format!("{pool_path}/capacity"));
    assert_eq!((capacity["seats"].as_u64(), capacity["remaining"].as_u64()), (Some(100), Some(0)));
    let (_, members) = get_json(addr, &format!("{pool_path}/members"));
    assert_eq!(members.as_array().unwrap().len(), 100);
    // Restart: the pool and its members are read back from the database.
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let node = Running::start_with(dir.path(), &env);
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let (status, after) = get_json(node.addr, &pool_path);
    assert_eq!(status, 200);
    assert_eq!(after["seats"], 100);
    assert_eq!(after["leader"], full["leader"]);
    let (_, members) = get_json(node.addr, &format!("{pool_path}/members"));
    assert_eq!(members.as_array().unwrap().len(), 100);
    let (_, pools) = get_json(node.addr, "/api/v1/pools?limit=1");
    assert_eq!(pools["items"][0]["pool_id"], pool_id.as_str());
}

#[test]
fn a_pool_fills_to_100_through_the_api_the_101st_join_is_refused_and_restart_keeps_it_sqlite() {
    fill_a_pool_to_100_and_restart(None);
}

#[test]
fn a_pool_fills_to_100_through_the_api_the_101st_join_is_refused_and_restart_keeps_it_postgres() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(lucid_storage::testing::TestDb::postgres()).unwrap() else {
        return;
    };
    fill_a_pool_to_100_and_restart(Some(&db.url));
}

/// Every admin route of the served OpenAPI document refuses a missing, malformed and wrong
/// token; refused bodies get the envelope; nothing changes.
#[test]
fn every_mutation_needs_the_token_and_refused_bodies_change_nothing() {
    let dir = TempDir::new();
    let token = init(&dir);
    let node = Running::start_with(dir.path(), &test_network("api-it", None));
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let addr = node.addr;
    let (status, document) = get_json(addr, "/api/v1/openapi.json");
    assert_eq!(status, 200);
    let node_id = get_json(addr, "/api/v1/node").1["node_id"].as_str().unwrap().to_owned();
    let pool_id = PoolId::derive(&member_key(1).node_id(), Slot(1), "somepool").to_string();
    let mut admin_routes = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            if method != "get" {
                // Without the admin token a mutation must be node-signed (`/pools/ops`,
                // `/withdrawals`): the document says so.
                let signed = operation["description"]
                    .as_str()
                    .is_some_and(|text| text.contains("signed by the acting node"));
                assert!(
                    operation["security"].is_array() || signed,
                    "{method} {path} is a mutation without auth"
                );
            }
            if !operation["security"].is_array() {
                continue;
            }
            admin_routes += 1;
            let concrete = path
                .replace("{node_id}", &node_id)
                .replace("{pool_id}", &pool_id)
                .replace("{payout_id}", "payout_00");
            let method = method.to_uppercase();
            let wrong = format!("Bearer {}", "f".repeat(64));
            let basic = format!("Basic {token}");
            for (auth, status, code) in [
                (None, 401, "UNAUTHENTICATED"),
                (Some(basic.as_str()), 401, "UNAUTHENTICATED"),
                (Some(wrong.as_str()), 403, "FORBIDDEN"),
            ] {
                let mut headers =
                    vec![("Content-Type", "application/json"), ("Idempotency-Key", "k1")];
                if let Some(auth) = auth {
                    headers.push(("Authorization", auth));
                }
                let body = br#"{"name":"sneaky","max_nodes":5,"amount":"10"}"#;
                let (got, text) = request(addr, &method, &concrete, &headers, body).unwrap();
                assert_envelope(&(got, json(&text)), status, code);
            }
        }
    }
    assert!(admin_routes >= 6, "{admin_routes}");
    // Bad bodies with the right token.
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    let json_type = ("Content-Type", "application/json");
    let big = vec![b'a'; 2 * 1024 * 1024];
    /// Headers, body, expected status and code.
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![auth, json_type], b"{".to_vec(), 400, "INVALID_INPUT"),
        (
            vec![auth, json_type],
            br#"{"name":"ok-name","max_nodes":"100"}"#.to_vec(),
            400,
            "INVALID_INPUT",
        ),
        (vec![auth, json_type], br#"{"name":"ok-name","extra":1}"#.to_vec(), 400, "INVALID_INPUT"),
        (vec![auth, json_type], br#"{"name":"Bad Name!"}"#.to_vec(), 400, "INVALID_NAME"),
        (
            vec![auth, json_type],
            br#"{"name":"ok-name","max_nodes":101}"#.to_vec(),
            400,
            "INVALID_MAX_NODES",
        ),
        (
            vec![auth, ("Content-Type", "text/plain")],
            br#"{"name":"ok-name"}"#.to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (vec![auth, json_type], big, 413, "BODY_TOO_LARGE"),
    ];
    for (headers, body, status, code) in cases {
        let (got, text) = request(addr, "POST", "/api/v1/pools", &headers, &body).unwrap();
        assert_envelope(&(got, json(&text)), status, code);
    }
    let forged = serde_json::json!({"message": "00", "signature": "00"}).to_string();
    assert_envelope(&post(addr, "/api/v1/pools/ops", None, &forged), 400, "MALFORMED_MESSAGE");
    // Nothing changed: no pool, no pending op, no payout.
    let (_, pools) = get_json(addr, "/api/v1/pools");
    assert_eq!(pools["items"].as_array().unwrap().len(), 0, "{pools}");
    let (_, health) = get_json(addr, "/health");
    // The pool health loop reports once it ticked (its first tick is at the next slot start).
    let detail = health["components"]["pools"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail == "pool health not checked yet"
            || (detail.contains(": 0 forming, 0 active, 0 degraded, 0 disbanded pools;")
                && detail.ends_with("0 seats, 0 degraded members; 0 ops waiting for their slot")),
        "{detail}"
    );
    let (_, payouts) = get_json(addr, "/api/v1/payouts");
    assert_eq!(payouts["items"].as_array().unwrap().len(), 0);
    // Pay stubs are wired to the ledger: an epoch without a tally is 404, not 503.
    let stub = get_json(addr, &format!("/api/v1/nodes/{node_id}/stubs/epochs/999999"));
    assert_envelope(&stub, 404, "TALLY_NOT_FOUND");
    // A well-formed withdrawal without a registered payout address is refused (422).
    let withdrawal =
        post(addr, &format!("/api/v1/nodes/{node_id}/withdrawals"), Some(&token), "{}");
    assert_envelope(&withdrawal, 422, "NO_PAYOUT_ADDRESS");
    // The literal route is not shadowed by the parameter.
    let (status, stats) = get_json(addr, "/api/v1/payouts/stats");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["paid_gross"], "0.000000");
}
