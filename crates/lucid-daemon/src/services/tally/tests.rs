//! Pools in the tally (`consensus.md` §7.1): the keeper attributes the proofs of seated members
//! to `Pool(P)` by the pool store's timeline, equal to `TallyBuilder` over the same timeline, and
//! the result never depends on the order in which ops or proofs arrived.

use std::sync::Arc;

use lucid_consensus::store::{MemoryProofStore, ProofStore, stored_proof};
use lucid_consensus::tally::{CountedProof, MembershipView, compute_tally};
use lucid_consensus::testing;
use lucid_core::message::Message as _;
use lucid_core::{EntityId, Epoch, NodeId, Slot, UnixMillis};
use lucid_pools::store::apply_slot_to_store;
use lucid_pools::{AcceptedOp, MemoryPoolStore, Op, PoolOp, PoolState};
use proptest::prelude::*;

use super::*;
use crate::services::metrics::ServiceMetrics;
use crate::services::time::TokioClock;

const EPOCH: Epoch = Epoch(400);

fn op(params: &ConsensusParams, node: u64, slot: u64, op: Op) -> AcceptedOp {
    let ts = params.time.slot_start(Slot(slot)).unwrap();
    AcceptedOp::new(PoolOp { node: testing::node(node), slot: Slot(slot), ts, op }, &params.network)
}

/// Pool ops around the window of `EPOCH`: node 1 creates a pool before the window, nodes 2 and 3
/// join, node 3 leaves in the middle of the window and node 4 joins then; node 5 stays solo.
fn ops(params: &ConsensusParams) -> Vec<AcceptedOp> {
    let window = params.time.window(EPOCH).unwrap();
    let before = window.start.0 - 6;
    let middle = window.start.0 + window.len() / 2;
    let create = op(params, 1, before, Op::Create { name: "pool-a".into(), max_nodes: 10 });
    let pool = create.op.created_pool_id().unwrap();
    vec![
        create,
        op(params, 2, before + 1, Op::Join { pool }),
        op(params, 3, before + 1, Op::Join { pool }),
        op(params, 3, middle, Op::Leave { pool }),
        op(params, 4, middle, Op::Join { pool }),
    ]
}

/// A beacon and a relay proof of nodes 1..=5 at every slot of the window.
fn proofs(params: &ConsensusParams) -> Vec<lucid_consensus::store::StoredProof> {
    let window = params.time.window(EPOCH).unwrap();
    let mut all = Vec::new();
    for index in 1..=5u64 {
        let key = testing::key(index);
        for slot in window.start.0..window.end.0 {
            for value in [testing::BEACON, testing::relay(u32::try_from(index).unwrap())] {
                let proof = testing::proof(params, &key, Slot(slot), value);
                let signed = proof.sign(&params.network, &key);
                all.push(stored_proof(proof, signed, false));
            }
        }
    }
    all
}

/// Applies `ops` slot by slot (in the order given within a slot) to a fresh store.
async fn pool_store(ops: &[AcceptedOp], through: Slot) -> Arc<MemoryPoolStore> {
    let store = Arc::new(MemoryPoolStore::new());
    let first = ops.iter().filter_map(|o| o.op.effect_slot()).min().unwrap();
    for slot in first.0..=through.0 {
        apply_slot_to_store(store.as_ref(), Slot(slot), ops).await.unwrap();
    }
    store
}

async fn keeper_tally(
    params: ConsensusParams,
    pools: Arc<MemoryPoolStore>,
    stored: &[lucid_consensus::store::StoredProof],
) -> Tally {
    let proofs = Arc::new(MemoryProofStore::new());
    for chunk in stored.chunks(97) {
        proofs.insert_proofs(chunk).await.unwrap();
    }
    let keeper = TallyKeeper::new(TallyDeps {
        params,
        proofs,
        records: Arc::new(lucid_consensus::records::MemoryRecordStore::new()),
        membership: Arc::new(PoolTimeline(pools)),
        clock: Arc::new(TokioClock::new(UnixMillis(0))),
        metrics: Arc::new(ServiceMetrics::new()),
    });
    keeper.compute(EPOCH, 0).await.unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn members_count_for_their_pool_as_tally_builder_does_with_the_same_timeline() {
    let params = testing::small_params();
    let window = params.time.window(EPOCH).unwrap();
    let ops = ops(&params);
    let stored = proofs(&params);
    runtime().block_on(async {
        let pools = pool_store(&ops, window.end).await;
        let tally = keeper_tally(params, Arc::clone(&pools), &stored).await;
        let (state, _) = PoolState::rebuild(&ops, window.end);
        let timeline = state.timeline().unwrap();
        assert_eq!(pools.timeline().await.unwrap(), timeline);
        let counted = stored.iter().map(|p| CountedProof {
            node: p.proof.node,
            slot: p.proof.slot,
            value: p.proof.value,
        });
        let expected = compute_tally(&params, EPOCH, &timeline, &|_| false, counted).unwrap();
        assert_eq!(tally, expected);
        // The pool is one entity with its members' contributions; node 5 is on its own; node 3
        // counted for the pool until it left and for itself after.
        let pool = ops[0].op.created_pool_id().unwrap();
        let entry = tally.entries.iter().find(|e| e.entity == EntityId::Pool(pool)).unwrap();
        let contributors: Vec<NodeId> = entry.contributions.iter().map(|c| c.0).collect();
        let mut members: Vec<NodeId> = (1..=4).map(testing::node).collect();
        members.sort();
        assert_eq!(contributors, members);
        let solo: Vec<EntityId> = tally
            .entries
            .iter()
            .filter_map(|e| matches!(e.entity, EntityId::Node(_)).then_some(e.entity))
            .collect();
        assert!(solo.contains(&EntityId::Node(testing::node(5))));
        assert!(solo.contains(&EntityId::Node(testing::node(3))));
        assert!(!solo.contains(&EntityId::Node(testing::node(2))));
        let middle = Slot(window.start.0 + window.len() / 2 + 3);
        assert_eq!(timeline.pool_of(&testing::node(3), Slot(middle.0 - 1)), Some(pool));
        assert_eq!(timeline.pool_of(&testing::node(3), middle), None);
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Attribution never depends on arrival order: the ops of a slot and the proofs arrive in
    /// any order, the tally is the same.
    #[test]
    fn attribution_does_not_depend_on_arrival_order(seed in any::<u64>()) {
        let params = testing::small_params();
        let window = params.time.window(EPOCH).unwrap();
        let ops = ops(&params);
        let stored = proofs(&params);
        let shuffle = |len: usize, salt: u64| {
            let mut order: Vec<usize> = (0..len).collect();
            order.sort_by_key(|i| (*i as u64 ^ seed.rotate_left(salt as u32)).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            order
        };
        let mut shuffled_ops = ops.clone();
        let op_order = shuffle(ops.len(), 7);
        for (to, from) in op_order.iter().enumerate() {
            shuffled_ops[to] = ops[*from].clone();
        }
        let proof_order = shuffle(stored.len(), 13);
        let shuffled_proofs: Vec<_> = proof_order.iter().map(|i| stored[*i].clone()).collect();
        let (first, second) = runtime().block_on(async {
            let a = keeper_tally(params, pool_store(&ops, window.end).await, &stored).await;
            let b = keeper_tally(params, pool_store(&shuffled_ops, window.end).await, &shuffled_proofs).await;
            (a, b)
        });
        prop_assert_eq!(first, second);
    }
}
