//! Fixtures shared by the tests of this crate and, through the `testing` feature, by the storage
//! adapter's tests: node ids from small integers, the test network, accepted ops, and a generator
//! of random op logs for the property and model-based tests. Never used by production code.

use std::sync::LazyLock;

use lucid_consensus::testing;
use lucid_core::{NetworkId, NodeId, PoolId, Slot, UnixMillis};
use proptest::prelude::*;

use lucid_core::message::Message as _;

use crate::log::SignedOp;
use crate::op::{AcceptedOp, Op, PoolOp};

/// Node ids of test keys 0..200, computed once.
static NODES: LazyLock<Vec<NodeId>> =
    LazyLock::new(|| (0..200).map(|i| testing::key(i).node_id()).collect());

/// The id of test node `i` (0..200).
pub fn node(i: usize) -> NodeId {
    NODES[i]
}

/// The test network.
pub fn network() -> NetworkId {
    testing::params().network
}

/// An accepted op by node `i` signed in `slot`.
pub fn accepted(i: usize, slot: u64, op: Op) -> AcceptedOp {
    let ts =
        UnixMillis(1_704_067_200_000 + i64::try_from(slot).unwrap_or(i64::MAX) * 120_000 + 1_000);
    AcceptedOp::new(PoolOp { node: node(i), slot: Slot(slot), ts, op }, &network())
}

/// `op` signed by the key of its signer, which must be one of the test nodes 0..200: the
/// signed pair the op log stores. The digest equals `op.digest` because encoding is canonical.
pub fn signed(op: &AcceptedOp) -> SignedOp {
    let Some(index) = NODES.iter().position(|n| *n == op.op.node) else {
        panic!("{} is not a test node", op.op.node);
    };
    let key = testing::key(u64::try_from(index).unwrap_or(u64::MAX));
    let message = op.op.sign(&network(), &key);
    assert_eq!(message.digest(), op.digest, "canonical encoding");
    SignedOp { accepted: op.clone(), message }
}

/// The pool a Create by node `i` in `slot` named `name` makes.
pub fn pool_id(i: usize, slot: u64, name: &str) -> PoolId {
    PoolId::derive(&node(i), Slot(slot), name)
}

/// How many distinct nodes the random logs use.
pub const LOG_NODES: usize = 8;
/// Signing slot of the first batch of a random log.
pub const LOG_BASE_SLOT: u64 = 10;

/// An op with its pool and nodes still abstract (indexes), resolved by [`build_log`].
#[derive(Clone, Debug)]
pub struct AbstractOp {
    node: usize,
    kind: u8,
    pool: usize,
    target: usize,
    ban: bool,
    max: u8,
    /// Leader ops: signed by the pool's founder rather than `node` (usually the leader).
    by_founder: bool,
}

fn abstract_op() -> impl Strategy<Value = AbstractOp> {
    (
        0..LOG_NODES,
        // Joins and leaves are the common case; weight them up.
        prop_oneof![
            2 => Just(1u8),
            5 => Just(2u8),
            3 => Just(3u8),
            2 => Just(4u8),
            1 => Just(5u8),
            2 => Just(6u8),
            1 => Just(7u8),
        ],
        0..4usize,
        0..LOG_NODES,
        any::<bool>(),
        prop_oneof![
            6 => 1..=8u8,
            2 => Just(100u8),
            1 => Just(0u8),
            1 => Just(101u8),
            1 => any::<u8>(),
        ],
        proptest::bool::weighted(0.7),
    )
        .prop_map(|(node, kind, pool, target, ban, max, by_founder)| AbstractOp {
            node,
            kind,
            pool,
            target,
            ban,
            max,
            by_founder,
        })
}

