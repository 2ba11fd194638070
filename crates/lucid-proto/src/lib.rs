//! The wire types of the Lucid node's gRPC API: the protobuf messages and the tonic `Operator`
//! and `Peer` services of package `lucid.node.v1`, generated from `proto/lucid/node/v1/*.proto`.
//!
//! The generated code is committed in `src/gen/` and included with `include!`; there is no
//! `build.rs`, so building needs no `protoc`. `cargo xtask codegen` regenerates it with `protox`
//! (a protobuf compiler in Rust) and `tonic-prost-build`, and an xtask test regenerates it into a
//! temporary directory and fails on any difference, so the code cannot drift from the `.proto`.
//!
//! This crate does NOT convert to or from domain types (that is `lucid-api`'s job, through
//! `TryFrom`), validate anything, or hold any logic: it is the wire format and nothing else.
//!
//! # Invariants
//! - `src/gen/` is exactly what `cargo xtask codegen` produces from `proto/` (tested).
//! - Signed content is carried as `SignedMessage { message, signature }` bytes, never as fields.
//!
//! # Features
//! None.
#![warn(missing_docs)]

/// Package `lucid.node.v1`: messages, `operator_server`/`operator_client` and
/// `peer_server`/`peer_client`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!("gen/lucid.node.v1.rs");
}

/// Largest encoded gRPC message the node sends or accepts (daemon.md §6): 4 MiB.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
