//! Pool ops through the API: accepting a signed op (the node's own, signed here for the admin
//! routes, or any node's), refusing it early when the local view already knows it would be
//! rejected (`pools-payouts.md` §2.2, advisory), logging it, and applying logged ops at their
//! effect slot through the `PoolStore` port, where the one-transaction store methods decide.
//!
//! An accepted op is written to the op log (`PoolStore::log_op`, write-once, the signed bytes as
//! received) before it is acknowledged, and the applier reads the due ops from the log, so an op
//! accepted less than three slots before a restart is applied at its effect slot all the same.
//! Nothing about waiting ops lives only in memory: at start the pool health loop
//! (`services::pools`) notes every pending op again (idempotent: a Join's `joining` row, a Leave's
//! `leaving` seat) in case the process stopped between logging and noting, applies whatever is
//! due, and checks the tables against the rebuild from the log.
//!
//! Joins, the op that arrives in bulk, are checked with one read of the store
//! (`PoolStore::join_advice`: the pending duplicate, the pool, the facts of
//! `checks::join_refusal`) and committed in groups: each accepted Join waits in a
//! bounded queue ([`JoinQueue`]), and whichever request gets the submission lock first takes
//! up to [`JOIN_BATCH_MAX`] waiting Joins and logs them in one transaction
//! (`PoolStore::log_joins`), where each Join is checked again against the store as the Joins
//! before it in the batch left it. Every caller is answered only after the commit that holds its
//! Join, so an answered Join is durable and one that was never committed was never answered. A
//! full queue is answered 503 `STORE_UNAVAILABLE` with `Retry-After`, so memory stays bounded.

use std::collections::VecDeque;
use std::sync::Arc;

use lucid_api::Failure;
use lucid_api::dto::OpAccepted;
use lucid_core::message::Message as _;
use lucid_core::{Signature, SignedMessage, Slot, UnixMillis};
use lucid_pools::checks::join_refusal;
use lucid_pools::log::{LogOutcome, OpState, SignedOp};
use lucid_pools::model::{is_valid_max_nodes, is_valid_name};
use lucid_pools::store::join_facts;
use lucid_pools::{
    AcceptedOp, JoinAdmission, MemberStatus, Op, PoolOp, PoolStatus, PoolStore, RejectReason,
};
use tokio::sync::oneshot;

use crate::node::State;
use crate::operator::store_failure;

/// Joins that may wait for the group commit at once; one more is answered 503.
pub(crate) const JOIN_QUEUE_CAPACITY: usize = 4096;
/// Joins logged in one transaction at most.
pub(crate) const JOIN_BATCH_MAX: usize = 512;

/// Serialises submissions (how many ops wait is in the log, reported by the pool health loop).
pub(crate) struct PoolOps {
    /// Serialises submissions so that the advisory capacity check and the `joining` row of one
    /// join are seen by the next (the store's transaction still decides at the effect slot).
    /// A batch of Joins holds it from its first check to its commit.
    submit: Arc<tokio::sync::Mutex<()>>,
    /// Held while logged ops are applied (the pool health loop), and while ops from peers are
    /// logged (a late one rebuilds membership), so the two never interleave (`gossip::ops`).
    pub(crate) apply: Arc<tokio::sync::Mutex<()>>,
    /// Accepted Joins waiting for their group commit.
    joins: Arc<JoinQueue>,
}

impl Default for PoolOps {
    fn default() -> Self {
        PoolOps::with_join_capacity(JOIN_QUEUE_CAPACITY)
    }
}

impl PoolOps {
    /// Submissions whose Join queue holds at most `capacity` Joins.
    pub(crate) fn with_join_capacity(capacity: usize) -> Self {
        PoolOps {
            submit: Arc::default(),
            apply: Arc::default(),
            joins: Arc::new(JoinQueue { waiting: std::sync::Mutex::default(), capacity }),
        }
    }
}

/// What a waiting Join is answered.
type JoinAnswer = Result<JoinAdmission, Failure>;

