//! Tests of the peer table: bounds, highest seq, liveness, scores and bans, and the rate limit,
//! with proptests for the spec invariants.

use lucid_core::NodeKey;
use proptest::prelude::*;

use super::*;

const T0: UnixMillis = UnixMillis(1_800_000_000_000);

fn node(index: u64) -> NodeId {
    lucid_consensus::testing::key(index).node_id()
}

fn record(index: u64, seq: u64) -> Registration {
    Registration {
        node: node(index),
        seq,
        ts: T0,
        payout_address: [0x41; 21],
        endpoint: Endpoint::Direct(format!("127.0.0.1:{}", 1000 + index)),
        capabilities: 0,
        storage_capacity_bytes: 0,
    }
}

fn own() -> NodeId {
    NodeKey::from_seed(&[0xee; 32]).node_id()
}

fn table(max_known: usize, max_connected: usize, budget: u32) -> PeerTable {
    PeerTable::new(own(), PeerLimits { max_known, max_connected, max_messages_per_minute: budget })
}

fn at(ms: i64) -> UnixMillis {
    UnixMillis(T0.0 + ms)
}

#[test]
fn own_record_is_never_entered_and_lower_seq_never_replaces() {
    let mut table = table(10, 2, 10);
    let mut mine = record(0, 1);
    mine.node = own();
    assert_eq!(table.offer(&mine, T0), Offered::Own);
    assert_eq!(table.offer(&record(1, 5), T0), Offered::Added);
    assert_eq!(table.offer(&record(1, 4), T0), Offered::Stale);
    assert_eq!(table.offer(&record(1, 5), T0), Offered::Stale);
    assert_eq!(table.offer(&record(1, 6), T0), Offered::Updated);
    assert_eq!(table.registration(&node(1)).unwrap().seq, 6);
}

#[test]
fn a_full_table_evicts_the_least_recently_seen_idle_entry_and_refuses_when_none_is_idle() {
    let mut table = table(2, 2, 10);
    table.offer(&record(1, 1), at(0));
    table.offer(&record(2, 1), at(1));
    table.seen(&node(1), at(5), Some(3));
    assert_eq!(table.offer(&record(3, 1), at(6)), Offered::Added);
    assert!(table.contains(&node(1)) && !table.contains(&node(2)));
    assert!(table.connect(&node(1), at(7)) && table.connect(&node(3), at(7)));
    assert_eq!(table.offer(&record(4, 1), at(8)), Offered::Full);
    assert_eq!(table.len(), 2);
}

#[test]
fn connections_are_bounded_and_bans_disconnect() {
    let mut table = table(10, 2, 10);
    for index in 1..=3 {
        table.offer(&record(index, 1), T0);
    }
    assert!(table.connect(&node(1), T0));
    assert!(table.connect(&node(2), T0));
    assert!(!table.connect(&node(3), T0));
    assert_eq!(table.connected_peers(T0), vec![node(1), node(2)].into_iter().collect::<Vec<_>>());
    assert!(!table.report(&node(1), PeerFault::ReplayedCall, T0));
    assert!(table.report(&node(1), PeerFault::ReplayedCall, T0));
    assert_eq!(table.bans_total(), 1);
    assert!(!table.connected_peers(T0).contains(&node(1)));
    assert!(!table.connect(&node(1), T0));
    assert!(table.connect(&node(3), T0));
    assert!(!table.admit(&node(1), 1, T0), "a banned peer's messages are refused");
    let counts = table.state_counts(T0);
    assert_eq!(counts[&PeerState::Banned], 1);
    assert_eq!(counts[&PeerState::Connected], 2);
}

#[test]
fn scores_add_by_fault_and_decay_one_point_per_minute() {
    let mut table = table(10, 2, 10);
    table.offer(&record(1, 1), T0);
    table.report(&node(1), PeerFault::InvalidMessage, T0);
    table.report(&node(1), PeerFault::BadSignature, T0);
    assert_eq!(table.score(&node(1), T0), Some(21));
    assert_eq!(table.score(&node(1), at(59_999)), Some(21));
    assert_eq!(table.score(&node(1), at(60_000)), Some(20));
    assert_eq!(table.score(&node(1), at(90_000)), Some(20));
    assert_eq!(table.score(&node(1), at(120_000)), Some(19));
    assert_eq!(table.score(&node(1), at(60 * 60_000)), Some(0));
    // Decay does not bank credit while the score is zero.
    table.report(&node(1), PeerFault::InvalidMessage, at(60 * 60_000 + 1));
    assert_eq!(table.score(&node(1), at(60 * 60_000 + 59_000)), Some(1));
    assert_eq!(table.score(&node(99), T0), None);
    assert!(!table.report(&node(99), PeerFault::ReplayedCall, T0));
}

#[test]
fn unseen_entries_are_evicted_after_a_day_but_bans_are_not_forgotten() {
    let mut table = table(10, 2, 10);
    table.offer(&record(1, 1), T0);
    table.offer(&record(2, 1), T0);
    table.offer(&record(3, 1), T0);
    table.seen(&node(2), at(1000), None);
    let ban_start = at(EVICT_UNSEEN_MS - 60_000);
    for _ in 0..5 {
        table.report(&node(3), PeerFault::BadSignature, ban_start);
    }
    assert!(table.is_banned(&node(3), ban_start));
    assert!(table.evict_stale(at(EVICT_UNSEEN_MS - 1)).is_empty());
    // Node 3 is as stale as node 1 but banned: it stays, so forgetting never lifts its ban.
    assert_eq!(table.evict_stale(at(EVICT_UNSEEN_MS)), vec![node(1)]);
    assert_eq!(table.evict_stale(at(EVICT_UNSEEN_MS + 1000)), vec![node(2)]);
    assert!(table.is_banned(&node(3), at(EVICT_UNSEEN_MS + 1000)));
    assert_eq!(table.evict_stale(at(ban_start.0 - T0.0 + BAN_MS)), vec![node(3)]);
    assert!(table.is_empty());
}

