//! Tests of the `PoolStore` port and `MemoryPoolStore`: each primitive's outcomes, the
//! model-based test I4 (random op sequences applied to `PoolState` and through the store agree
//! after every step, and only §2.3 transitions occur), I5 on the compare-and-set, the cap, and
//! concurrency (500 seat attempts from 8 threads; one node racing into two pools).

use std::sync::{Arc, Barrier};

use pollster::block_on;
use proptest::prelude::*;

use super::*;
use crate::model::MAX_NODES_PER_POOL;
use crate::state::PoolState;
use crate::test_support::{
    LOG_BASE_SLOT, LOG_NODES, abstract_log, accepted, build_log, node, pool_id,
};

fn digest(i: u8) -> Digest {
    Digest::from_bytes([i; 32])
}

fn new_pool(founder: usize, name: &str, max: u8) -> NewPool {
    NewPool {
        pool_id: pool_id(founder, 1, name),
        name: name.to_owned(),
        founder: node(founder),
        max_nodes: max,
        created_slot: Slot(4),
        op_digest: digest(0),
    }
}

/// A store with pool `a` led by node 0 and nodes 1..=members seated.
fn store_with(members: usize, max: u8) -> (MemoryPoolStore, PoolId) {
    let store = MemoryPoolStore::new();
    let new = new_pool(0, "a", max);
    assert_eq!(block_on(store.create_pool(&new)).unwrap(), CreateOutcome::Created);
    for i in 1..=members {
        let seated = block_on(store.seat(
            &new.pool_id,
            &node(i),
            Role::Member,
            Slot(5 + i as u64),
            &digest(1),
        ));
        assert_eq!(seated.unwrap(), SeatOutcome::Seated);
    }
    (store, new.pool_id)
}

#[test]
fn the_port_is_object_safe() {
    let store: Arc<dyn PoolStore> = Arc::new(MemoryPoolStore::new());
    assert_eq!(block_on(store.pool_of(&node(0))).unwrap(), None);
    block_on(store.audit()).unwrap();
}

#[test]
fn create_pool_outcomes() {
    let store = MemoryPoolStore::new();
    assert_eq!(
        block_on(store.create_pool(&new_pool(0, "a", 0))).unwrap(),
        CreateOutcome::InvalidMaxNodes
    );
    assert_eq!(
        block_on(store.create_pool(&new_pool(0, "a", 101))).unwrap(),
        CreateOutcome::InvalidMaxNodes
    );
    assert_eq!(block_on(store.create_pool(&new_pool(0, "a", 5))).unwrap(), CreateOutcome::Created);
    assert_eq!(
        block_on(store.create_pool(&new_pool(0, "a", 5))).unwrap(),
        CreateOutcome::PoolExists
    );
    assert_eq!(
        block_on(store.create_pool(&new_pool(0, "b", 5))).unwrap(),
        CreateOutcome::AlreadyInPool
    );
    let stored = block_on(store.get_pool(&pool_id(0, 1, "a"))).unwrap().unwrap();
    assert_eq!(
        (stored.pool.seats, stored.pool.status, stored.version),
        (1, PoolStatus::Forming, 1)
    );
    assert_eq!(stored.pool.leader, node(0));
}

#[test]
fn seat_outcomes() {
    let (store, pool) = store_with(1, 3);
    let seat =
        |i: usize, role| block_on(store.seat(&pool, &node(i), role, Slot(9), &digest(2))).unwrap();
    let missing = PoolId::from_bytes([1; 16]);
    assert_eq!(
        block_on(store.seat(&missing, &node(5), Role::Member, Slot(9), &digest(2))).unwrap(),
        SeatOutcome::PoolNotFound
    );
    assert_eq!(seat(1, Role::Member), SeatOutcome::AlreadyInPool);
    assert_eq!(seat(5, Role::Leader), SeatOutcome::LeaderTaken);
    assert_eq!(seat(2, Role::Member), SeatOutcome::Seated);
    assert_eq!(seat(3, Role::Member), SeatOutcome::PoolFull);
    assert!(matches!(
        block_on(store.close_seat(&pool, &node(2), Slot(10), true)).unwrap(),
        CloseOutcome::Closed { successor: None, disbanded: false }
    ));
    assert_eq!(seat(2, Role::Member), SeatOutcome::Banned);
    assert!(matches!(
        block_on(store.disband(&pool, Slot(11))).unwrap(),
        DisbandOutcome::Disbanded { closed: 2 }
    ));
    assert_eq!(seat(3, Role::Member), SeatOutcome::PoolDisbanded);
    assert_eq!(block_on(store.disband(&pool, Slot(12))).unwrap(), DisbandOutcome::AlreadyDisbanded);
    assert_eq!(block_on(store.disband(&missing, Slot(12))).unwrap(), DisbandOutcome::PoolNotFound);
    block_on(store.audit()).unwrap();
}

