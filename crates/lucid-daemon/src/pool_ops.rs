//! Pool ops through the API: accepting a signed op (the node's own, signed here for the admin
//! routes, or any node's), refusing it early when the local view already knows it would be
//! rejected (`pools-payouts.md` §2.2, advisory), and applying accepted ops at their effect slot
//! through the `PoolStore` port, where the one-transaction store methods decide.
//!
//! Accepted ops wait in memory until their effect slot. A Join leaves a `joining` row in the store
//! at once, so capacity counts it as pending. The op log that makes waiting ops survive a restart
//! belongs to the storage adapter (issue 3); until it is wired, ops accepted less than three slots
//! before a shutdown are lost and their `joining` rows stay pending.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use lucid_api::Failure;
use lucid_api::dto::OpAccepted;
use lucid_core::message::Message as _;
use lucid_core::{Signature, SignedMessage, Slot, UnixMillis};
use lucid_pools::model::{is_valid_max_nodes, is_valid_name};
use lucid_pools::{AcceptedOp, MemberStatus, Op, PoolOp, PoolStatus};
use tokio_util::sync::CancellationToken;

use crate::node::State;
use crate::operator::store_failure;

/// Ops accepted and not yet applied, by effect slot.
#[derive(Default)]
pub(crate) struct PoolOps {
    pending: Mutex<BTreeMap<Slot, Vec<AcceptedOp>>>,
    /// Serialises submissions so that the advisory capacity check and the `joining` row of one
    /// join are seen by the next (the store's transaction still decides at the effect slot).
    submit: tokio::sync::Mutex<()>,
}

impl PoolOps {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Slot, Vec<AcceptedOp>>> {
        // Each critical section is one map operation: a poisoned lock still guards a whole map.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn find(&self, digest: &lucid_core::Digest) -> Option<AcceptedOp> {
        self.lock().values().flatten().find(|op| op.digest == *digest).cloned()
    }

    fn has_pending_seat_request(&self, node: &lucid_core::NodeId) -> bool {
        self.lock().values().flatten().any(|accepted| {
            accepted.op.node == *node
                && matches!(accepted.op.op, Op::Join { .. } | Op::Create { .. })
        })
    }

    fn push(&self, effect: Slot, op: AcceptedOp) {
        self.lock().entry(effect).or_default().push(op);
    }

    /// Removes and returns the ops whose effect slot is at most `slot`, by effect slot.
    fn take_due(&self, slot: Slot) -> BTreeMap<Slot, Vec<AcceptedOp>> {
        let mut pending = self.lock();
        let later = pending.split_off(&Slot(slot.0.saturating_add(1)));
        std::mem::replace(&mut *pending, later)
    }

    /// How many ops wait.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
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
    if let Some(known) = state.pool_ops.find(&accepted.digest) {
        return Ok(answer(&known, effect));
    }
    // A first check outside the lock, so that refusals run in parallel and never queue behind
    // accepted ops; the check is repeated under the lock before anything is recorded.
    advise(state, &accepted.op).await?;
    let _serial = state.pool_ops.submit.lock().await;
    if let Some(known) = state.pool_ops.find(&accepted.digest) {
        return Ok(answer(&known, effect));
    }
    advise(state, &accepted.op).await?;
    let pools = &state.ports.pools;
    match &accepted.op.op {
        Op::Join { pool } => {
            pools
                .note_join(pool, &accepted.op.node, effect, &accepted.digest)
                .await
                .map_err(store_failure("recording a join"))?;
        }
        Op::Leave { pool } => {
            pools
                .mark_leaving(pool, &accepted.op.node)
                .await
                .map_err(store_failure("marking a seat as leaving"))?;
        }
        _ => {}
    }
    tracing::info!(digest = %accepted.digest, tag = ?accepted.op.op.tag(), effect = effect.0, "pool op accepted");
    let reply = answer(&accepted, effect);
    state.pool_ops.push(effect, accepted);
    Ok(reply)
}

/// Refuses an op whose outcome the local view already knows to be a rejection.
async fn advise(state: &State, op: &PoolOp) -> Result<(), Failure> {
    let pools = &state.ports.pools;
    let signer_seat =
        pools.pool_of(&op.node).await.map_err(store_failure("reading the signer's seat"))?;
    let seat_requested = signer_seat.is_some() || state.pool_ops.has_pending_seat_request(&op.node);
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

/// Applies every waiting op whose effect slot is at most `slot`, slot by slot in canonical
/// order through the store. A batch that fails is logged and dropped rather than retried: part
/// of it may have committed, and applying it again could turn an applied join into a rejection.
pub(crate) async fn apply_due(state: &State, slot: Slot) {
    for (effect, ops) in state.pool_ops.take_due(slot) {
        match lucid_pools::store::apply_slot_to_store(&*state.ports.pools, effect, &ops).await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    tracing::info!(digest = %outcome.digest, result = ?outcome.result, slot = effect.0, "pool op applied");
                }
            }
            Err(error) => {
                tracing::error!(%error, slot = effect.0, ops = ops.len(), "applying pool ops failed; the batch is dropped");
            }
        }
    }
}

/// At every slot boundary (by the wall clock, re-read on waking) applies the ops due.
pub(crate) async fn applier(state: std::sync::Arc<State>, cancel: CancellationToken) {
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
