//! Money of the Lucid node: the double-entry micro-USDT ledger, the per-epoch reward
//! distribution with its pay stubs, the payout rules and state machine, the TRON address that
//! every node validates for its payout destination, and (behind the `tron` feature) the TRON
//! USDT-TRC20 rail building blocks that put a payout on chain.
//!
//! Every credit and debit is an immutable ledger entry inside a posting identified by a unique
//! key; a balance is the sum of its entries. Epoch rewards split the configured budget across the
//! ranked entities of a settled tally by credits, then a pool's share across its members by their
//! own credits, with exact integer splits. Payouts follow the amount rules (10 USDT minimum gross,
//! 10 000 USDT maximum, a 1 % fee clamped to [0.1, 10] USDT) and a state machine whose every
//! transition is a compare-and-set. The [`processor`] runs the crash-safe send protocol over two
//! ports this crate owns: [`store::PayoutStore`] (one method per transaction, with the in-memory
//! reference `MemoryPayoutStore`, which also implements [`store::LedgerStore`] for credit
//! postings) and [`rail::PayoutRail`] (the chain; `LedgerOnlyRail` when
//! there is none). The [`sweep`] plans the automatic `auto:{period}` payouts. The [`request`]
//! module holds the node-signed `withdrawal` and `payout-cancel` messages and their pure check.
//!
//! This crate does NOT do I/O, read the clock, spawn tasks or talk HTTP itself: the ledger here is
//! the in-memory reference whose semantics the database adapter must match, time comes in as an
//! argument, and the TRON HTTP calls go through the `TronTransport` port (`tron::transport`) that
//! `lucid-daemon` implements. It never builds money from floats and never signs a transaction that a remote node
//! handed back without checking it field by field against what it meant to send.
//!
//! # Invariants
//! - No float appears anywhere in this crate (a tidy test greps for float types); amounts are
//!   `MicroUsdt` or `i64` micro-USDT with checked arithmetic.
//! - Every posting sums to zero; replaying a posting key credits nothing twice; a different
//!   posting under a used key is a conflict.
//! - Accounts that must not go negative (nodes, treasury, in-flight, chain) never do: an
//!   overdraft refuses the whole posting.
//! - For every node, `earned == available + reserved + paid` at every instant.
//! - Splits always sum to the amount split; money never vanishes (a pool share with no
//!   contributor is an error, not a silent loss).
//! - One micro-USDT is one USDT-TRC20 on-chain unit (6 decimals): the uint256 in a transfer is the
//!   `MicroUsdt` value itself (I17).
//! - A TRON address is 21 bytes with version 0x41; text forms are accepted only through
//!   Base58Check with a valid checksum and version (I18).
//! - txid = SHA-256 of the exact raw transaction bytes, and a signature always recovers the hot
//!   wallet's address; a transaction from elsewhere that differs from the intended transfer in
//!   owner, contract, call data, call value, fee limit or expiration is refused (I19).
//! - The hot-wallet key is zeroized on drop, never shown by `Debug`, and never equals the node's
//!   Ed25519 identity seed; a fee limit above the configured cap is a typed refusal, never a clamp.
//!
//! # Features
//! - `testing`: the fake chain, the crash switch and the crash-matrix runner (`testing`), so
//!   that the SQL stores of `lucid-storage` run the same crash matrix as the in-memory store.
//! - `session`: hosted sessions (`session`): the lifecycle state machine `SessionBook` with
//!   its port allocation and revenue posting, the `PaymentVerifier` port with its
//!   `NullPaymentVerifier` (`FeatureDisabled` without a chain), and the `SpentTxids` registry
//!   port that refuses a reused payment. No I/O, no runtime, no float, like the rest.
//! - `tron`: the TRON rail in the `tron` module: building blocks (k256, sha2, sha3, prost,
//!   zeroize), the HTTP client logic with strict JSON parsing (serde_json, hex, tracing) over the
//!   `TronTransport` port, and `TronRail`. Still no runtime and no HTTP library. Off by default:
//!   without it payouts stay in the ledger, marked `awaiting_chain`.
#![warn(missing_docs)]
#![deny(clippy::float_arithmetic)]

pub mod address;
pub mod error;
pub mod ledger;
pub mod payout;
pub mod processor;
pub mod rail;
pub mod request;
pub mod rewards;
#[cfg(feature = "session")]
pub mod session;
pub mod store;
pub mod sweep;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(feature = "tron")]
pub mod tron;

pub use address::{AddressError, TronAddress};
pub use error::Error;
pub use ledger::{Account, Entry, Ledger, NodeBalance, Posting, PostingKind};
