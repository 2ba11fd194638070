//! Tests of the membership timeline and tally types.

use lucid_core::NodeKey;

use super::*;

fn node(seed: u8) -> NodeId {
    NodeKey::from_seed(&[seed; 32]).node_id()
}

#[test]
fn timeline_answers_by_slot() {
    let mut timeline = MembershipTimeline::new();
    let pool = PoolId::from_bytes([7; 16]);
    let n = node(1);
    assert!(timeline.add_seat(n, Seat { pool, from: Slot(10), to: Some(Slot(20)) }));
    assert!(!timeline.add_seat(n, Seat { pool, from: Slot(19), to: None }), "overlap");
    assert!(!timeline.add_seat(n, Seat { pool, from: Slot(30), to: Some(Slot(30)) }), "empty");
    assert!(timeline.add_seat(n, Seat { pool, from: Slot(25), to: None }));
    assert_eq!(timeline.pool_of(&n, Slot(9)), None);
    assert_eq!(timeline.pool_of(&n, Slot(10)), Some(pool));
    assert_eq!(timeline.pool_of(&n, Slot(19)), Some(pool));
    assert_eq!(timeline.pool_of(&n, Slot(20)), None);
    assert_eq!(timeline.pool_of(&n, Slot(1_000)), Some(pool));
    assert_eq!(entity_of(&timeline, &n, Slot(5)), EntityId::Node(n));
    assert_eq!(entity_of(&timeline, &n, Slot(12)), EntityId::Pool(pool));
    assert_eq!(timeline.pool_of(&node(2), Slot(12)), None);
}