/// A Join waiting for the commit that will hold it, and where its answer goes.
struct WaitingJoin {
    join: SignedOp,
    answer: oneshot::Sender<JoinAnswer>,
}

/// The bounded queue of accepted Joins not yet committed.
pub(crate) struct JoinQueue {
    waiting: std::sync::Mutex<VecDeque<WaitingJoin>>,
    capacity: usize,
}

impl JoinQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<WaitingJoin>> {
        // The queue is consistent after any panic (push and drain are single calls).
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `join`; its answer arrives once a batch holding it committed (or failed). A full
    /// queue refuses at once.
    fn push(&self, join: SignedOp) -> Result<oneshot::Receiver<JoinAnswer>, Failure> {
        let mut waiting = self.lock();
        if waiting.len() >= self.capacity {
            tracing::warn!(capacity = self.capacity, "the Join queue is full; answering 503");
            return Err(Failure::StoreUnavailable);
        }
        let (answer, receiver) = oneshot::channel();
        waiting.push_back(WaitingJoin { join, answer });
        Ok(receiver)
    }

    /// Takes up to [`JOIN_BATCH_MAX`] waiting Joins, oldest first.
    fn take_batch(&self) -> Vec<WaitingJoin> {
        let mut waiting = self.lock();
        let count = waiting.len().min(JOIN_BATCH_MAX);
        waiting.drain(..count).collect()
    }
}

/// Commits the Joins waiting now, if any, as one batch under the submission lock, and answers
/// each. Runs as its own task, so that a caller who goes away cannot cancel a commit that holds
/// other callers' Joins.
async fn commit_waiting_joins(
    queue: Arc<JoinQueue>,
    pools: Arc<dyn PoolStore>,
    serial: Arc<tokio::sync::Mutex<()>>,
) {
    let _serial = serial.lock().await;
    let batch = queue.take_batch();
    if batch.is_empty() {
        // An earlier batch took this caller's Join.
        return;
    }
    let joins: Vec<SignedOp> = batch.iter().map(|w| w.join.clone()).collect();
    match pools.log_joins(&joins).await {
        Ok(outcomes) if outcomes.len() == batch.len() => {
            tracing::debug!(joins = batch.len(), "a batch of Joins committed");
            for (waiting, outcome) in batch.into_iter().zip(outcomes) {
                let answer = outcome.map_err(store_failure("logging a batched Join"));
                // A caller who went away is not waiting for the answer; its Join stays logged.
                let _ = waiting.answer.send(answer);
            }
        }
        Ok(outcomes) => {
            tracing::error!(
                joins = batch.len(),
                outcomes = outcomes.len(),
                "a batch of Joins was answered with the wrong number of outcomes"
            );
            for waiting in batch {
                let _ = waiting.answer.send(Err(Failure::Internal));
            }
        }
        Err(error) => {
            let failure = store_failure("logging a batch of Joins")(error);
            for waiting in batch {
                let _ = waiting.answer.send(Err(failure.clone()));
            }
        }
    }
}

/// The API failure of an advisory refusal.
fn refusal(reason: RejectReason) -> Failure {
    match reason {
        RejectReason::PoolNotFound => Failure::NotFound(lucid_api::Missing::Pool),
        RejectReason::PoolDisbanded => Failure::PoolDisbanded,
        RejectReason::PoolFull => Failure::PoolFull,
        RejectReason::AlreadyInPool => Failure::AlreadyInPool,
        RejectReason::NotMember => Failure::NotMember,
        RejectReason::Banned => Failure::Banned,
        RejectReason::NotLeader => Failure::NotLeader,
        RejectReason::BelowSeats => Failure::BelowSeats,
        RejectReason::InvalidName => Failure::InvalidName,
        RejectReason::InvalidMaxNodes => Failure::InvalidMaxNodes,
    }
}

/// The pending op with `digest`, if any (one keyed read, not a scan of the log).
async fn find(state: &State, digest: &lucid_core::Digest) -> Result<Option<AcceptedOp>, Failure> {
    let logged = state
        .ports
        .pools
        .logged_op(digest)
        .await
        .map_err(store_failure("reading the pool op log"))?;
    Ok(logged.filter(|l| l.state == OpState::Pending).map(|l| l.op.accepted))
}

