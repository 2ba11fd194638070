//! Tests of the uptime view: definitions table and P18.

use lucid_core::{EntityId, NodeId};
use proptest::prelude::*;

use super::*;
use crate::rolling::RollingTally;
use crate::tally::{CountedProof, NoPools};
use crate::testing::{self, BEACON, counted, relay, small_params};

/// Runs a node that beacons in the slots where `pattern` is true (from `registered` on) and
/// relays `credit_every`-th beacon slot, returning the view at every slot in
/// `registered..=pattern.len()`.
fn views(pattern: &[bool], registered: u64, credit_every: u64) -> Vec<(u64, UptimeView)> {
    let params = small_params();
    let node: NodeId = testing::node(0);
    let entity = EntityId::Node(node);
    let mut rolling = RollingTally::new(&params, Slot(0));
    let mut ring = BeaconRing::new(params.time.window_slots());
    let mut out = Vec::new();
    for t in 0..=pattern.len() as u64 {
        if t >= registered {
            let view = uptime_view(
                &params.time,
                Slot(registered),
                Slot(t),
                &ring,
                &rolling.entity_window(&entity),
            );
            out.push((t, view));
        }
        let beacon = t >= registered && pattern.get(t as usize).copied().unwrap_or(false);
        let mut proofs: Vec<CountedProof> = Vec::new();
        if beacon {
            proofs.push(counted(node, t, BEACON));
            ring.record(Slot(t));
            if credit_every > 0 && t % credit_every == 0 {
                proofs.push(counted(node, t, relay(1)));
            }
        }
        rolling.slide(&NoPools, proofs);
    }
    out
}

#[test]
fn definitions_table() {
    // Always on from slot 0, credits every 4th slot: at slot 100 on the small network
    // (window 56, 8 slots per epoch). Next tally is epoch 13, window [48, 104): needs 12 beacon
    // slots; 52 done, 4 left: slack 44.
    let all = vec![true; 100];
    let (_, v) = *views(&all, 0, 4).last().unwrap();
    assert_eq!((v.expected_slots, v.observed_slots, v.uptime_ppm), (56, 56, 1_000_000));
    assert_eq!((v.consecutive_missed, v.status), (0, UptimeStatus::Active));
    assert_eq!((v.next_tally_slack, v.rolling_density_ppm), (44, 1_000_000));
    assert_eq!(v.eligibility, Eligibility::Ok);

    // Same without credits: ineligible.
    let (_, v) = *views(&all, 0, 0).last().unwrap();
    assert_eq!(v.eligibility, Eligibility::Ineligible);

    // Last beacon at 94, now 100: 5 missed slots: suspended.
    let mut gap = vec![true; 95];
    gap.extend([false; 5]);
    let (_, v) = *views(&gap, 0, 1).last().unwrap();
    assert_eq!((v.consecutive_missed, v.status), (5, UptimeStatus::Suspended));
    assert_eq!(v.observed_slots, 51);

    // Four missed slots: not suspended yet; uptime 52/56 = 928 571 ppm: active.
    let (_, v) = views(&gap, 0, 1)[99];
    assert_eq!((v.consecutive_missed, v.status, v.uptime_ppm), (4, UptimeStatus::Active, 928_571));

    // Every other slot: 500 000 ppm: inactive; rolling density fine, slack large.
    let half: Vec<bool> = (0..100).map(|s| s % 2 == 0).collect();
    let (_, v) = views(&half, 0, 1)[99];
    assert_eq!((v.uptime_ppm, v.status), (500_000, UptimeStatus::Inactive));

    // Registered at 90, never beaconed, now 100: 10 expected, 0 observed, 10 missed.
    let none = vec![false; 100];
    let (_, v) = *views(&none, 90, 1).last().unwrap();
    assert_eq!((v.expected_slots, v.uptime_ppm, v.consecutive_missed), (10, 0, 10));
    assert_eq!((v.status, v.eligibility), (UptimeStatus::Suspended, Eligibility::Ineligible));

    // Just registered: nothing expected yet.
    let (_, v) = views(&none, 100, 1)[0];
    assert_eq!((v.expected_slots, v.uptime_ppm, v.status), (0, 1_000_000, UptimeStatus::Active));

    // Every fifth slot: 11 beacons in the rolling window [44, 100) (196 428 ppm), 10 done of
    // window [48, 104), 4 left, 12 needed: slack 2: at risk, not yet ineligible.
    let sparse: Vec<bool> = (0..100).map(|s| s % 5 == 0).collect();
    let (_, v) = *views(&sparse, 0, 1).last().unwrap();
    assert_eq!((v.rolling_density_ppm, v.next_tally_slack), (196_428, 2));
    assert_eq!(v.eligibility, Eligibility::AtRisk);
}

