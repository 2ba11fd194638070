//! One payer per network (`pools-payouts.md` §5.1) with real processes: a payer node
//! (`payouts.enabled`, the ledger-only rail) and a forwarding node (`payouts.payer_node_id`).
//! A withdrawal signed with the forwarding node's key and sent to the forwarding node becomes a
//! payout on the payer, identical when read through either node; a signed cancel likewise; the
//! forwarding node's balance is not authoritative, its node's ledger and the payout figures
//! read through it are the payer's, page by page; forged, malformed, oversized, stale,
//! foreign-network and replayed requests change nothing; without the payer the forwarding node
//! answers 503 `PAYER_UNREACHABLE`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lucid_core::message::Message as _;
use lucid_core::{Epoch, MicroUsdt, NetworkId, NodeId, NodeKey, SignedMessage, UnixMillis};
use lucid_payouts::request::{CancelRequest, WithdrawalRequest};
use serde_json::Value;

use crate::harness::{Running, TempDir, command, get, request, run_to_end, signed_body};
use crate::network::{Profile, payout_address};

/// What the forwarding node earned on the payer's ledger before the test starts.
const EARNED_MICRO: u64 = 50_000_000;

fn now() -> UnixMillis {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    UnixMillis(i64::try_from(now.as_millis()).unwrap())
}

/// `init` with the test network's name and a payout address; the node's id and key.
fn init(dir: &TempDir, profile: &Profile) -> (NodeId, NodeKey) {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["init", "--network", &profile.name, "--payout-address", &payout_address()]);
        c
    });
    assert!(output.status.success(), "init: {}", String::from_utf8_lossy(&output.stderr));
    let node: NodeId = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    let key =
        NodeKey::from_seed_hex(&std::fs::read_to_string(dir.path().join("node.key")).unwrap())
            .unwrap();
    assert_eq!(key.node_id(), node);
    (node, key)
}

/// Credits `node` with `micro` in the SQLite ledger of `dir` (the payer's), before it starts,
/// under an epoch the test never reaches (the node's own reward service posts its epochs).
fn credit(dir: &TempDir, node: NodeId, micro: u64) {
    use lucid_payouts::store::LedgerStore as _;
    let posting =
        lucid_payouts::ledger::Posting::epoch_reward(Epoch(1_000_000), &[(node, MicroUsdt(micro))])
            .unwrap();
    with_database(dir, async |db| db.apply_posting(&posting, now()).await.unwrap());
}

/// Runs `work` on the SQLite database in `dir`, of a node that is not running.
fn with_database<T>(dir: &TempDir, work: impl AsyncFnOnce(&lucid_storage::Database) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock: std::sync::Arc<dyn lucid_core::Clock> =
            std::sync::Arc::new(lucid_daemon::clock::SystemClock::new());
        let url = format!("sqlite://{}", dir.path().join("lucid.db").display());
        let db = lucid_storage::Database::open(&url, clock).await.unwrap();
        let answer = work(&db).await;
        db.close().await;
        answer
    })
}

fn env(profile: &Profile, grpc: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("LUCID_NETWORK_KIND", "test".to_owned()),
        ("LUCID_NETWORK_NAME", profile.name.clone()),
        ("LUCID_NETWORK_GENESIS_MS", profile.genesis_ms.to_string()),
        ("LUCID_NETWORK_SLOT_MS", profile.slot_ms.to_string()),
        ("LUCID_NETWORK_SLOTS_PER_EPOCH", profile.slots_per_epoch.to_string()),
        ("LUCID_TOR_ENABLED", "false".to_owned()),
        ("LUCID_PEERS_DIRECT_ADDR", grpc.to_string()),
    ]
}