/// Batches of abstract ops, one batch per signing slot.
pub fn abstract_log(
    slots: std::ops::Range<usize>,
    per_slot: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Vec<AbstractOp>>> {
    proptest::collection::vec(proptest::collection::vec(abstract_op(), per_slot), slots)
}

/// Resolves abstract batches into accepted ops: batch k is signed in slot `LOG_BASE_SLOT + k`.
/// Pools are picked among the pools the valid Creates of the log made so far, or (one time in eight)
/// a pool that never exists; leader ops are mostly signed by the pool's founder; each node signs at
/// most one op per slot (the uniqueness key).
pub fn build_log(batches: &[Vec<AbstractOp>]) -> Vec<AcceptedOp> {
    let slot_of = |k: usize| LOG_BASE_SLOT + u64::try_from(k).unwrap_or(u64::MAX);
    let unknown = (PoolId::from_bytes([0xee; 16]), 0);
    let mut pools: Vec<(PoolId, usize)> = Vec::new();
    // Nodes that sent a Join to / were banned from each pool so far: likely targets.
    let mut joiners: std::collections::BTreeMap<PoolId, Vec<usize>> = Default::default();
    let mut banned: std::collections::BTreeMap<PoolId, Vec<usize>> = Default::default();
    let pick = |list: Option<&Vec<usize>>, index: usize| {
        list.filter(|l| !l.is_empty()).map_or(index, |l| l[index % l.len()])
    };
    let mut log = Vec::new();
    for (k, batch) in batches.iter().enumerate() {
        let mut signed = [false; LOG_NODES];
        for op in batch {
            // Until some pool exists, every op is a Create, so that logs are mostly about pools
            // that exist.
            let (kind, max) =
                if pools.is_empty() { (1, 1 + op.max % 8) } else { (op.kind, op.max) };
            let (pool, founder) = if op.pool == 3 && op.ban || pools.is_empty() {
                unknown
            } else {
                pools[op.pool % pools.len()]
            };
            let signer = match kind {
                4..=7 if op.by_founder => founder,
                3 if op.by_founder => pick(joiners.get(&pool), op.target),
                _ => op.node,
            };
            if std::mem::replace(&mut signed[signer], true) {
                continue;
            }
            let target = match kind {
                4 => pick(joiners.get(&pool), op.target),
                5 => pick(banned.get(&pool), op.target),
                _ => op.target,
            };
            match kind {
                2 => joiners.entry(pool).or_default().push(signer),
                4 if op.ban => banned.entry(pool).or_default().push(target),
                _ => {}
            }
            let target = node(target);
            let op_kind = match kind {
                1 => {
                    let name = format!("pool-{signer}");
                    if (1..=100).contains(&max) {
                        pools.push((pool_id(signer, slot_of(k), &name), signer));
                    }
                    Op::Create { name, max_nodes: max }
                }
                2 => Op::Join { pool },
                3 => Op::Leave { pool },
                4 => Op::Remove { pool, member: target, ban: op.ban },
                5 => Op::Unban { pool, node: target },
                6 => Op::SetMaxNodes { pool, max },
                _ => Op::Disband { pool },
            };
            log.push(accepted(signer, slot_of(k), op_kind));
        }
    }
    log
}

/// Drives `store` through `log` as a running node does, slot by slot from the first signing
/// slot to the last effect slot: at the start of slot t the ops due at t are applied from the log
/// ([`crate::log::apply_logged`]), then the ops signed in t are logged and noted as accepted, in
/// canonical order. Returns the last slot driven, the `through` of an equivalent rebuild.
pub async fn drive(
    store: &dyn crate::store::PoolStore,
    log: &[SignedOp],
) -> Result<Slot, crate::Error> {
    let Some(first) = log.iter().map(|op| op.accepted.op.slot).min() else {
        return Ok(Slot(0));
    };
    let last = log.iter().filter_map(SignedOp::effect_slot).max().unwrap_or(first);
    let mut by_slot: std::collections::BTreeMap<Slot, Vec<&SignedOp>> = Default::default();
    for op in log {
        by_slot.entry(op.accepted.op.slot).or_default().push(op);
    }
    for slot in first.0..=last.0 {
        crate::log::apply_logged(store, Slot(slot)).await?;
        if let Some(ops) = by_slot.get_mut(&Slot(slot)) {
            ops.sort_by_key(|op| op.accepted.canonical_key());
            for op in ops.iter() {
                if store.log_op(op).await? == crate::log::LogOutcome::Inserted {
                    crate::store::note_accepted_in_store(store, &op.accepted).await?;
                }
            }
        }
    }
    Ok(last)
}

/// Membership rows in an order that does not depend on when each row was inserted: a rebuild
/// inserts the row of a Join when it applies, a running node when the Join was accepted.
pub fn sorted_rows(mut rows: Vec<crate::model::Membership>) -> Vec<crate::model::Membership> {
    rows.sort_by_key(|r| (r.pool_id, r.node_id, r.from_slot, r.op_digest));
    rows
}

pub mod crash;
