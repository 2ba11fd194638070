//! Tests of the epoch reward distribution and its stubs.

use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_consensus::testing;
use lucid_core::{Digest, EntityId, Epoch, MicroUsdt, PoolId, Slot, SlotRange};
use proptest::prelude::*;

use super::*;
use crate::ledger::{Account, Ledger};

fn entry(
    entity: EntityId,
    rank: Option<u32>,
    credits: u64,
    density_ppm: u32,
    contributions: Vec<(lucid_core::NodeId, u64)>,
) -> TallyEntry {
    TallyEntry {
        entity,
        rank,
        credits,
        relay: credits,
        storage: 0,
        validation: 0,
        beacon_slots: 0,
        density_ppm,
        contributions,
    }
}

fn tally(entries: Vec<TallyEntry>) -> Tally {
    Tally {
        epoch: Epoch(9),
        window: SlotRange { start: Slot(1440), end: Slot(6480) },
        revision: 0,
        entries,
        digest: Digest::from_bytes([1; 32]),
    }
}

#[test]
fn budget_split_across_nodes_and_pool_members() {
    let (a, b, c, d) = (testing::node(1), testing::node(2), testing::node(3), testing::node(4));
    let pool = PoolId::from_bytes([5; 16]);
    let t = tally(vec![
        entry(EntityId::Pool(pool), Some(1), 60, 900_000, vec![(b, 40), (c, 20), (d, 0)]),
        entry(EntityId::Node(a), Some(2), 40, 900_000, vec![]),
        entry(EntityId::Node(d), None, 7, 100_000, vec![]),
    ]);
    let reward = epoch_reward(&t, MicroUsdt(1_000_000)).unwrap();
    let posting = reward.posting.clone().unwrap();
    assert_eq!(posting.key(), "epoch_reward:9");
    assert_eq!(posting.amount_for(&Account::Rewards), -1_000_000);
    assert_eq!(posting.amount_for(&Account::Node(a)), 400_000);
    assert_eq!(posting.amount_for(&Account::Node(b)), 400_000);
    assert_eq!(posting.amount_for(&Account::Node(c)), 200_000);
    assert_eq!(posting.amount_for(&Account::Node(d)), 0);
    let stub_d: Vec<_> = reward.stubs.iter().filter(|s| s.node == d).collect();
    assert_eq!(
        stub_d.len(),
        2,
        "d appears as a zero-credit pool member and as its own unranked entity"
    );
    assert_eq!(reward.stubs_of(&d).iter().collect::<Vec<_>>(), stub_d);
    assert_eq!(reward.stubs_of(&a).len(), 1);
    assert!(reward.stubs_of(&testing::node(9)).is_empty(), "not in the tally");
    assert!(
        stub_d
            .iter()
            .any(|s| s.unranked == Some(Unranked::DensityBelowMinimum { density_ppm: 100_000 }))
    );
    let stub_b = reward.stubs.iter().find(|s| s.node == b).unwrap();
    assert_eq!(stub_b.pool, Some(PoolPart { pool, pool_credits: 60, contribution: 40 }));
    assert_eq!(
        (stub_b.entity_reward, stub_b.node_reward),
        (MicroUsdt(600_000), MicroUsdt(400_000))
    );
    let mut ledger = Ledger::new();
    ledger.apply(&posting).unwrap();
    ledger.audit().unwrap();
}

#[test]
fn nothing_paid_says_why() {
    let a = testing::node(1);
    let ranked = tally(vec![entry(EntityId::Node(a), Some(1), 5, 900_000, vec![])]);
    let none = epoch_reward(&ranked, MicroUsdt::ZERO).unwrap();
    assert_eq!((none.posting, none.no_reward), (None, Some(NoReward::NoBudget)));
    assert_eq!(none.stubs[0].no_reward, Some(NoReward::NoBudget));
    let unranked = tally(vec![entry(EntityId::Node(a), None, 0, 900_000, vec![])]);
    let none = epoch_reward(&unranked, MicroUsdt(5)).unwrap();
    assert_eq!(none.no_reward, Some(NoReward::NoRankedEntities));
    assert_eq!(none.stubs[0].unranked, Some(Unranked::NoCredits));
}

#[test]
fn a_pool_share_without_contributors_is_an_error_not_a_loss() {
    let pool = PoolId::from_bytes([5; 16]);
    let t = tally(vec![entry(EntityId::Pool(pool), Some(1), 60, 900_000, vec![])]);
    assert!(matches!(epoch_reward(&t, MicroUsdt(100)), Err(Error::PoolSplit { .. })));
}

proptest! {
    // I7/I8 at the epoch level: the posting distributes exactly the budget and balances, and
    // replaying it credits nothing twice.
    #[test]
    fn reward_distributes_exactly_the_budget(budget in 1u64..1_000_000_000_000, credits in proptest::collection::vec((1u64..1_000_000, any::<bool>()), 1..30)) {
        let mut entries = Vec::new();
        let mut rank = 0u32;
        let mut sorted = credits.clone();
        sorted.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (i, (c, is_pool)) in sorted.iter().enumerate() {
            rank += 1;
            if *is_pool {
                let members = vec![(testing::node(100 + i as u64 * 2), c / 2 + 1), (testing::node(101 + i as u64 * 2), c - c / 2)];
                let credits: u64 = members.iter().map(|m| m.1).sum();
                entries.push(entry(EntityId::Pool(PoolId::from_bytes([i as u8; 16])), Some(rank), credits, 500_000, members));
            } else {
                entries.push(entry(EntityId::Node(testing::node(i as u64)), Some(rank), *c, 500_000, vec![]));
            }
        }
        // Ranks must follow credits; recompute the order after the pool adjustment.
        entries.sort_by(|a, b| b.credits.cmp(&a.credits).then(a.entity.cmp(&b.entity)));
        for (i, e) in entries.iter_mut().enumerate() { e.rank = Some(i as u32 + 1); }
        let t = tally(entries);
        let reward = epoch_reward(&t, MicroUsdt(budget)).unwrap();
        let posting = reward.posting.unwrap();
        prop_assert_eq!(-posting.amount_for(&Account::Rewards), budget as i64);
        let paid: i64 = reward.stubs.iter().map(|s| s.node_reward.0 as i64).sum();
        prop_assert_eq!(paid, budget as i64);
        let mut ledger = Ledger::new();
        ledger.apply(&posting).unwrap();
        ledger.apply(&posting).unwrap();
        prop_assert_eq!(ledger.balance(&Account::Rewards), -(budget as i64));
        prop_assert!(ledger.audit().is_ok());
    }
}
