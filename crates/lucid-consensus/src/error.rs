//! The error type of this crate: failures of our own machinery (a store that failed, a broken
//! invariant). Faults of peers are never errors here; they are verdicts (`ingest::Verdict`).

use std::sync::Arc;

use lucid_core::{Bug, ErrorKind, HasKind, Slot};

/// A failure of the consensus machinery.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The proof store failed.
    #[error("proof store failed while {action}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The coarse kind reported by the store.
        kind: ErrorKind,
        /// The store's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A time computation fell outside the representable range.
    #[error("time out of range")]
    Time(#[source] lucid_core::TimeError),
    /// A slot result was already recorded differently; results are never overwritten.
    #[error("slot result for {slot} is already recorded differently")]
    ResultConflict {
        /// The slot.
        slot: Slot,
    },
    /// A schedule was already stored differently; schedules are never overwritten.
    #[error("schedule for {slot} is already stored differently")]
    ScheduleConflict {
        /// The slot.
        slot: Slot,
    },
    /// A slot lies below the horizon of an in-memory log, which no longer remembers it and so
    /// cannot promise never to overwrite it.
    #[error("{slot} lies below the in-memory horizon {horizon}")]
    SlotPruned {
        /// The slot written.
        slot: Slot,
        /// The oldest slot the log still holds.
        horizon: Slot,
    },
    /// A tally revision was stored with a different digest; revisions are never rewritten.
    #[error("tally of {epoch} is already stored at this revision with another digest")]
    TallyConflict {
        /// The epoch.
        epoch: lucid_core::Epoch,
    },
    /// An internal invariant broke.
    #[error(transparent)]
    Bug(#[from] Bug),
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Store { kind, .. } => *kind,
            Error::Time(_) => ErrorKind::InvalidInput,
            Error::ResultConflict { .. } => ErrorKind::Internal,
            Error::ScheduleConflict { .. } => ErrorKind::Internal,
            Error::SlotPruned { .. } => ErrorKind::InvalidInput,
            Error::TallyConflict { .. } => ErrorKind::Internal,
            Error::Bug(_) => ErrorKind::Internal,
        }
    }
}