/// Whether `node` has a logged Create or Join still waiting (one keyed read).
async fn has_pending_seat_request(
    state: &State,
    node: &lucid_core::NodeId,
) -> Result<bool, Failure> {
    state
        .ports
        .pools
        .has_pending_seat_request(node)
        .await
        .map_err(store_failure("reading the pool op log"))
}

fn answer(accepted: &AcceptedOp, effect: Slot) -> OpAccepted {
    let pool = accepted.op.op.pool().or_else(|| accepted.op.created_pool_id());
    OpAccepted {
        op_digest: accepted.digest.to_hex(),
        pool_id: pool.map(|p| p.to_string()).unwrap_or_default(),
        effective_slot: effect.0,
    }
}

/// The current slot, or `NotReady` before genesis.
fn current_slot(state: &State) -> Result<(Slot, UnixMillis), Failure> {
    let now = state.clock.wall();
    let slot = state.config.consensus.time.slot_of(now).map_err(|_| Failure::NotReady)?;
    Ok((slot, now))
}

/// The own node signs `op` in the current slot and submits it.
pub(crate) async fn submit_own(state: &State, op: Op) -> Result<OpAccepted, Failure> {
    if let Op::Create { name, max_nodes } = &op {
        if !is_valid_name(name) {
            return Err(Failure::InvalidName);
        }
        if !is_valid_max_nodes(*max_nodes) {
            return Err(Failure::InvalidMaxNodes);
        }
    }
    let (slot, now) = current_slot(state)?;
    let pool_op = PoolOp { node: state.key.node_id(), slot, ts: now, op };
    let signed = pool_op.sign(&state.config.consensus.network, &state.key);
    let (bytes, signature) = signed.into_parts();
    submit(state, bytes, signature).await
}

/// Accepts a signed pool op: strict decoding, the network, the signature, the slot window, the
/// advisory rules; then records it.
pub(crate) async fn submit(
    state: &State,
    bytes: Vec<u8>,
    signature: Signature,
) -> Result<OpAccepted, Failure> {
    let (network, op) = PoolOp::from_signed_bytes(&bytes)
        .map_err(|error| Failure::MalformedMessage(error.to_string()))?;
    if network != state.config.consensus.network {
        return Err(Failure::InvalidInput("the op is signed for another network".to_owned()));
    }
    let signed = SignedMessage::new(bytes, signature);
    if !signed.verify(&op.node) {
        return Err(Failure::BadSignature);
    }
    let (slot, _) = current_slot(state)?;
    let time = state.config.consensus.time;
    // The op's slot is the current one, or the previous one for an op signed at a boundary.
    if op.slot > slot || op.slot.0.saturating_add(1) < slot.0 {
        return Err(Failure::InvalidInput("the op's slot is not the current slot".to_owned()));
    }
    if time.slot_of(op.ts).ok() != Some(op.slot) {
        return Err(Failure::InvalidInput("the op's time is not inside its slot".to_owned()));
    }
    let effect = op.effect_slot().ok_or_else(|| Failure::InvalidInput("slot overflow".into()))?;
    let accepted = AcceptedOp::new(op, &network);
    if let Op::Join { pool } = accepted.op.op {
        // The op that arrives in bulk: its duplicate and advisory checks are one read.
        let advice = state
            .ports
            .pools
            .join_advice(&pool, &accepted.op.node, &accepted.digest)
            .await
            .map_err(store_failure("reading the facts of a Join"))?;
        if advice.pending_duplicate {
            return Ok(answer(&accepted, effect));
        }
        if let Some(reason) = join_refusal(advice.pool.as_ref(), advice.facts) {
            return Err(refusal(reason));
        }
        return submit_join(state, SignedOp { accepted, message: signed }, effect).await;
    }
    // The same signed op again is answered as before and changes nothing.
    if let Some(known) = find(state, &accepted.digest).await? {
        return Ok(answer(&known, effect));
    }
    // A first check outside the lock, so that refusals run in parallel and never queue behind
    // accepted ops; the check is repeated under the lock before anything is recorded.
    advise(state, &accepted.op).await?;
    let _serial = state.pool_ops.submit.lock().await;
    if let Some(known) = find(state, &accepted.digest).await? {
        return Ok(answer(&known, effect));
    }
    advise(state, &accepted.op).await?;
    let pools = &state.ports.pools;
    let logged = SignedOp { accepted, message: signed };
    // Logged before it is acknowledged: from here on a restart cannot lose it.
    // The log row and the note (a `joining` row, a `leaving` seat) are one commit.
    match pools.log_accepted(&logged).await.map_err(store_failure("logging a pool op"))? {
        LogOutcome::Inserted => {}
        LogOutcome::Duplicate => return Ok(answer(&logged.accepted, effect)),
        LogOutcome::Conflict { existing } => {
            tracing::warn!(digest = %logged.digest(), existing = %existing.digest(), "second pool op of one node in one slot refused");
            return Err(Failure::InvalidState(
                "this node already signed another pool op in the same slot".to_owned(),
            ));
        }
    }
    Ok(accepted_now(state, logged, effect))
}

