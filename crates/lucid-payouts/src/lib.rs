//! Payouts of the Lucid node: how earned micro-USDT leaves the ledger and reaches a node operator's
//! wallet, and (behind the `tron` feature) the TRON USDT-TRC20 rail that puts a payout on chain.
//!
//! Today the crate holds the TRON building blocks: addresses, the hot-wallet key, TRC20 call data,
//! the raw transaction protobuf with its txid and signature, and the fee limit. The ledger rules,
//! epoch rewards, pay stubs, the payout state machine and their ports (`LedgerStore`,
//! `PayoutStore`, `PayoutRail`, `PaymentVerifier`) land here next, as siblings of `tron`.
//!
//! This crate does NOT do I/O, read the clock, spawn tasks or talk HTTP itself: time comes in as an
//! argument, and the TRON HTTP calls go through the `TronTransport` port that `lucid-daemon`
//! implements. It never builds money from floats and never signs a transaction that a remote node
//! handed back without checking it field by field against what it meant to send.
//!
//! # Invariants
//! - Money is integer micro-USDT, and one micro-USDT is one USDT-TRC20 on-chain unit (6 decimals):
//!   the uint256 in a transfer is the `MicroUsdt` value itself (I17).
//! - A TRON address is 21 bytes with version 0x41; text forms are accepted only through
//!   Base58Check with a valid checksum and version (I18).
//! - txid = SHA-256 of the exact raw transaction bytes, and a signature always recovers the hot
//!   wallet's address; a transaction from elsewhere that differs from the intended transfer in
//!   owner, contract, call data, call value, fee limit or expiration is refused (I19).
//! - The hot-wallet key is zeroized on drop, never shown by `Debug`, and never equals the node's
//!   Ed25519 identity seed.
//! - A fee limit above the configured cap is a typed refusal, never a silent clamp.
//!
//! # Features
//! - `tron`: the TRON rail building blocks in the `tron` module (k256, sha2, sha3, bs58, prost,
//!   zeroize).
//!   Off by default: without it payouts stay in the ledger, marked `awaiting_chain`.
#![warn(missing_docs)]

mod error;
#[cfg(feature = "tron")]
pub mod tron;

pub use error::Error;
