//! Tests of the epoch reward distribution under paused tokio time with the in-memory stores:
//! posted once the tally is settled and never before, exactly once across ticks, failures and
//! restarts (even with another budget after the restart), pool shares split across members.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lucid_consensus::records::{MemoryRecordStore, RecordStore};
use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_consensus::testing;
use lucid_core::{
    Clock, Digest, EntityId, Epoch, ErrorKind, MicroUsdt, NodeId, PoolId, Slot, SlotRange,
    UnixMillis,
};
use lucid_payouts::ledger::{Account, Applied, Posting};
use lucid_payouts::store::{LedgerStore, MemoryPayoutStore, PayoutStore};

use super::*;
use crate::services::metrics::ServiceMetrics;
use crate::services::tests::paused_runtime;
use crate::services::tests::run_for;
use crate::services::time::TokioClock;

/// A tally entry with `credits` of relay work; ranked entries are dense, unranked ones below the
/// density line.
pub(crate) fn entry(
    entity: EntityId,
    rank: Option<u32>,
    credits: u64,
    contributions: Vec<(NodeId, u64)>,
) -> TallyEntry {
    TallyEntry {
        entity,
        rank,
        credits,
        relay: credits,
        storage: 0,
        validation: 0,
        beacon_slots: 4_000,
        density_ppm: if rank.is_some() { 900_000 } else { 100_000 },
        contributions,
    }
}

fn nodes() -> (NodeId, NodeId, NodeId) {
    (testing::node(1), testing::node(2), testing::node(3))
}

/// Epoch `epoch`'s tally: node 1 alone (credits 40) and a pool of nodes 2 and 3 (credits 60 =
/// 45 + 15), both ranked; node 4 unranked.
fn tally(epoch: u64) -> Tally {
    let (a, b, c) = nodes();
    let pool = PoolId::from_bytes([7; 16]);
    Tally {
        epoch: Epoch(epoch),
        window: SlotRange { start: Slot(0), end: Slot(720) },
        revision: 0,
        entries: vec![
            entry(EntityId::Pool(pool), Some(1), 60, vec![(b, 45), (c, 15)]),
            entry(EntityId::Node(a), Some(2), 40, vec![]),
            entry(EntityId::Node(testing::node(4)), None, 0, vec![]),
        ],
        digest: Digest::from_bytes([u8::try_from(epoch).unwrap(); 32]),
    }
}

/// A ledger whose next `fail` applications fail as an unreachable database would.
struct FlakyLedger {
    inner: Arc<MemoryPayoutStore>,
    fail: AtomicU32,
    applied: AtomicU32,
}

#[async_trait::async_trait]
impl LedgerStore for FlakyLedger {
    async fn apply_posting(
        &self,
        posting: &Posting,
        now: UnixMillis,
    ) -> Result<Applied, lucid_payouts::Error> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Err(lucid_payouts::Error::StoreUnavailable {
                action: "applying a posting",
                message: "injected failure".into(),
            });
        }
        self.applied.fetch_add(1, Ordering::SeqCst);
        self.inner.apply_posting(posting, now).await
    }
    async fn posting(&self, key: &str) -> Result<Option<Posting>, lucid_payouts::Error> {
        self.inner.posting(key).await
    }
    async fn account_balance(&self, account: &Account) -> Result<i64, lucid_payouts::Error> {
        self.inner.account_balance(account).await
    }
    async fn nodes_with_available(
        &self,
        minimum: MicroUsdt,
    ) -> Result<Vec<(NodeId, MicroUsdt)>, lucid_payouts::Error> {
        self.inner.nodes_with_available(minimum).await
    }
    async fn node_credits(
        &self,
        node: &NodeId,
        after: Option<UnixMillis>,
        until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<lucid_payouts::store::NodeCredit>, lucid_payouts::Error> {
        self.inner.node_credits(node, after, until, limit).await
    }
    async fn node_ledger(
        &self,
        node: &NodeId,
        before: Option<&lucid_payouts::store::LedgerPosition>,
        limit: usize,
    ) -> Result<Vec<lucid_payouts::store::NodeLedgerLine>, lucid_payouts::Error> {
        self.inner.node_ledger(node, before, limit).await
    }
}

fn params() -> lucid_consensus::ConsensusParams {
    testing::params()
}

