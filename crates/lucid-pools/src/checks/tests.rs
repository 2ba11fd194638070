//! Tests of the shared precondition checks: each rule, and the order when several apply.

use lucid_core::{PoolId, Slot};

use super::*;
use crate::model::Pool;

fn stored(status: PoolStatus, seats: u32, max_nodes: u8, version: u64) -> StoredPool {
    let founder = crate::test_support::node(0);
    let pool = Pool {
        pool_id: PoolId::from_bytes([1; 16]),
        name: "alpha".to_owned(),
        founder,
        leader: founder,
        status,
        max_nodes,
        seats,
        created_slot: Slot(1),
        disbanded_slot: (status == PoolStatus::Disbanded).then_some(Slot(2)),
    };
    StoredPool { pool, version }
}

const NONE: SeatFacts = SeatFacts { node_has_seat: false, banned: false, leader_seated: false };

#[test]
fn create_checks_max_nodes_then_the_id_then_the_founder() {
    assert_eq!(create_refusal(0, true, true), Some(CreateOutcome::InvalidMaxNodes));
    assert_eq!(create_refusal(101, false, false), Some(CreateOutcome::InvalidMaxNodes));
    assert_eq!(create_refusal(100, true, true), Some(CreateOutcome::PoolExists));
    assert_eq!(create_refusal(1, false, true), Some(CreateOutcome::AlreadyInPool));
    assert_eq!(create_refusal(1, false, false), None);
}

#[test]
fn seat_checks_in_the_documented_order() {
    let open = stored(PoolStatus::Active, 2, 3, 1);
    let full = stored(PoolStatus::Active, 3, 3, 1);
    let gone = stored(PoolStatus::Disbanded, 0, 3, 1);
    let all = SeatFacts { node_has_seat: true, banned: true, leader_seated: true };
    assert_eq!(seat_refusal(None, Role::Member, all), Some(SeatOutcome::PoolNotFound));
    assert_eq!(seat_refusal(Some(&gone), Role::Member, all), Some(SeatOutcome::PoolDisbanded));
    assert_eq!(seat_refusal(Some(&full), Role::Leader, all), Some(SeatOutcome::AlreadyInPool));
    let banned = SeatFacts { node_has_seat: false, ..all };
    assert_eq!(seat_refusal(Some(&full), Role::Leader, banned), Some(SeatOutcome::Banned));
    let leader = SeatFacts { leader_seated: true, ..NONE };
    assert_eq!(seat_refusal(Some(&full), Role::Leader, leader), Some(SeatOutcome::PoolFull));
    assert_eq!(seat_refusal(Some(&open), Role::Leader, leader), Some(SeatOutcome::LeaderTaken));
    // A seated leader only matters when seating a leader.
    assert_eq!(seat_refusal(Some(&open), Role::Member, leader), None);
    assert_eq!(seat_refusal(Some(&open), Role::Leader, NONE), None);
}

#[test]
fn disband_refuses_only_missing_and_disbanded_pools() {
    assert_eq!(disband_refusal(None), Some(DisbandOutcome::PoolNotFound));
    let gone = stored(PoolStatus::Disbanded, 0, 3, 1);
    assert_eq!(disband_refusal(Some(&gone)), Some(DisbandOutcome::AlreadyDisbanded));
    assert_eq!(disband_refusal(Some(&stored(PoolStatus::Forming, 1, 3, 1))), None);
}

