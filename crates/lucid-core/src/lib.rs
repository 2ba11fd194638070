//! Vocabulary shared by every Lucid crate: identifiers, keys and signatures, integer micro-USDT
//! amounts, slot and epoch time, the canonical signing codec, BLAKE3 contexts, the `Clock` port,
//! and the coarse `ErrorKind` that callers act on.
//!
//! This crate does NOT do I/O, read the clock, spawn threads, know any wire format other than the
//! canonical signing codec, or depend on any other Lucid crate.
//! Randomness enters only as caller-supplied seeds, so every function here is deterministic.
//!
//! # Invariants
//! - A `NodeId` is always a canonical, non-small-order Ed25519 public key; parsing refuses others.
//! - Signature validity is exactly `ed25519_dalek::VerifyingKey::verify_strict`, in one function
//!   ([`verify_strict`]); nothing else in the workspace decides whether a signature is valid.
//! - Secret keys are zeroized on drop and have no `Debug` or `Display` that shows secret bytes.
//! - Money is `MicroUsdt(u64)`: checked arithmetic only, no floats, text with at most 6 decimals.
//! - Slots are computed from time at each boundary (`TimeParams::slot_of`), never accumulated.
//! - Decoding is strict: `encode(decode(b)) == b` for every accepted `b`.
//!
//! # Features
//! - `testing`: exposes `clock::ManualClock` and the seeded generator `rng::SplitMix64` for
//!   other crates' tests, simulations and benches.
#![warn(missing_docs)]

pub mod clock;
pub mod codec;
pub mod error;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod message;
pub mod money;
#[cfg(any(test, feature = "testing"))]
pub mod rng;
pub mod time;

pub use clock::Clock;
pub use error::{Bug, ErrorKind, HasKind};
pub use ids::{Digest, EntityId, IdParseError, NetworkId, NodeId, PoolId};
pub use keys::{NodeKey, Signature, verify_strict};
pub use message::SignedMessage;
pub use money::{AmountError, MicroUsdt};
pub use time::{Epoch, Slot, SlotRange, TimeError, TimeParams, UnixMillis};
