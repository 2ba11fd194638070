//! The `PayoutRail` port (pools-payouts.md §5.9): how the processor signs, broadcasts and
//! observes one on-chain transfer, and the ledger-only rail that moves no money.
//!
//! The port is object-safe and travels as `Arc<dyn PayoutRail>`; `#[async_trait]` needs no
//! runtime. The TRON adapter lives behind the `tron` feature; tests use a fake chain.

use async_trait::async_trait;
use lucid_core::{MicroUsdt, UnixMillis};

use crate::error::Error;

/// A TRON address in its 21-byte form (0x41 ‖ 20 bytes).
pub type ChainAddress = [u8; 21];

/// A transaction id: SHA-256 of the raw transaction bytes on TRON.
pub type Txid = [u8; 32];

/// Which rail moves the money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RailKind {
    /// No chain: payouts are created and reserved and wait, `awaiting_chain`.
    LedgerOnly,
    /// USDT-TRC20 on TRON.
    Tron,
    /// A test double (fake chain).
    Fake,
}

impl RailKind {
    /// The name used in errors, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RailKind::LedgerOnly => "ledger_only",
            RailKind::Tron => "tron",
            RailKind::Fake => "fake",
        }
    }
}

/// What the processor asks the rail to transfer for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferIntent {
    /// The payout paid.
    pub payout_id: String,
    /// The destination snapshotted at creation.
    pub to_address: ChainAddress,
    /// What goes on chain (gross − fee).
    pub net: MicroUsdt,
    /// 1 for the first attempt; each later attempt has a new txid.
    pub attempt_no: u32,
}

/// The hot wallet's readiness for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Enough USDT and TRX (or free energy) for the whole batch.
    Ok {
        /// The balances the check read, when the rail has a wallet: the processor reports them
        /// so that the caller need not read the chain again for its gauges.
        wallet: Option<HotWallet>,
    },
    /// Not enough: the claims go back to `pending`, nothing is signed, health is degraded.
    HotWalletLow {
        /// Σ net of the batch.
        usdt_needed: MicroUsdt,
        /// The hot wallet's USDT.
        usdt_available: MicroUsdt,
        /// Σ fee_limit of the batch, in sun.
        trx_needed_sun: u64,
        /// The hot wallet's TRX (plus free energy valued in sun), in sun.
        trx_available_sun: u64,
        /// The balances the check read (as in [`Preflight::Ok`]).
        wallet: Option<HotWallet>,
    },
}

impl Preflight {
    /// The hot wallet's balances the check read, if the rail has a wallet.
    pub fn wallet(&self) -> Option<HotWallet> {
        match self {
            Preflight::Ok { wallet } | Preflight::HotWalletLow { wallet, .. } => *wallet,
        }
    }
}

/// What the hot wallet holds, as the chain reports it (the gauges `lucid_hot_wallet_usdt_micro`
/// and `lucid_hot_wallet_trx_sun`). Integers in the chain's units; never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HotWallet {
    /// USDT held, micro-USDT (= token units).
    pub usdt: MicroUsdt,
    /// TRX held, sun.
    pub trx_sun: u64,
}

/// A signed transaction, exactly as committed in the attempt row before any broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransfer {
    /// SHA-256 of `raw`.
    pub txid: Txid,
    /// The raw transaction bytes; every broadcast sends exactly these.
    pub raw: Vec<u8>,
    /// The signature over the txid.
    pub signature: Vec<u8>,
    /// After this chain time the transaction can never be included.
    pub expiration: UnixMillis,
    /// The most TRX (sun) the transaction may burn.
    pub fee_limit_sun: u64,
}

/// A chain's refusal of a broadcast.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// `SIGERROR`: the signature does not verify.
    SigError,
    /// `CONTRACT_VALIDATE_ERROR`: the call is invalid (for example, balance too low).
    ContractValidate,
    /// `TAPOS_ERROR`: the reference block is unknown.
    Tapos,
    /// `TRANSACTION_EXPIRATION_ERROR`: the transaction expired.
    Expired,
    /// `BANDWITH_ERROR` (sic): not enough bandwidth.
    Bandwidth,
    /// Any other code: proves nothing about the transaction's fate.
    Other(String),
}

impl RejectCode {
    /// The chain's code.
    pub fn as_str(&self) -> &str {
        match self {
            RejectCode::SigError => "SIGERROR",
            RejectCode::ContractValidate => "CONTRACT_VALIDATE_ERROR",
            RejectCode::Tapos => "TAPOS_ERROR",
            RejectCode::Expired => "TRANSACTION_EXPIRATION_ERROR",
            RejectCode::Bandwidth => "BANDWITH_ERROR",
            RejectCode::Other(code) => code,
        }
    }

