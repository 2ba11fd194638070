//! Pool ops over gossip in one process: the cluster of `gossip::tests` (real `StorePeer`s,
//! ingest, gossip loops, in-memory proof and pool stores, a loopback transport, paused tokio
//! time). A pool op logged on one node reaches every node's log by push, or by anti-entropy
//! after a partition; every node applies the same ops at the same effect slot; forged,
//! malformed, replayed and equivocating ops change nothing.

use lucid_api::grpc::PeerApi;
use lucid_core::PoolId;
use lucid_pools::log::apply_logged;
use lucid_pools::{LoggedOp, Membership, Op, OpState, Pool, PoolOp, PoolStore as _};

use super::*;
use crate::gossip::ops::OpPath;

/// `op` signed by `key` in `slot`, 100 ms into the slot.
fn signed_op(params: &ConsensusParams, key: &NodeKey, slot: u64, op: Op) -> SignedMessage {
    let ts = params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(100);
    PoolOp { node: key.node_id(), slot: Slot(slot), ts, op }.sign(&params.network, key)
}

fn create(params: &ConsensusParams, key: &NodeKey, slot: u64) -> (SignedMessage, PoolId) {
    let op = signed_op(params, key, slot, Op::Create { name: "alpha".into(), max_nodes: 10 });
    (op, PoolId::derive(&key.node_id(), Slot(slot), "alpha"))
}

impl Cluster {
    /// What the API does with an op submitted to node `index`: log it, then push it.
    async fn submit_local(&self, index: usize, op: SignedMessage) {
        let node = &self.nodes[index];
        let ingest = node.hook.pool_ops().unwrap();
        let report = ingest.ingest(vec![op.clone()], OpPath::Live).await.unwrap();
        assert_eq!(report.outcomes[0].verdict, Verdict::Accept, "{report:?}");
        node.hook.pool_op(None, op);
    }

    /// The op log of node `index`: digest and state, in digest order.
    async fn log(&self, index: usize) -> Vec<(lucid_core::Digest, OpState)> {
        let mut log: Vec<_> = self.nodes[index]
            .pools
            .op_log()
            .await
            .unwrap()
            .into_iter()
            .map(|LoggedOp { op, state }| (op.digest(), state))
            .collect();
        log.sort_by_key(|(digest, _)| *digest);
        log
    }

    /// Pools and membership rows of node `index`, in a stable order.
    fn membership(&self, index: usize) -> (Vec<Pool>, Vec<Membership>) {
        let store = &self.nodes[index].pools;
        let mut pools = store.pools();
        pools.sort_by_key(|pool| pool.pool_id);
        let mut rows = store.rows();
        rows.sort_by_key(|row| (row.pool_id, row.node_id, row.from_slot));
        (pools, rows)
    }

    /// The slot applier of every node in `nodes`, as the daemon runs it at slot `slot`.
    async fn apply(&self, nodes: &[usize], slot: u64) {
        for &index in nodes {
            apply_logged(self.nodes[index].pools.as_ref(), Slot(slot)).await.unwrap();
        }
    }
}

#[test]
fn a_join_submitted_on_one_node_is_applied_at_the_same_effect_slot_on_every_node() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(3, &[], |config| config).await;
        cluster.start_all();
        let params = cluster.params;
        cluster.run_until(START + 1, 100).await;
        let (create, pool) = create(&params, &cluster.nodes[0].key, START + 1);
        cluster.submit_local(0, create.clone()).await;
        cluster.run_until(START + 2, 100).await;
        let join = signed_op(&params, &cluster.nodes[1].key, START + 2, Op::Join { pool });
        cluster.submit_local(1, join.clone()).await;
        cluster.run_until(START + 2, 600).await;
        // Pushed: every node logged both ops before either took effect.
        for index in 0..3 {
            let log = cluster.log(index).await;
            assert_eq!(log.len(), 2, "node {index}: {log:?}");
            assert!(log.iter().all(|(_, state)| *state == OpState::Pending), "node {index}");
        }
        // Each node's applier at each slot start, as the daemon runs it.
        for slot in START + 3..=START + 6 {
            cluster.run_until(slot, 0).await;
            cluster.apply(&[0, 1, 2], slot).await;
        }
        let reference = cluster.log(0).await;
        assert!(reference.contains(&(create.digest(), OpState::Applied { at: Slot(START + 4) })));
        assert!(reference.contains(&(join.digest(), OpState::Applied { at: Slot(START + 5) })));
        let membership = cluster.membership(0);
        assert_eq!(membership.0.len(), 1);
        assert_eq!(membership.0[0].seats, 2);
        for index in 1..3 {
            assert_eq!(cluster.log(index).await, reference, "node {index}");
            assert_eq!(cluster.membership(index), membership, "node {index}");
        }
        for node in &cluster.nodes {
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        cluster.stop().await;
    });
}

