//! Tests of the automatic sweep: who is planned and for how much, and that replaying a period
//! (sequentially or in any interleaving with new credits) creates nothing twice.

use std::collections::BTreeSet;

use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};
use proptest::prelude::*;

use super::*;
use crate::ledger::Posting;
use crate::store::MemoryPayoutStore;

const GENESIS: UnixMillis = UnixMillis(1_700_000_000_000);
const HOUR: u64 = 3_600_000;

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

fn address(index: u8) -> ChainAddress {
    let mut address = [index; 21];
    address[0] = 0x41;
    address
}

fn settings() -> SweepSettings {
    SweepSettings {
        genesis: GENESIS,
        interval_ms: HOUR,
        limits: PayoutLimits::default(),
        max_retries: 3,
    }
}

fn at(hours: u64, ms: u64) -> UnixMillis {
    UnixMillis(GENESIS.0 + i64::try_from(hours * HOUR + ms).unwrap())
}

#[test]
fn plans_only_nodes_over_the_minimum_with_an_address_capped_at_the_maximum() {
    let (a, b, c, d) = (testing::node(1), testing::node(2), testing::node(3), testing::node(4));
    let candidates = [
        SweepCandidate { node: d, available: usdt(25_000), payout_address: Some(address(4)) },
        SweepCandidate { node: a, available: usdt(10), payout_address: Some(address(1)) },
        SweepCandidate {
            node: b,
            available: MicroUsdt(9_999_999),
            payout_address: Some(address(2)),
        },
        SweepCandidate { node: c, available: usdt(500), payout_address: None },
    ];
    let plans = plan_sweep(&candidates, &settings(), at(5, 1_234));
    let summary: Vec<(NodeId, Option<MicroUsdt>, &str)> =
        plans.iter().map(|p| (p.node, p.requested, p.idempotency_key.as_str())).collect();
    let mut expected = vec![(a, Some(usdt(10)), "auto:5"), (d, Some(usdt(10_000)), "auto:5")];
    expected.sort_by_key(|(node, _, _)| *node);
    assert_eq!(summary, expected);
    assert!(plans.iter().all(|p| p.origin == Origin::Auto && p.now == at(5, 1_234)));
    // A raised minimum raises the bar.
    let raised =
        SweepSettings { limits: PayoutLimits::new(usdt(20), usdt(10_000)).unwrap(), ..settings() };
    let plans = plan_sweep(&candidates, &raised, at(5, 0));
    assert_eq!(plans.iter().map(|p| p.node).collect::<Vec<_>>(), vec![d]);
}

#[test]
fn replaying_a_period_creates_nothing_twice() {
    let store = MemoryPayoutStore::new();
    let (a, b) = (testing::node(1), testing::node(2));
    store
        .post(&Posting::epoch_reward(Epoch(1), &[(a, usdt(25_000)), (b, usdt(40))]).unwrap())
        .unwrap();
    let addresses = |node: &NodeId| (*node == a || *node == b).then(|| address(9));
    let first = run(sweep(&store, &store, &addresses, &settings(), at(7, 10))).unwrap();
    assert_eq!(first.key, "auto:7");
    assert_eq!(first.created.len(), 2);
    // Same period, later, even with a's remaining 15 000 USDT and a new credit for b.
    store.post(&Posting::epoch_reward(Epoch(2), &[(b, usdt(30))]).unwrap()).unwrap();
    for ms in [11, 1_000, HOUR - 1] {
        let again = run(sweep(&store, &store, &addresses, &settings(), at(7, ms))).unwrap();
        assert!(again.created.is_empty(), "{again:?}");
        let mut swept = again.already_swept.clone();
        swept.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(swept, both);
    }
    assert_eq!(run(store.list(None)).unwrap().len(), 2);
    // The next period pays what is left.
    let next = run(sweep(&store, &store, &addresses, &settings(), at(8, 0))).unwrap();
    assert_eq!((next.key.as_str(), next.created.len()), ("auto:8", 2));
    let balance = run(store.balance(&a)).unwrap();
    assert_eq!((balance.reserved, balance.available), (20_000_000_000, 5_000_000_000));
    store.audit().unwrap();
}

#[test]
fn nodes_without_an_address_wait() {
    let store = MemoryPayoutStore::new();
    let a = testing::node(1);
    store.post(&Posting::epoch_reward(Epoch(1), &[(a, usdt(50))]).unwrap()).unwrap();
    let report = run(sweep(&store, &store, &|_| None, &settings(), at(1, 0))).unwrap();
    assert_eq!((report.created.len(), report.without_address), (0, vec![a]));
    assert!(run(store.list(None)).unwrap().is_empty());
}

proptest! {
    /// Any sequence of credits and sweeps at any times creates at most one payout per node and
    /// period, never pays below the minimum or above the maximum, and keeps
    /// `earned == available + reserved + paid`.
    #[test]
    fn at_most_one_auto_payout_per_node_and_period(
        events in proptest::collection::vec((0..3u64, 0..4u64, 0..HOUR, 1..30_000u64, any::<bool>()), 1..30)
    ) {
        let store = MemoryPayoutStore::new();
        let nodes: Vec<NodeId> = (1..=3).map(testing::node).collect();
        let addresses = |_: &NodeId| Some(address(3));
        // Amounts start at 1: an all-zero reward is not a posting (the reward service never
        // posts one), so a zero credit would test the generator, not the sweep.
        for (index, (node, hour, ms, amount, credit)) in events.iter().enumerate() {
            if *credit {
                let node = nodes[usize::try_from(*node).unwrap()];
                let posting =
                    Posting::epoch_reward(Epoch(index as u64), &[(node, usdt(*amount))]).unwrap();
                store.post(&posting).unwrap();
            } else {
                run(sweep(&store, &store, &addresses, &settings(), at(*hour, *ms))).unwrap();
            }
        }
        let payouts = run(store.list(None)).unwrap();
        let keys: BTreeSet<(NodeId, String)> =
            payouts.iter().map(|p| (p.node, p.idempotency_key.clone())).collect();
        prop_assert_eq!(keys.len(), payouts.len());
        for payout in &payouts {
            prop_assert!(payout.amounts.gross >= usdt(10) && payout.amounts.gross <= usdt(10_000));
        }
        for node in &nodes {
            let b = run(store.balance(node)).unwrap();
            prop_assert_eq!(b.earned, b.available + b.reserved + b.paid);
        }
        store.audit().unwrap();
    }
}
