//! Tests of the pool health loop under paused tokio time with a [`TokioClock`]: ops applied from
//! the log at their effect slot, a member whose beacons stop becomes `degraded` and its pool
//! drops below 3 active members, both recover when the beacons resume; gauges and the health
//! summary follow.

use std::sync::Arc;
use std::time::Duration;

use lucid_consensus::proof::ProofValue;
use lucid_consensus::store::{MemoryProofStore, ProofStore, stored_proof};
use lucid_consensus::testing;
use lucid_core::message::Message as _;
use lucid_core::{Clock, NodeId, PoolId, Slot};
use lucid_pools::log::SignedOp;
use lucid_pools::{MemberStatus, MemoryPoolStore, Op, PoolOp, PoolStatus, PoolStore};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::services::runner::run_service;
use crate::services::tests::{paused_runtime, sleep_until};
use crate::services::time::TokioClock;

/// `op` by test node `i`, signed in `slot`, as the log holds it.
fn logged(params: &ConsensusParams, i: u64, slot: u64, op: Op) -> SignedOp {
    let key = testing::key(i);
    let ts = params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(100);
    let pool_op = PoolOp { node: key.node_id(), slot: Slot(slot), ts, op };
    let (_, signed) = SignedOp::decode(pool_op.sign(&params.network, &key)).unwrap();
    signed
}

async fn beacons(params: &ConsensusParams, store: &MemoryProofStore, i: u64, slots: &[u64]) {
    let key = testing::key(i);
    let proofs: Vec<_> = slots
        .iter()
        .map(|slot| {
            let proof = testing::proof(
                params,
                &key,
                Slot(*slot),
                ProofValue::Beacon { metrics_digest: None },
            );
            stored_proof(proof, testing::signed_beacon(params, &key, Slot(*slot)), false)
        })
        .collect();
    store.insert_proofs(&proofs).await.unwrap();
}

async fn seat_status(pools: &dyn PoolStore, pool: &PoolId, node: &NodeId) -> Option<MemberStatus> {
    let members = pools.members(pool).await.unwrap();
    members.iter().find(|m| m.node_id == *node && m.is_seat()).map(|m| m.status)
}

