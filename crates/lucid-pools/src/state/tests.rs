//! Tests of `PoolState`: one table test per op and rejection reason, the state machines,
//! succession, canonical order within a slot, and the property tests I2, I3, I5 and I6.

use lucid_consensus::tally::MembershipView;
use proptest::prelude::*;

use super::*;
use crate::model::MAX_NODES_PER_POOL;
use crate::test_support::{LOG_NODES, abstract_log, accepted, build_log, node, pool_id};

/// A state driven slot by slot: ops signed in slot s are applied at s + 3.
struct World {
    state: PoolState,
    slot: u64,
}

const P: &str = "pool-a";

impl World {
    fn new() -> Self {
        World { state: PoolState::new(), slot: 100 }
    }

    /// Signs `ops` in the current slot, applies them three slots later, and returns each op's
    /// result in input order.
    fn step(&mut self, ops: Vec<(usize, Op)>) -> Vec<OpResult> {
        let signed: Vec<AcceptedOp> =
            ops.into_iter().map(|(i, op)| accepted(i, self.slot, op)).collect();
        let outcomes = self.state.apply_slot(Slot(self.slot + 3), &signed);
        self.slot += 1;
        signed
            .iter()
            .map(|op| outcomes.iter().find(|o| o.digest == op.digest).unwrap().result)
            .collect()
    }

    fn one(&mut self, i: usize, op: Op) -> OpResult {
        self.step(vec![(i, op)])[0]
    }

    /// Node 0 creates pool `P` (max `max`); returns its id.
    fn create(&mut self, max: u8) -> PoolId {
        let id = pool_id(0, self.slot, P);
        assert_eq!(
            self.one(0, Op::Create { name: P.to_owned(), max_nodes: max }),
            OpResult::Applied
        );
        id
    }

    /// Creates `P` led by node 0 and seats nodes 1..=members.
    fn pool_with(&mut self, members: usize, max: u8) -> PoolId {
        let pool = self.create(max);
        let joins = (1..=members).map(|i| (i, Op::Join { pool })).collect();
        assert!(self.step(joins).iter().all(|r| *r == OpResult::Applied));
        pool
    }

    fn pool(&self, id: &PoolId) -> &Pool {
        self.state.pool(id).unwrap()
    }

    fn status_of(&self, pool: &PoolId, i: usize) -> Option<MemberStatus> {
        self.state.members(pool).iter().find(|m| m.node_id == node(i)).map(|m| m.status)
    }
}

fn rejected(reason: RejectReason) -> OpResult {
    OpResult::Rejected(reason)
}

#[test]
fn create_seats_the_founder_as_leader_of_a_forming_pool() {
    let mut w = World::new();
    let id = w.create(7);
    let pool = w.pool(&id).clone();
    assert_eq!(pool.founder, node(0));
    assert_eq!(pool.leader, node(0));
    assert_eq!((pool.seats, pool.max_nodes, pool.status), (1, 7, PoolStatus::Forming));
    assert_eq!(pool.created_slot, Slot(103));
    assert_eq!(w.state.pool_of(&node(0)), Some(id));
    let members = w.state.members(&id);
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].role, members[0].status), (Role::Leader, MemberStatus::Active));
}

#[test]
fn create_rejections() {
    let mut w = World::new();
    let create = |name: &str, max| Op::Create { name: name.to_owned(), max_nodes: max };
    assert_eq!(w.one(1, create("ab", 10)), rejected(RejectReason::InvalidName));
    assert_eq!(w.one(1, create("Upper", 10)), rejected(RejectReason::InvalidName));
    assert_eq!(w.one(1, create("okay", 0)), rejected(RejectReason::InvalidMaxNodes));
    assert_eq!(w.one(1, create("okay", 101)), rejected(RejectReason::InvalidMaxNodes));
    assert_eq!(w.one(1, create("okay", 100)), OpResult::Applied);
    assert_eq!(w.one(1, create("again", 100)), rejected(RejectReason::AlreadyInPool));
    assert_eq!(w.state.pools().count(), 1);
}