#[test]
fn dial_candidates_skip_connected_and_banned_peers() {
    let mut table = table(10, 4, 10);
    for index in 1..=4 {
        table.offer(&record(index, 1), T0);
    }
    table.connect(&node(1), T0);
    for _ in 0..2 {
        table.report(&node(2), PeerFault::ReplayedCall, T0);
    }
    table.seen(&node(3), at(5), None);
    assert_eq!(table.dial_candidates(T0, 10), vec![node(4), node(3)]);
    assert_eq!(table.dial_candidates(T0, 1), vec![node(4)]);
}

/// One step of a random workload against the table.
#[derive(Clone, Debug)]
enum Step {
    Offer(u64, u64),
    Connect(u64),
    Disconnect(u64),
    Report(u64, u8),
    Seen(u64),
    Evict,
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..40, 1u64..5).prop_map(|(n, s)| Step::Offer(n, s)),
        (0u64..40).prop_map(Step::Connect),
        (0u64..40).prop_map(Step::Disconnect),
        (0u64..40, 0u8..3).prop_map(|(n, f)| Step::Report(n, f)),
        (0u64..40).prop_map(Step::Seen),
        Just(Step::Evict),
        (0i64..(2 * EVICT_UNSEEN_MS)).prop_map(Step::Advance),
    ]
}

fn fault(index: u8) -> PeerFault {
    match index {
        0 => PeerFault::InvalidMessage,
        1 => PeerFault::BadSignature,
        _ => PeerFault::ReplayedCall,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bounds_are_never_exceeded(steps in prop::collection::vec(step(), 1..200), known in 1usize..12, connected in 0usize..5) {
        let mut table = table(known, connected, 100);
        let mut now = T0;
        for step in steps {
            match step {
                Step::Offer(n, seq) => { table.offer(&record(n, seq), now); }
                Step::Connect(n) => { table.connect(&node(n), now); }
                Step::Disconnect(n) => table.disconnect(&node(n)),
                Step::Report(n, f) => { table.report(&node(n), fault(f), now); }
                Step::Seen(n) => table.seen(&node(n), now, None),
                Step::Evict => { table.evict_stale(now); }
                Step::Advance(ms) => now = UnixMillis(now.0 + ms),
            }
            prop_assert!(table.len() <= known);
            prop_assert!(table.connected_count() <= connected);
            prop_assert!(table.connected_peers(now).len() <= connected);
        }
    }

    #[test]
    fn the_highest_seq_wins_in_any_order(seqs in prop::collection::vec(1u64..1000, 1..30)) {
        let mut table = table(10, 2, 10);
        for seq in &seqs {
            table.offer(&record(1, *seq), T0);
        }
        prop_assert_eq!(table.registration(&node(1)).map(|r| r.seq), seqs.iter().copied().max());
    }

    #[test]
    fn a_ban_lasts_exactly_one_hour(faults in prop::collection::vec(0u8..3, 1..40), gap in 0i64..10_000) {
        let mut table = table(10, 2, 10);
        table.offer(&record(1, 1), T0);
        let mut now = T0;
        let mut banned_at = None;
        for f in faults {
            if table.report(&node(1), fault(f), now) {
                banned_at = Some(now);
                break;
            }
            now = UnixMillis(now.0 + gap);
        }
        if let Some(start) = banned_at {
            prop_assert!(table.is_banned(&node(1), start));
            prop_assert!(table.is_banned(&node(1), UnixMillis(start.0 + BAN_MS - 1)));
            prop_assert!(!table.is_banned(&node(1), UnixMillis(start.0 + BAN_MS)));
            prop_assert_eq!(table.score(&node(1), UnixMillis(start.0 + BAN_MS)), Some(0));
        } else {
            prop_assert!(!table.is_banned(&node(1), now));
        }
    }

    /// Whatever the arrival times and sizes, no 60-second window holds more admitted messages
    /// than the budget.
    #[test]
    fn the_rate_limiter_never_admits_more_than_its_budget_in_any_window(
        budget in 1u32..50,
        requests in prop::collection::vec((0i64..3_000, 1u64..8), 1..300),
    ) {
        let mut table = table(10, 2, budget);
        table.offer(&record(1, 1), T0);
        let mut now = T0.0;
        let mut admitted: Vec<(i64, u64)> = Vec::new();
        for (delta, count) in requests {
            now += delta;
            if table.admit(&node(1), count, UnixMillis(now)) {
                admitted.push((now, count));
            }
        }
        for (start, _) in &admitted {
            let in_window: u64 = admitted
                .iter()
                .filter(|(t, _)| *t >= *start && *t < start + 60_000)
                .map(|(_, n)| n)
                .sum();
            prop_assert!(in_window <= u64::from(budget), "{in_window} > {budget}");
        }
        // And the limiter is not a wall: after a quiet minute a request within budget passes.
        prop_assert!(table.admit(&node(1), 1, UnixMillis(now + 62_000)));
    }
}
