//! Tests of the rolling tally engine: table tests and P12 (rolling == full recomputation after
//! any sequence of slides, late inserts, evidence and jumps).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use lucid_core::PoolId;
use proptest::prelude::*;

use super::*;
use crate::proof::ProofValue;
use crate::tally::{MembershipTimeline, NoPools, Seat, compute_tally};
use crate::testing::{self, BEACON, counted, relay, small_params};

fn nodes() -> &'static [NodeId] {
    static NODES: OnceLock<Vec<NodeId>> = OnceLock::new();
    NODES.get_or_init(|| (0..6).map(testing::node).collect())
}

fn full(
    epoch: u64,
    membership: &dyn MembershipView,
    excluded: &BTreeSet<ProofKey>,
    proofs: impl IntoIterator<Item = CountedProof>,
) -> Tally {
    let excluded = |key: &ProofKey| excluded.contains(key);
    compute_tally(&small_params(), Epoch(epoch), membership, &excluded, proofs).unwrap()
}

#[test]
fn window_follows_slides_and_mismatch_is_an_error() {
    let params = small_params();
    let mut rolling = RollingTally::new(&params, Slot(0));
    assert!(rolling.window().is_empty());
    assert_eq!(rolling.tally(Epoch(0), 0).unwrap().entries, vec![]);
    for _ in 0..80 {
        rolling.advance();
    }
    assert_eq!(rolling.window(), SlotRange { start: Slot(24), end: Slot(80) });
    assert!(rolling.tally(Epoch(10), 0).is_ok());
    let err = rolling.tally(Epoch(9), 0).unwrap_err();
    assert_eq!(err.rolling, rolling.window());
    assert_eq!(err.expected, Some(SlotRange { start: Slot(16), end: Slot(72) }));
}

#[test]
fn pool_beacons_in_one_slot_count_once_and_leave_with_evidence() {
    let params = small_params();
    let ns = nodes();
    let pool = testing::pool(3);
    let mut timeline = MembershipTimeline::new();
    for member in [ns[0], ns[1]] {
        timeline.add_seat(member, Seat { pool, from: Slot(0), to: None });
    }
    let mut rolling = RollingTally::new(&params, Slot(56));
    let slot = 60;
    let proofs = [counted(ns[0], slot, BEACON), counted(ns[1], slot, BEACON)];
    rolling.advance_to(Slot(slot));
    assert_eq!(rolling.slide(&timeline, proofs), 2);
    assert_eq!(rolling.insert(&timeline, &proofs[0]), PushOutcome::Duplicate);
    let entity = EntityId::Pool(pool);
    assert_eq!(rolling.entity_beacons(&entity).map(SlotRing::count), Some(1));
    let key = |n: NodeId| ProofKey { node: n, slot: Slot(slot), kind: ProofKind::UptimeBeacon };
    assert!(rolling.exclude(&timeline, &key(ns[0])));
    assert!(!rolling.exclude(&timeline, &key(ns[0])), "already gone");
    assert_eq!(rolling.insert(&timeline, &proofs[0]), PushOutcome::Excluded);
    assert_eq!(rolling.entity_beacons(&entity).map(SlotRing::count), Some(1), "other member");
    assert!(rolling.exclude(&timeline, &key(ns[1])));
    assert_eq!(rolling.entity_count(), 0, "no proofs left: entity freed");
}

#[test]
fn everything_leaves_after_a_full_window() {
    let params = small_params();
    let ns = nodes();
    let mut rolling = RollingTally::new(&params, Slot(100));
    for slot in 100..130 {
        let proofs = [counted(ns[0], slot, BEACON), counted(ns[1], slot, relay(2))];
        rolling.slide(&NoPools, proofs);
    }
    assert_eq!(rolling.entity_count(), 2);
    assert_eq!(rolling.work_proofs(), 30);
    assert_eq!(rolling.entity_credits(&EntityId::Node(ns[1])), 60);
    for _ in 0..56 {
        rolling.advance();
    }
    assert_eq!(rolling.entity_count(), 0);
    assert_eq!(rolling.work_proofs(), 0);
    rolling.advance_to(Slot(1_000));
    assert_eq!(rolling.window(), SlotRange { start: Slot(944), end: Slot(1_000) });
}

#[derive(Clone, Debug)]
enum Op {
    /// Slide by one slot with proofs (node, value) for the entering slot.
    Slide(Vec<(usize, ProofValue)>),
    /// A late proof `back` slots before the newest slot.
    Late(usize, u64, ProofValue),
    /// Evidence for a key `offset` slots before the newest (negative: a future slot).
    Exclude(usize, i64, u8),
    /// Evidence for the key of a counted proof (picked by index among the stored ones).
    ExcludeStored(usize),
    /// Jump forward (sometimes past a whole window).
    Jump(u64),
}

