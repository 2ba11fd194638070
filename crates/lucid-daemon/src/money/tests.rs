//! The money services wired into a `Node` and reached through its `NodeApi`, under paused
//! tokio time: the admin calls answer `FEATURE_DISABLED` until this node is the payer; then the
//! sweep runs at start and on trigger, a `CHAIN_MISMATCH` degrades health until the admin
//! resolves it (once), and balances use the configured limits and say they are authoritative.

use std::sync::Arc;
use std::time::Duration;

use lucid_api::dto::ResolveOutcome;
use lucid_api::{Failure, HealthStatus};
use lucid_consensus::ConsensusParams;
use lucid_consensus::records::{MemoryRecordStore, RecordStore as _};
use lucid_consensus::store::MemoryProofStore;
use lucid_consensus::testing;
use lucid_core::{Clock, MicroUsdt, NodeKey, TimeParams, UnixMillis};
use lucid_payouts::payout::{PayoutLimits, PayoutStatus};
use lucid_payouts::processor::ProcessorConfig;
use lucid_payouts::store::{MemoryPayoutStore, PayoutStore};
use lucid_payouts::sweep::SweepSettings;
use lucid_payouts::testing::{FakeChain, Fault};

use super::*;
use crate::services::payouts::tests::{ClockedChain, credit, register};
use crate::services::time::TokioClock;
use crate::{Config, DatabaseProbe, Node, Ports};

pub(crate) struct UpDatabase;

#[async_trait::async_trait]
impl DatabaseProbe for UpDatabase {
    fn backend(&self) -> &'static str {
        "fake"
    }
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

pub(crate) fn params() -> ConsensusParams {
    let time = TimeParams::test_network(UnixMillis(1_000_000), 1_000, 8).unwrap();
    ConsensusParams::test_network("unit", time)
}

