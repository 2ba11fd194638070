//! Tests of leader selection: fixed schedules (snapshots), the properties P14–P17 of
//! consensus.md §13 against a naive reference implementation of §8.1, claims and the slot log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use expect_test::{Expect, expect};
use lucid_core::hash::{derive_key, keyed_hash};
use lucid_core::{PoolId, SlotRange, TimeParams};
use proptest::prelude::*;

use super::*;
use crate::tally::{MembershipTimeline, NoPools, Seat};
use crate::testing;

/// Mainnet-length epochs: slot 1440 is the first slot of epoch 2.
const EPOCH2: u64 = 1_440;

/// 48 node entities (fixture keys 0..48) then 16 pool entities: both byte lengths get hashed.
static ENTITIES: LazyLock<Vec<EntityId>> = LazyLock::new(|| {
    let nodes = (0..48).map(|i| EntityId::Node(testing::key(i).node_id()));
    let pools = (0..16u8).map(|i| EntityId::Pool(PoolId::from_bytes([i; 16])));
    nodes.chain(pools).collect()
});

fn ent(i: usize) -> EntityId {
    ENTITIES[i]
}

/// A short label for snapshots: `n3` for node fixture 3, `p2` for pool 2.
fn label(entity: &EntityId) -> String {
    match ENTITIES.iter().position(|e| e == entity) {
        Some(i) if i < 48 => format!("n{i}"),
        Some(i) => format!("p{}", i - 48),
        None => format!("{entity}"),
    }
}

fn entry(entity: EntityId, rank: Option<u32>, credits: u64) -> TallyEntry {
    TallyEntry {
        entity,
        rank,
        credits,
        relay: credits,
        storage: 0,
        validation: 0,
        beacon_slots: 720,
        density_ppm: 1_000_000,
        contributions: Vec::new(),
    }
}

/// A tally of `epoch` whose ranked entries are `ranked` (entity index, credits) in rank order,
/// followed by the unranked entity indices `unranked`.
fn tally_with(epoch: u64, ranked: &[(usize, u64)], unranked: &[usize]) -> Tally {
    let mut entries: Vec<TallyEntry> = ranked
        .iter()
        .zip(1..)
        .map(|(&(i, credits), rank)| entry(ent(i), Some(rank), credits))
        .collect();
    entries.extend(unranked.iter().map(|&i| entry(ent(i), None, 0)));
    let digest = derive_key("lucid-node v1 test tally", &[&epoch.to_be_bytes()]);
    let window = SlotRange { start: Slot(0), end: Slot(epoch * 720) };
    Tally { epoch: Epoch(epoch), window, revision: 0, entries, digest }
}

/// A tally of `epoch` ranking entities 0..n with the given credits.
fn tally(epoch: u64, credits: &[u64]) -> Tally {
    let ranked: Vec<(usize, u64)> = credits.iter().copied().enumerate().collect();
    tally_with(epoch, &ranked, &[])
}

fn won(slot: u64, i: usize) -> (Slot, SlotResult) {
    (Slot(slot), SlotResult::Success { winner: ent(i) })
}

/// §8.1 written as plainly as possible, as an oracle for the optimised [`select`].
fn reference(
    params: &ConsensusParams,
    slot: Slot,
    tally: Option<&Tally>,
    recent: &[(Slot, SlotResult)],
) -> Schedule {
    let epoch = params.time.epoch_of(slot);
    let no_leader = |digest, reason| Schedule {
        slot,
        epoch,
        tally_digest: digest,
        outcome: Outcome::NoLeader(reason),
    };
    let Some(tally) = tally.filter(|t| t.epoch == epoch) else {
        return no_leader(None, NoLeaderReason::TallyPending);
    };
    let digest = Some(tally.digest);
    let ranked = tally.ranked();
    if ranked.is_empty() {
        return no_leader(digest, NoLeaderReason::NoRankedEntity);
    }
    let cooling: BTreeSet<EntityId> = recent
        .iter()
        .filter(|(at, _)| at.0 + 16 >= slot.0 && *at < slot)
        .filter_map(|(_, result)| result.winner().copied())
        .collect();
    let eligible: Vec<&TallyEntry> =
        ranked.iter().filter(|e| !cooling.contains(&e.entity)).collect();
    let Some(first) = eligible.first() else {
        return no_leader(digest, NoLeaderReason::AllInCooldown);
    };
    let ties: Vec<&&TallyEntry> = eligible.iter().filter(|e| e.credits == first.credits).collect();
    let (primary, reason) = if ties.len() >= 2 {
        let key = params.rotation_key(epoch);
        let hash = |e: &TallyEntry| {
            let (bytes, len) = e.entity.to_bytes();
            keyed_hash(&key, &[&slot.0.to_be_bytes(), &bytes[..len]])
        };
        let best = ties.iter().min_by_key(|e| hash(e)).map_or(first.entity, |e| e.entity);
        (best, LeaderReason::RotatedTie)
    } else if first.rank == Some(1) {
        (first.entity, LeaderReason::HighestCredits)
    } else {
        (first.entity, LeaderReason::CooldownSkip)
    };
    let fallbacks =
        eligible.iter().map(|e| e.entity).filter(|e| *e != primary).take(MAX_FALLBACKS).collect();
    Schedule {
        slot,
        epoch,
        tally_digest: digest,
        outcome: Outcome::Leader { primary, fallbacks, reason },
    }
}

