//! Tests of the op log on the in-memory store: insert-if-absent with duplicates and
//! equivocations, application at the effect slot from the log, idempotent re-runs, outcomes settled with their
//! effects (and effects of an older version found without their outcome), and the T10 property: a rebuild from the log equals the
//! incrementally maintained state.

use proptest::prelude::*;

use super::*;
use crate::model::{MemberStatus, Pool};
use crate::op::Op;
use crate::store::{MemoryPoolStore, note_accepted_in_store};
use crate::test_support::{abstract_log, accepted, build_log, drive, pool_id, signed, sorted_rows};

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    pollster::block_on(future)
}

fn create(i: usize, slot: u64) -> SignedOp {
    signed(&accepted(i, slot, Op::Create { name: "pool-a".into(), max_nodes: 5 }))
}

#[test]
fn logging_is_insert_if_absent_and_refuses_a_second_op_of_the_same_signer_and_slot() {
    let store = MemoryPoolStore::new();
    let op = create(0, 10);
    assert_eq!(run(store.log_op(&op)).unwrap(), LogOutcome::Inserted);
    assert_eq!(run(store.log_op(&op)).unwrap(), LogOutcome::Duplicate);
    let other = signed(&accepted(0, 10, Op::Create { name: "pool-b".into(), max_nodes: 5 }));
    assert_eq!(
        run(store.log_op(&other)).unwrap(),
        LogOutcome::Conflict { existing: op.message.clone() }
    );
    let log = run(store.op_log()).unwrap();
    assert_eq!(log, vec![LoggedOp { op, state: OpState::Pending }]);
}

#[test]
fn due_ops_are_applied_from_the_log_once() {
    let store = MemoryPoolStore::new();
    let op = create(0, 10);
    let pool = pool_id(0, 10, "pool-a");
    run(store.log_op(&op)).unwrap();
    // Not due before slot 13.
    assert!(run(apply_logged(&store, Slot(12))).unwrap().is_empty());
    let join = signed(&accepted(1, 11, Op::Join { pool }));
    run(store.log_op(&join)).unwrap();
    run(note_accepted_in_store(&store, &join.accepted)).unwrap();
    let applied = run(apply_logged(&store, Slot(14))).unwrap();
    let slots: Vec<Slot> = applied.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, vec![Slot(13), Slot(14)]);
    assert!(applied.iter().all(|(_, o)| o.len() == 1 && o[0].result == OpResult::Applied));
    assert_eq!(run(store.get_pool(&pool)).unwrap().unwrap().pool.seats, 2);
    // Everything is settled: running again applies nothing.
    assert!(run(apply_logged(&store, Slot(20))).unwrap().is_empty());
    assert!(run(store.pending_ops()).unwrap().is_empty());
    let states: Vec<OpState> = run(store.op_log()).unwrap().into_iter().map(|l| l.state).collect();
    assert_eq!(states, vec![OpState::Applied { at: Slot(13) }, OpState::Applied { at: Slot(14) }]);
    // Settling twice is refused.
    assert!(!run(store.settle_op(&op.digest(), OpResult::Applied, Slot(13))).unwrap());
}

#[test]
fn effects_written_by_an_older_version_without_their_outcome_are_recognised() {
    let store = MemoryPoolStore::new();
    let op = create(0, 10);
    let pool = pool_id(0, 10, "pool-a");
    let join = signed(&accepted(1, 10, Op::Join { pool }));
    for op in [&op, &join] {
        run(store.log_op(op)).unwrap();
        run(note_accepted_in_store(&store, &op.accepted)).unwrap();
    }
    // The effects committed through the single-purpose methods, the log was not updated (the
    // way an earlier version settled, in a second transaction, and stopped in between).
    let Op::Create { name, max_nodes } = op.accepted.op.op.clone() else { unreachable!() };
    let new = crate::store::NewPool {
        pool_id: pool,
        name,
        founder: op.accepted.op.node,
        max_nodes,
        created_slot: Slot(13),
        op_digest: op.digest(),
    };
    run(store.create_pool(&new)).unwrap();
    let node = join.accepted.op.node;
    run(store.seat(&pool, &node, crate::model::Role::Member, Slot(13), &join.digest())).unwrap();
    let rows_before = store.rows();
    let again = run(apply_logged(&store, Slot(13))).unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].1.iter().all(|o| o.result == OpResult::Applied), "{again:?}");
    assert_eq!(store.rows(), rows_before);
    assert_eq!(run(store.get_pool(&pool)).unwrap().unwrap().pool.seats, 2);
    run(store.audit()).unwrap();
}