/// Pushes an op just logged to the peers and answers it.
fn accepted_now(state: &State, logged: SignedOp, effect: Slot) -> OpAccepted {
    // Every node must log the same ops: push it to the peers (anti-entropy repairs a loss).
    if let Some(gossip) = state.gossip_hook.get() {
        gossip.pool_op(None, logged.message.clone());
    }
    let accepted = logged.accepted;
    tracing::info!(digest = %accepted.digest, tag = ?accepted.op.op.tag(), effect = effect.0, "pool op accepted");
    answer(&accepted, effect)
}

/// Queues a Join for the group commit and answers it once the batch that holds it committed.
async fn submit_join(state: &State, join: SignedOp, effect: Slot) -> Result<OpAccepted, Failure> {
    let queue = &state.pool_ops.joins;
    let answer_of_batch = queue.push(join.clone())?;
    tokio::spawn(commit_waiting_joins(
        Arc::clone(queue),
        Arc::clone(&state.ports.pools),
        Arc::clone(&state.pool_ops.submit),
    ));
    // A batch task that stopped before answering (the runtime is shutting down) committed
    // nothing that this caller was told about.
    let admission = answer_of_batch.await.map_err(|_| Failure::StoreUnavailable)??;
    match admission {
        JoinAdmission::Logged => Ok(accepted_now(state, join, effect)),
        JoinAdmission::Duplicate => Ok(answer(&join.accepted, effect)),
        JoinAdmission::Conflict { .. } => {
            tracing::warn!(digest = %join.digest(), "second pool op of one node in one slot refused");
            Err(Failure::InvalidState(
                "this node already signed another pool op in the same slot".to_owned(),
            ))
        }
        JoinAdmission::Refused(reason) => Err(refusal(reason)),
    }
}

