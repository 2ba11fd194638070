//! A `PoolStore` wrapper that simulates a process stop around one op application, for the crash
//! tests of the op log (here and in the storage adapter's tests).

use std::sync::atomic::{AtomicUsize, Ordering};

use lucid_consensus::tally::MembershipTimeline;
use lucid_core::{Digest, NodeId, PoolId, Slot};

use crate::error::Error;
use crate::log::{LogOutcome, LoggedOp, SignedOp};
use crate::model::{Liveness, MemberStatus, Membership, Role};
use crate::state::{OpOutcome, OpResult, PoolState, RejectReason};
use crate::store::{
    CloseOutcome, CreateOutcome, DisbandOutcome, Effect, NewPool, PoolStore, SeatOutcome,
    SetMaxNodesOutcome, Settled, Settlement, StoredPool, UnbanOutcome,
};

/// Where the simulated stop happens relative to the `n`-th op application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The transaction of the `n`-th application never runs.
    Before(usize),
    /// The `n`-th application commits, then the process stops before anything else.
    After(usize),
}

/// Delegates to `inner` until the crash point, then fails every call, like a process that
/// stopped: nothing after the crash point reaches the store.
pub struct CrashingStore<'a> {
    inner: &'a dyn PoolStore,
    point: CrashPoint,
    applications: AtomicUsize,
    crashed: std::sync::atomic::AtomicBool,
}

impl<'a> CrashingStore<'a> {
    /// Wraps `inner`, stopping at `point` (applications counted from 0).
    pub fn new(inner: &'a dyn PoolStore, point: CrashPoint) -> Self {
        CrashingStore {
            inner,
            point,
            applications: AtomicUsize::new(0),
            crashed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the crash point was reached.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    fn stopped(&self) -> Result<(), Error> {
        if self.crashed() {
            return Err(lucid_core::internal!("the process stopped (simulated crash)").into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PoolStore for CrashingStore<'_> {
    async fn apply_and_settle(
        &self,
        effect: &Effect,
        settle: &Settlement,
    ) -> Result<Settled, Error> {
        self.stopped()?;
        let n = self.applications.fetch_add(1, Ordering::SeqCst);
        if self.point == CrashPoint::Before(n) {
            self.crashed.store(true, Ordering::SeqCst);
            return self.stopped().map(|()| Settled::Retry);
        }
        let settled = self.inner.apply_and_settle(effect, settle).await?;
        if self.point == CrashPoint::After(n) {
            self.crashed.store(true, Ordering::SeqCst);
            return self.stopped().map(|()| settled);
        }
        Ok(settled)
    }

    async fn create_pool(&self, new: &NewPool) -> Result<CreateOutcome, Error> {
        self.stopped()?;
        self.inner.create_pool(new).await
    }

    async fn seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error> {
        self.stopped()?;
        self.inner.seat(pool, node, role, from_slot, op_digest).await
    }

    async fn close_seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error> {
        self.stopped()?;
        self.inner.close_seat(pool, node, at_slot, ban).await
    }

    async fn disband(&self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error> {
        self.stopped()?;
        self.inner.disband(pool, at_slot).await
    }

    async fn unban(&self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error> {
        self.stopped()?;
        self.inner.unban(pool, node).await
    }

    async fn set_max_nodes(
        &self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error> {
        self.stopped()?;
        self.inner.set_max_nodes(pool, max, expected_version).await
    }

    async fn note_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, Error> {
        self.stopped()?;
        self.inner.note_join(pool, node, effect_slot, op_digest).await
    }

    async fn reject_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error> {
        self.stopped()?;
        self.inner.reject_join(pool, node, at_slot, op_digest, reason).await
    }

    async fn pending_joins(&self, pool: &PoolId) -> Result<usize, Error> {
        self.stopped()?;
        self.inner.pending_joins(pool).await
    }

    async fn mark_leaving(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        self.stopped()?;
        self.inner.mark_leaving(pool, node).await
    }

    async fn set_liveness(
        &self,
        node: &NodeId,
        liveness: Liveness,
    ) -> Result<Option<MemberStatus>, Error> {
        self.stopped()?;
        self.inner.set_liveness(node, liveness).await
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<StoredPool>, Error> {
        self.stopped()?;
        self.inner.get_pool(pool).await
    }

    async fn members(&self, pool: &PoolId) -> Result<Vec<Membership>, Error> {
        self.stopped()?;
        self.inner.members(pool).await
    }

    async fn is_banned(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        self.stopped()?;
        self.inner.is_banned(pool, node).await
    }

    async fn pool_of(&self, node: &NodeId) -> Result<Option<PoolId>, Error> {
        self.stopped()?;
        self.inner.pool_of(node).await
    }

    async fn timeline(&self) -> Result<MembershipTimeline, Error> {
        self.stopped()?;
        self.inner.timeline().await
    }

    async fn snapshot(&self) -> Result<(Vec<crate::model::Pool>, Vec<Membership>), Error> {
        self.stopped()?;
        self.inner.snapshot().await
    }

    async fn audit(&self) -> Result<(), Error> {
        self.stopped()?;
        self.inner.audit().await
    }

    async fn log_op(&self, op: &SignedOp) -> Result<LogOutcome, Error> {
        self.stopped()?;
        self.inner.log_op(op).await
    }

    async fn pending_ops(&self) -> Result<Vec<SignedOp>, Error> {
        self.stopped()?;
        self.inner.pending_ops().await
    }

    async fn op_log(&self) -> Result<Vec<LoggedOp>, Error> {
        self.stopped()?;
        self.inner.op_log().await
    }

    async fn settle_op(&self, digest: &Digest, result: OpResult, at: Slot) -> Result<bool, Error> {
        self.stopped()?;
        self.inner.settle_op(digest, result, at).await
    }

    async fn restore(
        &self,
        state: &PoolState,
        outcomes: &[(Slot, OpOutcome)],
    ) -> Result<(), Error> {
        self.stopped()?;
        self.inner.restore(state, outcomes).await
    }
}