fn render(schedule: &Schedule) -> String {
    match &schedule.outcome {
        Outcome::Leader { primary, fallbacks, reason } => {
            let fallbacks: Vec<String> = fallbacks.iter().map(label).collect();
            format!("{} {:?} {} [{}]", schedule.slot.0, reason, label(primary), fallbacks.join(" "))
        }
        Outcome::NoLeader(reason) => format!("{} NoLeader({reason:?})", schedule.slot.0),
    }
}

/// Runs `slots` through a [`SlotLog`], scheduling each from `tally_of(epoch)` and recording the
/// result `follow` picks; returns the rendered schedules.
fn simulate(
    params: &ConsensusParams,
    slots: std::ops::Range<u64>,
    tally_of: &dyn Fn(Epoch) -> Option<Tally>,
    follow: &mut dyn FnMut(&Schedule) -> SlotResult,
) -> (SlotLog, Vec<Schedule>, Vec<SlotResult>) {
    let mut log = SlotLog::default();
    let mut schedules = Vec::new();
    let mut results = Vec::new();
    let mut current: Option<Tally> = None;
    for s in slots {
        let slot = Slot(s);
        let epoch = params.time.epoch_of(slot);
        if current.as_ref().is_none_or(|t| t.epoch != epoch) {
            current = tally_of(epoch);
        }
        let schedule = log.schedule_slot(params, slot, current.as_ref()).unwrap().clone();
        assert_eq!(schedule, reference(params, slot, current.as_ref(), &log.recent(slot)));
        let result = follow(&schedule);
        assert!(matches!(log.record_result(slot, result.clone()), Ok(Recorded::Inserted)));
        schedules.push(schedule);
        results.push(result);
    }
    (log, schedules, results)
}

fn primary_wins(schedule: &Schedule) -> SlotResult {
    match &schedule.outcome {
        Outcome::Leader { primary, .. } => SlotResult::Success { winner: *primary },
        Outcome::NoLeader(reason) => SlotResult::NoLeader(*reason),
    }
}

fn check_run(credits: &[u64], slots: std::ops::Range<u64>, expect: Expect) {
    let params = testing::params();
    let tally_of = |e: Epoch| Some(tally(e.0, credits));
    let (_, schedules, _) = simulate(&params, slots, &tally_of, &mut primary_wins);
    let lines: Vec<String> = schedules.iter().map(render).collect();
    expect.assert_eq(&(lines.join("\n") + "\n"));
}

// ---------------------------------------------------------------------------------------------
// Fixed schedules: any change of the selection rule or of a hash input shows up here.

