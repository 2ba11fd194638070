//! Pool ops over gossip (`pools-payouts.md` §2.2, `consensus.md` §6.1): how a signed pool op
//! accepted by one node reaches the op log of every node, so that every node applies the same
//! ops at the same effect slot and ends with the same pools.
//!
//! [`PoolOpIngest`] judges pool ops that peers push (`SubmitPoolOps`) or serve (`FetchPoolOps`)
//! with the consensus checks 1–4 and 6–9 of `consensus.md` §6.1, in this order:
//! strict decode and network ([`RejectReason::Malformed`], [`RejectReason::WrongNetwork`]), the
//! signing time inside the op's slot, the slot rule of the path ([`OpPath`]), a registered
//! signer, `verify_strict`, then the write-once log: the same op again is
//! [`Verdict::Duplicate`] (a no-op), a second op of the same signer and slot is
//! [`RejectReason::Equivocation`] and is never stored. Pool rules (capacity, membership,
//! leadership) are NOT checked here: they decide when the op takes effect, on every node alike,
//! so an op the local view would refuse is still logged (refusing it here would make the logs,
//! and so the pools, differ between nodes).
//!
//! An op accepted after its effect slot (only possible on the late path) is applied by
//! rebuilding membership from the log in canonical order (`lucid_pools::log::rebuild_from_log`),
//! under the same lock as the slot applier, so the result is the one every other node reached
//! incrementally.
//!
//! # Invariants
//! - Nothing enters the op log without a valid signature of its signer and a registered signer.
//! - The late path never accepts an op signed by the peer that serves it below the live grace:
//!   no node backfills its own ops alone (the rule of late acceptance for proofs).
//! - Serving the log is bounded: pages of at most [`MAX_PULL_PAGE`] ops.

use std::sync::Arc;

use lucid_api::grpc::{MAX_PULL_PAGE, PoolOpCursor, PoolOpsPage, PoolOpsQuery};
use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_consensus::seal::seal_root;
use lucid_core::{Clock, Digest, ErrorKind, NodeId, SignedMessage, Slot, SlotRange, UnixMillis};
use lucid_pools::PoolStore;
use lucid_pools::log::{LogOutcome, SignedOp, rebuild_from_log};

use crate::services::SharedIngest;

/// The path an op arrived on: its slot rule (check 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpPath {
    /// Pushed live: `current − 2 ≤ slot ≤ slot_of(now + skew)`.
    Live,
    /// Served by `server` through anti-entropy: ops of other signers pass check 3 down to the
    /// window of the oldest unsettled tally; the server's own ops get the live rule.
    Late {
        /// The peer that served the ops.
        server: NodeId,
    },
}

/// What a batch of pool ops produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolOpReport {
    /// One outcome per input op, in input order.
    pub outcomes: Vec<Outcome>,
    /// The ops newly logged, with their signing slots, in input order.
    pub accepted: Vec<(Slot, SignedMessage)>,
    /// Whether membership was rebuilt from the log (an op accepted after its effect slot).
    pub rebuilt: bool,
}

/// Judges and logs pool ops received from peers, and serves the node's op log.
pub struct PoolOpIngest {
    params: ConsensusParams,
    pools: Arc<dyn PoolStore>,
    ingest: SharedIngest,
    clock: Arc<dyn Clock>,
    /// Held while ops are logged and while the slot applier applies, so that a rebuild and an
    /// incremental application never interleave.
    apply: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for PoolOpIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolOpIngest").finish_non_exhaustive()
    }
}

fn pool_error(action: &'static str) -> impl FnOnce(lucid_pools::Error) -> lucid_consensus::Error {
    move |error| {
        let kind = lucid_core::HasKind::kind(&error);
        lucid_consensus::Error::Store {
            action,
            kind: if kind == ErrorKind::Internal { ErrorKind::StoreUnavailable } else { kind },
            source: Arc::new(error),
        }
    }
}

fn reject(message: &SignedMessage, reason: RejectReason) -> Outcome {
    Outcome { digest: message.digest(), verdict: Verdict::Reject(reason) }
}

impl PoolOpIngest {
    /// An ingest logging into `pools`, judging signers against `ingest`'s registry, and
    /// serialised with the slot applier through `apply`.
    pub fn new(
        params: ConsensusParams,
        pools: Arc<dyn PoolStore>,
        ingest: SharedIngest,
        clock: Arc<dyn Clock>,
        apply: Arc<tokio::sync::Mutex<()>>,
    ) -> Self {
        PoolOpIngest { params, pools, ingest, clock, apply }
    }

    /// The current slot and the newest slot a message may carry, at `now`.
    fn slots(&self, now: UnixMillis) -> Option<(Slot, Slot)> {
        let time = self.params.time;
        let current = time.slot_of(now).ok()?;
        let newest = time.slot_of(now.saturating_add_ms(self.params.max_future_skew_ms())).ok()?;
        Some((current, newest))
    }

    /// The late-acceptance floor at `current`: the first slot of the oldest unsettled window.
    pub fn floor(&self, current: Slot) -> Slot {
        super::late_floor(&self.params, current)
    }

    /// The current slot by this ingest's clock (`None` before genesis).
    pub fn current_slot(&self) -> Option<Slot> {
        self.params.time.slot_of(self.clock.wall()).ok()
    }