pub(crate) fn config() -> Config {
    Config {
        data_dir: std::env::temp_dir(),
        network_name: "unit".into(),
        consensus: params(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        verify_threads: 1,
    }
}

pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// A node over in-memory ports with nodes 1 and 2 registered; the payout and record stores are
/// returned so that a test can look at (and seed) what the node holds.
pub(crate) async fn memory_node(
    clock: &Arc<TokioClock>,
) -> (Node, Arc<MemoryPayoutStore>, Arc<MemoryRecordStore>) {
    let proofs = Arc::new(MemoryProofStore::new());
    register(&proofs, &[testing::key(1), testing::key(2)]).await;
    let store = Arc::new(MemoryPayoutStore::new());
    let records = Arc::new(MemoryRecordStore::new());
    let pools = Arc::new(lucid_pools::MemoryPoolStore::new());
    let ports = Ports {
        proofs,
        records: records.clone(),
        pools: pools.clone(),
        pool_index: pools,
        payouts: store.clone(),
    };
    let node = Node::build(
        config(),
        NodeKey::from_seed(&[3; 32]),
        clock.clone(),
        Arc::new(UpDatabase),
        ports,
    );
    (node, store, records)
}

#[test]
fn the_payer_sweeps_resolves_a_chain_mismatch_once_and_reports_it_in_health() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new(UnixMillis(5_000_000)));
        let (node, store, _records) = memory_node(&clock).await;
        credit(&store, 1, &[(1, 30), (2, 60)]);
        let api = node.api();
        assert!(matches!(api.trigger_sweep().await, Err(Failure::FeatureDisabled(_))));
        let not_payer = api.resolve_payout("payout_00", ResolveOutcome::Settle).await;
        assert!(matches!(not_payer, Err(Failure::FeatureDisabled(_))), "{not_payer:?}");

        let chain = Arc::new(FakeChain::new(1, 0, 1));
        chain.script([Fault::Mismatch]);
        let rail = Arc::new(ClockedChain { chain: Arc::clone(&chain), clock: Arc::clone(&clock) });
        let limits = PayoutLimits::new(MicroUsdt(20_000_000), MicroUsdt(50_000_000)).unwrap();
        node.spawn_money(MoneyWiring {
            ledger: store.clone(),
            epoch_reward: MicroUsdt(0),
            limits,
            max_retries: 3,
            payer_node_id: None,
            payouts: Some(PayoutLoops {
                rail,
                sweep: SweepSettings {
                    genesis: params().time.genesis(),
                    interval_ms: 3_600_000,
                    limits,
                    max_retries: 3,
                },
                processor: ProcessorConfig { batch_size: 1, ..ProcessorConfig::default() },
                process_interval: Duration::from_secs(1),
            }),
        });
        // The sweep ran at start: node 1 (30) and node 2 (60 capped at the maximum 50).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut grosses: Vec<_> =
            store.list(None).await.unwrap().iter().map(|p| p.amounts.gross).collect();
        grosses.sort();
        assert_eq!(grosses, vec![MicroUsdt(30_000_000), MicroUsdt(50_000_000)]);
        let started = api.trigger_sweep().await.unwrap();
        assert!(started.started);
        let balance = api.balance(testing::node(2)).await.unwrap();
        assert_eq!((balance.minimum.as_str(), balance.authoritative), ("20.000000", true));
        assert_eq!(balance.available, "10.000000");

        // The first transfer solidifies without its Transfer log: CHAIN_MISMATCH, degraded.
        let mut flagged = None;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let all = store.list(None).await.unwrap();
            flagged = all
                .iter()
                .find(|p| p.error_code.as_deref() == Some(lucid_payouts::store::CHAIN_MISMATCH))
                .cloned();
            let others_done = all.iter().filter(|p| p.status == PayoutStatus::Confirmed).count();
            if flagged.is_some() && others_done == 1 {
                break;
            }
        }
        let flagged = flagged.expect("a payout was flagged CHAIN_MISMATCH");
        let payouts = api.health().components["payouts"].clone();
        assert_eq!(payouts.status, HealthStatus::Degraded, "{}", payouts.detail);
        assert!(payouts.detail.contains("CHAIN_MISMATCH"), "{}", payouts.detail);

        // The admin releases it: failed, reserved gross back to available, health clears.
        let before = store.balance(&flagged.node).await.unwrap();
        let view = api.resolve_payout(&flagged.payout_id, ResolveOutcome::Release).await.unwrap();
        assert_eq!(view.status, "failed");
        assert_eq!(view.attempts.last().unwrap().status, "reverted");
        let after = store.balance(&flagged.node).await.unwrap();
        assert_eq!(after.reserved, 0);
        assert_eq!(after.available, before.available + before.reserved);
        assert_eq!(after.earned, after.available + after.reserved + after.paid);
        let again = api.resolve_payout(&flagged.payout_id, ResolveOutcome::Settle).await;
        assert!(matches!(again, Err(Failure::InvalidState(_))), "{again:?}");
        let confirmed = store
            .list(Some(PayoutStatus::Confirmed))
            .await
            .unwrap()
            .pop()
            .expect("the other payout was confirmed");
        // Its stub: the chain cost of its attempts, and the credits behind it (posted at 0).
        let stub = api.payout_stub(&confirmed.payout_id).await.unwrap();
        let fees: u64 = stub.payout.attempts.iter().filter_map(|a| a.fee_sun).sum();
        let energy: u64 = stub.payout.attempts.iter().filter_map(|a| a.energy_used).sum();
        assert!(!stub.payout.attempts.is_empty() && fees > 0, "{stub:?}");
        assert_eq!(
            (stub.chain_fee_sun, stub.chain_energy_used),
            (fees.to_string(), energy.to_string())
        );
        let credited = if confirmed.node == testing::node(1) { "30.000000" } else { "60.000000" };
        assert_eq!(stub.previous_payout_id, None);
        assert_eq!(stub.credits.len(), 1);
        assert_eq!(stub.credits[0].posting_key, "epoch_reward:1");
        assert_eq!(stub.credits_total, credited);
        let not_flagged = api.resolve_payout(&confirmed.payout_id, ResolveOutcome::Release).await;
        assert!(matches!(not_flagged, Err(Failure::InvalidState(_))), "{not_flagged:?}");
        let missing =
            api.resolve_payout("payout_000000000000000000000000", ResolveOutcome::Settle).await;
        assert!(matches!(missing, Err(Failure::NotFound(_))), "{missing:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(api.health().components["payouts"].status, HealthStatus::Healthy);
        store.audit().unwrap();
        // The money metrics saw every commit of the sweep, the processor and the resolve once:
        // two reservations, one settled, one released; the replayed sweep counted nothing.
        let metrics = api.metrics();
        for series in [
            "lucid_ledger_postings_total{kind=\"payout_reserve\"} 2",
            "lucid_ledger_postings_total{kind=\"payout_settle\"} 1",
            "lucid_ledger_postings_total{kind=\"payout_release\"} 1",
            "lucid_payouts_total{status=\"confirmed\"} 1",
            "lucid_payouts_total{status=\"failed\"} 1",
            "lucid_payouts_total{status=\"cancelled\"} 0",
            "lucid_payout_gross_micro_count 2",
            "lucid_payout_gross_micro_sum 80000000",
            "lucid_payout_circuit_open 0",
        ] {
            assert!(metrics.lines().any(|line| line == series), "{series} not in\n{metrics}");
        }
        let _ = clock.wall();
        node.drain().await.unwrap();
    });
}