#[test]
fn join_rejections() {
    let mut w = World::new();
    let pool = w.pool_with(1, 3);
    let unknown = PoolId::from_bytes([1; 16]);
    assert_eq!(w.one(5, Op::Join { pool: unknown }), rejected(RejectReason::PoolNotFound));
    assert_eq!(w.one(1, Op::Join { pool }), rejected(RejectReason::AlreadyInPool));
    assert_eq!(w.one(0, Op::Join { pool }), rejected(RejectReason::AlreadyInPool));
    assert_eq!(w.one(2, Op::Join { pool }), OpResult::Applied);
    assert_eq!(w.one(3, Op::Join { pool }), rejected(RejectReason::PoolFull));
    assert_eq!(w.one(0, Op::Remove { pool, member: node(2), ban: true }), OpResult::Applied);
    assert_eq!(w.one(2, Op::Join { pool }), rejected(RejectReason::Banned));
    assert_eq!(w.one(0, Op::Disband { pool }), OpResult::Applied);
    assert_eq!(w.one(4, Op::Join { pool }), rejected(RejectReason::PoolDisbanded));
    // A rejected join leaves a `rejected` row with its reason and no seat.
    let rejected_rows: Vec<_> =
        w.state.rows().iter().filter(|r| r.status == MemberStatus::Rejected).collect();
    assert_eq!(rejected_rows.len(), 6);
    assert!(rejected_rows.iter().all(|r| r.reason.is_some() && r.held_seat().is_none()));
}

#[test]
fn leave_closes_the_seat_and_rejects_non_members() {
    let mut w = World::new();
    let pool = w.pool_with(2, 10);
    let unknown = PoolId::from_bytes([1; 16]);
    assert_eq!(w.one(1, Op::Leave { pool: unknown }), rejected(RejectReason::PoolNotFound));
    assert_eq!(w.one(5, Op::Leave { pool }), rejected(RejectReason::NotMember));
    let slot = w.slot + 3;
    assert_eq!(w.one(1, Op::Leave { pool }), OpResult::Applied);
    assert_eq!(w.one(1, Op::Leave { pool }), rejected(RejectReason::NotMember));
    assert_eq!(w.pool(&pool).seats, 2);
    assert_eq!(w.state.pool_of(&node(1)), None);
    let closed = w.state.rows().iter().find(|r| r.node_id == node(1)).unwrap();
    assert_eq!((closed.status, closed.to_slot), (MemberStatus::Closed, Some(Slot(slot))));
    // The node may join again; it gets a new row.
    assert_eq!(w.one(1, Op::Join { pool }), OpResult::Applied);
    assert_eq!(w.state.rows().iter().filter(|r| r.node_id == node(1)).count(), 2);
}

#[test]
fn remove_rejections_and_effects() {
    let mut w = World::new();
    let pool = w.pool_with(3, 10);
    let other = {
        let id = pool_id(7, w.slot, "other");
        assert_eq!(
            w.one(7, Op::Create { name: "other".to_owned(), max_nodes: 5 }),
            OpResult::Applied
        );
        id
    };
    let remove = |member: usize, ban| Op::Remove { pool, member: node(member), ban };
    assert_eq!(w.one(1, remove(2, false)), rejected(RejectReason::NotLeader));
    assert_eq!(w.one(7, remove(2, false)), rejected(RejectReason::NotLeader));
    assert_eq!(w.one(0, remove(0, false)), rejected(RejectReason::NotMember));
    assert_eq!(w.one(0, remove(7, false)), rejected(RejectReason::NotMember));
    assert_eq!(
        w.one(0, Op::Remove { pool: PoolId::from_bytes([1; 16]), member: node(1), ban: false }),
        rejected(RejectReason::PoolNotFound)
    );
    assert_eq!(w.one(0, remove(1, false)), OpResult::Applied);
    assert_eq!(w.one(0, remove(2, true)), OpResult::Applied);
    assert_eq!(w.status_of(&pool, 2), Some(MemberStatus::Banned));
    assert_eq!(w.status_of(&pool, 1), None);
    assert_eq!(w.pool(&pool).seats, 2);
    // A ban holds no seat: the banned node may join another pool, but not this one.
    assert_eq!(w.one(2, Op::Join { pool: other }), OpResult::Applied);
    assert_eq!(w.one(1, Op::Join { pool }), OpResult::Applied);
}

