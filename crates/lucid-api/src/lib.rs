//! The HTTP API of the Lucid node (axum, port 8080): `/health/live`, `/health/ready`, `/health`,
//! `/metrics` and `/api/v1/...`, with one JSON error envelope and request ids.
//!
//! Handlers reach the node only through the [`NodeApi`] trait, which this crate defines and the
//! daemon implements; JSON shapes (DTOs) live here and nowhere else.
//!
//! This crate does NOT run services, own state, talk to the database or read the clock: it turns
//! HTTP requests into calls of `NodeApi` and the answers into JSON.
//!
//! # Invariants
//! - Every error response is the envelope `{"error": {"code", "message", "request_id"}}` without
//!   internal detail; `X-Request-ID` is echoed or generated on every response.
//! - `ErrorKind` maps to an HTTP status in exactly one function ([`status_of`]).
//! - Literal route segments are never shadowed by parameters (tested).
//!
//! The gRPC API (tonic, port 50051) lives in [`grpc`]: the `Operator` service over `NodeApi`, and
//! the `Peer` service over the [`grpc::PeerApi`] port, with protobuf conversions as `FromProto`/`ToProto`
//! impls and `ErrorKind` mapped to a gRPC code in exactly one function ([`grpc::grpc_code`]).
//!
//! # Features
//! None.
#![warn(missing_docs)]

pub mod envelope;
pub mod grpc;
pub mod routes;

pub use envelope::{ApiError, status_of};
pub use routes::{
    ClockInfo, ComponentHealth, HealthReport, HealthStatus, NodeApi, NodeInfo, router, serve,
};