/// The start of `slot` of the test network.
fn at(slot: u64) -> UnixMillis {
    params().time.slot_start(Slot(slot)).unwrap()
}

const SLOT: Duration = Duration::from_secs(120);

#[test]
fn a_settled_epoch_is_posted_exactly_once_across_ticks_failures_and_restarts() {
    paused_runtime().block_on(async {
        let (a, b, c) = nodes();
        let records = Arc::new(MemoryRecordStore::new());
        let store = Arc::new(MemoryPayoutStore::new());
        let ledger = Arc::new(FlakyLedger {
            inner: Arc::clone(&store),
            fail: AtomicU32::new(2),
            applied: AtomicU32::new(0),
        });
        // Epoch 3 has just begun; the tally of epoch 2 is stored but not settled yet.
        let clock = Arc::new(TokioClock::new(at(3 * 720).saturating_add_ms(5)));
        records.put_tally(&tally(2), clock.wall()).await.unwrap();
        let metrics = Arc::new(ServiceMetrics::new());
        let deps = RewardDeps {
            params: params(),
            records: records.clone(),
            ledger: ledger.clone(),
            budget: MicroUsdt(1_000_000),
        };
        run_for(EpochRewardService::new(deps.clone()), &clock, &metrics, 3 * SLOT).await;
        assert!(store.ledger().unwrap().posting("epoch_reward:2").is_none(), "paid unsettled");
        assert_eq!(ledger.applied.load(Ordering::SeqCst), 0);

        // Settled: the next ticks post it, after two failed attempts that are retried.
        records.settle_tally(Epoch(2), clock.wall()).await.unwrap();
        run_for(EpochRewardService::new(deps.clone()), &clock, &metrics, 10 * SLOT).await;
        let loop_metrics = metrics.loop_metrics("epoch_rewards");
        assert_eq!(loop_metrics.error.load(Ordering::SeqCst), 2, "two injected failures");
        assert_eq!(ledger.applied.load(Ordering::SeqCst), 1, "posted once, then only checked");
        let balance = |node| {
            let store = Arc::clone(&store);
            async move { store.balance(&node).await.unwrap() }
        };
        assert_eq!(balance(a).await.earned, 400_000);
        assert_eq!(balance(b).await.earned, 450_000);
        assert_eq!(balance(c).await.earned, 150_000);
        assert_eq!(store.ledger().unwrap().balance(&Account::Rewards), -1_000_000);

        // A restart (a new service over the same stores) with another budget credits nothing.
        let changed = RewardDeps { budget: MicroUsdt(5_000_000), ..deps.clone() };
        run_for(EpochRewardService::new(changed), &clock, &metrics, 5 * SLOT).await;
        assert_eq!(ledger.applied.load(Ordering::SeqCst), 1);
        assert_eq!(balance(a).await.earned, 400_000);
        assert_eq!(loop_metrics.error.load(Ordering::SeqCst), 2, "no conflict on restart");
        store.audit().unwrap();
        assert_eq!(store.ledger().unwrap().postings().count(), 1);
    });
}

