//! Tests of postings and the ledger (I8, I9).

use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt};
use proptest::prelude::*;

use super::*;

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

#[test]
fn account_names_round_trip() {
    let node = testing::node(1);
    for account in [
        Account::Node(node),
        Account::Treasury,
        Account::Rewards,
        Account::Sessions,
        Account::InFlight,
        Account::Chain,
    ] {
        assert_eq!(Account::parse(&account.name()), Some(account));
    }
    assert_eq!(Account::parse("node:xyz"), None);
    assert_eq!(Account::parse("bank"), None);
}

#[test]
fn postings_must_balance() {
    let node = testing::node(1);
    let entry = |account, amount| Entry { account, amount };
    let bad = |entries: Vec<Entry>| Posting::new("k".into(), PostingKind::EpochReward, entries);
    assert!(bad(vec![entry(Account::Rewards, -1)]).is_err());
    assert!(bad(vec![entry(Account::Rewards, -1), entry(Account::Node(node), 2)]).is_err());
    assert!(bad(vec![entry(Account::Rewards, 0), entry(Account::Node(node), 0)]).is_err());
    assert!(bad(vec![entry(Account::Rewards, -1), entry(Account::Rewards, 1)]).is_err());
    assert!(
        Posting::new(
            String::new(),
            PostingKind::EpochReward,
            vec![entry(Account::Rewards, -1), entry(Account::Node(node), 1)]
        )
        .is_err()
    );
    assert!(
        Posting::new(
            "a b".into(),
            PostingKind::EpochReward,
            vec![entry(Account::Rewards, -1), entry(Account::Node(node), 1)]
        )
        .is_err()
    );
    assert!(bad(vec![entry(Account::Rewards, -1), entry(Account::Node(node), 1)]).is_ok());
}

#[test]
fn session_revenue_commission() {
    let node = testing::node(1);
    let posting = Posting::session_revenue("s1", node, MicroUsdt(10)).unwrap();
    // 5 % of 0.000010 = 0.0000005, rounded half up to 0.000001.
    assert_eq!(posting.amount_for(&Account::Treasury), 1);
    assert_eq!(posting.amount_for(&Account::Node(node)), 9);
    assert_eq!(posting.amount_for(&Account::Sessions), -10);
    let tiny = Posting::session_revenue("s2", node, MicroUsdt(9)).unwrap();
    assert_eq!(tiny.amount_for(&Account::Treasury), 0);
    assert_eq!(tiny.key(), "session:s2");
}

#[test]
fn payout_lifecycle_in_the_ledger() {
    let node = testing::node(1);
    let mut ledger = Ledger::new();
    let reward = Posting::epoch_reward(Epoch(3), &[(node, usdt(25))]).unwrap();
    assert_eq!(ledger.apply(&reward).unwrap(), Applied::Posted);
    assert_eq!(ledger.apply(&reward).unwrap(), Applied::AlreadyPosted);
    assert_eq!(
        ledger.node_balance(&node),
        NodeBalance { earned: 25_000_000, reserved: 0, paid: 0, available: 25_000_000 }
    );
    // Overdraft refused whole.
    let too_much = Posting::payout_reserve("p0", node, usdt(26)).unwrap();
    assert!(matches!(ledger.apply(&too_much), Err(Error::Overdraft { .. })));
    assert_eq!(ledger.balance(&Account::InFlight), 0);
    // Reserve, then settle: net to chain, fee to treasury.
    ledger.apply(&Posting::payout_reserve("p1", node, usdt(10)).unwrap()).unwrap();
    assert_eq!(ledger.node_balance(&node).reserved, 10_000_000);
    ledger
        .apply(&Posting::payout_settle("p1", MicroUsdt(9_900_000), MicroUsdt(100_000)).unwrap())
        .unwrap();
    assert_eq!(
        ledger.node_balance(&node),
        NodeBalance { earned: 25_000_000, reserved: 0, paid: 10_000_000, available: 15_000_000 }
    );
    assert_eq!(ledger.balance(&Account::Chain), 9_900_000);
    assert_eq!(ledger.balance(&Account::Treasury), 100_000);
    // Reserve, then release: back to available.
    ledger.apply(&Posting::payout_reserve("p2", node, usdt(10)).unwrap()).unwrap();
    ledger.apply(&Posting::payout_release("p2", node, usdt(10)).unwrap()).unwrap();
    assert_eq!(ledger.node_balance(&node).available, 15_000_000);
    // A conflicting reuse of a key is refused.
    let conflict = Posting::epoch_reward(Epoch(3), &[(node, usdt(26))]).unwrap();
    assert!(matches!(ledger.apply(&conflict), Err(Error::PostingConflict { .. })));
    ledger.audit().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Reward(u64, Vec<(u8, u64)>),
    Reserve(u8, u8, u64),
    Release(u8),
    Settle(u8),
    Session(u8, u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..5, proptest::collection::vec((0u8..4, 0u64..50_000_000), 1..4))
            .prop_map(|(e, s)| Op::Reward(e, s)),
        (0u8..6, 0u8..4, 1u64..40_000_000).prop_map(|(p, n, g)| Op::Reserve(p, n, g)),
        (0u8..6).prop_map(Op::Release),
        (0u8..6).prop_map(Op::Settle),
        (0u8..5, 0u8..4, 1u64..10_000_000).prop_map(|(s, n, r)| Op::Session(s, n, r)),
    ]
}

