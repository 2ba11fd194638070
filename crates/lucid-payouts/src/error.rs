//! The error type of `lucid-payouts`, mapped once to the coarse `lucid_core::ErrorKind`.

use lucid_core::{Bug, ErrorKind, HasKind};

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
        source: crate::tron::AddressError,
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
    /// A broken internal invariant.
    #[error(transparent)]
    Bug(#[from] Bug),
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
            // The chain's energy price or the recipient's state makes the transfer too expensive
            // now; the payout waits rather than failing (a too-low limit would burn TRX for
            // nothing).
            Error::FeeLimitAboveCap { .. } => ErrorKind::Conflict,
            Error::Bug(bug) => bug.kind(),
        }
    }
}

// Errors cross threads and tasks in the daemon (house style H8).
const _: fn() = || {
    fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Error>();
};