    /// Checks 1–4 and 7 of one op; the op decoded on success.
    async fn precheck(
        &self,
        message: &SignedMessage,
        path: OpPath,
        current: Slot,
        newest: Slot,
    ) -> Result<SignedOp, RejectReason> {
        let (network, op) =
            SignedOp::decode(message.clone()).map_err(|_| RejectReason::Malformed)?;
        if network != self.params.network {
            return Err(RejectReason::WrongNetwork);
        }
        let pool_op = &op.accepted.op;
        if !self.params.time_in_slot(pool_op.ts, pool_op.slot) {
            return Err(RejectReason::SlotTimestampMismatch);
        }
        let live_oldest = super::live_from(current);
        let oldest = match path {
            OpPath::Late { server } if server != pool_op.node => self.floor(current),
            _ => live_oldest,
        };
        if pool_op.slot < oldest {
            return Err(RejectReason::Stale);
        }
        if pool_op.slot > newest {
            return Err(RejectReason::FromFuture);
        }
        if !self.ingest.lock().await.is_registered(&pool_op.node) {
            return Err(RejectReason::UnknownNode);
        }
        if !message.verify(&pool_op.node) {
            return Err(RejectReason::BadSignature);
        }
        Ok(op)
    }

    /// Judges `ops` arrived on `path` and logs the valid ones; an op logged after its effect
    /// slot rebuilds membership from the log. Store failures are errors; faults of the sender
    /// are verdicts.
    pub async fn ingest(
        &self,
        ops: Vec<SignedMessage>,
        path: OpPath,
    ) -> Result<PoolOpReport, lucid_consensus::Error> {
        let now = self.clock.wall();
        let Some((current, newest)) = self.slots(now) else {
            return Ok(PoolOpReport {
                outcomes: ops.iter().map(|op| reject(op, RejectReason::FromFuture)).collect(),
                ..PoolOpReport::default()
            });
        };
        let _apply = self.apply.lock().await;
        let mut report = PoolOpReport::default();
        let mut past_effect = false;
        for message in ops {
            let op = match self.precheck(&message, path, current, newest).await {
                Ok(op) => op,
                Err(reason) => {
                    report.outcomes.push(reject(&message, reason));
                    continue;
                }
            };
            let digest = op.digest();
            let verdict = match self
                .pools
                .log_accepted(&op)
                .await
                .map_err(pool_error("logging a pool op"))?
            {
                // The log row and its note (a `joining` row, a `leaving` seat) are one commit.
                LogOutcome::Inserted => {
                    let effect = op.effect_slot().unwrap_or(Slot(u64::MAX));
                    past_effect |= effect <= current;
                    tracing::info!(%digest, tag = ?op.accepted.op.op.tag(), effect = effect.0, "pool op accepted from a peer");
                    report.accepted.push((op.accepted.op.slot, message));
                    Verdict::Accept
                }
                LogOutcome::Duplicate => Verdict::Duplicate,
                LogOutcome::Conflict { existing } => {
                    tracing::warn!(%digest, existing = %existing.digest(), node = %op.accepted.op.node, "two pool ops of one node in one slot: the second is refused");
                    Verdict::Reject(RejectReason::Equivocation)
                }
            };
            report.outcomes.push(Outcome { digest, verdict });
        }
        if past_effect {
            // Replays the whole log in canonical order through the current slot: the same
            // membership every node reached by applying the same ops slot by slot.
            rebuild_from_log(self.pools.as_ref(), current)
                .await
                .map_err(pool_error("rebuilding pools from the op log"))?;
            report.rebuilt = true;
            tracing::info!(slot = current.0, "pools rebuilt from the op log after a late op");
        }
        Ok(report)
    }

    /// The logged ops signed in `range`, ordered by (slot, digest).
    async fn logged_in(
        &self,
        range: SlotRange,
    ) -> Result<Vec<(PoolOpCursor, SignedMessage)>, lucid_consensus::Error> {
        let log = self.pools.op_log().await.map_err(pool_error("reading the pool op log"))?;
        let mut ops: Vec<(PoolOpCursor, SignedMessage)> = log
            .into_iter()
            .filter(|logged| range.contains(logged.op.accepted.op.slot))
            .map(|logged| {
                let cursor =
                    PoolOpCursor { slot: logged.op.accepted.op.slot, digest: logged.op.digest() };
                (cursor, logged.op.message)
            })
            .collect();
        ops.sort_by_key(|(cursor, _)| *cursor);
        Ok(ops)
    }

    /// How many ops signed in `range` the log holds and the seal root over their digests.
    pub async fn summary(&self, range: SlotRange) -> Result<(u32, Digest), lucid_consensus::Error> {
        let ops = self.logged_in(range).await?;
        let digests: Vec<Digest> = ops.iter().map(|(cursor, _)| cursor.digest).collect();
        Ok((u32::try_from(digests.len()).unwrap_or(u32::MAX), seal_root(&digests)))
    }

    /// One page of the log for `query` (`FetchPoolOps`): nothing when the caller holds the same
    /// set, else up to `query.limit` ops after `query.after`.
    pub async fn page(&self, query: PoolOpsQuery) -> Result<PoolOpsPage, lucid_consensus::Error> {
        let ops = self.logged_in(query.range).await?;
        let digests: Vec<Digest> = ops.iter().map(|(cursor, _)| cursor.digest).collect();
        let count = u32::try_from(digests.len()).unwrap_or(u32::MAX);
        if count == query.known_count && seal_root(&digests) == query.known_root {
            return Ok(PoolOpsPage { in_sync: true, ..PoolOpsPage::default() });
        }
        let limit = query.limit.clamp(1, MAX_PULL_PAGE);
        let page: Vec<(PoolOpCursor, SignedMessage)> = ops
            .into_iter()
            .filter(|(cursor, _)| query.after.is_none_or(|after| *cursor > after))
            .take(limit)
            .collect();
        let next = if page.len() == limit { page.last().map(|(cursor, _)| *cursor) } else { None };
        Ok(PoolOpsPage {
            in_sync: false,
            ops: page.into_iter().map(|(_, message)| message).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests;
