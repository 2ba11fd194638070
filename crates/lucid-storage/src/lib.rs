//! Storage adapter: SQLite and PostgreSQL implementations of the store ports of the domain
//! crates, and the schema migrations of both backends.
//!
//! A [`Database`] is opened from a URL (`sqlite://PATH` or `postgres://…`) and migrated at
//! open. It implements `lucid_consensus::store::ProofStore` over the `registrations`, `proofs`,
//! `evidence` and `seals` tables of `consensus.md` §10, with exactly the semantics of
//! `MemoryProofStore`, and `lucid_pools::PoolStore` over the `pools` and `pool_members` tables of
//! `pools-payouts.md` §6, with exactly the semantics of `MemoryPoolStore`, and
//! `lucid_consensus::records::RecordStore` over the tally, schedule and slot-result tables of
//! `consensus.md` §10, with exactly the semantics of `MemoryRecordStore`, and
//! `lucid_payouts::store::{LedgerStore, PayoutStore}` over the `ledger_*`, `payouts` and
//! `payout_attempts` tables, with exactly the semantics of `MemoryPayoutStore`.
//!
//! Queries are built at run time (`sqlx::QueryBuilder` with multi-row inserts), not with the
//! compile-time checked `query!` macros: with two backends in one crate the macros would need
//! two offline databases. Correctness is proven instead by running one test suite on both
//! backends (`tests/it`).
//!
//! This crate does NOT decide anything: verdicts, equivocation, ranking stay in the domain
//! crates; it stores what they accepted and reports back what it holds. It does NOT start an
//! async runtime (the caller's tokio runtime runs it) and it does NOT fall back silently: an
//! unreachable or damaged database is an error.
//!
//! # Invariants
//! - Insert-if-absent everywhere: an accepted proof, registration or evidence row is never
//!   overwritten; a taken key is reported as `Duplicate` (same bytes) or `Conflict` (the stored
//!   pair).
//! - The signed bytes are the source of truth; reads decode them with the canonical decoder and
//!   check key and digest columns. A mismatch is an error, never a guess or a panic.
//! - Unsigned integers are converted to BIGINT with checks; nothing wraps.
//! - SQLite: WAL, `synchronous = FULL`, foreign keys on, a busy timeout, `PRAGMA
//!   integrity_check` at open, and all writes through one connection with `BEGIN IMMEDIATE`,
//!   so concurrent writers of this process queue instead of failing with `database is locked`.
//!   A file this crate creates has 16 KiB pages (an existing one keeps its page size).
//! - Proof batches: one transaction each; a fresh batch goes in by multi-row inserts (SQLite) or
//!   one binary `COPY` (PostgreSQL) and is judged key by key only when a key was taken.
//!   `Database::insert_proofs_phased` reports where the time of a write went ([`WritePhases`]).
//! - Migrations are embedded, numbered alike for both backends, and run at open.
//! - Pool op log (`pool_ops`, migration 0006): insert-if-absent by digest, one op per (node,
//!   slot), signed bytes and signature write-once by trigger, never deleted; only the state moves.
//! - Proof sums (`proof_sums`, migrations 0007 and 0008): per (720-slot chunk, node) credit sums
//!   and a beacon bitmap (twelve 60-bit words), merged in SQL only in the transaction that inserts
//!   the proofs they sum, so they always agree with the `proofs` table; the tally read from them
//!   equals `TallyBuilder` over the proofs. A database without the `proof_sums` mark in
//!   `derived_state` (one that held proofs before 0008) has them recomputed from every proof at
//!   open, by the incremental path's own code, in one transaction that writes the mark.
//! - Proofs are unique by key; the `digest` column is unique by construction (a hash of signed
//!   bytes that decode to that key, checked on every read) and not indexed (migration 0008).
//! - Pools (§2.4): every `PoolStore` method is one write transaction that locks the pool row
//!   first and checks before it writes; seating is the conditional increment `… WHERE seats <
//!   max_nodes AND status <> 'disbanded'` that must affect exactly one row. The schema is the
//!   backstop: `CHECK (max_nodes BETWEEN 1 AND 100)`, `CHECK (seats BETWEEN 0 AND max_nodes)`,
//!   status and role checks, partial unique indexes for one seat per node and one leader seat per
//!   pool, so a bug above the store cannot break those invariants.
//! - Ledger and payouts (§4, §5, §8 T3–T8): every port method is one write transaction that
//!   locks what it decides on (the payout row, the account rows in one global order, the node's
//!   account before a payout is created; claims under an advisory lock on PostgreSQL), and every
//!   payout write is a compare-and-set on the status read. Balances are maintained with the
//!   entries and never go below zero on non-negative accounts; the schema is the backstop:
//!   `CHECK (balance >= 0)`, unique posting keys, immutable entries (triggers), `UNIQUE
//!   (node_id, idempotency_key)`, `CHECK (fee + net = gross)` and one live attempt per payout.
//! - Records (consensus.md §8.4): schedules and slot results are insert-if-absent in one
//!   transaction with the read-back that judges a taken slot (`AlreadyPresent` or a typed
//!   conflict); schema triggers refuse every later UPDATE or DELETE of them and every change of a
//!   settled tally, and a tally revision never moves back or changes its digest.
//!
//! # Features
//! - `testing`: `testing::TestDb`, throwaway SQLite files and PostgreSQL databases (a private
//!   server on loopback, or `LUCID_TEST_POSTGRES_URL`) for tests and benches.
//! - `session`: the spent-txid registry of hosted sessions (`SpentTxids` of
//!   `lucid-payouts/session` over `session_spent_txids`, migration 0009, whose primary key
//!   refuses a second session for one payment).
#![warn(missing_docs)]

mod consensus;
mod database;
pub mod error;
mod payouts;
mod pools;
mod records;
#[cfg(feature = "session")]
mod sessions;
mod sql;
mod sums;

#[cfg(feature = "testing")]
pub mod testing;

pub use consensus::WritePhases;
pub use database::{Backend, Database};
pub use error::Error;
pub use sums::CHUNK_SLOTS;
