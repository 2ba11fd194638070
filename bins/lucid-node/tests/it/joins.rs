//! Concurrent signed Joins through `POST /api/v1/pools/ops` of the real binary (group commit):
//! every answer matches what a restarted node reads back, the cap of 100 seats is exact, and a
//! Join sent again is answered with the same digest; on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lucid_core::message::Message as _;
use lucid_core::{NetworkId, NodeKey, PoolId, Slot, UnixMillis};
use lucid_pools::{Op, PoolOp};
use serde_json::Value;

use crate::harness::{Running, TempDir, command, get, request, run_to_end};

/// Joins sent, spread over [`POOLS`] pools of 100 (99 free seats each).
const JOINS: usize = 260;
const POOLS: usize = 2;
const THREADS: usize = 16;

fn env(database_url: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LUCID_NETWORK_KIND", "test".to_owned()),
        ("LUCID_NETWORK_NAME", "joins-it".to_owned()),
        ("LUCID_NETWORK_GENESIS_MS", "1700000000000".to_owned()),
        ("LUCID_NETWORK_SLOT_MS", "1000".to_owned()),
        ("LUCID_NETWORK_SLOTS_PER_EPOCH", "8".to_owned()),
    ];
    if let Some(url) = database_url {
        env.push(("LUCID_DATABASE_URL", url.to_owned()));
    }
    env
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

struct Clock {
    network: NetworkId,
    genesis_ms: i64,
    slot_ms: i64,
}

impl Clock {
    fn of(addr: SocketAddr) -> Clock {
        let clock = json(&get(addr, "/api/v1/poot/clock").unwrap().1);
        Clock {
            network: clock["network_id"].as_str().unwrap().parse().unwrap(),
            genesis_ms: clock["genesis_ms"].as_i64().unwrap(),
            slot_ms: clock["slot_ms"].as_i64().unwrap(),
        }
    }

    /// `op` of `key`, signed now (right before it is sent: the slot window is short).
    fn body(&self, key: &NodeKey, op: Op) -> String {
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis())
            .unwrap();
        let slot = Slot(u64::try_from((now - self.genesis_ms) / self.slot_ms).unwrap());
        let signed =
            PoolOp { node: key.node_id(), slot, ts: UnixMillis(now), op }.sign(&self.network, key);
        serde_json::json!({
            "message": lucid_core::ids::to_hex(signed.bytes()),
            "signature": signed.signature().to_hex(),
        })
        .to_string()
    }
}

fn key(role: u8, i: usize) -> NodeKey {
    let mut seed = [role; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NodeKey::from_seed(&seed)
}

fn submit(addr: SocketAddr, body: &str) -> (u16, Value) {
    let headers = [("Content-Type", "application/json")];
    let (status, body) =
        request(addr, "POST", "/api/v1/pools/ops", &headers, body.as_bytes()).unwrap();
    (status, json(&body))
}

fn wait_until(addr: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some((200, body)) = get(addr, path) {
            let value = json(&body);
            if done(&value) {
                return value;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{path} never reached the state");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node ids seated in `pool`.
fn seated(addr: SocketAddr, pool: &str) -> BTreeSet<String> {
    let (status, body) = get(addr, &format!("/api/v1/pools/{pool}/members")).unwrap();
    assert_eq!(status, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node_id"].as_str().unwrap().to_owned())
        .collect()
}

fn concurrent_joins_answer_what_a_restart_reads_back(database_url: Option<&str>) {
    let dir = TempDir::new();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "init: {}", String::from_utf8_lossy(&output.stderr));
    let env = env(database_url);
    let mut node = Running::start_with(dir.path(), &env);
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let addr = node.addr;
    let clock = Clock::of(addr);
    let mut pools = Vec::new();
    for p in 0..POOLS {
        let create = Op::Create { name: format!("crowd-{p}"), max_nodes: 100 };
        let (status, reply) = submit(addr, &clock.body(&key(1, p), create));
        assert_eq!(status, 202, "{reply}");
        pools.push(reply["pool_id"].as_str().unwrap().to_owned());
    }
    for pool in &pools {
        wait_until(addr, &format!("/api/v1/pools/{pool}"), |p| p["seats"] == 1);
    }
    // Every thread signs and sends its share; each answer is kept with the Join's node id.
    let answers: Mutex<Vec<(usize, String, u16, Value)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (answers, clock, pools) = (&answers, &clock, &pools);
            scope.spawn(move || {
                for i in (t..JOINS).step_by(THREADS) {
                    let pool_index = i % POOLS;
                    let pool: PoolId = pools[pool_index].parse().unwrap();
                    let member = key(2, i);
                    let (status, reply) = submit(addr, &clock.body(&member, Op::Join { pool }));
                    let node = member.node_id().to_string();
                    answers.lock().unwrap().push((pool_index, node, status, reply));
                }
            });
        }
    });
    let answers = answers.into_inner().unwrap();
    let mut accepted: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (pool_index, node, status, reply) in &answers {
        match status {
            202 => {
                assert_eq!(reply["pool_id"], pools[*pool_index].as_str());
                accepted.entry(*pool_index).or_default().insert(node.clone());
            }
            409 => assert_eq!(reply["error"]["code"], "LUCID_ERR_POOL_FULL", "{reply}"),
            other => panic!("a Join answered {other}: {reply}"),
        }
    }
    for p in 0..POOLS {
        assert_eq!(accepted[&p].len(), 99, "pool {p}: the cap is exact under concurrency");
    }
    // Restart: the accepted Joins were durable when answered; at their effect slot exactly
    // they hold the 99 free seats of each pool.
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let node = Running::start_with(dir.path(), &env);
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    for (p, pool) in pools.iter().enumerate() {
        wait_until(node.addr, &format!("/api/v1/pools/{pool}"), |v| v["seats"] == 100);
        let mut expected = accepted[&p].clone();
        expected.insert(key(1, p).node_id().to_string());
        assert_eq!(seated(node.addr, pool), expected, "pool {p}: seats are the Joins answered 202");
    }
}

#[test]
fn concurrent_joins_answer_what_a_restart_reads_back_sqlite() {
    concurrent_joins_answer_what_a_restart_reads_back(None);
}

#[test]
fn concurrent_joins_answer_what_a_restart_reads_back_postgres() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(lucid_storage::testing::TestDb::postgres()).unwrap() else {
        return;
    };
    concurrent_joins_answer_what_a_restart_reads_back(Some(&db.url));
}