#[test]
fn close_seat_succession_and_disband() {
    let (store, pool) = store_with(3, 10);
    assert_eq!(block_on(store.get_pool(&pool)).unwrap().unwrap().pool.status, PoolStatus::Active);
    assert_eq!(
        block_on(store.close_seat(&pool, &node(9), Slot(20), false)).unwrap(),
        CloseOutcome::NotSeated
    );
    // Node 1 has the smallest from_slot after the founder.
    assert_eq!(
        block_on(store.close_seat(&pool, &node(0), Slot(20), false)).unwrap(),
        CloseOutcome::Closed { successor: Some(node(1)), disbanded: false }
    );
    let stored = block_on(store.get_pool(&pool)).unwrap().unwrap();
    assert_eq!(
        (stored.pool.leader, stored.pool.seats, stored.pool.status),
        (node(1), 3, PoolStatus::Active)
    );
    for (leaving, next) in [(1, Some(node(2))), (3, None), (2, None)] {
        let outcome = block_on(store.close_seat(&pool, &node(leaving), Slot(21), false)).unwrap();
        let CloseOutcome::Closed { successor, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(successor, next);
    }
    let stored = block_on(store.get_pool(&pool)).unwrap().unwrap();
    assert_eq!((stored.pool.status, stored.pool.seats), (PoolStatus::Disbanded, 0));
    assert_eq!(stored.pool.disbanded_slot, Some(Slot(21)));
    block_on(store.audit()).unwrap();
}

#[test]
fn unban_leaving_and_liveness() {
    let (store, pool) = store_with(3, 10);
    assert_eq!(block_on(store.unban(&pool, &node(1))).unwrap(), UnbanOutcome::NotBanned);
    block_on(store.close_seat(&pool, &node(1), Slot(20), true)).unwrap();
    assert_eq!(block_on(store.unban(&pool, &node(1))).unwrap(), UnbanOutcome::Unbanned);
    assert_eq!(block_on(store.unban(&pool, &node(1))).unwrap(), UnbanOutcome::NotBanned);
    assert!(block_on(store.mark_leaving(&pool, &node(2))).unwrap());
    assert!(!block_on(store.mark_leaving(&pool, &node(2))).unwrap());
    assert_eq!(block_on(store.get_pool(&pool)).unwrap().unwrap().pool.status, PoolStatus::Degraded);
    assert_eq!(
        block_on(store.set_liveness(&node(3), Liveness::Suspended)).unwrap(),
        Some(MemberStatus::Degraded)
    );
    assert_eq!(
        block_on(store.set_liveness(&node(2), Liveness::Active)).unwrap(),
        Some(MemberStatus::Leaving)
    );
    assert_eq!(block_on(store.set_liveness(&node(9), Liveness::Active)).unwrap(), None);
    let members = block_on(store.members(&pool)).unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.windows(2).all(|w| w[0].node_id < w[1].node_id));
}

