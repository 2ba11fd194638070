//! Tests of the payout loops under paused tokio time with the in-memory stores: the sweep at
//! period boundaries and its single flight, the processor paying over the fake chain of
//! `lucid-payouts/testing` until every payout is confirmed, a restarted processor freeing its
//! own claims, and the ledger-only rail leaving payouts pending.

use std::sync::Arc;
use std::time::Duration;

use lucid_consensus::registration::Registration;
use lucid_consensus::store::{MemoryProofStore, ProofStore, StoredRegistration};
use lucid_consensus::testing;
use lucid_core::message::Message as _;
use lucid_core::{Clock, Epoch, MicroUsdt, NodeKey, UnixMillis};
use lucid_payouts::ledger::Posting;
use lucid_payouts::payout::{DailyCaps, PayoutLimits, PayoutStatus};
use lucid_payouts::processor::{Processor, ProcessorConfig};
use lucid_payouts::rail::{
    BroadcastOutcome, ChainStatus, ExpectedTransfer, LedgerOnlyRail, PayoutRail, Preflight,
    RailKind, SignedTransfer, TransferIntent, Txid,
};
use lucid_payouts::store::{ClaimRequest, MemoryPayoutStore, PayoutStore};
use lucid_payouts::sweep::SweepSettings;
use lucid_payouts::testing::FakeChain;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::services::metrics::ServiceMetrics;
use crate::services::runner::run_service;
use crate::services::tests::paused_runtime;
use crate::services::tests::run_for;
use crate::services::time::TokioClock;

const HOUR_MS: u64 = 3_600_000;

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

fn genesis() -> UnixMillis {
    testing::params().time.genesis()
}

/// Stores the registration (with its payout address) of each key.
pub(crate) async fn register(proofs: &MemoryProofStore, keys: &[NodeKey]) {
    let params = testing::params();
    for key in keys {
        let message = testing::signed_registration(&params, key, 1);
        let (_network, registration) = Registration::from_signed_bytes(message.bytes()).unwrap();
        let digest = message.digest();
        let stored = StoredRegistration { registration, message, digest };
        proofs.insert_registration(&stored).await.unwrap();
    }
}

pub(crate) fn credit(store: &MemoryPayoutStore, epoch: u64, shares: &[(u64, u64)]) {
    let shares: Vec<_> =
        shares.iter().map(|(n, amount)| (testing::node(*n), usdt(*amount))).collect();
    store.post(&Posting::epoch_reward(Epoch(epoch), &shares).unwrap()).unwrap();
}

fn settings() -> SweepSettings {
    SweepSettings {
        genesis: genesis(),
        interval_ms: HOUR_MS,
        limits: PayoutLimits::default(),
        max_retries: 3,
    }
}

struct World {
    proofs: Arc<MemoryProofStore>,
    store: Arc<MemoryPayoutStore>,
    health: Arc<PayoutHealth>,
    sweeper: Arc<Sweeper>,
}

async fn world() -> World {
    let proofs = Arc::new(MemoryProofStore::new());
    // Nodes 1 and 2 are registered; node 3 has a balance but no payout address.
    register(&proofs, &[testing::key(1), testing::key(2)]).await;
    let store = Arc::new(MemoryPayoutStore::new());
    credit(&store, 1, &[(1, 25), (2, 9), (3, 40)]);
    let health = Arc::new(PayoutHealth::new("fake"));
    let sweeper = Arc::new(Sweeper::new(
        proofs.clone(),
        store.clone(),
        store.clone(),
        settings(),
        Arc::clone(&health),
    ));
    World { proofs, store, health, sweeper }
}

async fn payouts(store: &MemoryPayoutStore) -> Vec<lucid_payouts::store::PayoutRecord> {
    store.list(None).await.unwrap()
}

#[test]
fn period_boundaries_count_from_genesis() {
    let g = UnixMillis(1_000);
    assert_eq!(next_period_start(g, 100, UnixMillis(1_000)), UnixMillis(1_100));
    assert_eq!(next_period_start(g, 100, UnixMillis(1_099)), UnixMillis(1_100));
    assert_eq!(next_period_start(g, 100, UnixMillis(1_100)), UnixMillis(1_200));
    // Before genesis the grid continues backwards.
    assert_eq!(next_period_start(g, 100, UnixMillis(0)), UnixMillis(100));
    assert_eq!(next_period_start(g, 100, UnixMillis(-1)), UnixMillis(0));
    assert_eq!(next_period_start(g, 0, UnixMillis(5)), UnixMillis(6));
    assert_eq!(next_period_start(g, u64::MAX, UnixMillis(i64::MAX)), UnixMillis(i64::MAX));
}

