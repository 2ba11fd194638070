//! The error type of this crate: failures of our own machinery (a store that failed, a broken
//! invariant, a split that cannot be done). Ops that break pool rules are never errors; they end
//! rejected with a typed `RejectReason`.

use std::sync::Arc;

use lucid_core::{AmountError, Bug, ErrorKind, HasKind, MicroUsdt, PoolId};

/// A failure of the pools machinery.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool store failed.
    #[error("pool store failed while {action}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The coarse kind reported by the store.
        kind: ErrorKind,
        /// The store's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A pool share was to be split but no member contributed credits: posting it would make the
    /// money vanish, so the caller must not post it.
    #[error("cannot split {amount} micro-USDT of a pool share: no member contributed credits")]
    NoContributors {
        /// The share that could not be split.
        amount: MicroUsdt,
    },
    /// The contribution weights of a split overflowed.
    #[error("cannot split {amount} micro-USDT of a pool share")]
    Split {
        /// The share that could not be split.
        amount: MicroUsdt,
        /// Why.
        #[source]
        source: AmountError,
    },
    /// An audit found stored membership that breaks an invariant (seat counter, one seat per
    /// node, one leader per pool).
    #[error("membership audit failed for {pool}: {detail}")]
    Audit {
        /// The pool whose rows are inconsistent.
        pool: PoolId,
        /// What is wrong.
        detail: String,
    },
    /// A compare-and-set on a pool kept failing because the pool changed concurrently.
    #[error("pool {pool} kept changing during a compare-and-set")]
    Contention {
        /// The pool.
        pool: PoolId,
    },
    /// An internal invariant broke.
    #[error(transparent)]
    Bug(#[from] Bug),
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Store { kind, .. } => *kind,
            Error::NoContributors { .. } => ErrorKind::InvalidInput,
            Error::Split { .. } => ErrorKind::InvalidInput,
            Error::Audit { .. } => ErrorKind::Internal,
            Error::Contention { .. } => ErrorKind::Conflict,
            Error::Bug(_) => ErrorKind::Internal,
        }
    }
}