/// Wires the money of a standalone node (neither the payer nor forwarding to one) over `store`,
/// with the limits 10..=50 USDT and `budget` per epoch.
fn standalone_money(node: &Node, store: &Arc<MemoryPayoutStore>, budget: MicroUsdt) {
    let limits = PayoutLimits::new(MicroUsdt(10_000_000), MicroUsdt(50_000_000)).unwrap();
    node.spawn_money(MoneyWiring {
        ledger: store.clone(),
        epoch_reward: budget,
        limits,
        max_retries: 3,
        payer_node_id: None,
        payouts: None,
    });
}

/// Epoch 1's tally (slots 8..16 of the test network): a pool of nodes 1 and 2 (credits 60 =
/// 45 + 15) ranked first, node 2 also alone (credits 40: it left the pool inside the window)
/// ranked second, and an unranked node 4.
fn epoch_one_tally() -> lucid_consensus::tally::Tally {
    use lucid_consensus::tally::Tally;
    use lucid_core::{EntityId, PoolId};

    use crate::services::rewards::tests::entry;
    let pool = PoolId::from_bytes([7; 16]);
    let (one, two) = (testing::node(1), testing::node(2));
    let entries = vec![
        entry(EntityId::Pool(pool), Some(1), 60, vec![(one, 45), (two, 15)]),
        entry(EntityId::Node(two), Some(2), 40, vec![]),
        entry(EntityId::Node(testing::node(4)), None, 3, vec![]),
    ];
    let window = params().time.window(lucid_core::Epoch(1)).unwrap();
    Tally::from_entries(&params(), lucid_core::Epoch(1), window, 0, entries)
}

#[test]
fn a_pay_stub_explains_a_settled_epochs_reward_and_shows_what_was_posted() {
    use lucid_core::Epoch;
    paused_runtime().block_on(async {
        // Epoch 2 (slot 20) of the test network: epoch 1 has ended.
        let clock = Arc::new(TokioClock::new(UnixMillis(1_020_500)));
        let (node, store, records) = memory_node(&clock).await;
        let api = node.api();
        let two = testing::node(2);
        let disabled = api.epoch_stub(two, Epoch(1)).await.unwrap_err();
        assert!(matches!(disabled, Failure::FeatureDisabled(_)), "{disabled:?}");
        standalone_money(&node, &store, MicroUsdt(1_000_000));
        let missing = api.epoch_stub(two, Epoch(1)).await.unwrap_err();
        assert_eq!(missing, Failure::NotFound(lucid_api::Missing::Tally));
        let tally = epoch_one_tally();
        records.put_tally(&tally, clock.wall()).await.unwrap();
        let unsettled = api.epoch_stub(two, Epoch(1)).await.unwrap_err();
        assert!(matches!(unsettled, Failure::InvalidState(_)), "{unsettled:?}");
        assert!(records.settle_tally(Epoch(1), clock.wall()).await.unwrap());
        // The reward service posts the settled epoch at its next tick (every slot start).
        let mut stub = api.epoch_stub(two, Epoch(1)).await.unwrap();
        for _ in 0..20 {
            if stub.posted.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            stub = api.epoch_stub(two, Epoch(1)).await.unwrap();
        }
        // 1 USDT split 60:40 between the pool and node 2; the pool's 0.6 split 45:15.
        assert_eq!(
            (stub.epoch, stub.budget.as_str(), stub.posting_key.as_str()),
            (1, "1.000000", "epoch_reward:1")
        );
        assert_eq!(stub.tally_digest, tally.digest.to_hex());
        assert_eq!(stub.no_reward, None);
        assert_eq!(stub.parts.len(), 2, "node 2 counted for the pool and for itself");
        let alone = stub.parts.iter().find(|p| p.pool.is_none()).unwrap();
        assert_eq!(
            (alone.entity_credits.as_str(), alone.rank, alone.node_reward.as_str()),
            ("40", Some(2), "0.400000")
        );
        let in_pool = stub.parts.iter().find(|p| p.pool.is_some()).unwrap();
        let part = in_pool.pool.as_ref().unwrap();
        assert_eq!((part.pool_credits.as_str(), part.contribution.as_str()), ("60", "15"));
        assert_eq!(
            (in_pool.entity_reward.as_str(), in_pool.node_reward.as_str()),
            ("0.600000", "0.150000")
        );
        assert_eq!(stub.reward, "0.550000");
        assert_eq!(stub.posted.as_deref(), Some("0.550000"), "the ledger holds what the stub says");
        // An unranked node's stub says why; a node outside the tally has no parts.
        let four = api.epoch_stub(testing::node(4), Epoch(1)).await.unwrap();
        assert_eq!(four.parts[0].unranked.as_deref(), Some("density_below_minimum"));
        assert_eq!((four.reward.as_str(), four.posted.as_deref()), ("0.000000", Some("0.000000")));
        let absent = api.epoch_stub(testing::node(9), Epoch(1)).await.unwrap();
        assert!(absent.parts.is_empty());
        assert_eq!(absent.reward, "0.000000");
    });
}