fn value() -> impl Strategy<Value = ProofValue> {
    prop_oneof![
        3 => Just(BEACON),
        2 => (0u32..20).prop_map(relay),
        1 => (0u64..5, 0u64..(3 << 30))
            .prop_map(|(c, s)| ProofValue::Storage { chunks_stored: c, size_bytes: s }),
        1 => (0u32..9).prop_map(|v| ProofValue::Validation { validated_sessions: v }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0usize..6, value()), 0..8).prop_map(Op::Slide),
        3 => (0usize..6, 0u64..60, value()).prop_map(|(n, b, v)| Op::Late(n, b, v)),
        1 => (0usize..6, -3i64..60, 1u8..=4).prop_map(|(n, o, k)| Op::Exclude(n, o, k)),
        2 => any::<usize>().prop_map(Op::ExcludeStored),
        1 => (1u64..70).prop_map(Op::Jump),
    ]
}

type Seats = Vec<(usize, u8, u64, Option<u64>)>;

fn seats() -> impl Strategy<Value = Seats> {
    prop::collection::vec((0usize..6, 0u8..2, 0u64..120, prop::option::of(1u64..150)), 0..8)
        .prop_map(|v| v.into_iter().map(|(n, p, f, l)| (n, p, f, l.map(|l| f + l))).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// P12: at every epoch boundary the rolling view equals the full recomputation over every
    /// proof it counted, with the same evidence, entry for entry (and so digest for digest).
    #[test]
    fn p12_rolling_equals_full(
        start in 0u64..40,
        seats in seats(),
        ops in prop::collection::vec(op(), 0..140),
    ) {
        let params = small_params();
        let mut timeline = MembershipTimeline::new();
        for (n, p, from, to) in seats {
            timeline.add_seat(
                nodes()[n],
                Seat { pool: PoolId::from_bytes([p; 16]), from: Slot(from), to: to.map(Slot) },
            );
        }
        let mut rolling = RollingTally::new(&params, Slot(start));
        let mut store: BTreeMap<ProofKey, CountedProof> = BTreeMap::new();
        let mut excluded: BTreeSet<ProofKey> = BTreeSet::new();
        for op in ops {
            let mut offer = |rolling: &mut RollingTally, proof: CountedProof| {
                let outcome = rolling.insert(&timeline, &proof);
                match outcome {
                    PushOutcome::Counted => prop_assert!(store.insert(proof.key(), proof).is_none()),
                    PushOutcome::Duplicate => prop_assert!(store.contains_key(&proof.key())),
                    PushOutcome::Excluded => prop_assert!(excluded.contains(&proof.key())),
                    PushOutcome::OutsideWindow => {
                        prop_assert!(!rolling.window().contains(proof.slot))
                    }
                }
                Ok(())
            };
            match op {
                Op::Slide(proofs) => {
                    rolling.advance();
                    let slot = rolling.window().end.0 - 1;
                    for (n, v) in proofs {
                        offer(&mut rolling, counted(nodes()[n], slot, v))?;
                    }
                }
                Op::Late(n, back, v) => {
                    let slot = rolling.window().end.0.saturating_sub(1 + back);
                    offer(&mut rolling, counted(nodes()[n], slot, v))?;
                }
                Op::Exclude(n, offset, kind) => {
                    let newest = i64::try_from(rolling.window().end.0).unwrap() - 1;
                    let Ok(slot) = u64::try_from(newest - offset) else { continue };
                    let kind = ProofKind::from_tag(kind).unwrap();
                    let key = ProofKey { node: nodes()[n], slot: Slot(slot), kind };
                    let expect_removed = rolling.window().contains(key.slot)
                        && store.contains_key(&key)
                        && !excluded.contains(&key);
                    if key.slot >= rolling.window().start {
                        excluded.insert(key);
                    }
                    prop_assert_eq!(rolling.exclude(&timeline, &key), expect_removed);
                }
                Op::ExcludeStored(index) => {
                    let Some(key) = store.keys().nth(index % store.len().max(1)).copied() else {
                        continue;
                    };
                    let expect_removed =
                        rolling.window().contains(key.slot) && !excluded.contains(&key);
                    if key.slot >= rolling.window().start {
                        excluded.insert(key);
                    }
                    prop_assert_eq!(rolling.exclude(&timeline, &key), expect_removed);
                }
                Op::Jump(by) => {
                    let end = rolling.window().end.0 + by;
                    rolling.advance_to(Slot(end));
                    prop_assert_eq!(rolling.window().end, Slot(end));
                }
            }
            let end = rolling.window().end.0;
            if end.is_multiple_of(params.time.slots_per_epoch()) {
                let epoch = end / params.time.slots_per_epoch();
                let expected = full(epoch, &timeline, &excluded, store.values().rev().copied());
                let got = rolling.tally(Epoch(epoch), 0).unwrap();
                prop_assert_eq!(got, expected);
            }
        }
        // Always compare at least once: slide to the next boundary.
        let spe = params.time.slots_per_epoch();
        let boundary = rolling.window().end.0.div_ceil(spe) * spe;
        rolling.advance_to(Slot(boundary));
        let expected =
            full(boundary / spe, &timeline, &excluded, store.values().copied());
        prop_assert_eq!(rolling.tally(Epoch(boundary / spe), 0).unwrap(), expected);
    }
}