/// Refuses an op whose outcome the local view already knows to be a rejection.
async fn advise(state: &State, op: &PoolOp) -> Result<(), Failure> {
    let pools = &state.ports.pools;
    let signer_seat =
        pools.pool_of(&op.node).await.map_err(store_failure("reading the signer's seat"))?;
    let seat_requested = signer_seat.is_some() || has_pending_seat_request(state, &op.node).await?;
    let Some(pool_id) = op.op.pool() else {
        // Create: validated by the decoder except `max_nodes`.
        if let Op::Create { max_nodes, .. } = &op.op
            && !is_valid_max_nodes(*max_nodes)
        {
            return Err(Failure::InvalidMaxNodes);
        }
        return if seat_requested { Err(Failure::AlreadyInPool) } else { Ok(()) };
    };
    let stored = pools
        .get_pool(&pool_id)
        .await
        .map_err(store_failure("reading a pool"))?
        .ok_or(Failure::NotFound(lucid_api::Missing::Pool))?;
    let pool = &stored.pool;
    if pool.status == PoolStatus::Disbanded {
        return Err(Failure::PoolDisbanded);
    }
    let is_leader = pool.leader == op.node;
    let members = || async {
        pools.members(&pool_id).await.map_err(store_failure("reading a pool's members"))
    };
    match &op.op {
        Op::Create { .. } => Ok(()),
        Op::Join { .. } => {
            // Joins are advised by `join_advice` in `submit`; this is the same rule, which the
            // group commit applies again inside its transaction.
            let facts = join_facts(pools.as_ref(), &pool_id, &op.node, seat_requested)
                .await
                .map_err(store_failure("reading the facts of a Join"))?;
            join_refusal(Some(pool), facts).map_or(Ok(()), |reason| Err(refusal(reason)))
        }
        Op::Leave { .. } => {
            if signer_seat == Some(pool_id) {
                Ok(())
            } else {
                Err(Failure::NotMember)
            }
        }
        Op::Remove { member, .. } => {
            if !is_leader {
                return Err(Failure::NotLeader);
            }
            let seated = members().await?.iter().any(|m| m.node_id == *member && m.is_seat());
            if !seated || *member == pool.leader { Err(Failure::NotMember) } else { Ok(()) }
        }
        Op::Unban { node, .. } => {
            if !is_leader {
                return Err(Failure::NotLeader);
            }
            let banned = members()
                .await?
                .iter()
                .any(|m| m.node_id == *node && m.status == MemberStatus::Banned);
            if banned { Ok(()) } else { Err(Failure::NotMember) }
        }
        Op::SetMaxNodes { max, .. } => {
            if !is_leader {
                return Err(Failure::NotLeader);
            }
            if !is_valid_max_nodes(*max) {
                return Err(Failure::InvalidMaxNodes);
            }
            if u32::from(*max) < pool.seats { Err(Failure::BelowSeats) } else { Ok(()) }
        }
        Op::Disband { .. } => {
            if is_leader {
                Ok(())
            } else {
                Err(Failure::NotLeader)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use lucid_core::{NetworkId, NodeKey, PoolId};

    use super::*;

    fn join(i: u8) -> SignedOp {
        let network: NetworkId = "03".repeat(32).parse().unwrap();
        let key = NodeKey::from_seed(&[i; 32]);
        let op = PoolOp {
            node: key.node_id(),
            slot: Slot(14),
            ts: UnixMillis(14_000),
            op: Op::Join { pool: PoolId::from_bytes([1; 16]) },
        };
        let message = op.sign(&network, &key);
        SignedOp { accepted: AcceptedOp::new(op, &network), message }
    }

    /// The queue holds at most its capacity: one more Join is refused at once (503 with
    /// `Retry-After`), and room comes back as soon as a batch is taken.
    #[test]
    fn the_join_queue_is_bounded_and_batches_are_taken_oldest_first() {
        let ops = PoolOps::with_join_capacity(3);
        let mut receivers: Vec<_> = (0..3).map(|i| ops.joins.push(join(i)).unwrap()).collect();
        assert_eq!(ops.joins.push(join(3)).unwrap_err(), Failure::StoreUnavailable);
        let batch = ops.joins.take_batch();
        let digests: Vec<_> = batch.iter().map(|w| w.join.digest()).collect();
        assert_eq!(digests, (0..3).map(|i| join(i).digest()).collect::<Vec<_>>());
        assert!(ops.joins.take_batch().is_empty());
        receivers.push(ops.joins.push(join(3)).unwrap());
        // A Join taken and never answered (its batch task stopped) reads as a closed channel.
        drop(batch);
        assert!(receivers[0].try_recv().is_err());
    }

    #[test]
    fn a_batch_takes_at_most_join_batch_max() {
        let ops = PoolOps::with_join_capacity(JOIN_BATCH_MAX + 5);
        let join = join(1);
        let _receivers: Vec<_> =
            (0..JOIN_BATCH_MAX + 5).map(|_| ops.joins.push(join.clone()).unwrap()).collect();
        assert_eq!(ops.joins.take_batch().len(), JOIN_BATCH_MAX);
        assert_eq!(ops.joins.take_batch().len(), 5);
    }
}