#[test]
fn unban_rejections_and_effects() {
    let mut w = World::new();
    let pool = w.pool_with(2, 10);
    assert_eq!(w.one(0, Op::Remove { pool, member: node(1), ban: true }), OpResult::Applied);
    assert_eq!(w.one(2, Op::Unban { pool, node: node(1) }), rejected(RejectReason::NotLeader));
    assert_eq!(w.one(0, Op::Unban { pool, node: node(2) }), rejected(RejectReason::NotMember));
    assert_eq!(w.one(0, Op::Unban { pool, node: node(1) }), OpResult::Applied);
    assert_eq!(w.one(0, Op::Unban { pool, node: node(1) }), rejected(RejectReason::NotMember));
    let banned_row = w.state.rows().iter().find(|r| r.node_id == node(1)).unwrap();
    assert_eq!(banned_row.status, MemberStatus::Closed);
    assert_eq!(w.one(1, Op::Join { pool }), OpResult::Applied);
}

#[test]
fn set_max_nodes_rejections_and_effects() {
    let mut w = World::new();
    let pool = w.pool_with(3, 10);
    let set = |max| Op::SetMaxNodes { pool, max };
    assert_eq!(w.one(1, set(5)), rejected(RejectReason::NotLeader));
    assert_eq!(w.one(0, set(0)), rejected(RejectReason::InvalidMaxNodes));
    assert_eq!(w.one(0, set(101)), rejected(RejectReason::InvalidMaxNodes));
    assert_eq!(w.one(0, set(255)), rejected(RejectReason::InvalidMaxNodes));
    assert_eq!(w.one(0, set(3)), rejected(RejectReason::BelowSeats));
    assert_eq!(w.one(0, set(4)), OpResult::Applied);
    assert_eq!(w.pool(&pool).max_nodes, 4);
    assert_eq!(w.one(0, set(MAX_NODES_PER_POOL)), OpResult::Applied);
    assert_eq!(w.pool(&pool).max_nodes, 100);
}

#[test]
fn disband_closes_every_seat_and_is_terminal() {
    let mut w = World::new();
    let pool = w.pool_with(3, 10);
    assert_eq!(w.one(0, Op::Remove { pool, member: node(3), ban: true }), OpResult::Applied);
    assert_eq!(w.one(1, Op::Disband { pool }), rejected(RejectReason::NotLeader));
    let slot = w.slot + 3;
    assert_eq!(w.one(0, Op::Disband { pool }), OpResult::Applied);
    let p = w.pool(&pool);
    assert_eq!((p.status, p.seats, p.disbanded_slot), (PoolStatus::Disbanded, 0, Some(Slot(slot))));
    for i in 0..=2 {
        assert_eq!(w.state.pool_of(&node(i)), None);
    }
    assert_eq!(w.one(0, Op::Disband { pool }), rejected(RejectReason::PoolDisbanded));
    assert_eq!(w.one(0, Op::SetMaxNodes { pool, max: 50 }), rejected(RejectReason::PoolDisbanded));
    assert_eq!(w.one(0, Op::Leave { pool }), rejected(RejectReason::PoolDisbanded));
    // Every former member may create or join elsewhere.
    assert_eq!(w.one(1, Op::Create { name: "next".to_owned(), max_nodes: 3 }), OpResult::Applied);
    w.state.check_invariants().unwrap();
}

#[test]
fn pool_status_follows_active_members() {
    let mut w = World::new();
    let pool = w.pool_with(1, 10);
    assert_eq!(w.pool(&pool).status, PoolStatus::Forming);
    assert_eq!(w.one(2, Op::Join { pool }), OpResult::Applied);
    assert_eq!(w.pool(&pool).status, PoolStatus::Active);
    assert_eq!(w.state.set_liveness(&node(1), Liveness::Suspended), Some(MemberStatus::Degraded));
    assert_eq!(w.pool(&pool).status, PoolStatus::Degraded);
    assert_eq!(w.state.set_liveness(&node(1), Liveness::Inactive), Some(MemberStatus::Degraded));
    assert_eq!(w.state.set_liveness(&node(1), Liveness::Active), Some(MemberStatus::Active));
    assert_eq!(w.pool(&pool).status, PoolStatus::Active);
    assert_eq!(w.one(2, Op::Leave { pool }), OpResult::Applied);
    assert_eq!(w.pool(&pool).status, PoolStatus::Degraded);
    assert_eq!(w.one(3, Op::Join { pool }), OpResult::Applied);
    assert_eq!(w.pool(&pool).status, PoolStatus::Active);
    assert_eq!(w.state.set_liveness(&node(9), Liveness::Inactive), None);
}

