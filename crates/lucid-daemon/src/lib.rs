//! The Lucid node as a set of services: it wires the domain crates to their adapters, runs the
//! slot-driven loops, serves health and metrics through the `NodeApi` port of `lucid-api`, and
//! shuts down gracefully.
//!
//! Gossip ([`gossip`]) pushes what the node accepts live, signs one seal per slot and runs
//! anti-entropy with peers, through the [`network`] ports only.
//!
//! Structured concurrency: one `CancellationToken` root with a child per service, every task
//! spawned through one `TaskTracker`; shutdown is decide (readiness false at once), tell (cancel),
//! wait (the tracker, bounded by the grace period).
//!
//! Money: [`money`] wires the epoch reward distribution (every node) and, on the payer, the
//! payout sweep and processor over the `PayoutRail` the binary chooses (`Node::spawn_money`).
//! [`money_metrics`] counts postings and payout transitions by wrapping the money ports, and
//! shows the payer's hot-wallet balances. `money_forward` decides who answers a payout request
//! (`pools-payouts.md` §5.1): the payer in its ledger; a node with `payouts.payer_node_id`
//! forwards node-signed withdrawals and cancels to it over the peer service and shows its
//! records, never creating a payout of its own.
//!
//! [`peers`] is service 10: the bounded peer table, the gate that authenticates every inbound
//! `Peer` call (signed peer calls, bans, rate limits), the signed tonic client and the peer
//! maintenance loop; [`network`] holds the two ports gossip is written against.
//!
//! This crate does NOT parse command lines or configuration files (the binary does), does not
//! speak SQL or HTTP itself (adapters do), and reads time only through the `Clock` port, which
//! [`clock::SystemClock`] implements as the one place that reads the system clock.
//!
//! # Invariants
//! - Slots are derived from the wall clock at every boundary, never by accumulating sleeps.
//! - A loop's tick never overlaps the previous one; a failing tick is logged and retried.
//! - Readiness is false until start-up completed and as soon as shutdown begins.
//!
//! # Features
//! - `tron`: `tron_transport`, the reqwest (rustls) adapter of the `TronTransport` port of
//!   `lucid-payouts/tron`.
//!
//! - `session`: `sessions`, the session integration ports (`SessionProvider`, `TrustOracle`,
//!   `RdpBackend`) with their `Null*` implementations, the session manager and loop over the
//!   lifecycle of `lucid-payouts/session`, and the work proofs of hosted and validated sessions
//!   (`Node::spawn_sessions`).
//! - `rdp`: implies `session`; the switch by which the binary accepts `rdp.port_range`.
//!
//! The `blockchain`, `session` and `rdp` integrations are wired by the binary's features.
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod gossip;
pub mod metrics;
pub mod money;
mod money_forward;
pub mod money_metrics;
pub mod network;
pub mod node;
mod operator;
pub mod peer;
pub mod peers;
mod pool_ops;
pub mod ports;
pub mod services;
#[cfg(feature = "session")]
pub mod sessions;
mod stubs;
#[cfg(feature = "tron")]
pub mod tron_transport;

pub use config::Config;
pub use lucid_api::AdminToken;
pub use money::{MoneyWiring, PayoutLoops};
pub use node::{DatabaseProbe, Node, NodeError, PeersHandle, ServiceWiring};
pub use ports::{PoolIndex, Ports};