#[test]
fn beacon_ring_spans_one_window() {
    let mut ring = BeaconRing::new(10);
    assert!(ring.record(Slot(5)));
    assert!(!ring.record(Slot(5)));
    assert!(ring.record(Slot(12)));
    assert!(ring.contains(Slot(5)));
    assert!(!ring.record(Slot(2)), "older than the span");
    assert!(ring.record(Slot(16)));
    assert!(!ring.contains(Slot(5)), "left the span");
    assert!(!ring.contains(Slot(15)), "15 shares a bit with 5, which was cleared");
    assert_eq!(ring.count_in(SlotRange { start: Slot(0), end: Slot(20) }), 2);
    assert!(ring.record(Slot(100)));
    assert_eq!(ring.count_in(SlotRange { start: Slot(0), end: Slot(200) }), 1);
    assert_eq!(ring.last(), Some(Slot(100)));
    assert_eq!(beacons_needed(56), 12);
    assert_eq!(beacons_needed(5_040), 1_008);
    assert_eq!(beacons_needed(0), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// P18: uptime_ppm ∈ [0, 10^6]; fields, status and eligibility match their definitions;
    /// slack decreases by at most one per missed slot and never over a slot with a beacon.
    #[test]
    fn p18_uptime_view(
        pattern in prop::collection::vec(prop::bool::weighted(0.7), 40..200),
        registered in 0u64..40,
        credit_every in 0u64..6,
    ) {
        let params = small_params();
        let w = params.time.window_slots();
        let spe = params.time.slots_per_epoch();
        let beacon = |s: u64| s >= registered && pattern.get(s as usize).copied().unwrap_or(false);
        let all = views(&pattern, registered, credit_every);
        for (t, v) in &all {
            let t = *t;
            prop_assert!(v.uptime_ppm <= 1_000_000);
            let from = registered.max(t.saturating_sub(w));
            prop_assert_eq!(v.expected_slots, t - from);
            prop_assert_eq!(v.observed_slots, (from..t).filter(|&s| beacon(s)).count() as u64);
            let last = (registered..t).rev().find(|&s| beacon(s));
            prop_assert_eq!(v.consecutive_missed, last.map_or(t - registered, |l| t - 1 - l));
            let status = if v.consecutive_missed >= SUSPEND_AFTER_MISSED {
                UptimeStatus::Suspended
            } else if v.uptime_ppm < INACTIVE_BELOW_PPM {
                UptimeStatus::Inactive
            } else {
                UptimeStatus::Active
            };
            prop_assert_eq!(v.status, status);
            let end = (t / spe + 1) * spe;
            let start = end.saturating_sub(w);
            let done = (start..t).filter(|&s| beacon(s)).count() as i64;
            let need = ((end - start) * 2).div_ceil(10) as i64;
            prop_assert_eq!(v.next_tally_slack, done + (end - t) as i64 - need);
            let rolling = (t.saturating_sub(w)..t).filter(|&s| beacon(s)).count() as u64;
            let rolling_len = t - t.saturating_sub(w);
            prop_assert_eq!(v.rolling_density_ppm, crate::tally::density_ppm(rolling, rolling_len));
            let has_credits = credit_every > 0
                && (t.saturating_sub(w)..t).any(|s| beacon(s) && s % credit_every == 0);
            let eligibility = if v.next_tally_slack < 0 || !has_credits {
                Eligibility::Ineligible
            } else if v.next_tally_slack <= spe as i64 || v.rolling_density_ppm < D_WARN_PPM {
                Eligibility::AtRisk
            } else {
                Eligibility::Ok
            };
            prop_assert_eq!(v.eligibility, eligibility);
        }
        for pair in all.windows(2) {
            let ((t, a), (_, b)) = (pair[0], pair[1]);
            if beacon(t) {
                prop_assert!(b.next_tally_slack >= a.next_tally_slack, "slot {}", t);
            } else {
                prop_assert!(b.next_tally_slack >= a.next_tally_slack - 1, "slot {}", t);
            }
        }
    }
}