#[test]
fn forming_pool_never_becomes_degraded() {
    let mut w = World::new();
    let pool = w.pool_with(1, 10);
    assert_eq!(w.state.set_liveness(&node(1), Liveness::Inactive), Some(MemberStatus::Degraded));
    assert_eq!(w.pool(&pool).status, PoolStatus::Forming);
}

#[test]
fn accepted_join_and_leave_show_joining_and_leaving() {
    let mut w = World::new();
    let pool = w.pool_with(2, 10);
    let join = accepted(5, w.slot, Op::Join { pool });
    let leave = accepted(1, w.slot, Op::Leave { pool });
    w.state.note_accepted(&join);
    w.state.note_accepted(&leave);
    w.state.note_accepted(&join);
    assert_eq!(w.state.pending_joins(&pool), 1);
    assert_eq!(w.status_of(&pool, 1), Some(MemberStatus::Leaving));
    // The leaving member keeps its seat but no longer counts as active: 2 active of 3 seats.
    assert_eq!(w.pool(&pool).seats, 3);
    assert_eq!(w.pool(&pool).status, PoolStatus::Degraded);
    // Uptime does not move a leaving seat.
    assert_eq!(w.state.set_liveness(&node(1), Liveness::Inactive), Some(MemberStatus::Leaving));
    let outcomes = w.state.apply_slot(Slot(w.slot + 3), &[join.clone(), leave]);
    assert!(outcomes.iter().all(|o| o.result == OpResult::Applied));
    assert_eq!(w.state.pending_joins(&pool), 0);
    assert_eq!(w.status_of(&pool, 5), Some(MemberStatus::Active));
    assert_eq!(w.status_of(&pool, 1), None);
    assert_eq!(w.pool(&pool).status, PoolStatus::Active);
    // The joining row became the seat (no second row).
    assert_eq!(w.state.rows().iter().filter(|r| r.node_id == node(5)).count(), 1);
    // Applying the same op again changes nothing.
    let before = w.state.clone();
    assert!(w.state.apply_slot(Slot(w.slot + 3), &[join]).is_empty());
    assert_eq!(w.state, before);
}

#[test]
fn leader_succession_by_from_slot_then_node_id() {
    let mut w = World::new();
    let pool = w.create(10);
    // Node 5 joins first; nodes 1..=3 join together one slot later.
    assert_eq!(w.one(5, Op::Join { pool }), OpResult::Applied);
    assert!(
        w.step((1..=3).map(|i| (i, Op::Join { pool })).collect())
            .iter()
            .all(|r| *r == OpResult::Applied)
    );
    assert_eq!(w.one(0, Op::Leave { pool }), OpResult::Applied);
    assert_eq!(w.pool(&pool).leader, node(5));
    assert_eq!(w.one(5, Op::Leave { pool }), OpResult::Applied);
    let mut tied = vec![node(1), node(2), node(3)];
    tied.sort();
    assert_eq!(w.pool(&pool).leader, tied[0]);
    let leaders: Vec<_> =
        w.state.members(&pool).into_iter().filter(|m| m.role == Role::Leader).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].node_id, tied[0]);
    // The last seat holder leaving disbands the pool.
    for n in tied {
        let i = (1..=3).find(|i| node(*i) == n).unwrap();
        assert_eq!(w.one(i, Op::Leave { pool }), OpResult::Applied);
    }
    assert_eq!(w.pool(&pool).status, PoolStatus::Disbanded);
    assert_eq!(w.pool(&pool).seats, 0);
    w.state.check_invariants().unwrap();
}

