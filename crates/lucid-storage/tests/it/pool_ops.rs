//! The pool op log on both backends (`pools-payouts.md` §2.2, §6 `pool_ops`, §8 T10): logged ops
//! read back byte-identical, duplicates are no-ops and equivocations are refused, a restart
//! between acceptance and the effect slot loses nothing, a crash at any op application records
//! the same outcomes after a restart, the schema refuses changes of what was
//! signed, damaged rows are reported, and a rebuild from the log equals the incrementally
//! maintained state (property test over random op sequences).

use lucid_core::{PoolId, SignedMessage, Slot};
use lucid_pools::log::{
    LogOutcome, LoggedOp, OpState, SignedOp, apply_logged, rebuild_from_log, settled_states,
};
use lucid_pools::state::OpResult;
use lucid_pools::store::{PoolStore, note_accepted_in_store};
use lucid_pools::test_support::{
    abstract_log, accepted, build_log, drive, pool_id, signed, sorted_rows,
};
use lucid_pools::{AcceptedOp, MemberStatus, Op, PoolState};
use proptest::test_runner::{Config, TestRunner};

use super::*;

fn create(i: usize, slot: u64, name: &str) -> SignedOp {
    signed(&accepted(i, slot, Op::Create { name: name.to_owned(), max_nodes: 5 }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_ops_read_back_byte_identical_duplicates_are_no_ops_and_equivocations_refused() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let pool = pool_id(0, 10, "pool-a");
        let ops = [
            create(0, 10, "pool-a"),
            signed(&accepted(1, 10, Op::Join { pool })),
            signed(&accepted(
                2,
                11,
                Op::Remove { pool, member: lucid_pools::test_support::node(3), ban: true },
            )),
        ];
        for op in &ops {
            assert_eq!(db.log_op(op).await.unwrap(), LogOutcome::Inserted, "{backend:?}");
        }
        for op in &ops {
            assert_eq!(db.log_op(op).await.unwrap(), LogOutcome::Duplicate, "{backend:?}");
        }
        // A second op of node 0 in slot 10: refused, the first one reported.
        let other = create(0, 10, "pool-b");
        assert_eq!(
            db.log_op(&other).await.unwrap(),
            LogOutcome::Conflict { existing: ops[0].message.clone() },
            "{backend:?}"
        );
        // A forged copy (same bytes, another signature) is the same digest: a duplicate, and the
        // stored signature stays the one first logged.
        let forged = SignedOp {
            accepted: ops[1].accepted.clone(),
            message: SignedMessage::new(
                ops[1].message.bytes().to_vec(),
                lucid_core::Signature::from_bytes([7; 64]),
            ),
        };
        assert_eq!(db.log_op(&forged).await.unwrap(), LogOutcome::Duplicate);
        // The log reads back by (slot, digest).
        let mut ops = ops.to_vec();
        ops.sort_by_key(|op| (op.accepted.op.slot, op.digest()));
        let expected: Vec<LoggedOp> =
            ops.iter().map(|op| LoggedOp { op: op.clone(), state: OpState::Pending }).collect();
        // Byte-identical after a restart too.
        db.close().await;
        let db = test_db.open().await.unwrap();
        let log = db.op_log().await.unwrap();
        assert_eq!(log, expected, "{backend:?}");
        for (logged, op) in log.iter().zip(&ops) {
            assert_eq!(logged.op.message.bytes(), op.message.bytes());
            assert_eq!(logged.op.message.signature(), op.message.signature());
        }
        assert_eq!(db.pending_ops().await.unwrap().len(), 3);
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_acceptance_and_the_effect_slot_loses_nothing() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let pool = pool_id(0, 10, "pool-a");
        let create = create(0, 10, "pool-a");
        let joins: Vec<SignedOp> =
            (1..=3).map(|i| signed(&accepted(i, 11, Op::Join { pool }))).collect();
        db.log_op(&create).await.unwrap();
        // Slot 13: the Create takes effect; then the joins of slot 11 were accepted earlier.
        assert_eq!(apply_logged(&db, Slot(13)).await.unwrap().len(), 1);
        for join in &joins {
            assert_eq!(db.log_op(join).await.unwrap(), LogOutcome::Inserted);
            note_accepted_in_store(&db, &join.accepted).await.unwrap();
        }
        assert_eq!(db.pending_joins(&pool).await.unwrap(), 3);
        // The node stops before slot 14 and starts again.
        db.close().await;
        let db = test_db.open().await.unwrap();
        let pending = db.pending_ops().await.unwrap();
        let mut expected = joins.clone();
        expected.sort_by_key(SignedOp::digest);
        assert_eq!(pending, expected, "{backend:?}");
        let applied = apply_logged(&db, Slot(14)).await.unwrap();
        assert_eq!(applied.len(), 1);
        assert!(applied[0].1.iter().all(|o| o.result == OpResult::Applied), "{applied:?}");
        let stored = db.get_pool(&pool).await.unwrap().unwrap();
        assert_eq!((stored.pool.seats, stored.pool.status.as_str()), (4, "active"));
        assert_eq!(db.pending_joins(&pool).await.unwrap(), 0);
        // Replayed: nothing pending, nothing applied twice, logging again is a no-op.
        assert!(apply_logged(&db, Slot(20)).await.unwrap().is_empty());
        for join in &joins {
            assert_eq!(db.log_op(join).await.unwrap(), LogOutcome::Duplicate);
        }
        assert_eq!(db.get_pool(&pool).await.unwrap().unwrap().pool.seats, 4);
        let states: Vec<OpState> =
            db.op_log().await.unwrap().into_iter().map(|l| l.state).collect();
        assert_eq!(
            states,
            vec![
                OpState::Applied { at: Slot(13) },
                OpState::Applied { at: Slot(14) },
                OpState::Applied { at: Slot(14) },
                OpState::Applied { at: Slot(14) },
            ]
        );
        db.audit().await.unwrap();
        db.close().await;
    }
}

/// A log that exercises every op kind whose replay used to be mislabelled: a Create, joins,
/// then a Leave, a Remove with ban, an Unban, a SetMaxNodes and a Disband, plus a refused Join.
fn every_kind_log() -> Vec<SignedOp> {
    use lucid_pools::test_support::node;
    let pool = pool_id(0, 10, "pool-a");
    let mut log = vec![create(0, 10, "pool-a")];
    for i in 1..=4 {
        log.push(signed(&accepted(i, 11, Op::Join { pool })));
    }
    log.push(signed(&accepted(5, 11, Op::Join { pool: PoolId::from_bytes([9; 16]) })));
    log.push(signed(&accepted(1, 12, Op::Leave { pool })));
    log.push(signed(&accepted(0, 12, Op::Remove { pool, member: node(2), ban: true })));
    log.push(signed(&accepted(0, 13, Op::Unban { pool, node: node(2) })));
    log.push(signed(&accepted(0, 14, Op::SetMaxNodes { pool, max: 4 })));
    log.push(signed(&accepted(0, 15, Op::Disband { pool })));
    log
}

/// A new empty database of `backend`.
async fn fresh(backend: lucid_storage::Backend) -> lucid_storage::testing::TestDb {
    match backend {
        lucid_storage::Backend::Sqlite => lucid_storage::testing::TestDb::sqlite().unwrap(),
        lucid_storage::Backend::Postgres => {
            lucid_storage::testing::TestDb::postgres().await.unwrap().unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_op_application_records_the_same_outcomes_after_a_restart() {
    use lucid_pools::test_support::crash::{CrashPoint, CrashingStore};
    let log = every_kind_log();
    let accepted_log: Vec<AcceptedOp> = log.iter().map(|op| op.accepted.clone()).collect();
    let (expected_state, expected_outcomes) = PoolState::rebuild(&accepted_log, Slot(30));
    let expected_states = settled_states(&expected_outcomes);
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        db.close().await;
        for n in 0..log.len() {
            for point in [CrashPoint::Before(n), CrashPoint::After(n)] {
                let test_db = fresh(backend).await;
                let db = test_db.open().await.unwrap();
                for op in &log {
                    db.log_op(op).await.unwrap();
                    note_accepted_in_store(&db, &op.accepted).await.unwrap();
                }
                let crashing = CrashingStore::new(&db, point);
                assert!(apply_logged(&crashing, Slot(30)).await.is_err(), "{backend:?} {point:?}");
                assert!(crashing.crashed());
                // The process stopped: drop the store, reopen the same database, run again.
                db.close().await;
                let db = test_db.open().await.unwrap();
                apply_logged(&db, Slot(30)).await.unwrap();
                let states: Vec<(lucid_core::Digest, OpState)> = db
                    .op_log()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|l| (l.op.digest(), l.state))
                    .collect();
                for (digest, state) in &states {
                    assert_eq!(
                        Some(state),
                        expected_states.get(digest),
                        "{backend:?} {point:?}: outcome of {digest}"
                    );
                }
                assert_eq!(
                    sorted_rows(db.pool_member_rows().await.unwrap()),
                    sorted_rows(expected_state.rows().to_vec()),
                    "{backend:?} {point:?}"
                );
                db.audit().await.unwrap();
                db.close().await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_of_an_older_version_without_their_outcome_are_applied_once() {
    for (test_db, db) in databases().await {
        let pool = pool_id(0, 10, "pool-a");
        let create = create(0, 10, "pool-a");
        let join = signed(&accepted(1, 10, Op::Join { pool }));
        for op in [&create, &join] {
            db.log_op(op).await.unwrap();
            note_accepted_in_store(&db, &op.accepted).await.unwrap();
        }
        // The effects committed through the single-purpose methods and the process stopped
        // before settling them, as an earlier version did in two transactions.
        let Op::Create { name, max_nodes } = create.accepted.op.op.clone() else { unreachable!() };
        let new = lucid_pools::store::NewPool {
            pool_id: pool,
            name,
            founder: create.accepted.op.node,
            max_nodes,
            created_slot: Slot(13),
            op_digest: create.digest(),
        };
        db.create_pool(&new).await.unwrap();
        let node = join.accepted.op.node;
        db.seat(&pool, &node, lucid_pools::Role::Member, Slot(13), &join.digest()).await.unwrap();
        let rows = db.pool_member_rows().await.unwrap();
        db.close().await;
        let db = test_db.open().await.unwrap();
        let again = apply_logged(&db, Slot(13)).await.unwrap();
        let results: Vec<OpResult> = again[0].1.iter().map(|o| o.result).collect();
        assert_eq!(results, vec![OpResult::Applied, OpResult::Applied], "{:?}", test_db.backend);
        assert_eq!(db.pool_member_rows().await.unwrap(), rows, "{:?}", test_db.backend);
        assert!(db.pending_ops().await.unwrap().is_empty());
        db.audit().await.unwrap();
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_keeps_the_log_write_once_and_damaged_rows_are_reported() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let op = create(0, 10, "pool-a");
        db.log_op(&op).await.unwrap();
        let digest = lit(backend, op.digest().as_bytes());
        for sql in [
            format!(
                "UPDATE pool_ops SET signed_bytes = {} WHERE digest = {digest}",
                lit(backend, b"x")
            ),
            format!(
                "UPDATE pool_ops SET signature = {} WHERE digest = {digest}",
                lit(backend, &[1; 64])
            ),
            format!("UPDATE pool_ops SET slot = 11 WHERE digest = {digest}"),
            format!("DELETE FROM pool_ops WHERE digest = {digest}"),
            // Another op of the same signer and slot.
            format!(
                "INSERT INTO pool_ops SELECT {}, node_id, slot, tag, pool_id, signed_bytes, \
                 signature, 'pending', NULL, NULL FROM pool_ops",
                lit(backend, &[5; 32])
            ),
            format!("UPDATE pool_ops SET state = 'applied' WHERE digest = {digest}"),
            format!(
                "UPDATE pool_ops SET state = 'rejected', applied_slot = 3 WHERE digest = {digest}"
            ),
            format!("UPDATE pool_ops SET state = 'done' WHERE digest = {digest}"),
        ] {
            assert!(raw(&test_db, &sql).await.is_err(), "{backend:?} accepted {sql}");
        }
        assert_eq!(db.op_log().await.unwrap()[0].op, op);
        // A row whose bytes do not decode, or whose digest is not theirs, is an error, not a guess.
        let mut garbage = op.message.bytes().to_vec();
        garbage.truncate(garbage.len() - 1);
        raw(
            &test_db,
            &format!(
                "INSERT INTO pool_ops SELECT {}, {}, 99, tag, pool_id, {}, signature, 'pending', \
                 NULL, NULL FROM pool_ops",
                lit(backend, &[6; 32]),
                lit(backend, lucid_pools::test_support::node(9).as_bytes()),
                lit(backend, &garbage),
            ),
        )
        .await
        .unwrap();
        let error = db.op_log().await.unwrap_err();
        assert!(error.to_string().contains("pool op"), "{error}");
        assert!(db.pending_ops().await.is_err());
        db.close().await;
    }
}

/// One case of the T10 property on a fresh database of each backend.
async fn rebuild_case(batches: &[Vec<lucid_pools::test_support::AbstractOp>]) {
    let log: Vec<SignedOp> = build_log(batches).iter().map(signed).collect();
    let accepted_log: Vec<AcceptedOp> = log.iter().map(|op| op.accepted.clone()).collect();
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let through = drive(&db, &log).await.unwrap();
        let (state, outcomes) = PoolState::rebuild(&accepted_log, through);
        let mut expected_pools: Vec<_> = state.pools().cloned().collect();
        expected_pools.sort_by_key(|p| p.pool_id);
        assert_eq!(db.all_pools().await.unwrap(), expected_pools, "{backend:?} incremental");
        assert_eq!(
            sorted_rows(db.pool_member_rows().await.unwrap()),
            sorted_rows(state.rows().to_vec()),
            "{backend:?} incremental rows"
        );
        let logged = db.op_log().await.unwrap();
        let settled = settled_states(&outcomes);
        for entry in &logged {
            let expected = settled.get(&entry.op.digest()).copied().unwrap_or(OpState::Pending);
            assert_eq!(entry.state, expected, "{backend:?}");
        }
        // Replayed ops are no-ops.
        assert!(apply_logged(&db, through).await.unwrap().is_empty());
        for op in &log {
            assert_eq!(db.log_op(op).await.unwrap(), LogOutcome::Duplicate);
        }
        // The rebuild written into the database equals what was maintained incrementally.
        let rebuilt = rebuild_from_log(&db, through).await.unwrap();
        assert_eq!(rebuilt, state);
        assert_eq!(db.all_pools().await.unwrap(), expected_pools, "{backend:?} rebuilt");
        assert_eq!(
            sorted_rows(db.pool_member_rows().await.unwrap()),
            sorted_rows(state.rows().to_vec()),
            "{backend:?} rebuilt rows"
        );
        assert_eq!(db.op_log().await.unwrap(), logged);
        db.audit().await.unwrap();
        assert_eq!(db.timeline().await.unwrap(), state.timeline().unwrap());
        let joining = state.rows().iter().filter(|r| r.status == MemberStatus::Joining).count();
        let stored_joining = db
            .pool_member_rows()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.status == MemberStatus::Joining)
            .count();
        assert_eq!(stored_joining, joining);
        db.close().await;
    }
}

/// T10 on SQL: random op sequences driven through the log on each backend end where a rebuild
/// from the log ends, and writing the rebuild back changes nothing.
#[test]
fn a_rebuild_from_the_log_equals_the_incremental_state() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config =
        Config { cases: 8, max_shrink_iters: 16, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    runner
        .run(&abstract_log(1..10, 1..6), |batches| {
            runtime.block_on(rebuild_case(&batches));
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_corrupted_behind_the_nodes_back_are_repaired_from_the_log_at_start() {
    use lucid_pools::log::check_against_log;
    let log = every_kind_log();
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        for op in &log[..6] {
            db.log_op(op).await.unwrap();
            note_accepted_in_store(&db, &op.accepted).await.unwrap();
        }
        apply_logged(&db, Slot(20)).await.unwrap();
        // A clean start finds nothing to repair and writes nothing.
        assert!(check_against_log(&db, Slot(20)).await.unwrap().is_empty(), "{backend:?}");
        let pools_before = db.all_pools().await.unwrap();
        let rows_before = sorted_rows(db.pool_member_rows().await.unwrap());
        let log_before = db.op_log().await.unwrap();
        db.close().await;
        // Behind the node's back: a member row deleted with the seat counter adjusted (so the
        // audit still passes), a refused Join's outcome flipped, a pool renamed.
        let pool = pool_id(0, 10, "pool-a");
        let member = lucid_pools::test_support::node(3);
        let deleted = raw(
            &test_db,
            &format!(
                "DELETE FROM pool_members WHERE node_id = {}",
                lit(backend, member.as_bytes())
            ),
        )
        .await
        .unwrap();
        assert_eq!(deleted, 1, "{backend:?}");
        raw(
            &test_db,
            &format!(
                "UPDATE pools SET seats = seats - 1, name = 'tampered' WHERE pool_id = {}",
                lit(backend, pool.as_bytes())
            ),
        )
        .await
        .unwrap();
        raw(
            &test_db,
            &format!(
                "UPDATE pool_ops SET state = 'applied', reason = NULL WHERE digest = {}",
                lit(backend, log[5].digest().as_bytes())
            ),
        )
        .await
        .unwrap();
        // Restart: the start-up check finds the difference and rebuilds from the log.
        let db = test_db.open().await.unwrap();
        let divergence = check_against_log(&db, Slot(20)).await.unwrap();
        assert_eq!((divergence.pools, divergence.op_states), (1, 1), "{backend:?}");
        assert!(divergence.rows >= 1, "{backend:?}: {divergence:?}");
        let pools_after: Vec<_> = db
            .all_pools()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.pool_id, p.name, p.seats, p.leader, p.status))
            .collect();
        let expected: Vec<_> = pools_before
            .into_iter()
            .map(|p| (p.pool_id, p.name, p.seats, p.leader, p.status))
            .collect();
        assert_eq!(pools_after, expected, "{backend:?}");
        assert_eq!(sorted_rows(db.pool_member_rows().await.unwrap()), rows_before, "{backend:?}");
        assert_eq!(db.op_log().await.unwrap(), log_before, "{backend:?}");
        assert!(check_against_log(&db, Slot(20)).await.unwrap().is_empty(), "{backend:?}");
        db.audit().await.unwrap();
        db.close().await;
    }
}
