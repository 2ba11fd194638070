//! `PoolOpIngest` on its own: the slot rule of the late path, the rebuild of an op accepted
//! after its effect slot, and the spec invariant that the same op set in any arrival order gives
//! the same log and the same pools.

use std::sync::Arc;

use lucid_consensus::ingest::{Ingest, RejectReason, Verdict};
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::clock::ManualClock;
use lucid_core::message::Message as _;
use lucid_core::{NodeKey, PoolId, SignedMessage, Slot};
use lucid_pools::log::apply_logged;
use lucid_pools::{MemoryPoolStore, Op, OpState, PoolOp, PoolStore as _};
use proptest::prelude::*;

use super::{OpPath, PoolOpIngest};

const NOW: u64 = 200;

fn op(params: &ConsensusParams, key: &NodeKey, slot: u64, op: Op) -> SignedMessage {
    let ts = params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(10);
    PoolOp { node: key.node_id(), slot: Slot(slot), ts, op }.sign(&params.network, key)
}

/// An ingest of nodes 0..8 (all registered) at slot `now`, over a fresh pool store.
async fn ingest_at(now: u64) -> (PoolOpIngest, Arc<MemoryPoolStore>) {
    let params = testing::small_params();
    let mut registry = Ingest::new(params);
    let store = lucid_consensus::store::MemoryProofStore::new();
    let at = params.time.slot_start(Slot(now)).unwrap();
    for index in 0..8 {
        let registration = testing::signed_registration(&params, &testing::key(index), 1);
        let (outcome, _) = registry.ingest_registration(&store, at, registration).await.unwrap();
        assert_eq!(outcome.verdict, Verdict::Accept);
    }
    let pools = Arc::new(MemoryPoolStore::new());
    let clock = Arc::new(ManualClock::new(at.saturating_add_ms(500)));
    let ingest = PoolOpIngest::new(
        params,
        pools.clone(),
        Arc::new(tokio::sync::Mutex::new(registry)),
        clock,
        Arc::new(tokio::sync::Mutex::new(())),
    );
    (ingest, pools)
}

/// A small history with contention: node 0 founds a pool of 3 seats, nodes 1..=4 join it (more
/// than fit), node 2 leaves, node 5 founds another pool and node 1 joins it too.
fn history(params: &ConsensusParams) -> Vec<SignedMessage> {
    let first = PoolId::derive(&testing::node(0), Slot(150), "alpha");
    let second = PoolId::derive(&testing::node(5), Slot(151), "beta");
    vec![
        op(params, &testing::key(0), 150, Op::Create { name: "alpha".into(), max_nodes: 3 }),
        op(params, &testing::key(5), 151, Op::Create { name: "beta".into(), max_nodes: 10 }),
        op(params, &testing::key(1), 152, Op::Join { pool: first }),
        op(params, &testing::key(2), 152, Op::Join { pool: first }),
        op(params, &testing::key(3), 152, Op::Join { pool: first }),
        op(params, &testing::key(4), 153, Op::Join { pool: first }),
        op(params, &testing::key(2), 156, Op::Leave { pool: first }),
        op(params, &testing::key(1), 157, Op::Join { pool: second }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn the_late_path_takes_ops_of_others_but_never_the_servers_own() {
    runtime().block_on(async {
        let (ingest, pools) = ingest_at(NOW).await;
        let params = testing::small_params();
        let create =
            op(&params, &testing::key(0), 150, Op::Create { name: "alpha".into(), max_nodes: 3 });
        // Live: 50 slots old is stale.
        let live = ingest.ingest(vec![create.clone()], OpPath::Live).await.unwrap();
        assert_eq!(live.outcomes[0].verdict, Verdict::Reject(RejectReason::Stale));
        // Served by its own signer: the live rule, stale.
        let own = ingest
            .ingest(vec![create.clone()], OpPath::Late { server: testing::node(0) })
            .await
            .unwrap();
        assert_eq!(own.outcomes[0].verdict, Verdict::Reject(RejectReason::Stale));
        assert!(pools.op_log().await.unwrap().is_empty());
        // Served by another node: accepted, past its effect slot, so the pools are rebuilt.
        let late = ingest
            .ingest(vec![create.clone()], OpPath::Late { server: testing::node(3) })
            .await
            .unwrap();
        assert_eq!(late.outcomes[0].verdict, Verdict::Accept);
        assert!(late.rebuilt);
        let log = pools.op_log().await.unwrap();
        assert_eq!(log[0].state, OpState::Applied { at: Slot(153) });
        assert_eq!(pools.pools().len(), 1);
        // Below the window of the oldest unsettled tally: stale on every path.
        let ancient =
            op(&params, &testing::key(1), 1, Op::Create { name: "old".into(), max_nodes: 3 });
        let refused =
            ingest.ingest(vec![ancient], OpPath::Late { server: testing::node(3) }).await.unwrap();
        assert_eq!(refused.outcomes[0].verdict, Verdict::Reject(RejectReason::Stale));
    });
}

/// The pools and the settled log after applying `order` as it arrives, then the applier.
async fn outcome_of(
    order: Vec<SignedMessage>,
) -> (Vec<lucid_pools::Pool>, Vec<lucid_pools::Membership>, Vec<(lucid_core::Digest, OpState)>) {
    let (ingest, pools) = ingest_at(NOW).await;
    for message in order {
        let report =
            ingest.ingest(vec![message], OpPath::Late { server: testing::node(7) }).await.unwrap();
        assert_eq!(report.outcomes[0].verdict, Verdict::Accept);
    }
    apply_logged(pools.as_ref(), Slot(NOW)).await.unwrap();
    let mut all = pools.pools();
    all.sort_by_key(|pool| pool.pool_id);
    let mut rows = pools.rows();
    rows.sort_by_key(|row| (row.pool_id, row.node_id, row.from_slot));
    let mut log: Vec<_> = pools
        .op_log()
        .await
        .unwrap()
        .into_iter()
        .map(|logged| (logged.op.digest(), logged.state))
        .collect();
    log.sort_by_key(|(digest, _)| *digest);
    (all, rows, log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Pools-payouts §2.2: the same op set gives the same outcome on every node, whatever the
    /// arrival order (here every op arrives late, after its effect slot, and is rebuilt in).
    #[test]
    fn the_same_ops_in_any_arrival_order_give_the_same_pools(
        order in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle()
    ) {
        let params = testing::small_params();
        let ops = history(&params);
        let runtime = runtime();
        let reference = runtime.block_on(outcome_of(ops.clone()));
        let shuffled = order.iter().map(|index| ops[*index].clone()).collect();
        let got = runtime.block_on(outcome_of(shuffled));
        prop_assert_eq!(&got, &reference);
        prop_assert_eq!(reference.0.len(), 2);
        prop_assert_eq!(reference.2.len(), 8);
    }
}