#[test]
fn the_sweep_pays_each_registered_node_over_the_minimum_once_per_period() {
    paused_runtime().block_on(async {
        let world = world().await;
        let start = genesis().saturating_add_ms(1_000 * 3_600_000 + 5);
        let clock = Arc::new(TokioClock::new(start));
        let metrics = Arc::new(ServiceMetrics::new());
        // Half an hour: the first tick at once, no boundary yet.
        let half = Duration::from_secs(1_800);
        run_for(SweepService::new(Arc::clone(&world.sweeper)), &clock, &metrics, half).await;
        let first = payouts(&world.store).await;
        assert_eq!(first.len(), 1, "node 1 only: node 2 is below 10 USDT, node 3 unregistered");
        assert_eq!(first[0].node, testing::node(1));
        assert_eq!(first[0].amounts.gross, usdt(25));
        assert_eq!(first[0].idempotency_key, "auto:1000");
        assert_eq!(world.health.view().last_sweep, Some(("auto:1000".to_owned(), 1)));
        // A restart within the period creates nothing new.
        run_for(SweepService::new(Arc::clone(&world.sweeper)), &clock, &metrics, half / 2).await;
        assert_eq!(payouts(&world.store).await.len(), 1);
        // The loop runs through the next boundary; node 2 earns enough and node 3 registers
        // only after that boundary's sweep, so the one after it pays both.
        let service = SweepService::new(Arc::clone(&world.sweeper));
        run_for(service, &clock, &metrics, Duration::from_secs(1_200)).await;
        assert_eq!(world.health.view().last_sweep, Some(("auto:1001".to_owned(), 0)));
        credit(&world.store, 2, &[(2, 1)]);
        register(&world.proofs, &[testing::key(3)]).await;
        run_for(SweepService::new(Arc::clone(&world.sweeper)), &clock, &metrics, half).await;
        assert_eq!(payouts(&world.store).await.len(), 3);
        let all = payouts(&world.store).await;
        let mut keys: Vec<_> =
            all.iter().map(|p| (p.idempotency_key.as_str(), p.amounts.gross, p.node)).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                ("auto:1000", usdt(25), testing::node(1)),
                ("auto:1001", usdt(10), testing::node(2)),
                ("auto:1001", usdt(40), testing::node(3)),
            ]
        );
        for node in 1..=3 {
            let balance = world.store.balance(&testing::node(node)).await.unwrap();
            assert_eq!(balance.earned, balance.available + balance.reserved + balance.paid);
            assert_eq!(balance.available, 0);
        }
        assert_eq!(
            metrics.loop_metrics("payout_sweep").error.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        world.store.audit().unwrap();
    });
}

#[test]
fn a_triggered_sweep_is_single_flight() {
    paused_runtime().block_on(async {
        let world = world().await;
        let tracker = tokio_util::task::TaskTracker::new();
        let now = genesis().saturating_add_ms(7 * 3_600_000);
        assert!(world.sweeper.trigger(&tracker, now), "nothing runs: a sweep starts");
        assert!(!world.sweeper.trigger(&tracker, now), "one is running: nothing new starts");
        tracker.close();
        tracker.wait().await;
        assert_eq!(payouts(&world.store).await.len(), 1);
        // Done: the next trigger starts again, and finds the period swept.
        let tracker = tokio_util::task::TaskTracker::new();
        assert!(world.sweeper.trigger(&tracker, now));
        tracker.close();
        tracker.wait().await;
        assert_eq!(payouts(&world.store).await.len(), 1);
    });
}

/// The fake chain of `lucid-payouts`, its time following the test clock.
pub(crate) struct ClockedChain {
    pub(crate) chain: Arc<FakeChain>,
    pub(crate) clock: Arc<TokioClock>,
}

#[async_trait::async_trait]
impl PayoutRail for ClockedChain {
    fn kind(&self) -> RailKind {
        self.chain.kind()
    }
    async fn preflight(&self, batch: &[TransferIntent]) -> Result<Preflight, lucid_payouts::Error> {
        self.chain.advance_to(self.clock.wall());
        self.chain.preflight(batch).await
    }
    async fn build_and_sign(
        &self,
        intent: &TransferIntent,
    ) -> Result<SignedTransfer, lucid_payouts::Error> {
        self.chain.advance_to(self.clock.wall());
        self.chain.build_and_sign(intent).await
    }
    async fn broadcast(&self, transfer: &SignedTransfer) -> BroadcastOutcome {
        self.chain.advance_to(self.clock.wall());
        self.chain.broadcast(transfer).await
    }
    async fn status(
        &self,
        txid: &Txid,
        expected: &ExpectedTransfer,
    ) -> Result<ChainStatus, lucid_payouts::Error> {
        self.chain.advance_to(self.clock.wall());
        self.chain.status(txid, expected).await
    }
}