#[test]
fn joining_rows_become_seats_or_rejections() {
    let (store, pool) = store_with(0, 2);
    assert!(block_on(store.note_join(&pool, &node(1), Slot(30), &digest(5))).unwrap());
    assert!(!block_on(store.note_join(&pool, &node(1), Slot(30), &digest(5))).unwrap());
    assert!(block_on(store.note_join(&pool, &node(2), Slot(30), &digest(6))).unwrap());
    assert_eq!(block_on(store.pending_joins(&pool)).unwrap(), 2);
    let seated = block_on(store.seat(&pool, &node(1), Role::Member, Slot(30), &digest(5)));
    assert_eq!(seated.unwrap(), SeatOutcome::Seated);
    let full = block_on(store.seat(&pool, &node(2), Role::Member, Slot(30), &digest(6)));
    assert_eq!(full.unwrap(), SeatOutcome::PoolFull);
    block_on(store.reject_join(&pool, &node(2), Slot(30), &digest(6), RejectReason::PoolFull))
        .unwrap();
    assert_eq!(block_on(store.pending_joins(&pool)).unwrap(), 0);
    let rows = store.rows();
    // The founder's row plus one row per Join: the joining rows were updated in place.
    assert_eq!(rows.len(), 3);
    let rejected = rows.iter().find(|r| r.node_id == node(2)).unwrap();
    assert_eq!(
        (rejected.status, rejected.reason),
        (MemberStatus::Rejected, Some(RejectReason::PoolFull))
    );
    assert_eq!(rows.iter().find(|r| r.node_id == node(1)).unwrap().status, MemberStatus::Active);
    block_on(store.audit()).unwrap();
}

#[test]
fn set_max_nodes_is_a_compare_and_set() {
    let (store, pool) = store_with(2, 10);
    let version = block_on(store.get_pool(&pool)).unwrap().unwrap().version;
    assert_eq!(
        block_on(store.set_max_nodes(&pool, 5, version + 1)).unwrap(),
        SetMaxNodesOutcome::VersionMismatch { current: version }
    );
    assert_eq!(
        block_on(store.set_max_nodes(&pool, 5, version)).unwrap(),
        SetMaxNodesOutcome::Set { version: version + 1 }
    );
    // The old version no longer matches.
    assert!(matches!(
        block_on(store.set_max_nodes(&pool, 6, version)).unwrap(),
        SetMaxNodesOutcome::VersionMismatch { .. }
    ));
    assert_eq!(
        block_on(store.set_max_nodes(&PoolId::from_bytes([1; 16]), 5, 1)).unwrap(),
        SetMaxNodesOutcome::PoolNotFound
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// I5 at the store: a limit outside 1..=100 or below the seats is refused and changes nothing.
    #[test]
    fn max_nodes_outside_range_or_below_seats_is_refused(members in 0..12usize, max in any::<u8>()) {
        let (store, pool) = store_with(members, MAX_NODES_PER_POOL);
        let before = block_on(store.get_pool(&pool)).unwrap().unwrap();
        let seats = before.pool.seats;
        let outcome = block_on(store.set_max_nodes(&pool, max, before.version)).unwrap();
        let after = block_on(store.get_pool(&pool)).unwrap().unwrap();
        if !(1..=100).contains(&max) {
            prop_assert_eq!(outcome, SetMaxNodesOutcome::InvalidMaxNodes);
            prop_assert_eq!(after, before);
        } else if u32::from(max) < seats {
            prop_assert_eq!(outcome, SetMaxNodesOutcome::BelowSeats { seats });
            prop_assert_eq!(after, before);
        } else {
            prop_assert_eq!(outcome, SetMaxNodesOutcome::Set { version: before.version + 1 });
            prop_assert_eq!(after.pool.max_nodes, max);
        }
        block_on(store.audit()).unwrap();
    }
}

/// Every row, in a canonical order.
fn comparable(rows: &[Membership]) -> Vec<Membership> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| (r.pool_id, r.node_id, r.from_slot, r.op_digest));
    rows
}

/// The previous snapshot of the state, for transition checks.
struct Snapshot {
    rows: Vec<Membership>,
    pools: BTreeMap<PoolId, PoolStatus>,
}

impl Snapshot {
    fn of(state: &PoolState) -> Self {
        Snapshot {
            rows: state.rows().to_vec(),
            pools: state.pools().map(|p| (p.pool_id, p.status)).collect(),
        }
    }