#[test]
fn canonical_order_within_a_slot() {
    let mut w = World::new();
    let pool = w.pool_with(1, 2);
    // The pool is full; a leave and a join in one slot: the leave runs first, whatever the order.
    let results = w.step(vec![(3, Op::Join { pool }), (1, Op::Leave { pool })]);
    assert_eq!(results, vec![OpResult::Applied, OpResult::Applied]);
    // A Create and a Join of the new pool in the same slot: the Create runs first.
    let new_pool = pool_id(4, w.slot, "fresh");
    let results = w.step(vec![
        (5, Op::Join { pool: new_pool }),
        (4, Op::Create { name: "fresh".to_owned(), max_nodes: 5 }),
    ]);
    assert_eq!(results, vec![OpResult::Applied, OpResult::Applied]);
    // A Join and a Disband in the same slot: the join is applied, then every seat closes.
    let results =
        w.step(vec![(4, Op::Disband { pool: new_pool }), (6, Op::Join { pool: new_pool })]);
    assert_eq!(results, vec![OpResult::Applied, OpResult::Applied]);
    assert_eq!(w.state.pool_of(&node(6)), None);
    // Its seat never held a slot, so consensus never sees it.
    let timeline = w.state.timeline().unwrap();
    assert_eq!(timeline.pool_of(&node(6), Slot(w.slot + 2)), None);
    // Outcomes come back in canonical order: Create < Leave < … < Join < Disband, then digest.
    let ops = vec![
        accepted(10, w.slot, Op::Disband { pool }),
        accepted(11, w.slot, Op::Join { pool }),
        accepted(12, w.slot, Op::Join { pool }),
        accepted(13, w.slot, Op::Leave { pool }),
        accepted(14, w.slot, Op::Create { name: "zzz".to_owned(), max_nodes: 1 }),
    ];
    let outcomes = w.state.apply_slot(Slot(w.slot + 3), &ops);
    let keys: Vec<_> = outcomes.iter().map(|o| (o.tag, o.digest)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.first().map(|k| k.0), Some(OpTag::Create));
    assert_eq!(keys.last().map(|k| k.0), Some(OpTag::Disband));
}

#[test]
fn ops_of_other_slots_are_skipped() {
    let mut state = PoolState::new();
    let op = accepted(0, 10, Op::Create { name: "abc".to_owned(), max_nodes: 5 });
    assert!(state.apply_slot(Slot(12), std::slice::from_ref(&op)).is_empty());
    assert!(state.apply_slot(Slot(14), std::slice::from_ref(&op)).is_empty());
    assert_eq!(state.apply_slot(Slot(13), &[op]).len(), 1);
}

#[test]
fn timeline_matches_seats() {
    let mut w = World::new();
    let pool = w.pool_with(1, 10);
    // Node 1 seated from 104 (join signed at 101); it leaves with an op signed at 102 → to 105.
    assert_eq!(w.one(1, Op::Leave { pool }), OpResult::Applied);
    let timeline = w.state.timeline().unwrap();
    assert_eq!(timeline.pool_of(&node(0), Slot(103)), Some(pool));
    assert_eq!(timeline.pool_of(&node(0), Slot(1_000)), Some(pool));
    assert_eq!(timeline.pool_of(&node(0), Slot(102)), None);
    assert_eq!(timeline.pool_of(&node(1), Slot(103)), None);
    assert_eq!(timeline.pool_of(&node(1), Slot(104)), Some(pool));
    assert_eq!(timeline.pool_of(&node(1), Slot(105)), None);
}

#[test]
fn cap_150_joins_seat_exactly_max_nodes() {
    let mut w = World::new();
    let pool = w.create(MAX_NODES_PER_POOL);
    let results = w.step((1..=150).map(|i| (i, Op::Join { pool })).collect());
    let applied = results.iter().filter(|r| **r == OpResult::Applied).count();
    let full = results.iter().filter(|r| **r == rejected(RejectReason::PoolFull)).count();
    // The founder holds one of the 100 seats.
    assert_eq!((applied + 1, full), (100, 51));
    assert_eq!(w.pool(&pool).seats, 100);
    assert_eq!(w.state.members(&pool).len(), 100);
    w.state.check_invariants().unwrap();
}