#[test]
fn the_processor_loop_frees_its_own_claims_after_a_restart_and_pays_every_payout_once() {
    paused_runtime().block_on(async {
        let world = world().await;
        credit(&world.store, 2, &[(2, 30)]);
        register(&world.proofs, &[testing::key(3)]).await;
        let start = genesis().saturating_add_ms(50 * 3_600_000);
        let clock = Arc::new(TokioClock::new(start));
        world.sweeper.sweep(clock.wall()).await.unwrap();
        assert_eq!(payouts(&world.store).await.len(), 3);
        // The previous run of this node claimed two payouts and died before signing.
        let owner = testing::node(9).to_string();
        let claimed = world
            .store
            .claim(&ClaimRequest {
                batch_size: 2,
                lease_owner: owner.clone(),
                lease_until: clock.wall().saturating_add_ms(300_000),
                caps: DailyCaps::default(),
                now: clock.wall(),
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        let chain = Arc::new(FakeChain::new(5, 20, 2));
        let rail = Arc::new(ClockedChain { chain: Arc::clone(&chain), clock: Arc::clone(&clock) });
        let config = ProcessorConfig { lease_ms: 300_000, ..ProcessorConfig::default() };
        let store: Arc<dyn PayoutStore> = world.store.clone();
        let processor = Processor::new(Arc::clone(&store), rail, config, owner);
        let service = ProcessorService::new(
            processor,
            store,
            Duration::from_secs(30),
            Arc::clone(&world.health),
        );
        let metrics = Arc::new(ServiceMetrics::new());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_service(
            service,
            Arc::clone(&clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
            cancel.clone(),
        ));
        // Far less than the five-minute lease: only the recovery can have freed the two claims
        // that the first tick then signed with the third.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let statuses: Vec<_> = payouts(&world.store).await.iter().map(|p| p.status).collect();
        assert!(!statuses.contains(&PayoutStatus::Processing), "{statuses:?}");
        tokio::time::sleep(Duration::from_secs(1_800)).await;
        cancel.cancel();
        task.await.unwrap();
        let all = payouts(&world.store).await;
        assert!(
            all.iter().all(|p| p.status == PayoutStatus::Confirmed),
            "{:?}",
            all.iter().map(|p| (p.status, p.error_code.clone())).collect::<Vec<_>>()
        );
        for payout in &all {
            assert_eq!(
                chain.successful_transfers(&payout.payout_id).len(),
                1,
                "{}",
                payout.payout_id
            );
            let balance = world.store.balance(&payout.node).await.unwrap();
            assert_eq!(balance.earned, balance.available + balance.reserved + balance.paid);
            assert_eq!(balance.reserved, 0);
        }
        world.store.audit().unwrap();
        let view = world.health.view();
        assert!(!view.circuit_open && !view.hot_wallet_low && view.chain_mismatches == 0);
    });
}

#[test]
fn the_ledger_only_rail_leaves_payouts_pending_awaiting_a_chain() {
    paused_runtime().block_on(async {
        let world = world().await;
        let clock = Arc::new(TokioClock::new(genesis().saturating_add_ms(3 * 3_600_000)));
        world.sweeper.sweep(clock.wall()).await.unwrap();
        let store: Arc<dyn PayoutStore> = world.store.clone();
        let owner = testing::node(9).to_string();
        let processor = Processor::new(
            Arc::clone(&store),
            Arc::new(LedgerOnlyRail),
            ProcessorConfig::default(),
            owner,
        );
        let health = Arc::new(PayoutHealth::new("ledger_only"));
        let service =
            ProcessorService::new(processor, store, Duration::from_secs(30), Arc::clone(&health));
        let metrics = Arc::new(ServiceMetrics::new());
        run_for(service, &clock, &metrics, Duration::from_secs(120)).await;
        let all = payouts(&world.store).await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status, PayoutStatus::Pending);
        assert_eq!(health.view().awaiting_chain, Some(1));
        let ok =
            metrics.loop_metrics("payout_processor").ok.load(std::sync::atomic::Ordering::SeqCst);
        assert!(ok >= 4, "{ok} ticks");
    });
}
