//! `PoolStore` on both backends (`pools-payouts.md` §2.4, §8 T1/T2, §11 I1–I5): the cap under
//! 500 concurrent seat attempts over at least 8 connections, one node racing into two pools, the
//! model-based agreement with `PoolState` and `MemoryPoolStore` after every step, a restart, and
//! the schema refusing by itself what the domain refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lucid_consensus::testing;
use lucid_core::{Digest, NodeId, PoolId, Slot};
use lucid_pools::store::{
    CloseOutcome, CreateOutcome, NewPool, PoolStore, SeatOutcome, apply_slot_to_store,
    note_accepted_in_store,
};
use lucid_pools::{Liveness, Membership, MemoryPoolStore, PoolState, Role};
use lucid_storage::testing::TestDb;
use lucid_storage::{Backend, Database};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;

fn node(i: u64) -> NodeId {
    testing::key(i).node_id()
}

fn digest(i: u8) -> Digest {
    Digest::from_bytes([i; 32])
}

fn new_pool(founder: NodeId, name: &str, max: u8) -> NewPool {
    NewPool {
        pool_id: PoolId::derive(&founder, Slot(1), name),
        name: name.to_owned(),
        founder,
        max_nodes: max,
        created_slot: Slot(4),
        op_digest: digest(0),
    }
}

/// `extra` more open handles on the same database (for SQLite: more writer connections on the
/// same file, so transactions of different connections really contend for the lock).
async fn handles(test_db: &TestDb, db: &Database, extra: usize) -> Vec<Database> {
    let mut all = vec![db.clone()];
    if test_db.backend == Backend::Sqlite {
        for _ in 0..extra {
            all.push(test_db.open().await.unwrap());
        }
    }
    all
}

/// Starts a stopwatch for the wall time reported (never asserted) by the stress test.
#[expect(
    clippy::disallowed_methods,
    reason = "reports the wall time of the stress test; no test outcome depends on it"
)]
fn stopwatch() -> Instant {
    Instant::now()
}