#[test]
fn every_op_kind_is_settled_with_its_effect_so_a_rerun_reports_the_same_outcomes() {
    let store = MemoryPoolStore::new();
    let pool = pool_id(0, 10, "pool-a");
    let mut log = vec![create(0, 10)];
    for i in 1..=4 {
        log.push(signed(&accepted(i, 11, Op::Join { pool })));
    }
    let leader = crate::test_support::node(0);
    log.push(signed(&accepted(1, 12, Op::Leave { pool })));
    log.push(signed(&accepted(
        0,
        12,
        Op::Remove { pool, member: crate::test_support::node(2), ban: true },
    )));
    log.push(signed(&accepted(0, 13, Op::Unban { pool, node: crate::test_support::node(2) })));
    log.push(signed(&accepted(0, 14, Op::Disband { pool })));
    for op in &log {
        run(store.log_op(op)).unwrap();
        run(note_accepted_in_store(&store, &op.accepted)).unwrap();
    }
    let first = run(apply_logged(&store, Slot(20))).unwrap();
    let results: Vec<OpResult> =
        first.iter().flat_map(|(_, o)| o.iter().map(|o| o.result)).collect();
    assert!(results.iter().all(|r| *r == OpResult::Applied), "{results:?}");
    assert_eq!(run(store.get_pool(&pool)).unwrap().unwrap().pool.leader, leader);
    // Re-running (a restart) finds nothing pending and changes nothing: no Leave, Remove,
    // Unban or Disband is ever applied again and found `rejected`.
    let rows = store.rows();
    assert!(run(apply_logged(&store, Slot(20))).unwrap().is_empty());
    assert_eq!(store.rows(), rows);
    let states: Vec<OpState> = run(store.op_log()).unwrap().into_iter().map(|l| l.state).collect();
    assert!(states.iter().all(|s| matches!(s, OpState::Applied { .. })), "{states:?}");
}

#[test]
fn rebuild_keeps_pending_joins_and_leaves_as_a_running_node_has_them() {
    let store = MemoryPoolStore::new();
    let pool = pool_id(0, 10, "pool-a");
    let log = vec![
        create(0, 10),
        signed(&accepted(1, 10, Op::Join { pool })),
        signed(&accepted(2, 14, Op::Join { pool })),
        signed(&accepted(1, 14, Op::Leave { pool })),
    ];
    // Drive to slot 15 only: the ops signed in 14 are accepted, not applied.
    for op in &log {
        run(store.log_op(op)).unwrap();
    }
    let accepted_log: Vec<AcceptedOp> = log.iter().map(|op| op.accepted.clone()).collect();
    let (state, outcomes) = PoolState::rebuild(&accepted_log, Slot(15));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(state.pending_joins(&pool), 1);
    let statuses: Vec<MemberStatus> = state.members(&pool).iter().map(|m| m.status).collect();
    assert!(statuses.contains(&MemberStatus::Leaving), "{statuses:?}");
    run(store.restore(&state, &outcomes)).unwrap();
    assert_eq!(run(store.pending_ops()).unwrap().len(), 2);
    assert_eq!(run(store.pending_joins(&pool)).unwrap(), 1);
    run(store.audit()).unwrap();
}

fn pools_of(store: &MemoryPoolStore) -> Vec<Pool> {
    let mut pools = store.pools();
    pools.sort_by_key(|p| p.pool_id);
    pools
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// T10: the state rebuilt from the log equals the state a node maintained incrementally,
    /// in memory and once restored into a store; replaying the whole log again changes nothing.
    #[test]
    fn rebuild_from_the_log_equals_the_incremental_state(batches in abstract_log(1..12, 1..6)) {
        let log: Vec<SignedOp> = build_log(&batches).iter().map(signed).collect();
        let store = MemoryPoolStore::new();
        let through = run(drive(&store, &log)).unwrap();
        let accepted_log: Vec<AcceptedOp> = log.iter().map(|op| op.accepted.clone()).collect();
        let (state, outcomes) = PoolState::rebuild(&accepted_log, through);
        let mut rebuilt_pools: Vec<Pool> = state.pools().cloned().collect();
        rebuilt_pools.sort_by_key(|p| p.pool_id);
        prop_assert_eq!(&pools_of(&store), &rebuilt_pools);
        prop_assert_eq!(sorted_rows(store.rows()), sorted_rows(state.rows().to_vec()));
        let logged = run(store.op_log()).unwrap();
        let settled = settled_states(&outcomes);
        for entry in &logged {
            prop_assert_eq!(
                Some(&entry.state),
                settled.get(&entry.op.digest()).or(Some(&OpState::Pending))
            );
        }
        // Replayed ops are no-ops.
        prop_assert!(run(apply_logged(&store, through)).unwrap().is_empty());
        for op in &log {
            prop_assert_eq!(run(store.log_op(op)).unwrap(), LogOutcome::Duplicate);
        }
        // The rebuild written back into the store changes nothing.
        let rebuilt = run(rebuild_from_log(&store, through)).unwrap();
        prop_assert_eq!(&rebuilt, &state);
        prop_assert_eq!(pools_of(&store), rebuilt_pools);
        prop_assert_eq!(sorted_rows(store.rows()), sorted_rows(state.rows().to_vec()));
        prop_assert_eq!(run(store.op_log()).unwrap(), logged);
        run(store.audit()).unwrap();
    }
}