/// Starts a node on fixed ports (so that its direct endpoint is known before it runs).
fn start(
    dir: &TempDir,
    env: &[(&'static str, String)],
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
) -> Running {
    let child = command(dir.path())
        .args(["run", "--http-addr", &http.to_string(), "--grpc-addr", &grpc.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LUCID_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn lucid-node");
    let running = Running { child, addr: http, grpc_addr: grpc };
    running.wait_for("/health/ready", 200, Duration::from_secs(30));
    running
}

fn json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, Value) {
    let headers = [("content-type", "application/json")];
    let (status, body) = request(addr, "POST", path, &headers, body.as_bytes()).unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn envelope(reply: &(u16, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["error"]["code"], format!("LUCID_ERR_{code}"), "{}", reply.1);
}

fn withdrawal(
    key: &NodeKey,
    network: &NetworkId,
    amount: Option<u64>,
    client_key: &str,
    ts: UnixMillis,
) -> SignedMessage {
    WithdrawalRequest {
        node: key.node_id(),
        amount: amount.map(MicroUsdt),
        idempotency_key: client_key.to_owned(),
        ts,
    }
    .sign(network, key)
}

fn cancel(key: &NodeKey, network: &NetworkId, payout_id: &str, ts: UnixMillis) -> SignedMessage {
    CancelRequest { node: key.node_id(), payout_id: payout_id.to_owned(), ts }.sign(network, key)
}

/// The payer's payouts of every node.
fn payer_payouts(payer: &Running) -> Vec<Value> {
    let (status, page) = json(payer.addr, "/api/v1/payouts?limit=100");
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} did not happen within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn knows_registration(node: &Running, of: NodeId) -> bool {
    let (status, summary) = json(node.addr, &format!("/api/v1/nodes/{of}"));
    status == 200 && !summary["payout_address"].is_null()
}

#[test]
fn withdrawals_and_cancels_signed_by_a_node_are_forwarded_to_the_one_payer() {
    let profile = Profile::fast("payer-forward");
    let network = profile.params().network;
    let (payer_dir, forwarder_dir) = (TempDir::new(), TempDir::new());
    let (payer_id, payer_key) = init(&payer_dir, &profile);
    let (forwarder_id, forwarder_key) = init(&forwarder_dir, &profile);
    credit(&payer_dir, forwarder_id, EARNED_MICRO);

    let (payer_http, payer_grpc) = (crate::harness::free_addr(), crate::harness::free_addr());
    let mut payer_env = env(&profile, payer_grpc);
    payer_env.push(("LUCID_PAYOUTS_ENABLED", "true".to_owned()));
    let mut payer = start(&payer_dir, &payer_env, payer_http, payer_grpc);
    let (http, grpc) = (crate::harness::free_addr(), crate::harness::free_addr());
    let mut forwarder_env = env(&profile, grpc);
    forwarder_env.push(("LUCID_PEERS_BOOTSTRAP", format!("{payer_id}@{payer_grpc}")));
    forwarder_env.push(("LUCID_PAYOUTS_PAYER_NODE_ID", payer_id.to_string()));
    let mut forwarder = start(&forwarder_dir, &forwarder_env, http, grpc);
    // The payer needs the forwarder's registration (its payout address, and to admit its
    // calls); the forwarder needs the payer's (its endpoint).
    wait_until("the nodes know each other", Duration::from_secs(30), || {
        knows_registration(&payer, forwarder_id) && knows_registration(&forwarder, payer_id)
    });

    // The forwarding node's balance is not authoritative; the payer's is.
    let balance = format!("/api/v1/nodes/{forwarder_id}/balance");
    assert_eq!(json(forwarder.addr, &balance).1["authoritative"], false);
    let (_, on_payer) = json(payer.addr, &balance);
    assert_eq!(on_payer["authoritative"], true);
    assert_eq!(on_payer["available"], "50.000000");

    // A withdrawal signed by the forwarding node, sent to the forwarding node: 201 from the payer.
    let signed = withdrawal(&forwarder_key, &network, Some(12_500_000), "bb-1", now());
    let created = post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&signed));
    assert_eq!(created.0, 201, "{}", created.1);
    let payout = created.1;
    let id = payout["payout_id"].as_str().unwrap().to_owned();
    assert_eq!(payout["node_id"], forwarder_id.to_string());
    assert_eq!(payout["origin"], "withdrawal");
    assert_eq!(payout["status"], "pending");
    assert_eq!(
        (payout["gross"].as_str(), payout["fee"].as_str()),
        (Some("12.500000"), Some("0.125000"))
    );
    assert_eq!(payout["idempotency_key"], "wd:bb-1");
    // It is a payout of the payer, identical through either node; the forwarder made none.
    let path = format!("/api/v1/payouts/{id}");
    assert_eq!(json(payer.addr, &path), (200, payout.clone()));
    assert_eq!(json(forwarder.addr, &path), (200, payout.clone()));
    // Its pay stub through the forwarder carries the payer's record.
    let (status, stub) = json(forwarder.addr, &format!("{path}/stub"));
    assert_eq!(status, 200, "{stub}");
    assert_eq!(stub["payout"], payout);
    assert_eq!(
        (stub["chain_fee_sun"].as_str(), stub["previous_payout_id"].as_null()),
        (Some("0"), Some(()))
    );
    let (status, page) = json(forwarder.addr, &format!("/api/v1/nodes/{forwarder_id}/payouts"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"], Value::Array(vec![payout.clone()]));
    assert_eq!(payer_payouts(&payer).len(), 1);
    let (_, on_payer) = json(payer.addr, &balance);
    assert_eq!(
        (on_payer["reserved"].as_str(), on_payer["available"].as_str()),
        (Some("12.500000"), Some("37.500000"))
    );

    // Replayed: the same signed bytes answer the original payout (200), never a second one.
    let replayed = post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&signed));
    assert_eq!(replayed, (200, payout.clone()));
    let replayed_at_payer = post_json(payer.addr, "/api/v1/withdrawals", &signed_body(&signed));
    assert_eq!(replayed_at_payer, (200, payout.clone()));

    // Forged, malformed, oversized, stale, foreign-network, over-balance: refused, no payout.
    let bytes = signed.bytes().to_vec();
    let forged = SignedMessage::new(bytes.clone(), payer_key.sign(&bytes));
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&forged)),
        400,
        "BAD_SIGNATURE",
    );
    envelope(
        &post_json(payer.addr, "/api/v1/withdrawals", &signed_body(&forged)),
        400,
        "BAD_SIGNATURE",
    );
    let not_base64 = r#"{"message":"zz","signature":"00"}"#;
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", not_base64),
        400,
        "MALFORMED_MESSAGE",
    );
    let garbage = SignedMessage::new(vec![7; 100], forwarder_key.sign(&[7; 100]));
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&garbage)),
        400,
        "MALFORMED_MESSAGE",
    );
    let huge = format!(r#"{{"message":"{}","signature":"00"}}"#, "ab".repeat(600_000));
    envelope(&post_json(forwarder.addr, "/api/v1/withdrawals", &huge), 413, "BODY_TOO_LARGE");
    let stale =
        withdrawal(&forwarder_key, &network, None, "bb-stale", UnixMillis(now().0 - 400_000));
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&stale)),
        400,
        "INVALID_INPUT",
    );
    let elsewhere = Profile::fast("another-network").params().network;
    let foreign = withdrawal(&forwarder_key, &elsewhere, None, "bb-foreign", now());
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&foreign)),
        400,
        "INVALID_INPUT",
    );
    let too_much = withdrawal(&forwarder_key, &network, Some(40_000_000), "bb-much", now());
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&too_much)),
        422,
        "INSUFFICIENT_BALANCE",
    );
    let conflict = withdrawal(&forwarder_key, &network, Some(13_000_000), "bb-1", now());
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&conflict)),
        409,
        "IDEMPOTENCY_CONFLICT",
    );
    assert_eq!(payer_payouts(&payer).len(), 1);

    // A cancel signed by another node (here the payer's own key) is refused: not its payout.
    let foreign_cancel = cancel(&payer_key, &network, &id, now());
    let cancel_path = format!("/api/v1/payouts/{id}/cancel");
    envelope(
        &post_json(forwarder.addr, &cancel_path, &signed_body(&foreign_cancel)),
        403,
        "FORBIDDEN",
    );
    // A cancel with flipped bytes, or signed for another network or too long ago: refused.
    let genuine = cancel(&forwarder_key, &network, &id, now());
    let mut bytes = genuine.bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    let tampered = SignedMessage::new(bytes, *genuine.signature());
    envelope(
        &post_json(forwarder.addr, &cancel_path, &signed_body(&tampered)),
        400,
        "BAD_SIGNATURE",
    );
    let foreign = cancel(&forwarder_key, &elsewhere, &id, now());
    envelope(
        &post_json(forwarder.addr, &cancel_path, &signed_body(&foreign)),
        400,
        "INVALID_INPUT",
    );
    let stale = cancel(&forwarder_key, &network, &id, UnixMillis(now().0 - 400_000));
    envelope(&post_json(forwarder.addr, &cancel_path, &signed_body(&stale)), 400, "INVALID_INPUT");
    // A cancel whose signed id is not the path's is refused.
    let other_id = cancel(&forwarder_key, &network, "payout_000000000000000000000000", now());
    envelope(
        &post_json(forwarder.addr, &cancel_path, &signed_body(&other_id)),
        400,
        "INVALID_INPUT",
    );
    // Without a token and without a body: 401, as every admin mutation.
    let (status, _) = request(forwarder.addr, "POST", &cancel_path, &[], b"").unwrap();
    assert_eq!(status, 401);
    assert_eq!(json(payer.addr, &path).1["status"], "pending");

    // The owner's signed cancel, sent to the forwarding node: cancelled on the payer.
    let signed_cancel = cancel(&forwarder_key, &network, &id, now());
    let (status, cancelled) = post_json(forwarder.addr, &cancel_path, &signed_body(&signed_cancel));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(json(payer.addr, &path), (200, cancelled.clone()));
    assert_eq!(json(forwarder.addr, &path), (200, cancelled.clone()));
    let (_, on_payer) = json(payer.addr, &balance);
    assert_eq!(
        (on_payer["reserved"].as_str(), on_payer["available"].as_str()),
        (Some("0.000000"), Some("50.000000"))
    );
    // Replayed: the payout is no longer pending.
    envelope(
        &post_json(forwarder.addr, &cancel_path, &signed_body(&signed_cancel)),
        409,
        "INVALID_STATE",
    );
    assert_eq!(payer_payouts(&payer).len(), 1);

    // The forwarding node's admin withdrawal is signed by that node and forwarded too.
    let token = std::fs::read_to_string(forwarder_dir.path().join("admin.token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let admin_headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "admin-1"),
    ];
    let (status, admin_body) = request(
        forwarder.addr,
        "POST",
        &format!("/api/v1/nodes/{forwarder_id}/withdrawals"),
        &admin_headers,
        br#"{"amount":"10"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{admin_body}");
    let admin_payout: Value = serde_json::from_str(&admin_body).unwrap();
    assert_eq!(admin_payout["idempotency_key"], "wd:admin-1");
    assert_eq!(payer_payouts(&payer).len(), 2);

    // The node's ledger and the payout figures, read through the forwarding node, are the
    // payer's (the forwarder's own database holds no entry of its node): page by page too.
    let ledger = format!("/api/v1/nodes/{forwarder_id}/ledger");
    let (status, on_payer) = json(payer.addr, &format!("{ledger}?limit=100"));
    assert_eq!(status, 200, "{on_payer}");
    // The credit, the first payout's reserve and release, the admin payout's reserve.
    let kinds: Vec<&str> =
        on_payer["items"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["payout_reserve", "payout_release", "payout_reserve", "epoch_reward"]);
    assert_eq!(on_payer["items"][0]["balance_after"], "40.000000");
    assert_eq!(on_payer["authoritative"], true);
    assert_eq!(json(forwarder.addr, &format!("{ledger}?limit=100")), (200, on_payer.clone()));
    let first = json(forwarder.addr, &format!("{ledger}?limit=3"));
    assert_eq!(first, json(payer.addr, &format!("{ledger}?limit=3")));
    let cursor = first.1["next_cursor"].as_str().unwrap().to_owned();
    let rest = format!("{ledger}?limit=3&cursor={}", cursor.replace(':', "%3A"));
    let second = json(forwarder.addr, &rest);
    assert_eq!(second, json(payer.addr, &rest));
    assert_eq!(second.1["items"][0], on_payer["items"][3]);
    assert!(second.1["next_cursor"].is_null());
    envelope(&json(forwarder.addr, &format!("{ledger}?cursor=nope")), 400, "INVALID_INPUT");
    envelope(&json(forwarder.addr, &format!("{ledger}?limit=101")), 400, "INVALID_INPUT");
    let (status, stats) = json(payer.addr, "/api/v1/payouts/stats");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (stats["by_status"]["cancelled"].as_u64(), stats["by_status"]["pending"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(json(forwarder.addr, "/api/v1/payouts/stats"), (200, stats));
    let (status, config) = json(forwarder.addr, "/api/v1/payouts/config");
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        (config["role"].as_str(), config["payer_node_id"].as_str()),
        (Some("forwarder"), Some(payer_id.to_string().as_str()))
    );
    let (_, config) = json(payer.addr, "/api/v1/payouts/config");
    assert_eq!(
        (config["role"].as_str(), config["minimum_micro_usdt"].as_u64()),
        (Some("payer"), Some(10_000_000))
    );

    // Without the payer: 503 PAYER_UNREACHABLE, and nothing is created on the forwarding node.
    payer.signal("TERM");
    payer.wait_exit(Duration::from_secs(30));
    let later = withdrawal(&forwarder_key, &network, Some(10_000_000), "bb-2", now());
    envelope(
        &post_json(forwarder.addr, "/api/v1/withdrawals", &signed_body(&later)),
        503,
        "PAYER_UNREACHABLE",
    );
    let (status, reply) = json(forwarder.addr, &path);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"]["code"], "LUCID_ERR_PAYER_UNREACHABLE");
    // The ledger and the figures are never answered from the forwarder's own database.
    envelope(&json(forwarder.addr, &ledger), 503, "PAYER_UNREACHABLE");
    envelope(&json(forwarder.addr, "/api/v1/payouts/stats"), 503, "PAYER_UNREACHABLE");

    // The forwarding node's own database holds no payout: every one above is the payer's.
    forwarder.signal("TERM");
    forwarder.wait_exit(Duration::from_secs(30));
    assert_eq!(payouts_in(&forwarder_dir), 0);
    assert_eq!(payouts_in(&payer_dir), 2);
}

/// How many payouts the SQLite database of a stopped node holds.
fn payouts_in(dir: &TempDir) -> usize {
    use lucid_payouts::store::PayoutStore as _;
    with_database(dir, async |db| db.list(None).await.unwrap().len())
}
