//! Pool ops through the API: accepting a signed op (the node's own, signed here for the admin
//! routes, or any node's), refusing it early when the local view already knows it would be
//! rejected (`pools-payouts.md` §2.2, advisory), logging it, and applying logged ops at their
//! effect slot through the `PoolStore` port, where the one-transaction store methods decide.
//!
//! An accepted op is written to the op log (`PoolStore::log_op`, write-once, the signed bytes as
//! received) before it is acknowledged, and the applier reads the due ops from the log, so an op
//! accepted less than three slots before a restart is applied at its effect slot all the same.
//! Nothing about waiting ops lives only in memory: at start the applier notes every pending op
//! again (idempotent: a Join's `joining` row, a Leave's `leaving` seat) in case the process
//! stopped between logging and noting, then applies whatever is due.

use std::sync::Mutex;
use std::time::Duration;

use lucid_api::Failure;
use lucid_api::dto::OpAccepted;
use lucid_core::message::Message as _;
use lucid_core::{Signature, SignedMessage, Slot, UnixMillis};
use lucid_pools::log::{LogOutcome, SignedOp, apply_logged};
use lucid_pools::model::{is_valid_max_nodes, is_valid_name};
use lucid_pools::store::note_accepted_in_store;
use lucid_pools::{AcceptedOp, MemberStatus, Op, PoolOp, PoolStatus};
use tokio_util::sync::CancellationToken;

use crate::node::State;
use crate::operator::store_failure;

/// Serialises submissions, and remembers how many logged ops waited at the last look (for the
/// health report only; the log is the source of truth).
#[derive(Default)]
pub(crate) struct PoolOps {
    /// Serialises submissions so that the advisory capacity check and the `joining` row of one
    /// join are seen by the next (the store's transaction still decides at the effect slot).
    submit: tokio::sync::Mutex<()>,
    waiting: Mutex<usize>,
    /// Held while logged ops are applied, and while ops from peers are logged (a late one
    /// rebuilds membership), so the two never interleave (`gossip::ops`).
    pub(crate) apply: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl PoolOps {
    /// How many logged ops waited for their effect slot at the last look.
    pub(crate) fn waiting(&self) -> usize {
        *self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_waiting(&self, count: usize) {
        *self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = count;
    }
}

/// The pending logged ops.
async fn pending(state: &State) -> Result<Vec<SignedOp>, Failure> {
    let pending =
        state.ports.pools.pending_ops().await.map_err(store_failure("reading the pool op log"))?;
    state.pool_ops.set_waiting(pending.len());
    Ok(pending)
}

/// The pending op with `digest`, if any.
async fn find(state: &State, digest: &lucid_core::Digest) -> Result<Option<AcceptedOp>, Failure> {
    Ok(pending(state).await?.into_iter().find(|op| op.digest() == *digest).map(|op| op.accepted))
}

/// Whether `node` has a logged Create or Join still waiting.
async fn has_pending_seat_request(
    state: &State,
    node: &lucid_core::NodeId,
) -> Result<bool, Failure> {
    Ok(pending(state).await?.iter().any(|logged| {
        logged.accepted.op.node == *node
            && matches!(logged.accepted.op.op, Op::Join { .. } | Op::Create { .. })
    }))
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
    match pools.log_op(&logged).await.map_err(store_failure("logging a pool op"))? {
        LogOutcome::Inserted => {}
        LogOutcome::Duplicate => return Ok(answer(&logged.accepted, effect)),
        LogOutcome::Conflict { existing } => {
            tracing::warn!(digest = %logged.digest(), existing = %existing.digest(), "second pool op of one node in one slot refused");
            return Err(Failure::InvalidState(
                "this node already signed another pool op in the same slot".to_owned(),
            ));
        }
    }
    note_accepted_in_store(pools.as_ref(), &logged.accepted)
        .await
        .map_err(store_failure("recording an accepted pool op"))?;
    // Every node must log the same ops: push it to the peers (anti-entropy repairs a loss).
    if let Some(gossip) = state.gossip_hook.get() {
        gossip.pool_op(None, logged.message.clone());
    }
    let accepted = logged.accepted;
    tracing::info!(digest = %accepted.digest, tag = ?accepted.op.op.tag(), effect = effect.0, "pool op accepted");
    state.pool_ops.set_waiting(state.pool_ops.waiting().saturating_add(1));
    Ok(answer(&accepted, effect))
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
            if seat_requested {
                return Err(Failure::AlreadyInPool);
            }
            if members()
                .await?
                .iter()
                .any(|m| m.node_id == op.node && m.status == MemberStatus::Banned)
            {
                return Err(Failure::Banned);
            }
            let pending =
                pools.pending_joins(&pool_id).await.map_err(store_failure("counting joins"))?;
            let taken = u64::from(pool.seats).saturating_add(pending as u64);
            if taken >= u64::from(pool.max_nodes) {
                return Err(Failure::PoolFull);
            }
            Ok(())
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

/// Applies every logged op whose effect slot is at most `slot`, slot by slot in canonical order
/// through the store, settling each in the log. A failure is logged and the ops stay pending, so
/// the next tick applies them (re-running is safe, see `apply_logged`).
pub(crate) async fn apply_due(state: &State, slot: Slot) {
    let _apply = state.pool_ops.apply.lock().await;
    match apply_logged(state.ports.pools.as_ref(), slot).await {
        Ok(applied) => {
            for (effect, outcomes) in applied {
                for outcome in outcomes {
                    tracing::info!(digest = %outcome.digest, result = ?outcome.result, slot = effect.0, "pool op applied");
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, slot = slot.0, "applying pool ops failed; they stay pending");
        }
    }
    if let Err(error) = pending(state).await {
        tracing::warn!(?error, "counting pending pool ops failed");
    }
}

/// Notes every pending logged op again (a `joining` row, a `leaving` seat), for an op logged by a
/// process that stopped before noting it. Idempotent.
pub(crate) async fn recover(state: &State) {
    let pools = state.ports.pools.as_ref();
    let pending = match pools.pending_ops().await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "reading the pool op log at start failed");
            return;
        }
    };
    state.pool_ops.set_waiting(pending.len());
    for op in &pending {
        if let Err(error) = note_accepted_in_store(pools, &op.accepted).await {
            tracing::error!(%error, digest = %op.digest(), "noting a logged pool op at start failed");
        }
    }
    if !pending.is_empty() {
        tracing::info!(ops = pending.len(), "pending pool ops recovered from the log");
    }
}

/// Recovers the pending ops of the log, then at every slot boundary (by the wall clock, re-read
/// on waking) applies the ops due.
pub(crate) async fn applier(state: std::sync::Arc<State>, cancel: CancellationToken) {
    recover(&state).await;
    let time = state.config.consensus.time;
    loop {
        let now = state.clock.wall();
        let wake_at = match time.slot_of(now) {
            Ok(slot) => {
                apply_due(&state, slot).await;
                time.slot_start(Slot(slot.0.saturating_add(1))).unwrap_or(now)
            }
            Err(_) => time.genesis(),
        };
        let now = state.clock.wall();
        let wait = u64::try_from(wake_at.0.saturating_sub(now.0)).unwrap_or(0).max(1);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}