#[test]
fn replay_rebuilds_the_same_state() {
    let mut w = World::new();
    let pool = w.pool_with(3, 10);
    w.one(0, Op::Remove { pool, member: node(2), ban: true });
    w.one(0, Op::Leave { pool });
    let log: Vec<AcceptedOp> = {
        // Recreate the same ops as a log: the World signed them at slots 100..=103.
        let mut log = vec![accepted(0, 100, Op::Create { name: P.to_owned(), max_nodes: 10 })];
        log.extend((1..=3).map(|i| accepted(i, 101, Op::Join { pool })));
        log.push(accepted(0, 102, Op::Remove { pool, member: node(2), ban: true }));
        log.push(accepted(0, 103, Op::Leave { pool }));
        log.reverse();
        log
    };
    let (rebuilt, outcomes) = PoolState::replay(&log, Slot(200));
    assert_eq!(outcomes.len(), 6);
    assert_eq!(rebuilt, w.state);
    let (partial, _) = PoolState::replay(&log, Slot(104));
    assert_eq!(partial.pool(&pool).map(|p| p.seats), Some(4));
}

/// Applies `log` slot by slot and runs `check` after every slot.
fn run_log(log: &[AcceptedOp], mut check: impl FnMut(&PoolState, Slot, &[OpOutcome])) -> PoolState {
    let mut state = PoolState::new();
    let last = log.iter().filter_map(|op| op.op.effect_slot()).max().unwrap_or(Slot(0));
    for slot in crate::test_support::LOG_BASE_SLOT..=last.0 {
        let outcomes = state.apply_slot(Slot(slot), log);
        check(&state, Slot(slot), &outcomes);
    }
    state
}

/// I3's succession rule: the leader is the founder on its original seat, or the seat holder
/// with the smallest (from_slot, NodeId).
fn leader_follows_succession(state: &PoolState, pool: &Pool) -> bool {
    let seats: Vec<Membership> =
        state.members(&pool.pool_id).into_iter().filter(Membership::is_seat).collect();
    let first = seats.iter().map(|m| (m.from_slot, m.node_id)).min().map(|(_, n)| n);
    let founder_original =
        seats.iter().any(|m| m.node_id == pool.founder && m.from_slot == pool.created_slot);
    Some(pool.leader) == first || (pool.leader == pool.founder && founder_original)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// I2, I3, I5 after every slot of a random op log.
    #[test]
    fn invariants_hold_after_every_slot(batches in abstract_log(1..14, 1..7)) {
        let log = build_log(&batches);
        run_log(&log, |state, slot, outcomes| {
            // I2 and the bounds of I5 (seats ≤ max_nodes ∈ 1..=100), I3's one leader.
            state.check_invariants().unwrap();
            // I2: membership and the timeline given to consensus agree at this slot.
            let timeline = state.timeline().unwrap();
            for i in 0..LOG_NODES {
                assert_eq!(timeline.pool_of(&node(i), slot), state.pool_of(&node(i)));
            }
            for pool in state.pools() {
                // I3: one leader and the succession rule.
                if pool.status != PoolStatus::Disbanded {
                    assert!(leader_follows_succession(state, pool), "{pool:?}");
                }
            }
            // I5: an out-of-range limit is never applied.
            for (outcome, op) in outcomes.iter().filter_map(|o| {
                log.iter().find(|op| op.digest == o.digest).map(|op| (o, op))
            }) {
                if let Op::SetMaxNodes { max, .. } | Op::Create { max_nodes: max, .. } = op.op.op
                    && !(1..=100).contains(&max)
                {
                    assert_ne!(outcome.result, OpResult::Applied);
                }
            }
        });
    }

    /// I6: the same op set in any arrival order gives the same membership and outcomes.
    #[test]
    fn arrival_order_does_not_matter(
        (log, shuffled) in abstract_log(1..12, 1..7)
            .prop_map(|batches| build_log(&batches))
            .prop_flat_map(|log| (Just(log.clone()), Just(log).prop_shuffle()))
    ) {
        let mut first = Vec::new();
        let a = run_log(&log, |_, _, outcomes| first.extend_from_slice(outcomes));
        let mut second = Vec::new();
        let b = run_log(&shuffled, |_, _, outcomes| second.extend_from_slice(outcomes));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(first, second);
        prop_assert_eq!(a.timeline().unwrap(), b.timeline().unwrap());
        let last = log.iter().filter_map(|op| op.op.effect_slot()).max().unwrap_or(Slot(0));
        let (replayed, _) = PoolState::replay(&shuffled, last);
        prop_assert_eq!(replayed, a);
    }
}
