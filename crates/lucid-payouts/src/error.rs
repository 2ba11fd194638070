//! The error type of this crate: refused postings, broken amount rules and illegal transitions.

use lucid_core::{AmountError, Epoch, ErrorKind, HasKind, MicroUsdt};

use crate::payout::PayoutStatus;

/// A failure of a money rule.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A posting is malformed (empty, unbalanced, repeated account, zero amount, bad key).
    #[error("posting {key:?} is invalid: {rule}")]
    InvalidPosting {
        /// The posting key.
        key: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// A posting key was used before with different content.
    #[error("posting {key:?} already exists with different entries")]
    PostingConflict {
        /// The posting key.
        key: String,
    },
    /// Applying the posting would take an account below zero that must not go negative.
    #[error("posting {key:?} would overdraw account {account}")]
    Overdraft {
        /// The posting key.
        key: String,
        /// The account that would go negative.
        account: String,
    },
    /// An amount computation overflowed or a split was impossible.
    #[error("amount computation failed while {action}")]
    Amount {
        /// What was being computed.
        action: &'static str,
        /// Why.
        #[source]
        source: AmountError,
    },
    /// A pool's reward could not be split among its members.
    #[error("pool reward of epoch {epoch} could not be split")]
    PoolSplit {
        /// The epoch.
        epoch: Epoch,
        /// Why.
        #[source]
        source: lucid_pools::Error,
    },
    /// A payout configuration value breaks its rule.
    #[error("payout setting {key} = {value} is invalid: {rule}")]
    InvalidConfig {
        /// The configuration key.
        key: &'static str,
        /// The value given.
        value: MicroUsdt,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A payout state change that the state machine does not allow.
    #[error("payout cannot go from {from} to {to}")]
    IllegalTransition {
        /// Current state.
        from: PayoutStatus,
        /// Requested state.
        to: PayoutStatus,
    },
    /// No payout has this id.
    #[error("payout {payout_id} not found")]
    PayoutNotFound {
        /// The payout id.
        payout_id: String,
    },
    /// A compare-and-set found the payout in another state than expected: someone else (another
    /// worker, a cancel, a lease release) moved it first.
    #[error("payout {payout_id} is {found}, expected {expected}")]
    StateChanged {
        /// The payout id.
        payout_id: String,
        /// The state the caller expected.
        expected: PayoutStatus,
        /// The state found.
        found: PayoutStatus,
    },
    /// A compare-and-set on a payout's attempt failed (not the live attempt, wrong number,
    /// duplicate txid, a broadcast by someone else in between).
    #[error("attempt of payout {payout_id} refused: {rule}")]
    AttemptRefused {
        /// The payout id.
        payout_id: String,
        /// The rule that refused it.
        rule: &'static str,
    },
    /// A payout rail call failed in transport; the same call may be retried.
    #[error("payout rail {rail} failed while {action}: {message}")]
    Rail {
        /// The rail kind.
        rail: &'static str,
        /// What was being done.
        action: &'static str,
        /// What the rail reported.
        message: String,
    },
    /// The rail cannot move money: payouts wait for a chain (`awaiting_chain`).
    #[error("the {rail} rail signs and broadcasts nothing")]
    NoChain {
        /// The rail kind.
        rail: &'static str,
    },
    /// The payout store failed or could not be reached; nothing was committed.
    #[error("payout store unavailable while {action}: {message}")]
    StoreUnavailable {
        /// What was being done.
        action: &'static str,
        /// Why.
        message: String,
    },
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPosting { .. } | Error::InvalidConfig { .. } => ErrorKind::InvalidInput,
            Error::PostingConflict { .. } | Error::Overdraft { .. } => ErrorKind::Conflict,
            Error::IllegalTransition { .. } => ErrorKind::Conflict,
            Error::Amount { .. } | Error::PoolSplit { .. } => ErrorKind::Internal,
            Error::PayoutNotFound { .. } => ErrorKind::NotFound,
            Error::StateChanged { .. } | Error::AttemptRefused { .. } => ErrorKind::Conflict,
            Error::Rail { .. } => ErrorKind::TransientNetwork,
            Error::NoChain { .. } => ErrorKind::FeatureDisabled,
            Error::StoreUnavailable { .. } => ErrorKind::StoreUnavailable,
        }
    }
}