    /// Whether the code, on the first broadcast of some bytes, proves they never reach the
    /// chain (§5.6 step 3).
    pub fn is_definitive(&self) -> bool {
        !matches!(self, RejectCode::Other(_))
    }

    /// Whether a new attempt (fresh reference block, new txid) may succeed. A bad signature or
    /// an invalid contract call would fail again, so they fail the payout at once.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RejectCode::SigError | RejectCode::ContractValidate)
    }
}

/// What a broadcast returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// `result: true`.
    Accepted,
    /// `DUP_TRANSACTION_ERROR`: the chain already has these bytes.
    Duplicate,
    /// A refusal with its code.
    Rejected(RejectCode),
    /// No answer (network error, timeout, lost response): the bytes may or may not be on chain.
    Unknown,
}

/// The transfer a solidified transaction must contain to count as paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTransfer {
    /// The destination.
    pub to_address: ChainAddress,
    /// Exactly this many units.
    pub net: MicroUsdt,
}

/// What the chain knows about a txid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// Neither the full node nor the solidity node knows the txid.
    NotFound,
    /// Known but not solidified yet.
    Pending,
    /// Solidified (irreversible).
    Solidified {
        /// The receipt's result is `SUCCESS`.
        success: bool,
        /// A Transfer log from the hot wallet to the expected address of exactly net units on
        /// the configured contract exists.
        transfer_matches: bool,
        /// The block number.
        block: u64,
        /// Energy used.
        energy_used: u64,
        /// TRX burned, in sun.
        fee_sun: u64,
    },
}

/// The port through which payouts reach a chain (§5.9).
///
/// Transport failures are `Err(Error::Rail { .. })` and may be retried with the same call;
/// a broadcast never fails: an unanswered broadcast is [`BroadcastOutcome::Unknown`].
#[async_trait]
pub trait PayoutRail: Send + Sync {
    /// Which rail this is.
    fn kind(&self) -> RailKind;

    /// Whether the hot wallet can pay the whole batch.
    async fn preflight(&self, batch: &[TransferIntent]) -> Result<Preflight, Error>;

    /// The hot wallet's balances as the chain reports them now; `None` for a rail without a
    /// wallet (ledger-only), so that no gauge shows a made-up zero.
    async fn hot_wallet(&self) -> Result<Option<HotWallet>, Error> {
        Ok(None)
    }

    /// Builds and signs the transfer of one attempt; nothing is sent.
    async fn build_and_sign(&self, intent: &TransferIntent) -> Result<SignedTransfer, Error>;

    /// Sends exactly the stored bytes.
    async fn broadcast(&self, transfer: &SignedTransfer) -> BroadcastOutcome;

    /// What the chain knows about `txid`; `expected` is what the Transfer log must show, which
    /// the rail needs because the txid alone does not say what was meant to be paid.
    async fn status(&self, txid: &Txid, expected: &ExpectedTransfer) -> Result<ChainStatus, Error>;
}

/// The rail without a chain (no `blockchain` feature): it signs and broadcasts nothing, and the
/// processor leaves every payout `pending`, marked awaiting a chain.
#[derive(Clone, Copy, Debug, Default)]
pub struct LedgerOnlyRail;

#[async_trait]
impl PayoutRail for LedgerOnlyRail {
    fn kind(&self) -> RailKind {
        RailKind::LedgerOnly
    }

    async fn preflight(&self, _batch: &[TransferIntent]) -> Result<Preflight, Error> {
        Err(Error::NoChain { rail: RailKind::LedgerOnly.as_str() })
    }

    async fn build_and_sign(&self, _intent: &TransferIntent) -> Result<SignedTransfer, Error> {
        Err(Error::NoChain { rail: RailKind::LedgerOnly.as_str() })
    }

    async fn broadcast(&self, _transfer: &SignedTransfer) -> BroadcastOutcome {
        // Nothing was sent, and saying so is the only honest answer; the processor never calls
        // this because it claims nothing on this rail.
        BroadcastOutcome::Rejected(RejectCode::Other("NO_CHAIN".to_owned()))
    }

    async fn status(
        &self,
        _txid: &Txid,
        _expected: &ExpectedTransfer,
    ) -> Result<ChainStatus, Error> {
        Ok(ChainStatus::NotFound)
    }
}