#[test]
fn a_member_whose_beacons_stop_degrades_with_its_pool_and_both_recover_when_they_resume() {
    paused_runtime().block_on(async {
        // 1 s slots, 8 slots per epoch, a 56-slot window.
        let params = testing::small_params();
        let pools = Arc::new(MemoryPoolStore::new());
        let proofs = Arc::new(MemoryProofStore::new());
        let metrics = Arc::new(ServiceMetrics::new());
        let report = Arc::new(PoolHealthReport::default());
        // Node 0 creates the pool in slot 1 (effect 4), nodes 1 and 2 join in slot 2 (effect 5).
        let create = logged(&params, 0, 1, Op::Create { name: "pool-a".into(), max_nodes: 10 });
        let pool = create.accepted.op.created_pool_id().unwrap();
        let ops = [
            create,
            logged(&params, 1, 2, Op::Join { pool }),
            logged(&params, 2, 2, Op::Join { pool }),
        ];
        for op in &ops {
            pools.log_op(op).await.unwrap();
        }
        // Nodes 0 and 2 beacon every slot; node 1 stops after slot 30 and resumes at slot 61.
        let all: Vec<u64> = (0..=200).collect();
        beacons(&params, &proofs, 0, &all).await;
        beacons(&params, &proofs, 2, &all).await;
        let node1: Vec<u64> = (0..=30).chain(61..=200).collect();
        beacons(&params, &proofs, 1, &node1).await;

        let time = params.time;
        let clock = Arc::new(TokioClock::new(time.genesis()));
        let service = PoolHealthService::new(PoolHealthDeps {
            params,
            pools: Arc::clone(&pools) as Arc<dyn PoolStore>,
            proofs: Arc::clone(&proofs) as Arc<dyn ProofStore>,
            metrics: Arc::clone(&metrics),
            report: Arc::clone(&report),
            apply: Arc::default(),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_service(
            service,
            Arc::clone(&clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
            cancel.clone(),
        ));
        let mid_slot = |slot: u64| time.slot_start(Slot(slot)).unwrap().saturating_add_ms(500);
        let node1 = testing::node(1);
        let pool_status = || async { pools.get_pool(&pool).await.unwrap().unwrap().pool.status };

        // Slot 4: only the founder is seated; the pool is forming.
        sleep_until(&clock, mid_slot(4)).await;
        assert_eq!(pool_status().await, PoolStatus::Forming);
        // Slot 20: three active members, the pool is active.
        sleep_until(&clock, mid_slot(20)).await;
        assert_eq!(pool_status().await, PoolStatus::Active);
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Active));
        // Judged at slot t − 3, five missed slots (31..=35) make node 1 suspended at slot 39.
        sleep_until(&clock, mid_slot(38)).await;
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Active));
        sleep_until(&clock, mid_slot(39)).await;
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Degraded));
        assert_eq!(pool_status().await, PoolStatus::Degraded);
        let summary = report.summary();
        assert_eq!(
            (summary.by_status, summary.seats, summary.degraded_members),
            ([0, 0, 1, 0], 3, 1)
        );
        let text = metrics.render();
        assert!(text.contains("lucid_pools{status=\"degraded\"} 1"), "{text}");
        assert!(text.contains("lucid_pool_seats 3"), "{text}");
        // Beacons resume at 61, but uptime stays below 80 % of the window (inactive) until
        // at most 11 of the 56 judged slots are missed: judged slot 106, slot 109.
        sleep_until(&clock, mid_slot(80)).await;
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Degraded));
        sleep_until(&clock, mid_slot(108)).await;
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Degraded));
        sleep_until(&clock, mid_slot(109)).await;
        assert_eq!(seat_status(pools.as_ref(), &pool, &node1).await, Some(MemberStatus::Active));
        assert_eq!(pool_status().await, PoolStatus::Active);
        let text = metrics.render();
        assert!(text.contains("lucid_pools{status=\"active\"} 1"), "{text}");
        assert!(text.contains("lucid_pools{status=\"degraded\"} 0"), "{text}");
        // Liveness never touched seats or the log.
        assert_eq!(pools.get_pool(&pool).await.unwrap().unwrap().pool.seats, 3);
        assert!(pools.pending_ops().await.unwrap().is_empty());
        cancel.cancel();
        task.await.unwrap();
    });
}

#[test]
fn the_first_tick_repairs_tables_that_differ_from_the_log() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let pools = Arc::new(MemoryPoolStore::new());
        let proofs = Arc::new(MemoryProofStore::new());
        let metrics = Arc::new(ServiceMetrics::new());
        let create = logged(&params, 0, 1, Op::Create { name: "pool-a".into(), max_nodes: 10 });
        let pool = create.accepted.op.created_pool_id().unwrap();
        pools.log_op(&create).await.unwrap();
        // The founder's seat is closed in the tables although no op in the log closed it.
        lucid_pools::log::apply_logged(pools.as_ref(), Slot(4)).await.unwrap();
        pools.close_seat(&pool, &testing::node(0), Slot(5), false).await.unwrap();
        assert_eq!(
            pools.get_pool(&pool).await.unwrap().unwrap().pool.status,
            PoolStatus::Disbanded
        );
        let clock = Arc::new(TokioClock::new(
            params.time.slot_start(Slot(6)).unwrap().saturating_add_ms(500),
        ));
        let service = PoolHealthService::new(PoolHealthDeps {
            params,
            pools: Arc::clone(&pools) as Arc<dyn PoolStore>,
            proofs: Arc::clone(&proofs) as Arc<dyn ProofStore>,
            metrics: Arc::clone(&metrics),
            report: Arc::new(PoolHealthReport::default()),
            apply: Arc::default(),
        });
        crate::services::tests::run_for(service, &clock, &metrics, Duration::from_millis(100))
            .await;
        let stored = pools.get_pool(&pool).await.unwrap().unwrap().pool;
        assert_eq!((stored.status, stored.seats), (PoolStatus::Forming, 1));
        assert_eq!(
            seat_status(pools.as_ref(), &pool, &testing::node(0)).await,
            Some(MemberStatus::Active)
        );
    });
}
