//! B3: batched persistence of accepted proofs (verification excluded) into SQLite (a temporary
//! file, WAL, `synchronous = FULL`) and PostgreSQL (a private server from the storage test
//! tooling, or `LUCID_TEST_POSTGRES_URL`), batches of 1 000 and 10 000. Targets of
//! `consensus.md` §12: SQLite ≥ 200 k proofs/s, PostgreSQL ≥ 100 k proofs/s.
//!
//! Every measured batch holds new keys (a stored key would only be a duplicate), so the tables
//! grow during the run as they do in production. The store never verifies signatures, so the
//! proofs carry a dummy signature: generating them is setup and stays outside the timing.
//!
//! Where the time went before migration 0008 (SQLite): writing the pages of the `digest` UNIQUE
//! index (digests are uniformly random, so every batch dirtied about one index leaf per proof,
//! written to the WAL at commit and again at checkpoint), handing every `RETURNING` row from the
//! driver's worker thread, and reading back every touched `proof_sums` row before writing it.
//! Since 0008 the digest is not indexed (the key makes it unique), a fresh batch is inserted
//! without `RETURNING`, and the sums are merged in SQL (see `lucid-storage`'s `consensus.rs`
//! and `sums.rs`). Every batch here touches 1 000 (node, chunk) sums rows, as one slot of a
//! 1 000-node network does.

#[path = "support/backends.rs"]
mod backends;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lucid_consensus::proof::{ProofKind, ProofValue, TaskProof};
use lucid_consensus::store::{ProofStore, StoredProof, stored_proof};
use lucid_consensus::testing;
use lucid_core::message::Message;
use lucid_core::{NodeKey, Signature, SignedMessage, Slot};
use lucid_storage::{Database, WritePhases};

/// Distinct signers of the generated proofs (the sizing of `consensus.md` §10).
const NODES: u64 = 1_000;
const BATCH_SIZES: [u64; 2] = [1_000, 10_000];

/// Generates batches of proofs with keys never used before in this run.
struct Workload {
    keys: Vec<NodeKey>,
    next: u64,
}

impl Workload {
    fn batch(&mut self, size: u64) -> Vec<StoredProof> {
        let params = testing::params();
        let start = self.next;
        self.next += size;
        (start..start + size)
            .map(|n| {
                // n ↦ (node, kind, slot) is injective, so every proof has a fresh key.
                let node = usize::try_from(n % NODES).unwrap_or_default();
                let rest = n / NODES;
                let kind = ProofKind::ALL[usize::try_from(rest % 4).unwrap_or_default()];
                let slot = Slot(1_000 + rest / 4);
                let value = match kind {
                    ProofKind::RelayBandwidth => {
                        ProofValue::Relay { bytes_transferred: n, sessions_relayed: 1 }
                    }
                    ProofKind::StorageAvailability => {
                        ProofValue::Storage { chunks_stored: 4, size_bytes: n }
                    }
                    ProofKind::ValidationSignature => {
                        ProofValue::Validation { validated_sessions: 2 }
                    }
                    ProofKind::UptimeBeacon => ProofValue::Beacon { metrics_digest: None },
                };
                let proof: TaskProof = testing::proof(&params, &self.keys[node], slot, value);
                let message = SignedMessage::new(
                    proof.to_signed_bytes(&params.network),
                    Signature::from_bytes([0x11; 64]),
                );
                stored_proof(proof, message, false)
            })
            .collect()
    }
}

fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str, db: &Database) {
    let mut workload = Workload { keys: lucid_benches::keys(NODES), next: 0 };
    let mut group = c.benchmark_group(format!("persist_{name}"));
    group.sample_size(10);
    for size in BATCH_SIZES {
        group.throughput(Throughput::Elements(size));
        group.bench_function(format!("batch_{size}"), |b| {
            b.iter_batched(
                || workload.batch(size),
                |batch| {
                    let outcomes = runtime.block_on(db.insert_proofs(black_box(&batch)));
                    match outcomes {
                        Ok(outcomes) => black_box(outcomes.len()),
                        Err(error) => panic!("persisting a batch failed: {error}"),
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    for size in BATCH_SIZES {
        print_phase_split(runtime, name, db, &mut workload, size);
    }
}

/// Batches written per batch size to report where the time of a write goes.
const PHASE_BATCHES: u32 = 20;

/// Writes [`PHASE_BATCHES`] more batches of `size` and prints the mean time of each phase of a
/// write (`lucid_storage::WritePhases`): the split recorded in `benches/RESULTS.md`.
#[expect(
    clippy::print_stderr,
    reason = "the phase split is reported beside criterion's times, like gossip_sim's notes"
)]
fn print_phase_split(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    db: &Database,
    workload: &mut Workload,
    size: u64,
) {
    let mut phases = WritePhases::default();
    for _ in 0..PHASE_BATCHES {
        let batch = workload.batch(size);
        let mut one = WritePhases::default();
        if let Err(error) = runtime.block_on(db.insert_proofs_phased(&batch, &mut one)) {
            panic!("persisting a batch failed: {error}");
        }
        phases.add(&one);
    }
    let mean = |d: std::time::Duration| d.as_secs_f64() * 1e3 / f64::from(PHASE_BATCHES);
    let total = mean(phases.total());
    eprintln!(
        "phase split persist_{name}/batch_{size} (mean of {PHASE_BATCHES} batches, ms): \
         prepare {:.2}, begin {:.2}, insert {:.2}, sums {:.2}, commit {:.2}; total {total:.2} \
         = {:.0} proofs/s",
        mean(phases.prepare),
        mean(phases.begin),
        mean(phases.insert),
        mean(phases.sums),
        mean(phases.commit),
        size as f64 * 1e3 / total,
    );
}

fn bench(c: &mut Criterion) {
    let runtime = backends::runtime();
    backends::on_each_backend(&runtime, |name, db| bench_backend(c, &runtime, name, db));
}

criterion_group!(benches, bench);
criterion_main!(benches);
