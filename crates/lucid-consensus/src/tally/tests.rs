//! Tests of the membership timeline, the full tally, ranking and the digest (P8–P11, P13).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use lucid_core::NodeKey;
use lucid_core::hash::keyed_hash;
use proptest::prelude::*;

use super::*;
use crate::testing::{self, BEACON, counted, relay, small_params};

fn node(seed: u8) -> NodeId {
    NodeKey::from_seed(&[seed; 32]).node_id()
}

/// Test node ids, computed once (key derivation is slow in debug builds).
fn nodes() -> &'static [NodeId] {
    static NODES: OnceLock<Vec<NodeId>> = OnceLock::new();
    NODES.get_or_init(|| (0..8).map(testing::node).collect())
}

fn none(_: &ProofKey) -> bool {
    false
}

fn tally_of(epoch: u64, membership: &dyn MembershipView, proofs: &[CountedProof]) -> Tally {
    compute_tally(&small_params(), Epoch(epoch), membership, &none, proofs.iter().copied()).unwrap()
}

fn entry(tally: &Tally, entity: EntityId) -> &TallyEntry {
    tally.entries.iter().find(|e| e.entity == entity).unwrap()
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

#[test]
fn seat_ranges_of_the_timeline() {
    let mut timeline = MembershipTimeline::new();
    let (a, b) = (PoolId::from_bytes([1; 16]), PoolId::from_bytes([2; 16]));
    let n = node(1);
    timeline.add_seat(n, Seat { pool: a, from: Slot(10), to: Some(Slot(20)) });
    timeline.add_seat(n, Seat { pool: b, from: Slot(20), to: Some(Slot(30)) });
    timeline.add_seat(n, Seat { pool: a, from: Slot(40), to: None });
    let range = |s, e| SlotRange { start: Slot(s), end: Slot(e) };
    let table = [
        (0, None, range(0, 10)),
        (10, Some(a), range(10, 20)),
        (20, Some(b), range(20, 30)),
        (35, None, range(30, 40)),
        (99, Some(a), range(40, u64::MAX)),
    ];
    for (slot, pool, expected) in table {
        assert_eq!(timeline.seat_at(&n, Slot(slot)), (pool, expected), "slot {slot}");
    }
    assert_eq!(timeline.seat_at(&node(2), Slot(5)), (None, range(0, u64::MAX)));
    assert_eq!(NoPools.seat_at(&n, Slot(5)), (None, range(0, u64::MAX)));
}

/// Window of epoch 10 on the small network: slots [24, 80), 56 slots.
#[test]
fn sums_density_and_ranking_table() {
    let ns = nodes();
    let pool = testing::pool(9);
    let mut timeline = MembershipTimeline::new();
    for member in [ns[3], ns[4]] {
        timeline.add_seat(member, Seat { pool, from: Slot(0), to: None });
    }
    let mut proofs = Vec::new();
    // Node 0: 20 beacon slots (357 142 ppm) and 7 relay credits: ranked.
    proofs.extend((24..44).map(|s| counted(ns[0], s, BEACON)));
    proofs.push(counted(ns[0], 30, relay(7)));
    // Node 1: 11 beacon slots (196 428 ppm) and 100 credits: unranked by density.
    proofs.extend((24..35).map(|s| counted(ns[1], s, BEACON)));
    proofs.push(counted(ns[1], 30, ProofValue::Validation { validated_sessions: 20 }));
    // Node 2: 12 beacon slots (214 285 ppm), no credits: unranked.
    proofs.extend((60..72).map(|s| counted(ns[2], s, BEACON)));
    // Pool of nodes 3 and 4: both beacon in slots 24..36, node 4 also in 36..40: 16 slots.
    proofs.extend((24..36).map(|s| counted(ns[3], s, BEACON)));
    proofs.extend((24..40).map(|s| counted(ns[4], s, BEACON)));
    proofs.push(counted(ns[3], 50, relay(3)));
    proofs.push(counted(ns[4], 51, ProofValue::Storage { chunks_stored: 1, size_bytes: 1 << 30 }));
    // Outside the window: ignored.
    proofs.push(counted(ns[0], 23, relay(1_000)));
    proofs.push(counted(ns[0], 80, relay(1_000)));

    let tally = tally_of(10, &timeline, &proofs);
    assert_eq!(tally.window, SlotRange { start: Slot(24), end: Slot(80) });
    assert_eq!(tally.entries.len(), 4);

    let n0 = entry(&tally, EntityId::Node(ns[0]));
    assert_eq!((n0.credits, n0.relay, n0.beacon_slots, n0.density_ppm), (7, 7, 20, 357_142));
    let n1 = entry(&tally, EntityId::Node(ns[1]));
    assert_eq!((n1.credits, n1.validation, n1.density_ppm, n1.rank), (100, 100, 196_428, None));
    let n2 = entry(&tally, EntityId::Node(ns[2]));
    assert_eq!((n2.credits, n2.density_ppm, n2.rank), (0, 214_285, None));
    let p = entry(&tally, EntityId::Pool(pool));
    assert_eq!((p.credits, p.relay, p.storage, p.beacon_slots), (15, 3, 12, 16));
    let mut expected = vec![(ns[3], 3), (ns[4], 12)];
    expected.sort();
    assert_eq!(p.contributions, expected);
    assert!(n0.contributions.is_empty());

    // Ranked: pool (15) then node 0 (7); then unranked by entity bytes.
    assert_eq!(tally.ranked().len(), 2);
    assert_eq!(tally.entries[0].entity, EntityId::Pool(pool));
    assert_eq!(tally.entries[0].rank, Some(1));
    assert_eq!(tally.entries[1].entity, EntityId::Node(ns[0]));
    assert_eq!(tally.entries[1].rank, Some(2));
    assert!(tally.entries[2].entity < tally.entries[3].entity);
    assert_eq!(tally.digest, tally_digest(tally.epoch, tally.window, &tally.entries));
}

#[test]
fn empty_and_short_windows() {
    let ns = nodes();
    let proofs = [counted(ns[0], 0, BEACON), counted(ns[0], 0, relay(1))];
    let epoch0 = tally_of(0, &NoPools, &proofs);
    assert!(epoch0.window.is_empty());
    assert!(epoch0.entries.is_empty());
    // Epoch 1: window [0, 8); one beacon slot of 8 is 125 000 ppm.
    let epoch1 = tally_of(1, &NoPools, &proofs);
    assert_eq!(epoch1.entries[0].density_ppm, 125_000);
    assert_eq!(density_ppm(0, 0), 0);
    assert_eq!(density_ppm(5, 5), 1_000_000);
    assert_eq!(density_ppm(9, 5), 1_000_000, "clamped");
}

#[test]
fn excluded_and_repeated_keys_count_nothing_extra() {
    let ns = nodes();
    let params = small_params();
    let bad = ProofKey { node: ns[0], slot: Slot(30), kind: ProofKind::RelayBandwidth };
    let excluded = |key: &ProofKey| *key == bad;
    let mut builder = TallyBuilder::new(&params, Epoch(10), &NoPools, &excluded).unwrap();
    assert_eq!(builder.push(&counted(ns[0], 30, relay(5))), PushOutcome::Excluded);
    assert_eq!(builder.push(&counted(ns[0], 31, relay(5))), PushOutcome::Counted);
    assert_eq!(builder.push(&counted(ns[0], 31, relay(9))), PushOutcome::Duplicate);
    assert_eq!(builder.push(&counted(ns[0], 90, relay(9))), PushOutcome::OutsideWindow);
    let tally = builder.with_revision(3).finish();
    assert_eq!(tally.revision, 3);
    assert_eq!(tally.entries[0].credits, 5);
}

#[test]
fn credits_saturate_without_panic() {
    let ns = nodes();
    let huge = ProofValue::Storage { chunks_stored: u64::MAX, size_bytes: u64::MAX };
    let proofs: Vec<_> = (24..30).map(|s| counted(ns[0], s, huge)).collect();
    let tally = tally_of(10, &NoPools, &proofs);
    assert_eq!(tally.entries[0].credits, CREDITS_MAX);
    assert_eq!(tally.entries[0].storage, CREDITS_MAX);
}

#[test]
fn canonical_encoding_is_the_documented_layout() {
    let pool = testing::pool(1);
    let n = nodes()[0];
    let entries = vec![TallyEntry {
        entity: EntityId::Pool(pool),
        rank: Some(1),
        credits: 2,
        relay: 3,
        storage: 4,
        validation: 5,
        beacon_slots: 6,
        density_ppm: 7,
        contributions: vec![(n, 8)],
    }];
    let window = SlotRange { start: Slot(24), end: Slot(80) };
    let mut bytes = Vec::new();
    encode_canonical(Epoch(10), window, &entries, &mut bytes);
    let mut expected = Vec::new();
    expected.extend(10u64.to_be_bytes());
    expected.extend(24u64.to_be_bytes());
    expected.extend(80u64.to_be_bytes());
    expected.extend(1u32.to_be_bytes());
    expected.push(0x02);
    expected.extend([1u8; 16]);
    expected.push(0x01);
    expected.extend(1u32.to_be_bytes());
    for v in [2u64, 3, 4, 5, 6] {
        expected.extend(v.to_be_bytes());
    }
    expected.extend(7u32.to_be_bytes());
    expected.extend(1u32.to_be_bytes());
    expected.extend(n.as_bytes());
    expected.extend(8u64.to_be_bytes());
    assert_eq!(bytes, expected);
    expect_test::expect!["d2bcaea329fd36ccca75651f1c48266d807727695653f6c920e7c7c692ed022b"]
        .assert_eq(&tally_digest(Epoch(10), window, &entries).to_hex());
}

#[test]
fn ties_break_by_keyed_hash() {
    let params = small_params();
    let epoch = Epoch(10);
    let entries: Vec<_> = (0..6u8)
        .map(|i| TallyEntry {
            entity: EntityId::Pool(testing::pool(i)),
            rank: None,
            credits: if i < 4 { 50 } else { 60 },
            relay: 0,
            storage: 0,
            validation: 0,
            beacon_slots: 56,
            density_ppm: 1_000_000,
            contributions: Vec::new(),
        })
        .collect();
    let ranked = rank_entries(&params.rank_key(epoch), epoch, entries);
    let hash = |e: &TallyEntry| {
        let (bytes, len) = e.entity.to_bytes();
        keyed_hash(&params.rank_key(epoch), &[&epoch.0.to_be_bytes(), &bytes[..len]])
    };
    for pair in ranked.windows(2) {
        assert!(pair[0].credits >= pair[1].credits);
        if pair[0].credits == pair[1].credits {
            assert!(hash(&pair[0]) < hash(&pair[1]));
        }
    }
    let ranks: Vec<_> = ranked.iter().map(|e| e.rank).collect();
    assert_eq!(ranks, (1..=6).map(Some).collect::<Vec<_>>());
}

// ---- Properties ----

/// A generated history: proofs of up to 6 nodes over slots 0..100 of the small network, pool
/// seats for some nodes.
#[derive(Clone, Debug)]
struct World {
    seats: Vec<(usize, u8, u64, Option<u64>)>,
    proofs: Vec<CountedProof>,
}

fn value_strategy() -> impl Strategy<Value = ProofValue> {
    prop_oneof![
        3 => Just(BEACON),
        1 => (0u64..50_000_000, 0u32..20)
            .prop_map(|(b, s)| ProofValue::Relay { bytes_transferred: b, sessions_relayed: s }),
        1 => (0u64..10, 0u64..(4 << 30))
            .prop_map(|(c, s)| ProofValue::Storage { chunks_stored: c, size_bytes: s }),
        1 => (0u32..30).prop_map(|v| ProofValue::Validation { validated_sessions: v }),
    ]
}

fn world_strategy() -> impl Strategy<Value = World> {
    let seats =
        prop::collection::vec((0usize..6, 0u8..2, 0u64..100, prop::option::of(1u64..60)), 0..4);
    let proofs = prop::collection::vec((0usize..6, 0u64..100, value_strategy()), 0..150);
    (seats, proofs).prop_map(|(seats, proofs)| World {
        seats: seats
            .into_iter()
            .map(|(n, p, from, len)| (n, p, from, len.map(|l| from + l)))
            .collect(),
        proofs: proofs.into_iter().map(|(n, s, v)| counted(nodes()[n], s, v)).collect(),
    })
}

fn timeline_of(world: &World) -> MembershipTimeline {
    let mut timeline = MembershipTimeline::new();
    for &(n, p, from, to) in &world.seats {
        // Overlapping seats are refused by the timeline; that is fine for generation.
        timeline.add_seat(
            nodes()[n],
            Seat { pool: testing::pool(p), from: Slot(from), to: to.map(Slot) },
        );
    }
    timeline
}

/// The proofs a store would hold: the first proof per key.
fn unique(proofs: &[CountedProof]) -> Vec<CountedProof> {
    let mut seen = BTreeSet::new();
    proofs.iter().copied().filter(|p| seen.insert(p.key())).collect()
}

/// Per entity: credits, per-kind credits, beacon slots, credits per member node.
type Model = BTreeMap<EntityId, (u128, [u128; 3], BTreeSet<u64>, BTreeMap<NodeId, u128>)>;

/// A deliberately naive model of §7.2: maps and sets, no caches.
fn naive(
    epoch: Epoch,
    membership: &dyn MembershipView,
    excluded: &dyn Fn(&ProofKey) -> bool,
    proofs: &[CountedProof],
) -> Model {
    let window = small_params().time.window(epoch).unwrap();
    let mut out = Model::new();
    for p in unique(proofs) {
        if !window.contains(p.slot) || excluded(&p.key()) {
            continue;
        }
        let e = out.entry(entity_of(membership, &p.node, p.slot)).or_default();
        let credits = u128::from(p.value.credits());
        e.0 += credits;
        match p.value.kind() {
            ProofKind::UptimeBeacon => {
                e.2.insert(p.slot.0);
            }
            kind => e.1[kind_index(kind)] += credits,
        }
        *e.3.entry(p.node).or_default() += credits;
    }
    out
}

fn check_ranking(tally: &Tally, params: &ConsensusParams) -> Result<(), TestCaseError> {
    let ranked = tally.ranked();
    let hasher = KeyedHasher::new(&params.rank_key(tally.epoch));
    for (i, e) in ranked.iter().enumerate() {
        prop_assert_eq!(e.rank, Some(i as u32 + 1));
        prop_assert!(e.credits > 0 && e.density_ppm >= D_MIN_PPM);
    }
    for pair in ranked.windows(2) {
        prop_assert!(pair[0].credits >= pair[1].credits);
        if pair[0].credits == pair[1].credits {
            prop_assert!(
                tiebreak(&hasher, tally.epoch, &pair[0].entity)
                    < tiebreak(&hasher, tally.epoch, &pair[1].entity)
            );
        }
    }
    let unranked = &tally.entries[ranked.len()..];
    for e in unranked {
        prop_assert!(e.rank.is_none());
        prop_assert!(!(e.credits > 0 && e.density_ppm >= D_MIN_PPM));
    }
    for pair in unranked.windows(2) {
        prop_assert!(pair[0].entity < pair[1].entity);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// P10, P11: the builder agrees with the naive model; each proof goes to exactly one entity;
    /// Σ contributions == pool credits; density ≤ 10^6 and counts distinct slots.
    #[test]
    fn p10_p11_builder_matches_naive_model(world in world_strategy(), epoch in 1u64..14) {
        let timeline = timeline_of(&world);
        let tally = tally_of(epoch, &timeline, &unique(&world.proofs));
        let model = naive(Epoch(epoch), &timeline, &none, &world.proofs);
        prop_assert_eq!(tally.entries.len(), model.len());
        let mut total = 0u128;
        for e in &tally.entries {
            let (credits, kinds, beacons, members) = &model[&e.entity];
            prop_assert_eq!(u128::from(e.credits), *credits);
            prop_assert_eq!([u128::from(e.relay), u128::from(e.storage), u128::from(e.validation)], *kinds);
            prop_assert_eq!(e.beacon_slots, beacons.len() as u64);
            prop_assert!(e.density_ppm <= 1_000_000);
            prop_assert_eq!(e.density_ppm, density_ppm(e.beacon_slots, tally.window.len()));
            match e.entity {
                EntityId::Pool(_) => {
                    let contributions: Vec<_> =
                        members.iter().map(|(n, c)| (*n, u64::try_from(*c).unwrap())).collect();
                    prop_assert_eq!(&e.contributions, &contributions);
                    prop_assert_eq!(e.contributions.iter().map(|c| c.1).sum::<u64>(), e.credits);
                }
                EntityId::Node(n) => {
                    prop_assert!(e.contributions.is_empty());
                    prop_assert_eq!(members.keys().copied().collect::<Vec<_>>(), vec![n]);
                }
            }
            total += u128::from(e.credits);
        }
        let window = small_params().time.window(Epoch(epoch)).unwrap();
        let counted: u128 = unique(&world.proofs)
            .iter()
            .filter(|p| window.contains(p.slot))
            .map(|p| u128::from(p.value.credits()))
            .sum();
        prop_assert_eq!(total, counted, "every counted credit in exactly one entity");
    }

    /// P8: the tally does not depend on proof order; an equivocation pair gives the same tally
    /// whichever arrived first (the key with evidence counts for nothing).
    #[test]
    fn p8_order_independent(
        world in world_strategy(),
        epoch in 1u64..14,
        shuffle in any::<u64>(),
        twin in (0usize..6, 0u64..100, value_strategy(), value_strategy()),
    ) {
        let timeline = timeline_of(&world);
        let proofs = unique(&world.proofs);
        let mut shuffled = proofs.clone();
        // Deterministic shuffle from the generated seed.
        let mut state = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = tally_of(epoch, &timeline, &proofs);
        let b = tally_of(epoch, &timeline, &shuffled);
        prop_assert_eq!(&a, &b);

        let (n, slot, v1, v2) = twin;
        let first = counted(nodes()[n], slot, v1);
        let second = CountedProof { value: if v2.kind() == v1.kind() { v2 } else { v1 }, ..first };
        let bad = first.key();
        let excluded = |key: &ProofKey| *key == bad;
        let without: Vec<_> = proofs.iter().copied().filter(|p| p.key() != bad).collect();
        let params = small_params();
        let run = |order: &[CountedProof]| {
            compute_tally(&params, Epoch(epoch), &timeline, &excluded, order.iter().copied()).unwrap()
        };
        let mut one = vec![first];
        one.extend(&without);
        one.push(second);
        let mut two = vec![second];
        two.extend(&without);
        two.push(first);
        let expected = run(&without);
        prop_assert_eq!(&run(&one), &expected);
        prop_assert_eq!(&run(&two), &expected);
    }

    /// P9: a proof outside window(e) leaves tally(e) unchanged.
    #[test]
    fn p9_outside_window_ignored(
        world in world_strategy(),
        epoch in 1u64..14,
        extra in (0usize..6, 0u64..200, value_strategy()),
    ) {
        let timeline = timeline_of(&world);
        let window = small_params().time.window(Epoch(epoch)).unwrap();
        let (n, slot, value) = extra;
        let slot = if window.contains(Slot(slot)) { window.end.0 + slot } else { slot };
        let proofs = unique(&world.proofs);
        let mut more = proofs.clone();
        more.push(counted(nodes()[n], slot, value));
        prop_assert_eq!(tally_of(epoch, &timeline, &proofs), tally_of(epoch, &timeline, &more));
    }

    /// P13: ranks are 1..n, dense, unique, credits descending, ties by the keyed hash; every
    /// ranked entry has credits > 0 and density ≥ 200 000 ppm; unranked follow by entity bytes.
    #[test]
    fn p13_ranking(world in world_strategy(), epoch in 1u64..14) {
        let timeline = timeline_of(&world);
        let tally = tally_of(epoch, &timeline, &unique(&world.proofs));
        check_ranking(&tally, &small_params())?;
    }

    /// P13 on synthetic entries with many ties.
    #[test]
    fn p13_ranking_many_ties(
        rows in prop::collection::vec((0u64..4, 0u32..=1_000_000), 0..40),
    ) {
        let params = small_params();
        let entries: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, &(credits, density_ppm))| TallyEntry {
                entity: EntityId::Pool(PoolId::from_bytes([i as u8; 16])),
                rank: Some(99),
                credits,
                relay: credits,
                storage: 0,
                validation: 0,
                beacon_slots: 0,
                density_ppm,
                contributions: Vec::new(),
            })
            .collect();
        let window = SlotRange { start: Slot(24), end: Slot(80) };
        let tally = Tally::from_entries(&params, Epoch(10), window, 0, entries);
        prop_assert_eq!(tally.entries.len(), rows.len());
        check_ranking(&tally, &params)?;
    }

    /// `seat_at` never claims a range over which `pool_of` changes.
    #[test]
    fn seat_ranges_are_constant(world in world_strategy(), slot in 0u64..200) {
        let timeline = timeline_of(&world);
        for &n in &nodes()[..6] {
            let (pool, range) = timeline.seat_at(&n, Slot(slot));
            prop_assert!(range.contains(Slot(slot)));
            prop_assert_eq!(pool, timeline.pool_of(&n, Slot(slot)));
            for s in range.start.0.max(slot.saturating_sub(300))..range.end.0.min(slot + 300) {
                prop_assert_eq!(timeline.pool_of(&n, Slot(s)), pool);
            }
        }
    }
}

/// A view that only implements `pool_of`: the builder must fall back to the one-slot ranges of
/// the default `seat_at` and still attribute every proof by its own slot.
struct EvenSlotsPooled;

impl MembershipView for EvenSlotsPooled {
    fn pool_of(&self, _node: &NodeId, slot: Slot) -> Option<PoolId> {
        slot.0.is_multiple_of(2).then_some(testing::pool(5))
    }
}

#[test]
fn default_seat_ranges_attribute_per_slot() {
    let n = nodes()[0];
    let proofs: Vec<_> =
        (24..80).flat_map(|s| [counted(n, s, BEACON), counted(n, s, relay(1))]).collect();
    let tally = tally_of(10, &EvenSlotsPooled, &proofs);
    let pool = entry(&tally, EntityId::Pool(testing::pool(5)));
    let solo = entry(&tally, EntityId::Node(n));
    assert_eq!(
        (pool.credits, pool.beacon_slots, solo.credits, solo.beacon_slots),
        (28, 28, 28, 28)
    );
    assert_eq!(pool.contributions, vec![(n, 28)]);
}
