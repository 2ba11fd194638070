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
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPosting { .. } | Error::InvalidConfig { .. } => ErrorKind::InvalidInput,
            Error::PostingConflict { .. } | Error::Overdraft { .. } => ErrorKind::Conflict,
            Error::IllegalTransition { .. } => ErrorKind::Conflict,
            Error::Amount { .. } | Error::PoolSplit { .. } => ErrorKind::Internal,
        }
    }
}