#[test]
fn forged_malformed_replayed_and_equivocating_ops_change_nothing() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(3, &[], |config| config).await;
        cluster.start_all();
        let params = cluster.params;
        cluster.run_until(START + 1, 100).await;
        let (create, pool) = create(&params, &cluster.nodes[0].key, START + 1);
        cluster.submit_local(0, create.clone()).await;
        cluster.run_until(START + 1, 600).await;
        let before: Vec<_> = {
            let mut logs = Vec::new();
            for index in 0..3 {
                logs.push(cluster.log(index).await);
            }
            logs
        };
        assert!(before.iter().all(|log| log.len() == 1));

        let alice = &cluster.nodes[1].key;
        let join = signed_op(&params, alice, START + 1, Op::Join { pool });
        // Forged: alice's op signed by someone else.
        let forged = SignedMessage::new(join.bytes().to_vec(), testing::key(7).sign(join.bytes()));
        // Equivocating: a second, different op of the creator in the same slot.
        let equivocating = signed_op(
            &params,
            &cluster.nodes[0].key,
            START + 1,
            Op::Create { name: "beta".into(), max_nodes: 5 },
        );
        let garbage = SignedMessage::new(b"not a pool op".to_vec(), alice.sign(b"not a pool op"));
        let other_network = {
            let mut other = params;
            other.network = lucid_core::NetworkId::derive("another", params.time.genesis());
            signed_op(&other, alice, START + 1, Op::Leave { pool })
        };
        let stale = signed_op(&params, alice, START - 5, Op::Leave { pool });
        let future = signed_op(&params, alice, START + 30, Op::Leave { pool });
        let unknown_signer = signed_op(&params, &testing::key(9), START + 1, Op::Join { pool });
        // Signed in the slot it names, but stamped outside it.
        let mismatched = {
            let ts = params.time.slot_start(Slot(START)).unwrap();
            PoolOp { node: alice.node_id(), slot: Slot(START + 1), ts, op: Op::Leave { pool } }
                .sign(&params.network, alice)
        };
        let relay = cluster.nodes[2].key.node_id();
        let outcomes = cluster.nodes[0]
            .peer
            .submit_pool_ops(
                Some(relay),
                vec![
                    forged,
                    create.clone(),
                    equivocating,
                    garbage,
                    other_network,
                    stale,
                    future,
                    unknown_signer,
                    mismatched,
                ],
            )
            .await
            .unwrap();
        let verdicts: Vec<Verdict> = outcomes.iter().map(|outcome| outcome.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Reject(RejectReason::BadSignature),
                Verdict::Duplicate,
                Verdict::Reject(RejectReason::Equivocation),
                Verdict::Reject(RejectReason::Malformed),
                Verdict::Reject(RejectReason::WrongNetwork),
                Verdict::Reject(RejectReason::Stale),
                Verdict::Reject(RejectReason::FromFuture),
                Verdict::Reject(RejectReason::UnknownNode),
                Verdict::Reject(RejectReason::SlotTimestampMismatch),
            ]
        );
        cluster.run_until(START + 2, 500).await;
        // Nothing changed on any node, and nothing was pushed on.
        for (index, log) in before.iter().enumerate() {
            assert_eq!(&cluster.log(index).await, log, "node {index}");
        }
        // The relay is scored for what proves misbehaviour (the forgery, the garbage, the
        // stamp outside the slot), never for the signer's equivocation or a stale op.
        let faults = cluster.nodes[0].directory.faults.lock().unwrap().clone();
        assert_eq!(
            faults,
            vec![
                (relay, PeerFault::BadSignature),
                (relay, PeerFault::InvalidMessage),
                (relay, PeerFault::InvalidMessage),
            ]
        );
        cluster.stop().await;
    });
}