#[test]
fn set_max_nodes_is_a_compare_and_set_within_bounds() {
    let pool = stored(PoolStatus::Active, 5, 10, 7);
    assert_eq!(set_max_nodes_refusal(None, 5, 7), Some(SetMaxNodesOutcome::PoolNotFound));
    let gone = stored(PoolStatus::Disbanded, 0, 10, 7);
    // The version is checked before everything else; then the status, bounds and seats.
    assert_eq!(
        set_max_nodes_refusal(Some(&gone), 0, 6),
        Some(SetMaxNodesOutcome::VersionMismatch { current: 7 })
    );
    assert_eq!(set_max_nodes_refusal(Some(&gone), 0, 7), Some(SetMaxNodesOutcome::PoolDisbanded));
    assert_eq!(set_max_nodes_refusal(Some(&pool), 0, 7), Some(SetMaxNodesOutcome::InvalidMaxNodes));
    assert_eq!(
        set_max_nodes_refusal(Some(&pool), 101, 7),
        Some(SetMaxNodesOutcome::InvalidMaxNodes)
    );
    assert_eq!(
        set_max_nodes_refusal(Some(&pool), 4, 7),
        Some(SetMaxNodesOutcome::BelowSeats { seats: 5 })
    );
    assert_eq!(set_max_nodes_refusal(Some(&pool), 5, 7), None);
    assert_eq!(set_max_nodes_refusal(Some(&pool), 100, 7), None);
}

#[test]
fn liveness_moves_seats_between_active_and_degraded_only() {
    use Liveness::{Active, Inactive, Suspended};
    use MemberStatus as S;
    let cases = [
        (S::Active, Inactive, S::Degraded),
        (S::Active, Suspended, S::Degraded),
        (S::Active, Active, S::Active),
        (S::Degraded, Active, S::Active),
        (S::Degraded, Suspended, S::Degraded),
        (S::Leaving, Active, S::Leaving),
        (S::Leaving, Inactive, S::Leaving),
    ];
    for (status, liveness, after) in cases {
        assert_eq!(seat_status_after(status, liveness), after, "{status:?} {liveness:?}");
    }
    assert!(may_mark_leaving(S::Active) && may_mark_leaving(S::Degraded));
    assert!(!may_mark_leaving(S::Leaving) && !may_mark_leaving(S::Banned));
}

#[test]
fn a_join_is_refused_for_the_first_rule_that_applies_in_the_documented_order() {
    let all = JoinFacts { seat_requested: true, banned: true, pending_joins: 99 };
    assert_eq!(join_refusal(None, all), Some(RejectReason::PoolNotFound));
    let disbanded = stored(PoolStatus::Disbanded, 0, 100, 1).pool;
    assert_eq!(join_refusal(Some(&disbanded), all), Some(RejectReason::PoolDisbanded));
    let pool = stored(PoolStatus::Forming, 1, 100, 1).pool;
    assert_eq!(join_refusal(Some(&pool), all), Some(RejectReason::AlreadyInPool));
    let banned = JoinFacts { seat_requested: false, ..all };
    assert_eq!(join_refusal(Some(&pool), banned), Some(RejectReason::Banned));
    let full = JoinFacts { banned: false, ..banned };
    assert_eq!(join_refusal(Some(&pool), full), Some(RejectReason::PoolFull));
    let room = JoinFacts { pending_joins: 98, ..full };
    assert_eq!(join_refusal(Some(&pool), room), None);
    // The seats count too, and a count beyond any limit never wraps.
    let seated = stored(PoolStatus::Active, 100, 100, 1).pool;
    assert_eq!(join_refusal(Some(&seated), JoinFacts::default()), Some(RejectReason::PoolFull));
    let huge = JoinFacts { pending_joins: u64::MAX, ..JoinFacts::default() };
    assert_eq!(join_refusal(Some(&pool), huge), Some(RejectReason::PoolFull));
}

proptest::proptest! {
    /// The cap: a Join is admitted exactly when the seats plus the waiting joins leave room.
    #[test]
    fn a_join_is_admitted_exactly_while_seats_and_pending_joins_leave_room(
        max_nodes in 1u8..=100,
        seats in 0u32..=100,
        pending in 0u64..=200,
    ) {
        let pool = stored(PoolStatus::Active, seats.min(u32::from(max_nodes)), max_nodes, 1).pool;
        let facts = JoinFacts { pending_joins: pending, ..JoinFacts::default() };
        let room = u64::from(pool.seats) + pending < u64::from(max_nodes);
        proptest::prop_assert_eq!(join_refusal(Some(&pool), facts).is_none(), room);
    }
}
