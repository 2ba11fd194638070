//! The HTTP API of the Lucid node (axum, port 8080): `/health/live`, `/health/ready`, `/health`,
//! `/metrics` and `/api/v1/...` (nodes, pools, tally, leader schedule, balances, payouts,
//! resources, and the OpenAPI document), with one JSON error envelope and request ids.
//!
//! Handlers reach the node only through the [`NodeApi`] trait, which this crate defines and the
//! daemon implements; JSON shapes (DTOs, [`dto`]) live here and nowhere else. Mutations need the
//! admin bearer token ([`AdminToken`], constant-time comparison) or a node signature.
//!
//! This crate does NOT run services, own state, talk to the database or read the clock: it turns
//! HTTP requests into calls of `NodeApi` and the answers into JSON.
//!
//! # Invariants
//! - Every error response is the envelope `{"error": {"code", "message", "request_id"}}` without
//!   internal detail; `X-Request-ID` is echoed or generated on every response.
//! - A [`Failure`] maps to an HTTP status in exactly one function ([`status_of`]).
//! - Every mutation is admin (401 without or with a malformed header, 403 with a wrong token) or
//!   signed; bodies are limited to 1 MiB (413); malformed, mistyped and unknown-field bodies are
//!   400, a body that is not JSON 415.
//! - The router and the OpenAPI document are made from one route table: the document lists
//!   exactly the routes served (tested).
//! - Literal route segments are never shadowed by parameters (tested).
//!
//! The gRPC API (tonic, port 50051) lives in [`grpc`]: the `Operator` service over `NodeApi`, and
//! the `Peer` service over the [`grpc::PeerApi`] port, with protobuf conversions as `FromProto`/`ToProto`
//! impls and `ErrorKind` mapped to a gRPC code in exactly one function ([`grpc::grpc_code`]).
//!
//! # Features
//! None.
#![warn(missing_docs)]

pub mod auth;
pub mod dto;
pub mod envelope;
pub mod extract;
pub mod failure;
pub mod grpc;
pub mod openapi;
pub mod routes;

pub use auth::AdminToken;
pub use failure::{Failure, Missing, status_of};
pub use routes::{
    ClockInfo, ComponentHealth, HealthReport, HealthStatus, NodeApi, NodeInfo, route_specs, router,
    serve,
};