#[test]
fn the_next_epoch_is_posted_when_its_tally_settles_and_older_gaps_do_not_block_it() {
    paused_runtime().block_on(async {
        let records = Arc::new(MemoryRecordStore::new());
        let store = Arc::new(MemoryPayoutStore::new());
        // Epoch 4 was never computed here (the node was down); epoch 5 is settled.
        let clock = Arc::new(TokioClock::new(at(6 * 720).saturating_add_ms(1)));
        records.put_tally(&tally(5), clock.wall()).await.unwrap();
        records.settle_tally(Epoch(5), clock.wall()).await.unwrap();
        let metrics = Arc::new(ServiceMetrics::new());
        let deps = RewardDeps {
            params: params(),
            records: records.clone(),
            ledger: store.clone(),
            budget: MicroUsdt(10_000_000),
        };
        let mut service = EpochRewardService::new(deps);
        service.catch_up(clock.wall()).await.unwrap();
        assert!(store.ledger().unwrap().posting("epoch_reward:5").is_some());
        // Epochs 0..=4 may still be settled by the tally keeper's catch-up: they hold the mark.
        assert_eq!(service.final_through, None);
        // Epoch 6 settles at the start of epoch 7.
        records.put_tally(&tally(6), at(6 * 720 + 2)).await.unwrap();
        let waiting = service.distribute(Epoch(6)).await.unwrap();
        assert_eq!(waiting, EpochRewardOutcome::Waiting);
        records.settle_tally(Epoch(6), at(7 * 720)).await.unwrap();
        service.catch_up(at(7 * 720).saturating_add_ms(1)).await.unwrap();
        assert!(store.ledger().unwrap().posting("epoch_reward:6").is_some());
        assert_eq!(service.final_through, None);
        // Epoch 4, which ended while the node was down, is settled by the catch-up later: it is
        // paid then, and once every epoch of the look-back is final the mark moves.
        records.put_tally(&tally(4), at(7 * 720 + 3)).await.unwrap();
        records.settle_tally(Epoch(4), at(7 * 720 + 3)).await.unwrap();
        service.catch_up(at(7 * 720 + 3)).await.unwrap();
        assert!(store.ledger().unwrap().posting("epoch_reward:4").is_some());
        for epoch in 0..4 {
            records.put_tally(&tally(epoch), at(7 * 720 + 4)).await.unwrap();
            records.settle_tally(Epoch(epoch), at(7 * 720 + 4)).await.unwrap();
        }
        service.catch_up(at(7 * 720 + 4)).await.unwrap();
        assert_eq!(service.final_through, Some(Epoch(6)));
        let (a, _, _) = nodes();
        assert_eq!(store.balance(&a).await.unwrap().earned, 7 * 4_000_000);
        store.audit().unwrap();
        let _ = clock;
        let _ = metrics;
    });
}

#[test]
fn no_budget_and_no_ranked_entity_post_nothing_and_say_why() {
    paused_runtime().block_on(async {
        let records = Arc::new(MemoryRecordStore::new());
        let store = Arc::new(MemoryPayoutStore::new());
        let mut unranked = tally(1);
        unranked.epoch = Epoch(2);
        for entry in &mut unranked.entries {
            entry.rank = None;
            entry.density_ppm = 100_000;
        }
        records.put_tally(&tally(1), at(720)).await.unwrap();
        records.settle_tally(Epoch(1), at(1440)).await.unwrap();
        records.put_tally(&unranked, at(1442)).await.unwrap();
        records.settle_tally(Epoch(2), at(2160)).await.unwrap();
        let deps = |budget| RewardDeps {
            params: params(),
            records: records.clone(),
            ledger: store.clone(),
            budget: MicroUsdt(budget),
        };
        let zero = EpochRewardService::new(deps(0));
        assert_eq!(
            zero.distribute(Epoch(1)).await.unwrap(),
            EpochRewardOutcome::NothingToPay(NoReward::NoBudget)
        );
        let some = EpochRewardService::new(deps(1_000));
        assert_eq!(
            some.distribute(Epoch(2)).await.unwrap(),
            EpochRewardOutcome::NothingToPay(NoReward::NoRankedEntities)
        );
        assert_eq!(store.ledger().unwrap().postings().count(), 0);
        // An epoch with a budget and ranked entities after all: posted, and a replay is a no-op.
        assert_eq!(some.distribute(Epoch(1)).await.unwrap(), EpochRewardOutcome::Posted);
        assert_eq!(some.distribute(Epoch(1)).await.unwrap(), EpochRewardOutcome::AlreadyPosted);
        assert_eq!(store.ledger().unwrap().balance(&Account::Rewards), -1_000);
        // A store failure surfaces as a retryable service error.
        let failing = EpochRewardService::new(RewardDeps {
            ledger: Arc::new(FlakyLedger {
                inner: store.clone(),
                fail: AtomicU32::new(1),
                applied: AtomicU32::new(0),
            }),
            ..deps(1_000)
        });
        records.put_tally(&tally(3), at(3 * 720)).await.unwrap();
        records.settle_tally(Epoch(3), at(4 * 720)).await.unwrap();
        let error = failing.distribute(Epoch(3)).await.unwrap_err();
        assert_eq!(lucid_core::HasKind::kind(&error), ErrorKind::StoreUnavailable);
        assert_eq!(failing.distribute(Epoch(3)).await.unwrap(), EpochRewardOutcome::Posted);
    });
}