#[test]
fn a_payout_stub_lists_the_credits_since_the_previous_payout_that_paid() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new(UnixMillis(5_000_000)));
        let (node, store, _records) = memory_node(&clock).await;
        let api = node.api();
        let one = testing::node(1);
        let disabled = api.payout_stub("payout_00").await.unwrap_err();
        assert!(matches!(disabled, Failure::FeatureDisabled(_)), "{disabled:?}");
        // A standalone node: its payouts are its own.
        standalone_money(&node, &store, MicroUsdt(0));
        let reward = |epoch: u64, usdt: u64| {
            let share = [(one, MicroUsdt(usdt * 1_000_000))];
            lucid_payouts::ledger::Posting::epoch_reward(lucid_core::Epoch(epoch), &share).unwrap()
        };
        let tick = || tokio::time::sleep(Duration::from_secs(60));
        let mut posted_at = Vec::new();
        for (epoch, usdt) in [(1, 6), (2, 6)] {
            tick().await;
            posted_at.push(clock.wall().0);
            store.apply_posting(&reward(epoch, usdt), clock.wall()).await.unwrap();
        }
        tick().await;
        let first = api.request_withdrawal(one, "first", None).await.unwrap().payout;
        tick().await;
        store.apply_posting(&reward(3, 11), clock.wall()).await.unwrap();
        tick().await;
        let cancelled = api.request_withdrawal(one, "second", None).await.unwrap().payout;
        assert_eq!(api.cancel_payout(&cancelled.payout_id).await.unwrap().status, "cancelled");
        tick().await;
        store.apply_posting(&reward(4, 1), clock.wall()).await.unwrap();
        tick().await;
        let third = api.request_withdrawal(one, "third", None).await.unwrap().payout;
        assert_eq!((first.gross.as_str(), third.gross.as_str()), ("12.000000", "12.000000"));

        let keys = |stub: &lucid_api::dto::PayoutStubView| -> Vec<String> {
            stub.credits.iter().map(|c| c.posting_key.clone()).collect()
        };
        let stub = api.payout_stub(&first.payout_id).await.unwrap();
        assert_eq!(stub.previous_payout_id, None);
        assert_eq!(keys(&stub), ["epoch_reward:1", "epoch_reward:2"]);
        assert_eq!(
            stub.credits.iter().map(|c| c.posted_at).collect::<Vec<_>>(),
            posted_at,
            "the ledger's posting times"
        );
        assert_eq!((stub.credits_total.as_str(), stub.credits_truncated), ("12.000000", false));
        assert_eq!(stub.credits[0].kind, "epoch_reward");
        assert_eq!((stub.chain_fee_sun.as_str(), stub.payout.status.as_str()), ("0", "pending"));
        // The cancelled payout's credits came back and are explained by the next one.
        let stub = api.payout_stub(&cancelled.payout_id).await.unwrap();
        assert_eq!(stub.previous_payout_id.as_deref(), Some(first.payout_id.as_str()));
        assert_eq!(keys(&stub), ["epoch_reward:3"]);
        let stub = api.payout_stub(&third.payout_id).await.unwrap();
        assert_eq!(stub.previous_payout_id.as_deref(), Some(first.payout_id.as_str()));
        assert_eq!(keys(&stub), ["epoch_reward:3", "epoch_reward:4"]);
        assert_eq!(stub.credits_total, third.gross, "the credits add up to the payout");
        let missing = api.payout_stub("payout_0000").await.unwrap_err();
        assert_eq!(missing, Failure::NotFound(lucid_api::Missing::Payout));
    });
}