#[test]
fn a_partitioned_node_catches_up_the_ops_and_ends_with_the_same_pools() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(3, &[], |config| config).await;
        let cut_off = cluster.nodes[2].key.node_id();
        cluster.net.set_down(cut_off, true);
        cluster.start_all();
        let params = cluster.params;
        cluster.run_until(START + 1, 100).await;
        let (create, pool) = create(&params, &cluster.nodes[0].key, START + 1);
        cluster.submit_local(0, create).await;
        cluster.run_until(START + 2, 100).await;
        let join = signed_op(&params, &cluster.nodes[1].key, START + 2, Op::Join { pool });
        cluster.submit_local(1, join).await;
        for slot in START + 3..=START + 10 {
            cluster.run_until(slot, 0).await;
            cluster.apply(&[0, 1], slot).await;
        }
        assert!(cluster.log(2).await.is_empty());
        // Both ops are past the live grace and past their effect slots when the node returns:
        // anti-entropy brings them through the late path (each op from the peer that did not
        // sign it) and the node rebuilds its pools from the log.
        cluster.net.set_down(cut_off, false);
        for slot in START + 11..=START + 16 {
            cluster.run_until(slot, 0).await;
            cluster.apply(&[0, 1, 2], slot).await;
        }
        let reference = cluster.log(0).await;
        assert_eq!(reference.len(), 2);
        assert!(reference.iter().all(|(_, state)| matches!(state, OpState::Applied { .. })));
        let membership = cluster.membership(0);
        assert_eq!(membership.0[0].seats, 2);
        for index in 1..3 {
            assert_eq!(cluster.log(index).await, reference, "node {index}");
            assert_eq!(cluster.membership(index), membership, "node {index}");
        }
        // Fetching an op from its own signer is refused as stale, which proves nothing.
        for node in &cluster.nodes {
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        cluster.stop().await;
    });
}

#[test]
fn a_peer_with_the_same_log_sends_nothing_and_pages_are_bounded() {
    paused_runtime().block_on(async {
        let cluster = Cluster::new(2, &[], |config| config).await;
        let params = cluster.params;
        cluster.run_until(START + 1, 100).await;
        let mut ops = Vec::new();
        for index in 0..2 {
            let (op, _) = create(&params, &cluster.nodes[index].key, START + 1);
            cluster.submit_local(index, op.clone()).await;
            ops.push(op);
        }
        let ingest = cluster.nodes[0].hook.pool_ops().unwrap().clone();
        let range = SlotRange { start: Slot(START), end: Slot(START + 5) };
        let (count, root) = ingest.summary(range).await.unwrap();
        assert_eq!(count, 1);
        let query = lucid_api::grpc::PoolOpsQuery {
            range,
            known_count: count,
            known_root: root,
            after: None,
            limit: 1,
        };
        // Node 0 holds only its own op; node 1 only its own: the roots differ.
        let page = cluster.nodes[1].peer.fetch_pool_ops(query).await.unwrap();
        assert!(!page.in_sync);
        assert_eq!(page.ops, vec![ops[1].clone()]);
        // A page of one that is full names where the next starts; the next page is empty.
        let next = page.next.unwrap();
        let rest = cluster.nodes[1]
            .peer
            .fetch_pool_ops(lucid_api::grpc::PoolOpsQuery { after: Some(next), ..query })
            .await
            .unwrap();
        assert!(rest.ops.is_empty() && rest.next.is_none());
        // The same set on both sides: nothing is sent.
        let same = cluster.nodes[0].peer.fetch_pool_ops(query).await.unwrap();
        assert!(same.in_sync && same.ops.is_empty());
    });
}
