//! PoOT, Proof of Operational Tasks: the rules that turn signed task proofs into a work-credit
//! tally and a leader schedule, identically on every node.
//!
//! Nodes sign at most one task proof per (node, slot, kind). [`ingest`] decides for each message
//! a typed [`ingest::Verdict`] from the message, the receiver's `now` and a bounded index of the
//! grace window, and persists accepted proofs through the [`store::ProofStore`] port. [`tally`]
//! aggregates accepted proofs of an epoch's work window into integer credits and density per
//! entity (a pool, or a node in no pool) and ranks them; [`leader`] picks the leader of each slot
//! from the ranking with a cooldown; [`uptime`] reports liveness over windows. [`rolling`] keeps
//! the tally incrementally, slot by slot, and must equal the full recomputation of [`tally`].
//! [`peer_call`] is the signed `peer-call` message and the callee's pure replay guard.
//!
//! This crate does NOT do I/O, read a clock, use an async runtime or know any wire format other
//! than the canonical signing codec of `lucid-core`. The `ProofStore` port is async (through
//! `async-trait`, which needs no runtime) because its adapters are; everything else is
//! synchronous. Signature checks run on all cores through `rayon` ([`verify`]).
//!
//! # Invariants
//! - Validity of a signature is `verify_strict` and nothing else; batch verification is never
//!   used to accept.
//! - The tally of an epoch and the schedule of a slot are pure functions of their inputs: the same
//!   proofs in any order give byte-identical results. Integers only; no hash-map iteration order,
//!   no local time, no randomness.
//! - A proof key with equivocation evidence contributes nothing to any tally.
//! - An accepted proof is never overwritten; a recorded slot result is never overwritten.
//! - Peer input never panics: faults are verdicts, `Result` is for our own machinery.
//!
//! # Features
//! - `testing`: deterministic key fixtures and proof builders for other crates' tests and benches.
#![warn(missing_docs)]

pub mod error;
pub mod ingest;
pub mod leader;
pub mod params;
pub mod peer_call;
pub mod proof;
pub mod records;
pub mod registration;
pub mod ring;
pub mod rolling;
pub mod seal;
pub mod store;
pub mod tally;
pub mod uptime;
pub mod verify;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::Error;
pub use params::ConsensusParams;
pub use proof::{ProofKey, ProofKind, ProofValue, TaskProof};
