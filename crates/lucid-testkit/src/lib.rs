//! Test support of the Lucid node, used only as a dev-dependency (house style H19): fakes of the
//! outside world that tests talk to over real sockets.
//!
//! Today it holds [`fake_tron::FakeTronNode`], a FAKE TRON full node and solidity node served over
//! HTTP on loopback, faithful to the endpoints the payout client uses.
//!
//! This crate does NOT reuse the code under test to judge it: the fake TRON node decodes
//! transactions with its own protobuf structs, recomputes txids and recovers signers itself, so a
//! bug in `lucid-payouts`' encoder shows up as a refusal here instead of agreeing with itself. It
//! is never a normal dependency of any crate, and it reads no wall clock: the chain advances only
//! when the test says so.
//!
//! # Invariants
//! - Everything fake is named as a fake.
//! - A fake chain applies a transaction at most once (by txid) and only with a valid signature of
//!   its owner, before its expiration and with a known reference block.
//!
//! # Features
//! None.
#![warn(missing_docs)]

pub mod fake_tron;
