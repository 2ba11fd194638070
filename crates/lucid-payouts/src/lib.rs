//! Money of the Lucid node: the double-entry micro-USDT ledger, the per-epoch reward
//! distribution with its pay stubs, and the payout rules and state machine.
//!
//! Every credit and debit is an immutable ledger entry inside a posting identified by a unique
//! key; a balance is the sum of its entries. Epoch rewards split the configured budget across the
//! ranked entities of a settled tally by credits, then a pool's share across its members by their
//! own credits, with exact integer splits. Payouts follow the amount rules (10 USDT minimum gross,
//! 10 000 USDT maximum, a 1 % fee clamped to [0.1, 10] USDT) and a state machine whose every
//! transition is a compare-and-set.
//!
//! This crate does NOT persist anything, talk to TRON or read a clock: the ledger here is the
//! in-memory reference whose semantics the database adapter must match, and time comes in as
//! arguments.
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
//!
//! # Features
//! None yet; the TRON rail arrives behind a `tron` feature.
#![warn(missing_docs)]
#![deny(clippy::float_arithmetic)]

pub mod error;
pub mod ledger;
pub mod payout;
pub mod processor;
pub mod rail;
pub mod rewards;
pub mod store;

pub use error::Error;
pub use ledger::{Account, Entry, Ledger, NodeBalance, Posting, PostingKind};