    /// I4: only §2.3 transitions between two snapshots of one phase.
    fn check_transitions(&self, state: &PoolState) {
        let rows = state.rows();
        assert!(rows.len() >= self.rows.len(), "rows are never removed");
        for (before, after) in self.rows.iter().zip(rows) {
            assert_eq!((before.pool_id, before.node_id), (after.pool_id, after.node_id));
            // A Join applied and its seat closed by a Disband in the same slot passes through
            // `active` within one phase.
            let through_active = before.status == MemberStatus::Joining
                && MemberStatus::Active.can_become(after.status)
                && after.to_slot == Some(after.from_slot);
            assert!(
                before.status.can_become(after.status) || through_active,
                "{before:?} -> {after:?}"
            );
        }
        for row in &rows[self.rows.len()..] {
            assert!(row.status.can_start_as(), "new row {row:?}");
        }
        for pool in state.pools() {
            let before = self.pools.get(&pool.pool_id).copied().unwrap_or(PoolStatus::Forming);
            // A forming pool can reach 3 active members and lose one again within one phase
            // (an op slot followed by liveness changes): forming -> active -> degraded, seen
            // here as one step. `recompute` never takes a forming pool to degraded directly.
            let through_active =
                before == PoolStatus::Forming && PoolStatus::Active.can_become(pool.status);
            assert!(
                before.can_become(pool.status) || through_active,
                "{before:?} -> {:?}",
                pool.status
            );
        }
    }
}

/// Compares the state and the store, audits both, checks the transitions since `previous`,
/// and returns the new snapshot.
fn agree(state: &PoolState, store: &MemoryPoolStore, previous: &Snapshot) -> Snapshot {
    state.check_invariants().unwrap();
    block_on(store.audit()).unwrap();
    assert_eq!(state.pools().cloned().collect::<Vec<_>>(), store.pools());
    assert_eq!(comparable(state.rows()), comparable(&store.rows()));
    assert_eq!(state.timeline().unwrap(), block_on(store.timeline()).unwrap());
    for i in 0..LOG_NODES {
        assert_eq!(state.pool_of(&node(i)), block_on(store.pool_of(&node(i))).unwrap());
    }
    for pool in state.pools() {
        let id = pool.pool_id;
        assert_eq!(state.members(&id), block_on(store.members(&id)).unwrap());
        assert_eq!(state.pending_joins(&id), block_on(store.pending_joins(&id)).unwrap());
    }
    previous.check_transitions(state);
    Snapshot::of(state)
}

