//! The error type of `lucid-payouts`, mapped once to the coarse `lucid_core::ErrorKind`: refused
//! postings, broken amount rules, illegal transitions, and the TRON rail's refusals.

use lucid_core::{AmountError, Bug, Epoch, ErrorKind, HasKind, MicroUsdt};

use crate::payout::PayoutStatus;

/// Everything that can go wrong in this crate.
///
/// Variants carry the context needed to act on them; callers decide from [`HasKind::kind`], and
/// the payout state machine may match on the variant where the reaction differs (for example, a
/// fee limit above the cap postpones a payout rather than failing it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A TRON address in text or byte form is not valid.
    #[cfg(feature = "tron")]
    #[error("invalid TRON address for {what}")]
    Address {
        /// What the address was meant to be (destination, contract, hot wallet).
        what: &'static str,
        /// Why it was refused.
        #[source]
        source: crate::address::AddressError,
    },
    /// The hot-wallet key could not be loaded.
    #[error("hot-wallet key refused: {reason}")]
    HotWalletKey {
        /// Why (never contains key material).
        reason: &'static str,
    },
    /// A secp256k1 signature is malformed or does not recover a key.
    #[error("signature refused: {reason}")]
    Signature {
        /// Why.
        reason: &'static str,
    },
    /// Smart-contract call data or a return value does not have the expected ABI shape.
    #[error("ABI data refused: {reason}")]
    Abi {
        /// Why.
        reason: &'static str,
    },
    /// The parameters of a transaction to build are inconsistent.
    #[error("cannot build a TRON transaction: {reason}")]
    Transaction {
        /// Why.
        reason: &'static str,
    },
    /// A transaction handed back by a remote node differs from the one we meant to send, or is
    /// not decodable: it must not be signed.
    #[error("remote TRON transaction refused: {field} differs from the intended transfer")]
    RemoteTransaction {
        /// The first field found to differ (or `encoding` for undecodable bytes).
        field: &'static str,
    },
    /// The inputs of the fee-limit computation are unusable.
    #[error("fee limit refused: {reason}")]
    FeeInput {
        /// Why.
        reason: &'static str,
    },
    /// The fee limit the energy estimate requires is above the configured cap: do not send.
    #[error("fee limit {fee_limit_sun} sun for {energy} energy is above the cap {cap_sun} sun")]
    FeeLimitAboveCap {
        /// Estimated energy of the transfer.
        energy: u64,
        /// Chain price of one unit of energy, in sun.
        energy_fee_sun: u64,
        /// The fee limit the estimate needs (with the safety margin).
        fee_limit_sun: u128,
        /// The cap in force.
        cap_sun: u64,
    },
    /// A TRON node could not be reached or gave no usable reply; the same call may be retried.
    #[cfg(feature = "tron")]
    #[error("TRON call {call} failed in transport")]
    TronTransport {
        /// The API call.
        call: &'static str,
        /// What the transport reported.
        #[source]
        source: crate::tron::TransportError,
    },
    /// A TRON node's reply is malformed, oversized, about something else, or reports failure.
    #[cfg(feature = "tron")]
    #[error("TRON call {call} answered unusably: {reason}")]
    TronResponse {
        /// The API call.
        call: &'static str,
        /// What is wrong with the reply.
        reason: &'static str,
    },
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
    #[error("reward of pool {pool} in epoch {epoch} could not be split: {reason}")]
    PoolSplit {
        /// The epoch.
        epoch: Epoch,
        /// The pool.
        pool: lucid_core::PoolId,
        /// Why.
        reason: PoolSplitFailure,
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
    /// A persistent store (the SQL adapter) failed; nothing of the transaction was committed.
    /// Unlike [`Error::StoreUnavailable`] it keeps the store's own coarse kind, so that a
    /// constraint the schema enforced (a bug above the store) is not mistaken for an outage.
    #[error("payout store failed while {action}: {message}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The coarse kind the store reported.
        kind: ErrorKind,
        /// The store's error chain, as text (the error must stay `Clone + Eq`).
        message: String,
    },
    /// A session setting breaks its rule (feature `session`).
    #[error("session setting {key} is invalid: {rule}")]
    InvalidSessionRule {
        /// The configuration key.
        key: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The operation needs a cargo feature this build does not have.
    #[error("{what} needs the `{feature}` feature")]
    FeatureDisabled {
        /// The feature.
        feature: &'static str,
        /// What was attempted.
        what: &'static str,
    },
    /// A broken internal invariant.
    #[error(transparent)]
    Bug(#[from] Bug),
}

/// Why a pool's reward share could not be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolSplitFailure {
    /// No member contributed credits (posting would make the money vanish).
    #[error("no member contributed credits")]
    NoContributors,
    /// The contribution weights overflowed.
    #[error("the contribution weights overflowed")]
    Overflow,
}

impl PoolSplitFailure {
    /// The failure behind an error of the pools crate's split.
    pub fn of(error: &lucid_pools::Error) -> Self {
        match error {
            lucid_pools::Error::NoContributors { .. } => PoolSplitFailure::NoContributors,
            _ => PoolSplitFailure::Overflow,
        }
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            #[cfg(feature = "tron")]
            Error::Address { .. } => ErrorKind::InvalidInput,
            Error::HotWalletKey { .. } => ErrorKind::InvalidInput,
            Error::Signature { .. } => ErrorKind::InvalidInput,
            Error::Abi { .. } => ErrorKind::InvalidInput,
            Error::Transaction { .. } => ErrorKind::InvalidInput,
            Error::RemoteTransaction { .. } => ErrorKind::PeerMisbehaved,
            Error::FeeInput { .. } => ErrorKind::InvalidInput,
            #[cfg(feature = "tron")]
            Error::TronTransport { .. } => ErrorKind::TransientNetwork,
            #[cfg(feature = "tron")]
            Error::TronResponse { .. } => ErrorKind::PeerMisbehaved,
            // The chain's energy price or the recipient's state makes the transfer too expensive
            // now; the payout waits rather than failing (a too-low limit would burn TRX for
            // nothing).
            Error::FeeLimitAboveCap { .. } => ErrorKind::Conflict,
            Error::InvalidPosting { .. } | Error::InvalidConfig { .. } => ErrorKind::InvalidInput,
            Error::InvalidSessionRule { .. } => ErrorKind::InvalidInput,
            Error::FeatureDisabled { .. } => ErrorKind::FeatureDisabled,
            Error::PostingConflict { .. } | Error::Overdraft { .. } => ErrorKind::Conflict,
            Error::IllegalTransition { .. } => ErrorKind::Conflict,
            Error::Amount { .. } | Error::PoolSplit { .. } => ErrorKind::Internal,
            Error::PayoutNotFound { .. } => ErrorKind::NotFound,
            Error::StateChanged { .. } | Error::AttemptRefused { .. } => ErrorKind::Conflict,
            Error::Rail { .. } => ErrorKind::TransientNetwork,
            Error::NoChain { .. } => ErrorKind::FeatureDisabled,
            Error::StoreUnavailable { .. } => ErrorKind::StoreUnavailable,
            Error::Store { kind, .. } => *kind,
            Error::Bug(bug) => bug.kind(),
        }
    }
}

// Errors cross threads and tasks in the daemon (house style H8).
const _: fn() = || {
    fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Error>();
};