#[test]
fn distinct_credits_walk_down_the_ranking() {
    check_run(
        &[900, 800, 700, 600, 500, 400, 300, 200, 100, 90, 80, 70, 60, 50, 40, 30, 20, 10],
        EPOCH2..EPOCH2 + 19,
        expect![[r#"
            1440 HighestCredits n0 [n1 n2 n3 n4 n5]
            1441 CooldownSkip n1 [n2 n3 n4 n5 n6]
            1442 CooldownSkip n2 [n3 n4 n5 n6 n7]
            1443 CooldownSkip n3 [n4 n5 n6 n7 n8]
            1444 CooldownSkip n4 [n5 n6 n7 n8 n9]
            1445 CooldownSkip n5 [n6 n7 n8 n9 n10]
            1446 CooldownSkip n6 [n7 n8 n9 n10 n11]
            1447 CooldownSkip n7 [n8 n9 n10 n11 n12]
            1448 CooldownSkip n8 [n9 n10 n11 n12 n13]
            1449 CooldownSkip n9 [n10 n11 n12 n13 n14]
            1450 CooldownSkip n10 [n11 n12 n13 n14 n15]
            1451 CooldownSkip n11 [n12 n13 n14 n15 n16]
            1452 CooldownSkip n12 [n13 n14 n15 n16 n17]
            1453 CooldownSkip n13 [n14 n15 n16 n17]
            1454 CooldownSkip n14 [n15 n16 n17]
            1455 CooldownSkip n15 [n16 n17]
            1456 CooldownSkip n16 [n17]
            1457 HighestCredits n0 [n17]
            1458 CooldownSkip n1 [n17]
        "#]],
    );
}

#[test]
fn equal_top_credits_rotate_by_hash() {
    check_run(
        &[500, 500, 500, 500, 500, 400, 300],
        EPOCH2..EPOCH2 + 20,
        expect![[r#"
        1440 RotatedTie n2 [n0 n1 n3 n4 n5]
        1441 RotatedTie n0 [n1 n3 n4 n5 n6]
        1442 RotatedTie n1 [n3 n4 n5 n6]
        1443 RotatedTie n4 [n3 n5 n6]
        1444 CooldownSkip n3 [n5 n6]
        1445 CooldownSkip n5 [n6]
        1446 CooldownSkip n6 []
        1447 NoLeader(AllInCooldown)
        1448 NoLeader(AllInCooldown)
        1449 NoLeader(AllInCooldown)
        1450 NoLeader(AllInCooldown)
        1451 NoLeader(AllInCooldown)
        1452 NoLeader(AllInCooldown)
        1453 NoLeader(AllInCooldown)
        1454 NoLeader(AllInCooldown)
        1455 NoLeader(AllInCooldown)
        1456 NoLeader(AllInCooldown)
        1457 CooldownSkip n2 []
        1458 HighestCredits n0 []
        1459 CooldownSkip n1 []
    "#]],
    );
}

#[test]
fn a_tie_below_the_top_appears_when_the_top_cools() {
    check_run(
        &[900, 700, 700, 700, 100],
        EPOCH2..EPOCH2 + 6,
        expect![[r#"
        1440 HighestCredits n0 [n1 n2 n3 n4]
        1441 RotatedTie n3 [n1 n2 n4]
        1442 RotatedTie n2 [n1 n4]
        1443 CooldownSkip n1 [n4]
        1444 CooldownSkip n4 []
        1445 NoLeader(AllInCooldown)
    "#]],
    );
}

#[test]
fn schedules_across_an_epoch_boundary_change_key() {
    // Slots 2158..2162 straddle the start of epoch 3; the rotation key changes with the epoch.
    check_run(
        &[5, 5, 5, 5, 5, 5, 5, 5, 5, 5],
        2_158..2_162,
        expect![[r#"
        2158 RotatedTie n5 [n0 n1 n2 n3 n4]
        2159 RotatedTie n4 [n0 n1 n2 n3 n6]
        2160 RotatedTie n3 [n0 n1 n2 n6 n7]
        2161 RotatedTie n8 [n0 n1 n2 n6 n7]
    "#]],
    );
}

#[test]
fn rotation_hash_vector() {
    // Pins K_rot(e) and the hash input `u64 s ‖ entity_bytes` for a node and a pool entity.
    let params = testing::params();
    let key = params.rotation_key(Epoch(2));
    let hex = |i: usize| {
        let (bytes, len) = ent(i).to_bytes();
        keyed_hash(&key, &[&EPOCH2.to_be_bytes(), &bytes[..len]]).to_hex()
    };
    expect![[r#"
        e8dec2bbca764d784766496379a70cbda576072c62e48161ff5c844ee4f5fe92
        21d1a8571bddebcd4bca02d384d37d4c7a9455f44b880e5fdce7f019cb8d5a6b
    "#]]
    .assert_eq(&format!("{}\n{}\n", hex(0), hex(48)));
}

#[test]
fn no_leader_reasons() {
    let params = testing::params();
    let slot = Slot(EPOCH2 + 5);
    let reason = |tally: Option<&Tally>, recent: &[(Slot, SlotResult)]| {
        select(&params, slot, tally, recent).outcome
    };
    let pending = Outcome::NoLeader(NoLeaderReason::TallyPending);
    assert_eq!(reason(None, &[]), pending);
    // A tally of another epoch (the previous one, during catch-up) is not this epoch's tally.
    assert_eq!(reason(Some(&tally(1, &[10])), &[]), pending);
    assert_eq!(reason(Some(&tally(3, &[10])), &[]), pending);
    let empty = tally(2, &[]);
    assert_eq!(reason(Some(&empty), &[]), Outcome::NoLeader(NoLeaderReason::NoRankedEntity));
    let unranked = tally_with(2, &[], &[0, 1, 2]);
    assert_eq!(reason(Some(&unranked), &[]), Outcome::NoLeader(NoLeaderReason::NoRankedEntity));
    let two = tally_with(2, &[(0, 9), (1, 3)], &[2]);
    let recent = [won(EPOCH2 - 11, 1), won(EPOCH2 + 4, 0)];
    assert_eq!(reason(Some(&two), &recent), Outcome::NoLeader(NoLeaderReason::AllInCooldown));
    // Slot 1440 − 11 = 1429 leaves the cooldown window of slot 1446: entity 1 may lead again.
    let later = select(&params, Slot(EPOCH2 + 6), Some(&two), &recent);
    assert_eq!(
        later.outcome,
        Outcome::Leader { primary: ent(1), fallbacks: vec![], reason: LeaderReason::CooldownSkip }
    );
    // The digest is reported whenever the epoch's tally was used, also without a leader.
    assert_eq!(select(&params, slot, Some(&empty), &[]).tally_digest, Some(empty.digest));
    assert_eq!(select(&params, slot, None, &[]).tally_digest, None);
}

#[test]
fn misses_and_no_leader_results_do_not_cool() {
    let params = testing::params();
    let t = tally(2, &[9, 8]);
    let recent = [
        (Slot(EPOCH2), SlotResult::Missed),
        (Slot(EPOCH2 + 1), SlotResult::NoLeader(NoLeaderReason::TallyPending)),
    ];
    let schedule = select(&params, Slot(EPOCH2 + 2), Some(&t), &recent);
    assert_eq!(
        schedule.outcome,
        Outcome::Leader {
            primary: ent(0),
            fallbacks: vec![ent(1)],
            reason: LeaderReason::HighestCredits
        }
    );
    // A fallback winner cools like a primary winner.
    let attempt = FallbackAttempt::new(2).unwrap();
    let recent = [(Slot(EPOCH2), SlotResult::FallbackSuccess { winner: ent(0), attempt })];
    let schedule = select(&params, Slot(EPOCH2 + 2), Some(&t), &recent);
    assert_eq!(schedule.candidate(CandidateIndex::PRIMARY), Some(&ent(1)));
}

#[test]
fn fallbacks_are_capped_at_five_and_skip_the_primary() {
    let params = testing::params();
    let t = tally(2, &[9, 9, 9, 5, 4, 3, 2, 1]);
    let schedule = select(&params, Slot(EPOCH2), Some(&t), &[]);
    let Outcome::Leader { primary, fallbacks, reason } = &schedule.outcome else {
        panic!("no leader: {schedule:?}");
    };
    assert_eq!(*reason, LeaderReason::RotatedTie);
    assert_eq!(fallbacks.len(), MAX_FALLBACKS);
    assert!(!fallbacks.contains(primary));
    let expected: Vec<EntityId> = (0..8).map(ent).filter(|e| e != primary).take(5).collect();
    assert_eq!(*fallbacks, expected);
}

/// Pool entity number `i`: pools are cheap to make in bulk for large tallies.
fn pool(i: u64) -> EntityId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&i.to_be_bytes());
    EntityId::Pool(PoolId::from_bytes(bytes))
}

#[test]
fn large_tallies_match_the_reference() {
    // 3 000 pool entities, the first `tied` sharing the top.
    let params = testing::params();
    // 9 000 tied members take the parallel hashing path (tie runs of 4 096 or more).
    for (size, tied) in [
        (3_000u64, 0u64),
        (3_000, 1),
        (3_000, 2),
        (3_000, 7),
        (3_000, 1_500),
        (3_000, 3_000),
        (9_000, 9_000),
    ] {
        let entries: Vec<TallyEntry> = (0..size)
            .map(|i| {
                let credits = if i < tied { 10_000 } else { 10_000 - i };
                entry(pool(i), Some(u32::try_from(i + 1).unwrap()), credits)
            })
            .collect();
        let t = Tally { entries, ..tally(2, &[]) };
        for s in EPOCH2 + 16..EPOCH2 + 24 {
            // Cooling: the top few, some deep in the list, one entity that is not in the tally,
            // and a winner older than the window that must not count.
            let winners = [0, 1, 2, 5, 6, 700, 1_499, 1_500, 2_999, 9_999, s];
            let mut recent: Vec<(Slot, SlotResult)> = winners
                .iter()
                .zip(s - 16..)
                .map(|(&i, at)| (Slot(at), SlotResult::Success { winner: pool(i) }))
                .collect();
            recent.push((Slot(s - 17), SlotResult::Success { winner: pool(3) }));
            let slot = Slot(s);
            let schedule = select(&params, slot, Some(&t), &recent);
            assert_eq!(schedule, reference(&params, slot, Some(&t), &recent), "tied {tied}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The one-pass rotation (on all cores from 4 096 tied members) picks exactly what the plain
    /// reading of §8.1 picks, on tallies of up to 12 000 entities whose top run has any length,
    /// with the 16 previous winners anywhere: inside the run, below it, or not in the tally.
    #[test]
    fn long_tie_runs_match_the_reference(
        size in 1u64..12_000,
        tied_permille in 0u64..=1_000,
        group in 1u64..4,
        winners in proptest::collection::vec(0u64..13_000, 0..20),
        s in EPOCH2 + 16..EPOCH2 + 700,
    ) {
        let params = testing::params();
        let tied = size * tied_permille / 1_000;
        // The top `tied` share the highest credits; below them credits fall every `group`
        // entries, so shorter ties sit right under the top run.
        let entries: Vec<TallyEntry> = (0..size)
            .map(|i| {
                let credits = if i < tied { 1_000_000 } else { 999_999 - (i - tied) / group };
                entry(pool(i), Some(u32::try_from(i + 1).unwrap()), credits)
            })
            .collect();
        let t = Tally { entries, ..tally(2, &[]) };
        // Winners fill the slots before `s` newest first; beyond 16 they fall out of the window.
        let recent: Vec<(Slot, SlotResult)> = winners
            .iter()
            .zip((0..s).rev())
            .map(|(&i, at)| (Slot(at), SlotResult::Success { winner: pool(i) }))
            .collect();
        let slot = Slot(s);
        prop_assert_eq!(
            select(&params, slot, Some(&t), &recent),
            reference(&params, slot, Some(&t), &recent)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// P14–P17 as properties.

/// A tally of epoch 2 with up to 24 ranked entities drawn from the fixture set, credits from a
/// small range so that ties are common, plus a few unranked entities.
fn arb_tally() -> impl Strategy<Value = Tally> {
    proptest::sample::subsequence((0..64).collect::<Vec<usize>>(), 0..28)
        .prop_flat_map(|chosen| {
            let shuffled = Just(chosen).prop_shuffle();
            let credits = proptest::collection::vec(1u64..6, 28);
            let unranked = 0usize..4;
            (shuffled, credits, unranked)
        })
        .prop_map(|(chosen, mut credits, unranked)| {
            let unranked = unranked.min(chosen.len());
            let ranked_len = chosen.len() - unranked;
            credits.truncate(ranked_len);
            credits.sort_unstable_by(|a, b| b.cmp(a));
            let ranked: Vec<(usize, u64)> =
                chosen[..ranked_len].iter().copied().zip(credits).collect();
            tally_with(2, &ranked, &chosen[ranked_len..])
        })
}

fn arb_result() -> impl Strategy<Value = SlotResult> {
    prop_oneof![
        4 => (0usize..64).prop_map(|i| SlotResult::Success { winner: ent(i) }),
        2 => (0usize..64, 1u8..=3).prop_map(|(i, k)| SlotResult::FallbackSuccess {
            winner: ent(i),
            attempt: FallbackAttempt::new(k).unwrap_or(FallbackAttempt(1)),
        }),
        1 => Just(SlotResult::Missed),
        1 => Just(SlotResult::NoLeader(NoLeaderReason::AllInCooldown)),
    ]
}

/// Results for slots around `[s − 16, s)` (one per slot, some absent, some out of range).
fn arb_recent(slot: u64) -> impl Strategy<Value = Vec<(Slot, SlotResult)>> {
    proptest::collection::btree_map(slot - 20..slot + 3, arb_result(), 0..24)
        .prop_map(|map| map.into_iter().map(|(s, r)| (Slot(s), r)).collect())
}

fn arb_inputs() -> impl Strategy<Value = (u64, Tally, Vec<(Slot, SlotResult)>)> {
    (EPOCH2 + 20..EPOCH2 + 700).prop_flat_map(|s| (Just(s), arb_tally(), arb_recent(s)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// P14: same inputs give the identical schedule, in any order of the recent results and on
    /// any thread.
    #[test]
    fn p14_select_is_pure((s, tally, recent) in arb_inputs()) {
        let params = testing::params();
        let slot = Slot(s);
        let once = select(&params, slot, Some(&tally), &recent);
        prop_assert_eq!(&once, &select(&params, slot, Some(&tally), &recent));
        let mut reversed = recent.clone();
        reversed.reverse();
        prop_assert_eq!(&once, &select(&params, slot, Some(&tally), &reversed));
        let others: Vec<Schedule> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| select(&params, slot, Some(&tally), &recent)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for other in others {
            prop_assert_eq!(&once, &other);
        }
    }

    /// P15: the optimised walk equals the plain reading of §8.1, and its output has the shape
    /// the spec promises.
    #[test]
    fn p15_primary_and_fallbacks((s, tally, recent) in arb_inputs()) {
        let params = testing::params();
        let slot = Slot(s);
        let schedule = select(&params, slot, Some(&tally), &recent);
        prop_assert_eq!(&schedule, &reference(&params, slot, Some(&tally), &recent));
        let cooling: BTreeSet<EntityId> = recent
            .iter()
            .filter(|(at, _)| at.0 + COOLDOWN_SLOTS >= s && at.0 < s)
            .filter_map(|(_, r)| r.winner().copied())
            .collect();
        let eligible: Vec<&TallyEntry> =
            tally.ranked().iter().filter(|e| !cooling.contains(&e.entity)).collect();
        match &schedule.outcome {
            Outcome::Leader { primary, fallbacks, reason } => {
                prop_assert!(!cooling.contains(primary));
                prop_assert!(!fallbacks.contains(primary));
                prop_assert!(fallbacks.len() <= MAX_FALLBACKS);
                let distinct: BTreeSet<&EntityId> = fallbacks.iter().collect();
                prop_assert_eq!(distinct.len(), fallbacks.len());
                prop_assert!(fallbacks.iter().all(|f| !cooling.contains(f)));
                prop_assert_eq!(fallbacks.len(), (eligible.len() - 1).min(MAX_FALLBACKS));
                let top = eligible[0];
                let ties: Vec<&&TallyEntry> =
                    eligible.iter().filter(|e| e.credits == top.credits).collect();
                if ties.len() >= 2 {
                    prop_assert_eq!(*reason, LeaderReason::RotatedTie);
                    let key = params.rotation_key(Epoch(2));
                    let hash = |e: &EntityId| {
                        let (bytes, len) = e.to_bytes();
                        keyed_hash(&key, &[&s.to_be_bytes(), &bytes[..len]])
                    };
                    prop_assert!(ties.iter().any(|t| t.entity == *primary));
                    prop_assert!(ties.iter().all(|t| hash(primary) <= hash(&t.entity)));
                } else {
                    prop_assert_eq!(*primary, top.entity);
                    let expected = if top.rank == Some(1) {
                        LeaderReason::HighestCredits
                    } else {
                        LeaderReason::CooldownSkip
                    };
                    prop_assert_eq!(*reason, expected);
                }
            }
            Outcome::NoLeader(reason) => {
                let expected = if tally.ranked().is_empty() {
                    NoLeaderReason::NoRankedEntity
                } else {
                    NoLeaderReason::AllInCooldown
                };
                prop_assert_eq!(*reason, expected);
                prop_assert!(eligible.is_empty());
            }
        }
    }

    /// P16: whoever of the tried candidates wins each slot (or nobody), no entity wins twice
    /// within 16 slots.
    #[test]
    fn p16_no_entity_wins_twice_within_cooldown(
        tally in arb_tally(),
        picks in proptest::collection::vec(0u8..6, 120),
    ) {
        let params = testing::params();
        let mut picks = picks.into_iter();
        let mut follow = |schedule: &Schedule| {
            let pick = picks.next().unwrap_or(5);
            if let Outcome::NoLeader(reason) = schedule.outcome {
                return SlotResult::NoLeader(reason);
            }
            // Picks 4 and 5 stand for nobody claiming in time.
            let won = CandidateIndex::new(pick)
                .and_then(|k| schedule.candidate(k).map(|winner| (k, *winner)));
            match won {
                None => SlotResult::Missed,
                Some((k, winner)) => match FallbackAttempt::new(k.get()) {
                    Some(attempt) => SlotResult::FallbackSuccess { winner, attempt },
                    None => SlotResult::Success { winner },
                },
            }
        };
        let tally_of = |e: Epoch| (e.0 == 2).then(|| tally.clone());
        let (_, _, results) = simulate(&params, EPOCH2..EPOCH2 + 120, &tally_of, &mut follow);
        let mut last_win: BTreeMap<EntityId, usize> = BTreeMap::new();
        for (at, result) in results.iter().enumerate() {
            let Some(winner) = result.winner() else { continue };
            if let Some(before) = last_win.insert(*winner, at) {
                prop_assert!(at - before > 16, "{winner} won at {before} and {at}");
            }
        }
    }

    /// P17: a stored result or schedule is never overwritten; the same value again is a no-op.
    #[test]
    fn p17_log_never_overwrites(
        writes in proptest::collection::vec((0u64..24, arb_result()), 1..60),
    ) {
        let params = testing::params();
        let mut log = SlotLog::default();
        let mut first: BTreeMap<u64, SlotResult> = BTreeMap::new();
        for (s, result) in writes {
            let slot = Slot(s);
            let outcome = log.record_result(slot, result.clone());
            match first.get(&s) {
                None => {
                    prop_assert!(matches!(outcome, Ok(Recorded::Inserted)));
                    first.insert(s, result);
                }
                Some(stored) if *stored == result => {
                    prop_assert!(matches!(outcome, Ok(Recorded::AlreadyPresent)));
                }
                Some(_) => {
                    let conflict =
                        matches!(outcome, Err(Error::ResultConflict { slot: at }) if at == slot);
                    prop_assert!(conflict, "expected a conflict");
                }
            }
            prop_assert_eq!(log.result(slot), first.get(&s));
            // Schedules obey the same rule.
            let schedule = select(&params, slot, None, &[]);
            let again = log.insert_schedule(schedule.clone());
            prop_assert!(again.is_ok());
            let mut other = schedule;
            other.outcome = Outcome::NoLeader(NoLeaderReason::NoRankedEntity);
            let conflict = matches!(
                log.insert_schedule(other),
                Err(Error::ScheduleConflict { slot: at }) if at == slot
            );
            prop_assert!(conflict, "expected a schedule conflict");
            prop_assert_eq!(
                log.schedule(slot).map(|s| &s.outcome),
                Some(&Outcome::NoLeader(NoLeaderReason::TallyPending))
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// P16: fairness of the rotation among equal top credits.

/// Critical value of the chi-square distribution with 39 degrees of freedom at p = 0.001
/// (standard table: 72.055), in thousandths, so that the test stays in integers.
const CHI2_39_P001_MILLI: u128 = 72_055;

/// Whether counts over `k = counts.len()` equally likely categories pass the chi-square test at
/// the given critical value (in thousandths). With n draws and expectation n/k per category,
/// χ² = Σ (o − n/k)² / (n/k) = Σ (k·o − n)² / (k·n), so χ² < c ⇔ 1000·Σ (k·o − n)² < c·k·n.
fn chi_square_passes(counts: &[u64], critical_milli: u128) -> bool {
    let k = counts.len() as u128;
    let n: u128 = counts.iter().map(|&c| u128::from(c)).sum();
    let sum: u128 = counts.iter().map(|&o| (k * u128::from(o)).abs_diff(n).pow(2)).sum();
    1_000 * sum < critical_milli * k * n
}

#[test]
fn chi_square_rejects_a_biased_share() {
    // The test can fail: 17 of 40 entities sharing all slots (what an argmin by entity bytes
    // instead of by rotation hash would produce) is far outside the table value.
    let mut biased = vec![0u64; 40];
    for (i, count) in biased.iter_mut().enumerate().take(17) {
        *count = 10_000 / 17 + u64::from(i < 10_000 % 17);
    }
    assert!(!chi_square_passes(&biased, CHI2_39_P001_MILLI));
    // A mild bias of ±50 slots on a few entities is still far above the threshold.
    let mut mild = vec![250u64; 40];
    mild[..10].iter_mut().for_each(|c| *c += 50);
    mild[10..20].iter_mut().for_each(|c| *c -= 50);
    assert!(!chi_square_passes(&mild, CHI2_39_P001_MILLI));
    assert!(chi_square_passes(&[250; 40], CHI2_39_P001_MILLI));
}

fn wins_per_entity(entities: usize, slots: u64) -> (Vec<u64>, Vec<SlotResult>) {
    let params = testing::params();
    let credits = vec![1_000u64; entities];
    let tally_of = |e: Epoch| Some(tally(e.0, &credits));
    let range = EPOCH2..EPOCH2 + slots;
    let (_, _, results) = simulate(&params, range, &tally_of, &mut primary_wins);
    let mut counts = vec![0u64; entities];
    for result in &results {
        let winner = result.winner().unwrap();
        let i = ENTITIES.iter().position(|e| e == winner).unwrap();
        counts[i] += 1;
    }
    (counts, results)
}

#[test]
fn p16_seventeen_equal_entities_rotate_strictly() {
    // Over more than one epoch boundary (slot 2160), so the change of K_rot is covered too.
    let (counts, results) = wins_per_entity(17, 1_000);
    for window in results.windows(17) {
        let distinct: BTreeSet<&EntityId> = window.iter().filter_map(SlotResult::winner).collect();
        assert_eq!(distinct.len(), 17, "every entity leads once per 17 slots");
    }
    assert!(counts.iter().all(|&c| c == 1_000 / 17 || c == 1_000 / 17 + 1), "{counts:?}");
}

#[test]
fn p16_forty_equal_entities_share_fairly() {
    let (counts, results) = wins_per_entity(40, 10_000);
    assert_eq!(counts.iter().sum::<u64>(), 10_000);
    assert!(chi_square_passes(&counts, CHI2_39_P001_MILLI), "{counts:?}");
    for (at, result) in results.iter().enumerate() {
        let winner = result.winner();
        assert!(results[at + 1..].iter().take(16).all(|later| later.winner() != winner));
    }
}

// ---------------------------------------------------------------------------------------------
// Candidate windows, claims and results (§8.3).

#[test]
fn windows_and_result_time() {
    let params = testing::params();
    let slot = Slot(EPOCH2);
    let start = params.time.slot_start(slot).unwrap().0;
    let windows: Vec<(i64, i64)> = CandidateIndex::all()
        .map(|k| candidate_window(&params, slot, k).unwrap())
        .map(|w| (w.start.0 - start, w.end.0 - start))
        .collect();
    assert_eq!(windows, [(0, 5_000), (5_000, 10_000), (10_000, 15_000), (15_000, 20_000)]);
    assert_eq!(result_time(&params, slot).unwrap().0 - start, 30_000);
    assert_eq!(CandidateIndex::new(4), None);
    assert_eq!(FallbackAttempt::new(0), None);
    assert_eq!(FallbackAttempt::new(4), None);

    // A test network with 12 s slots scales every duration by 1/10.
    let time = TimeParams::test_network(UnixMillis(0), 12_000, 8).unwrap();
    let fast = ConsensusParams::test_network("fast", time);
    let w = candidate_window(&fast, Slot(3), CandidateIndex::LAST).unwrap();
    assert_eq!((w.start.0, w.end.0), (36_000 + 1_500, 36_000 + 2_000));
    assert_eq!(result_time(&fast, Slot(3)).unwrap().0, 36_000 + 3_000);
    assert!(w.contains(UnixMillis(37_500)) && !w.contains(UnixMillis(38_000)));

    assert!(matches!(result_time(&params, Slot(u64::MAX)), Err(Error::Time(_))));
}

struct ClaimCase {
    params: ConsensusParams,
    schedule: Schedule,
    members: MembershipTimeline,
    start: i64,
}

impl ClaimCase {
    /// Entities 0..7 ranked by distinct credits; entity 2 is pool 0 (index 48) with node 2 as a
    /// member, so the schedule reads: primary n0, fallbacks n1 p0 n3 n4 n5.
    fn new() -> Self {
        let params = testing::params();
        let t = tally_with(2, &[(0, 70), (1, 60), (48, 50), (3, 40), (4, 30), (5, 20)], &[]);
        let slot = Slot(EPOCH2 + 3);
        let schedule = select(&params, slot, Some(&t), &[]);
        let mut members = MembershipTimeline::new();
        let EntityId::Pool(pool) = ent(48) else { unreachable!() };
        assert!(members.add_seat(node(2), Seat { pool, from: Slot(0), to: None }));
        let start = params.time.slot_start(slot).unwrap().0;
        ClaimCase { params, schedule, members, start }
    }

    fn claim(&self, node_index: u64, k: u8, entity: usize, at_ms: i64) -> Claim {
        Claim {
            node: node(node_index),
            slot: self.schedule.slot,
            candidate_index: k,
            entity: ent(entity),
            tally_digest: self.schedule.tally_digest.unwrap(),
            ts: UnixMillis(self.start + at_ms),
        }
    }

    fn verdict(&self, claim: &Claim) -> ClaimVerdict {
        claim_verdict(&self.params, &self.schedule, &self.members, claim)
    }

    fn decide(&self, claims: &[Claim]) -> SlotResult {
        decide_result(&self.params, &self.schedule, &self.members, claims)
    }
}

fn node(i: u64) -> NodeId {
    testing::key(i).node_id()
}

#[test]
fn claim_verdicts() {
    let case = ClaimCase::new();
    let valid =
        |k| ClaimVerdict::Valid { index: CandidateIndex::new(k).unwrap(), divergent_tally: false };
    let invalid = ClaimVerdict::Invalid;
    assert_eq!(case.verdict(&case.claim(0, 0, 0, 0)), valid(0));
    assert_eq!(case.verdict(&case.claim(0, 0, 0, 4_999)), valid(0));
    assert_eq!(case.verdict(&case.claim(0, 0, 0, 5_000)), invalid(ClaimReject::OutsideWindow));
    assert_eq!(case.verdict(&case.claim(0, 0, 0, -1)), invalid(ClaimReject::OutsideWindow));
    assert_eq!(case.verdict(&case.claim(1, 1, 1, 5_000)), valid(1));
    assert_eq!(case.verdict(&case.claim(1, 1, 1, 4_999)), invalid(ClaimReject::OutsideWindow));
    // A pool member claims for its pool; the node's own entity is the pool, not the node.
    assert_eq!(case.verdict(&case.claim(2, 2, 48, 12_000)), valid(2));
    assert_eq!(case.verdict(&case.claim(2, 2, 2, 12_000)), invalid(ClaimReject::WrongEntity));
    assert_eq!(case.verdict(&case.claim(7, 2, 48, 12_000)), invalid(ClaimReject::NotMember));
    assert_eq!(case.verdict(&case.claim(9, 0, 0, 10)), invalid(ClaimReject::NotMember));
    assert_eq!(case.verdict(&case.claim(1, 0, 1, 10)), invalid(ClaimReject::WrongEntity));
    // Fallbacks 4 and 5 are listed but never tried.
    assert_eq!(case.verdict(&case.claim(4, 4, 4, 20_000)), invalid(ClaimReject::NoSuchCandidate));
    assert_eq!(case.verdict(&case.claim(0, 255, 0, 1)), invalid(ClaimReject::NoSuchCandidate));
    let mut other_slot = case.claim(0, 0, 0, 0);
    other_slot.slot = Slot(other_slot.slot.0 + 1);
    assert_eq!(case.verdict(&other_slot), invalid(ClaimReject::WrongSlot));
    let mut divergent = case.claim(3, 3, 3, 15_000);
    divergent.tally_digest = Digest::ZERO;
    assert_eq!(
        case.verdict(&divergent),
        ClaimVerdict::Valid { index: CandidateIndex::LAST, divergent_tally: true }
    );
}

#[test]
fn results_from_claims() {
    let case = ClaimCase::new();
    assert_eq!(case.decide(&[]), SlotResult::Missed);
    let primary = case.claim(0, 0, 0, 100);
    let late_primary = case.claim(0, 0, 0, 6_000);
    let second = case.claim(1, 1, 1, 7_000);
    let pool = case.claim(2, 2, 48, 11_000);
    let outsider = case.claim(9, 0, 0, 100);
    assert_eq!(
        case.decide(&[second.clone(), primary.clone()]),
        SlotResult::Success { winner: ent(0) }
    );
    let attempt = |k| FallbackAttempt::new(k).unwrap();
    assert_eq!(
        case.decide(&[pool.clone(), late_primary.clone(), second.clone(), outsider.clone()]),
        SlotResult::FallbackSuccess { winner: ent(1), attempt: attempt(1) }
    );
    assert_eq!(
        case.decide(&[pool, late_primary.clone()]),
        SlotResult::FallbackSuccess { winner: ent(48), attempt: attempt(2) }
    );
    assert_eq!(case.decide(&[late_primary, outsider]), SlotResult::Missed);

    let mut no_leader = case.schedule.clone();
    no_leader.outcome = Outcome::NoLeader(NoLeaderReason::AllInCooldown);
    assert_eq!(
        decide_result(&case.params, &no_leader, &NoPools, &[primary]),
        SlotResult::NoLeader(NoLeaderReason::AllInCooldown)
    );
}

// ---------------------------------------------------------------------------------------------
// The slot log.

#[test]
fn log_keeps_a_bounded_window() {
    let mut log = SlotLog::new(3);
    assert_eq!(log.horizon(), Slot(0));
    for s in 0..100 {
        assert!(matches!(log.record_result(Slot(s), SlotResult::Missed), Ok(Recorded::Inserted)));
    }
    // `retain` is raised to the cooldown span, so exactly the last 16 slots are kept.
    assert_eq!(log.horizon(), Slot(84));
    assert_eq!(log.recent(Slot(100)).len(), 16);
    assert_eq!(log.result(Slot(83)), None);
    assert_eq!(log.result(Slot(84)), Some(&SlotResult::Missed));
    assert!(matches!(
        log.record_result(Slot(83), SlotResult::Missed),
        Err(Error::SlotPruned { slot: Slot(83), horizon: Slot(84) })
    ));
    // The cooldown view is [s − 16, s): it excludes s itself and slot s − 17.
    let recent = log.recent(Slot(99));
    assert_eq!(recent.first().map(|(s, _)| *s), Some(Slot(84)));
    assert_eq!(recent.last().map(|(s, _)| *s), Some(Slot(98)));
    assert_eq!(SlotLog::default().retain, SlotLog::DEFAULT_RETAIN);
}

#[test]
fn schedule_slot_stores_once() {
    let params = testing::params();
    let t = tally(2, &[3, 2, 1]);
    let mut log = SlotLog::default();
    let slot = Slot(EPOCH2);
    let first = log.schedule_slot(&params, slot, Some(&t)).unwrap().clone();
    let won = log.record_result(slot, SlotResult::Success { winner: ent(0) });
    assert!(matches!(won, Ok(Recorded::Inserted)));
    // Scheduling again with the same inputs finds the identical stored schedule.
    assert_eq!(log.schedule_slot(&params, slot, Some(&t)).unwrap(), &first);
    // A different tally revision yielding a different schedule conflicts and changes nothing.
    let revised = tally_with(2, &[(2, 3), (1, 2), (0, 1)], &[]);
    assert!(matches!(
        log.schedule_slot(&params, slot, Some(&revised)),
        Err(Error::ScheduleConflict { slot: at }) if at == slot
    ));
    assert_eq!(log.schedule(slot), Some(&first));
    let conflict = log.record_result(slot, SlotResult::Missed);
    assert!(matches!(conflict, Err(Error::ResultConflict { slot: at }) if at == slot));
    assert_eq!(log.result(slot), Some(&SlotResult::Success { winner: ent(0) }));
}

proptest! {
    /// The integer form of a rotation hash orders exactly as its bytes, also when the two
    /// digests share a long prefix.
    #[test]
    fn hash_order_is_byte_order(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), shared in 0usize..=32) {
        let mut b = b;
        b[..shared].copy_from_slice(&a[..shared]);
        let order = HashOrder::of(&Digest::from_bytes(a)).cmp(&HashOrder::of(&Digest::from_bytes(b)));
        prop_assert_eq!(order, a.cmp(&b));
    }
}