fn liveness_events() -> impl Strategy<Value = Vec<Vec<(usize, Liveness)>>> {
    let event = (
        0..LOG_NODES,
        prop_oneof![Just(Liveness::Active), Just(Liveness::Inactive), Just(Liveness::Suspended)],
    );
    proptest::collection::vec(proptest::collection::vec(event, 0..3), 20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// I4, model-based: random op sequences (with accepted-op notes and uptime changes) applied
    /// to `PoolState` and through the `PoolStore` port agree after every step, and only the
    /// transitions of §2.3 occur.
    #[test]
    fn state_and_store_agree_after_every_step(
        batches in abstract_log(1..14, 1..7),
        liveness in liveness_events(),
    ) {
        let log = build_log(&batches);
        let mut state = PoolState::new();
        let store = MemoryPoolStore::new();
        let mut snapshot = Snapshot::of(&state);
        for k in 0..batches.len() + 3 {
            let slot = LOG_BASE_SLOT + k as u64;
            // Apply the ops signed three slots ago.
            let expected = state.apply_slot(Slot(slot), &log);
            let got = block_on(apply_slot_to_store(&store, Slot(slot), &log)).unwrap();
            prop_assert_eq!(&expected, &got);
            snapshot = agree(&state, &store, &snapshot);
            // Uptime changes.
            for (i, live) in liveness.get(k).into_iter().flatten() {
                let expected = state.set_liveness(&node(*i), *live);
                prop_assert_eq!(expected, block_on(store.set_liveness(&node(*i), *live)).unwrap());
            }
            snapshot = agree(&state, &store, &snapshot);
            // Ops signed in this slot are accepted now and apply three slots later.
            for op in log.iter().filter(|op| op.op.slot == Slot(slot)) {
                state.note_accepted(op);
                block_on(note_accepted_in_store(&store, op)).unwrap();
            }
            snapshot = agree(&state, &store, &snapshot);
        }
    }
}

#[test]
fn cap_150_joins_through_the_store() {
    let store = MemoryPoolStore::new();
    let create =
        accepted(0, 10, Op::Create { name: "big".to_owned(), max_nodes: MAX_NODES_PER_POOL });
    let pool = pool_id(0, 10, "big");
    block_on(apply_slot_to_store(&store, Slot(13), &[create])).unwrap();
    let joins: Vec<AcceptedOp> = (1..=150).map(|i| accepted(i, 11, Op::Join { pool })).collect();
    let outcomes = block_on(apply_slot_to_store(&store, Slot(14), &joins)).unwrap();
    let applied = outcomes.iter().filter(|o| o.result == OpResult::Applied).count();
    let full =
        outcomes.iter().filter(|o| o.result == OpResult::Rejected(RejectReason::PoolFull)).count();
    assert_eq!((applied + 1, full), (usize::from(MAX_NODES_PER_POOL), 51));
    let stored = block_on(store.get_pool(&pool)).unwrap().unwrap();
    assert_eq!(stored.pool.seats, 100);
    assert_eq!(block_on(store.members(&pool)).unwrap().len(), 100);
    block_on(store.audit()).unwrap();
}

/// Seats `nodes` into `pool` from `threads` threads at once; returns every outcome.
fn seat_concurrently(
    store: &Arc<MemoryPoolStore>,
    pool: PoolId,
    nodes: Vec<NodeId>,
    threads: usize,
) -> Vec<SeatOutcome> {
    let barrier = Arc::new(Barrier::new(threads));
    let chunks: Vec<Vec<NodeId>> =
        (0..threads).map(|t| nodes.iter().skip(t).step_by(threads).copied().collect()).collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                chunk
                    .iter()
                    .map(|n| {
                        block_on(store.seat(&pool, n, Role::Member, Slot(9), &digest(3))).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

#[test]
fn five_hundred_concurrent_seat_attempts_fill_exactly_max_nodes() {
    // 500 distinct nodes: the 200 fixture ids plus derived ones.
    let nodes: Vec<NodeId> =
        (1..=500).map(|i: u64| lucid_consensus::testing::key(1_000 + i).node_id()).collect();
    for max in [MAX_NODES_PER_POOL, 37] {
        let store = Arc::new(MemoryPoolStore::new());
        let new = new_pool(0, "crowd", max);
        assert_eq!(block_on(store.create_pool(&new)).unwrap(), CreateOutcome::Created);
        let outcomes = seat_concurrently(&store, new.pool_id, nodes.clone(), 8);
        let seated = outcomes.iter().filter(|o| **o == SeatOutcome::Seated).count();
        let full = outcomes.iter().filter(|o| **o == SeatOutcome::PoolFull).count();
        // The founder holds one seat.
        assert_eq!(seated + 1, usize::from(max));
        assert_eq!(seated + full, 500);
        let stored = block_on(store.get_pool(&new.pool_id)).unwrap().unwrap();
        assert_eq!(stored.pool.seats, u32::from(max));
        let seat_rows = store.rows().iter().filter(|r| r.is_seat()).count();
        assert_eq!(seat_rows, usize::from(max));
        block_on(store.audit()).unwrap();
    }
}

#[test]
fn one_node_racing_into_two_pools_gets_one_seat() {
    for round in 0..50u64 {
        let store = Arc::new(MemoryPoolStore::new());
        let a = new_pool(0, "left", 10);
        let b = new_pool(1, "right", 10);
        block_on(store.create_pool(&a)).unwrap();
        block_on(store.create_pool(&b)).unwrap();
        let racer = node(2 + (round as usize % 5));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [a.pool_id, b.pool_id]
            .into_iter()
            .map(|pool| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    block_on(store.seat(&pool, &racer, Role::Member, Slot(9), &digest(4))).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<SeatOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let seated = outcomes.iter().filter(|o| **o == SeatOutcome::Seated).count();
        let refused = outcomes.iter().filter(|o| **o == SeatOutcome::AlreadyInPool).count();
        assert_eq!((seated, refused), (1, 1), "{outcomes:?}");
        assert!(block_on(store.pool_of(&racer)).unwrap().is_some());
        block_on(store.audit()).unwrap();
    }
}
