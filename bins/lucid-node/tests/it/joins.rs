//! Concurrent signed Joins through `POST /api/v1/pools/ops` of the real binary (group commit):
//! every answer matches what a restarted node reads back, the cap of 100 seats is exact, and a
//! Join sent again is answered with the same digest; on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use lucid_core::{NodeKey, PoolId};
use lucid_pools::Op;
use serde_json::Value;

use crate::harness::{
    NodeClock, Running, TempDir, command, get, json, request, run_to_end, test_network,
    wait_until_json,
};

/// Joins sent, spread over [`POOLS`] pools of 100 (99 free seats each).
const JOINS: usize = 260;
const POOLS: usize = 2;
const THREADS: usize = 16;
/// How long a pool may take to show what was joined.
const SETTLE: Duration = Duration::from_secs(30);

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
    let env = test_network("joins-it", database_url);
    let mut node = Running::start_with(dir.path(), &env);
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let addr = node.addr;
    let clock = NodeClock::of(addr);
    let mut pools = Vec::new();
    for p in 0..POOLS {
        let create = Op::Create { name: format!("crowd-{p}"), max_nodes: 100 };
        let (status, reply) = submit(addr, &clock.signed_op(&key(1, p), create));
        assert_eq!(status, 202, "{reply}");
        pools.push(reply["pool_id"].as_str().unwrap().to_owned());
    }
    for pool in &pools {
        wait_until_json(addr, &format!("/api/v1/pools/{pool}"), SETTLE, |p| p["seats"] == 1);
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
                    let (status, reply) =
                        submit(addr, &clock.signed_op(&member, Op::Join { pool }));
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
        wait_until_json(node.addr, &format!("/api/v1/pools/{pool}"), SETTLE, |v| v["seats"] == 100);
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