proptest! {
    // I8 and I9: postings sum to zero, balances sum to zero, replays credit nothing twice, and
    // earned == available + reserved + paid for every node after every step; available never
    // goes negative.
    #[test]
    fn ledger_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let nodes: Vec<_> = (0..4).map(testing::node).collect();
        let mut ledger = Ledger::new();
        let mut reserved: std::collections::BTreeMap<u8, (u8, u64)> = Default::default();
        for op in ops {
            let posting = match &op {
                Op::Reward(e, shares) => {
                    let shares: Vec<_> = shares.iter().map(|(n, s)| (nodes[*n as usize], MicroUsdt(*s))).collect();
                    Posting::epoch_reward(Epoch(*e), &shares)
                }
                Op::Reserve(p, n, g) => Posting::payout_reserve(&format!("p{p}"), nodes[*n as usize], MicroUsdt(*g)),
                Op::Release(p) => match reserved.get(p) {
                    Some((n, g)) => Posting::payout_release(&format!("p{p}"), nodes[*n as usize], MicroUsdt(*g)),
                    None => continue,
                },
                Op::Settle(p) => match reserved.get(p) {
                    Some((_, g)) => {
                        let fee = crate::payout::fee_for(MicroUsdt(*g)).min(MicroUsdt(*g / 2));
                        Posting::payout_settle(&format!("p{p}"), MicroUsdt(*g - fee.0), fee)
                    }
                    None => continue,
                },
                Op::Session(s, n, r) => Posting::session_revenue(&format!("s{s}"), nodes[*n as usize], MicroUsdt(*r)),
            };
            let Ok(posting) = posting else { continue };
            // A release after a settle (or the reverse) would free the reservation twice; the
            // payout state machine prevents it, so the model does too.
            if let Op::Release(p) | Op::Settle(p) = &op {
                let other = if matches!(op, Op::Release(_)) { "payout_settle" } else { "payout_release" };
                if ledger.posting(&format!("{other}:p{p}")).is_some() { continue; }
            }
            let before: Vec<_> = nodes.iter().map(|n| ledger.node_balance(n)).collect();
            match ledger.apply(&posting) {
                Ok(Applied::Posted) => {
                    if let Op::Reserve(p, n, g) = op { reserved.insert(p, (n, g)); }
                }
                Ok(Applied::AlreadyPosted) | Err(_) => {
                    let after: Vec<_> = nodes.iter().map(|n| ledger.node_balance(n)).collect();
                    prop_assert_eq!(before, after, "a replay or refusal changed balances");
                }
            }
            prop_assert!(ledger.audit().is_ok(), "{:?}", ledger.audit());
            for node in &nodes {
                let b = ledger.node_balance(node);
                prop_assert_eq!(b.earned, b.available + b.reserved + b.paid, "{:?}", b);
                prop_assert!(b.available >= 0);
            }
        }
    }
}