#[expect(clippy::print_stderr, reason = "the wall time of the stress test is reported")]
fn report(backend: Backend, what: &str, elapsed: Duration) {
    eprintln!("{backend:?}: {what} took {} ms", elapsed.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_seat_attempts_fill_exactly_max_nodes() {
    const ATTEMPTS: u64 = 500;
    const CONNECTIONS: usize = 8;
    let nodes: Vec<NodeId> = (1..=ATTEMPTS).map(|i| node(1_000 + i)).collect();
    for (test_db, db) in databases().await {
        // SQLite: 8 handles on one file, one writer connection each; PostgreSQL: the shared pool
        // of 8 connections.
        let dbs = handles(&test_db, &db, CONNECTIONS - 1).await;
        for (round, max) in [(0u64, lucid_pools::MAX_NODES_PER_POOL), (1, 37)] {
            let new = new_pool(node(round), &format!("crowd-{round}"), max);
            assert_eq!(db.create_pool(&new).await.unwrap(), CreateOutcome::Created);
            let started = stopwatch();
            let mut tasks = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                let db = dbs[i % dbs.len()].clone();
                let (pool, n) = (new.pool_id, *n);
                tasks.push(tokio::spawn(async move {
                    db.seat(&pool, &n, Role::Member, Slot(9), &digest(3)).await.unwrap()
                }));
            }
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            report(
                test_db.backend,
                &format!("{ATTEMPTS} seat attempts (max {max})"),
                started.elapsed(),
            );
            let seated = outcomes.iter().filter(|o| **o == SeatOutcome::Seated).count();
            let full = outcomes.iter().filter(|o| **o == SeatOutcome::PoolFull).count();
            // The founder holds one seat.
            assert_eq!(seated + 1, usize::from(max), "{:?}", test_db.backend);
            assert_eq!(seated + full, ATTEMPTS as usize, "{:?}: {outcomes:?}", test_db.backend);
            let stored = db.get_pool(&new.pool_id).await.unwrap().unwrap();
            assert_eq!(stored.pool.seats, u32::from(max));
            let rows = db.pool_member_rows().await.unwrap();
            let seat_rows = rows.iter().filter(|r| r.pool_id == new.pool_id && r.is_seat()).count();
            assert_eq!(seat_rows, usize::from(max), "{:?}", test_db.backend);
            db.audit().await.unwrap();
            // Free the seated nodes for the next round.
            assert!(matches!(
                db.disband(&new.pool_id, Slot(10)).await.unwrap(),
                lucid_pools::store::DisbandOutcome::Disbanded { .. }
            ));
        }
        for handle in dbs.iter().skip(1) {
            handle.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_racing_into_two_pools_gets_one_seat() {
    const ROUNDS: u64 = 40;
    for (test_db, db) in databases().await {
        let dbs = handles(&test_db, &db, 1).await;
        for round in 0..ROUNDS {
            let base = 20_000 + 3 * round;
            let a = new_pool(node(base), "left", 10);
            let b = new_pool(node(base + 1), "right", 10);
            db.create_pool(&a).await.unwrap();
            db.create_pool(&b).await.unwrap();
            let racer = node(base + 2);
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let mut tasks = Vec::new();
            for (k, pool) in [a.pool_id, b.pool_id].into_iter().enumerate() {
                let db = dbs[k % dbs.len()].clone();
                let barrier = Arc::clone(&barrier);
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    db.seat(&pool, &racer, Role::Member, Slot(9), &digest(4)).await.unwrap()
                }));
            }
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            let seated = outcomes.iter().filter(|o| **o == SeatOutcome::Seated).count();
            let refused = outcomes.iter().filter(|o| **o == SeatOutcome::AlreadyInPool).count();
            assert_eq!((seated, refused), (1, 1), "{:?}: {outcomes:?}", test_db.backend);
            let home = db.pool_of(&racer).await.unwrap().unwrap();
            assert!(home == a.pool_id || home == b.pool_id);
        }
        db.audit().await.unwrap();
        for handle in dbs.iter().skip(1) {
            handle.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_noted_concurrently_is_recorded_once() {
    for (test_db, db) in databases().await {
        let dbs = handles(&test_db, &db, 3).await;
        let a = new_pool(node(0), "alpha", 10);
        db.create_pool(&a).await.unwrap();
        for round in 0..10u8 {
            let barrier = Arc::new(tokio::sync::Barrier::new(8));
            let mut tasks = Vec::new();
            for k in 0..8 {
                let db = dbs[k % dbs.len()].clone();
                let barrier = Arc::clone(&barrier);
                let pool = a.pool_id;
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    db.note_join(&pool, &node(1), Slot(30), &digest(100 + round)).await.unwrap()
                }));
            }
            let mut recorded = 0;
            for task in tasks {
                recorded += usize::from(task.await.unwrap());
            }
            assert_eq!(recorded, 1, "{:?} round {round}", test_db.backend);
        }
        assert_eq!(db.pending_joins(&a.pool_id).await.unwrap(), 10);
        for handle in dbs.iter().skip(1) {
            handle.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_members_survive_a_restart() {
    for (test_db, db) in databases().await {
        let a = new_pool(node(0), "alpha", 10);
        let b = new_pool(node(1), "beta", 2);
        db.create_pool(&a).await.unwrap();
        db.create_pool(&b).await.unwrap();
        for i in 2..6 {
            let seated = db.seat(&a.pool_id, &node(i), Role::Member, Slot(5 + i), &digest(7)).await;
            assert_eq!(seated.unwrap(), SeatOutcome::Seated);
        }
        assert!(db.note_join(&b.pool_id, &node(6), Slot(30), &digest(8)).await.unwrap());
        db.close_seat(&a.pool_id, &node(3), Slot(20), true).await.unwrap();
        assert_eq!(
            db.close_seat(&a.pool_id, &node(0), Slot(21), false).await.unwrap(),
            CloseOutcome::Closed { successor: Some(node(2)), disbanded: false }
        );
        assert!(db.set_liveness(&node(4), Liveness::Suspended).await.unwrap().is_some());
        let pools = db.all_pools().await.unwrap();
        let rows = db.pool_member_rows().await.unwrap();
        let timeline = db.timeline().await.unwrap();
        let version = db.get_pool(&a.pool_id).await.unwrap().unwrap().version;
        db.close().await;
        drop(db);

        let reopened = test_db.open().await.unwrap();
        assert_eq!(reopened.all_pools().await.unwrap(), pools, "{:?}", test_db.backend);
        assert_eq!(reopened.pool_member_rows().await.unwrap(), rows);
        assert_eq!(reopened.timeline().await.unwrap(), timeline);
        assert_eq!(reopened.get_pool(&a.pool_id).await.unwrap().unwrap().version, version);
        assert_eq!(reopened.pool_of(&node(2)).await.unwrap(), Some(a.pool_id));
        assert_eq!(reopened.pending_joins(&b.pool_id).await.unwrap(), 1);
        // The ban is still in force.
        let banned = reopened.seat(&a.pool_id, &node(3), Role::Member, Slot(40), &digest(9)).await;
        assert_eq!(banned.unwrap(), SeatOutcome::Banned);
        reopened.audit().await.unwrap();
        reopened.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The constraint backstop: raw SQL that bypasses the store and breaks a rule must be refused.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_what_the_domain_refuses() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        // Pool A: max 3, founder 0 (leader) and member 1. Pool B: founder 2.
        let a = new_pool(node(0), "alpha", 3);
        let b = new_pool(node(2), "beta", 3);
        db.create_pool(&a).await.unwrap();
        db.create_pool(&b).await.unwrap();
        db.seat(&a.pool_id, &node(1), Role::Member, Slot(5), &digest(1)).await.unwrap();
        db.close_seat(&b.pool_id, &node(2), Slot(6), false).await.unwrap();
        let c = new_pool(node(3), "gamma", 3);
        db.create_pool(&c).await.unwrap();
        assert!(db.note_join(&a.pool_id, &node(8), Slot(30), &digest(9)).await.unwrap());
        let before = (db.all_pools().await.unwrap(), db.pool_member_rows().await.unwrap());

        let pa = lit(backend, a.pool_id.as_bytes());
        let pc = lit(backend, c.pool_id.as_bytes());
        let n = |i| lit(backend, node(i).as_bytes());
        let d = lit(backend, digest(9).as_bytes());
        let member = |pool: &str, node: &str, role: &str, status: &str| {
            format!(
                "INSERT INTO pool_members (pool_id, node_id, role, status, from_slot, op_digest) \
                 VALUES ({pool}, {node}, '{role}', '{status}', 7, {d})"
            )
        };
        let new_pool_row = |id: u8, max: i64, seats: i64| {
            format!(
                "INSERT INTO pools (pool_id, name, founder, leader, status, max_nodes, seats, \
                 created_slot, version) VALUES ({}, 'x', {}, {}, 'forming', {max}, {seats}, 1, 1)",
                lit(backend, &[id; 16]),
                n(9),
                n(9)
            )
        };
        let violations = [
            ("max_nodes 0", format!("UPDATE pools SET max_nodes = 0 WHERE pool_id = {pa}")),
            ("max_nodes 101", format!("UPDATE pools SET max_nodes = 101 WHERE pool_id = {pa}")),
            ("seats above max_nodes", format!("UPDATE pools SET seats = 4 WHERE pool_id = {pa}")),
            ("negative seats", format!("UPDATE pools SET seats = -1 WHERE pool_id = {pa}")),
            (
                "max_nodes below seats",
                format!("UPDATE pools SET max_nodes = 1 WHERE pool_id = {pa}"),
            ),
            (
                "unknown pool status",
                format!("UPDATE pools SET status = 'closed' WHERE pool_id = {pa}"),
            ),
            (
                "disbanded without a slot",
                format!("UPDATE pools SET status = 'disbanded', seats = 0 WHERE pool_id = {pc}"),
            ),
            (
                "disbanded with seats",
                format!(
                    "UPDATE pools SET status = 'disbanded', disbanded_slot = 9 WHERE pool_id = {pa}"
                ),
            ),
            ("a new pool above the cap", new_pool_row(0x41, 150, 0)),
            ("a new pool over its limit", new_pool_row(0x42, 2, 3)),
            ("a second seat for a node", member(&pc, &n(1), "member", "active")),
            ("a second leader seat", member(&pa, &n(7), "leader", "active")),
            ("a second leader seat (leaving)", member(&pa, &n(7), "leader", "leaving")),
            ("unknown role", member(&pa, &n(7), "owner", "joining")),
            ("unknown member status", member(&pa, &n(7), "member", "pending")),
            ("rejected without a reason", member(&pa, &n(7), "member", "rejected")),
            ("closed without to_slot", member(&pa, &n(7), "member", "closed")),
            ("a Join recorded twice", member(&pa, &n(8), "member", "joining")),
            (
                "a seat moved onto a node that holds one",
                format!("UPDATE pool_members SET node_id = {} WHERE node_id = {}", n(1), n(3)),
            ),
            (
                "a member promoted next to the leader",
                format!("UPDATE pool_members SET role = 'leader' WHERE node_id = {}", n(1)),
            ),
            (
                "a closed seat reopened with its to_slot",
                format!("UPDATE pool_members SET status = 'active' WHERE node_id = {}", n(2)),
            ),
        ];
        for (what, sql) in &violations {
            let error = match raw(&test_db, sql).await {
                Ok(changed) => panic!("{backend:?}: {what}: accepted, {changed} rows changed"),
                Err(error) => error,
            };
            let db_error = error.as_database_error().unwrap_or_else(|| panic!("{what}: {error}"));
            assert!(
                matches!(
                    db_error.kind(),
                    sqlx::error::ErrorKind::CheckViolation
                        | sqlx::error::ErrorKind::UniqueViolation
                ),
                "{backend:?}: {what}: {error}"
            );
        }
        // Nothing changed, and what the store holds still passes the audit.
        let after = (db.all_pools().await.unwrap(), db.pool_member_rows().await.unwrap());
        assert_eq!(after, before, "{backend:?}");
        db.audit().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Model-based: random op logs through `PoolState`, `MemoryPoolStore` and the SQL store.
// The generator mirrors `lucid-pools/src/test_support.rs` (private to that crate's unit tests).

use lucid_pools::test_support::{
    AbstractOp, LOG_BASE_SLOT, LOG_NODES, abstract_log, build_log, node as log_node,
};

fn liveness_events() -> impl Strategy<Value = Vec<Vec<(usize, Liveness)>>> {
    let event = (
        0..LOG_NODES,
        prop_oneof![Just(Liveness::Active), Just(Liveness::Inactive), Just(Liveness::Suspended)],
    );
    proptest::collection::vec(proptest::collection::vec(event, 0..3), 20)
}

/// Every row, in a canonical order.
fn comparable(rows: &[Membership]) -> Vec<Membership> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| (r.pool_id, r.node_id, r.from_slot, r.op_digest));
    rows
}

/// The state, the memory store and the SQL store hold the same pools and rows and answer every
/// read alike; all three pass their audits.
async fn agree(state: &PoolState, memory: &MemoryPoolStore, db: &Database, step: &str) {
    let backend = db.backend();
    state.check_invariants().unwrap();
    memory.audit().await.unwrap();
    db.audit().await.unwrap();
    let pools: Vec<_> = state.pools().cloned().collect();
    assert_eq!(db.all_pools().await.unwrap(), pools, "{backend:?} {step}");
    assert_eq!(memory.pools(), pools, "{step}");
    let rows = comparable(state.rows());
    assert_eq!(comparable(&db.pool_member_rows().await.unwrap()), rows, "{backend:?} {step}");
    assert_eq!(comparable(&memory.rows()), rows, "{step}");
    assert_eq!(db.timeline().await.unwrap(), state.timeline().unwrap(), "{backend:?} {step}");
    for i in 0..LOG_NODES {
        let n = log_node(i);
        assert_eq!(db.pool_of(&n).await.unwrap(), state.pool_of(&n), "{backend:?} {step}");
    }
    for pool in state.pools() {
        let id = pool.pool_id;
        assert_eq!(db.members(&id).await.unwrap(), state.members(&id), "{backend:?} {step}");
        assert_eq!(db.pending_joins(&id).await.unwrap(), state.pending_joins(&id));
        let stored = db.get_pool(&id).await.unwrap().unwrap();
        assert_eq!(Some(stored), memory.get_pool(&id).await.unwrap(), "{backend:?} {step}");
    }
}

/// One case: the log applied slot by slot, with uptime changes and accepted-op notes, checking
/// agreement after every step.
async fn run_case(db: &Database, batches: &[Vec<AbstractOp>], liveness: &[Vec<(usize, Liveness)>]) {
    let log = build_log(batches);
    let mut state = PoolState::new();
    let memory = MemoryPoolStore::new();
    for k in 0..batches.len() + 3 {
        let slot = Slot(LOG_BASE_SLOT + k as u64);
        let expected = state.apply_slot(slot, &log);
        let from_memory = apply_slot_to_store(&memory, slot, &log).await.unwrap();
        let from_db = apply_slot_to_store(db, slot, &log).await.unwrap();
        assert_eq!(from_memory, expected);
        assert_eq!(from_db, expected, "{:?} outcomes of slot {}", db.backend(), slot.0);
        agree(&state, &memory, db, &format!("after applying slot {}", slot.0)).await;
        for (i, live) in liveness.get(k).into_iter().flatten() {
            let n = log_node(*i);
            let expected = state.set_liveness(&n, *live);
            assert_eq!(memory.set_liveness(&n, *live).await.unwrap(), expected);
            assert_eq!(db.set_liveness(&n, *live).await.unwrap(), expected);
        }
        agree(&state, &memory, db, &format!("after liveness in slot {}", slot.0)).await;
        for op in log.iter().filter(|op| op.op.slot == slot) {
            state.note_accepted(op);
            note_accepted_in_store(&memory, op).await.unwrap();
            note_accepted_in_store(db, op).await.unwrap();
        }
        agree(&state, &memory, db, &format!("after notes in slot {}", slot.0)).await;
    }
}

/// Empties the pool tables between cases (one database per backend serves every case).
async fn clear(test_db: &TestDb) {
    raw(test_db, "DELETE FROM pool_members").await.unwrap();
    raw(test_db, "DELETE FROM pools").await.unwrap();
}

/// I4 on SQL: random op sequences applied to `PoolState`, `MemoryPoolStore` and the SQL store
/// agree after every step, on both backends.
#[test]
fn state_memory_and_sql_agree_after_every_step() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dbs = runtime.block_on(databases());
    let config =
        Config { cases: 24, max_shrink_iters: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = (abstract_log(1..14, 1..7), liveness_events());
    runner
        .run(&strategy, |(batches, liveness)| {
            for (test_db, db) in &dbs {
                runtime.block_on(async {
                    clear(test_db).await;
                    run_case(db, &batches, &liveness).await;
                });
            }
            Ok(())
        })
        .unwrap();
}
