//! B2: in-memory ingest of 100 000 signed proofs (decode, checks, verify, dedupe, store), on one
//! verification thread and on all cores. Compare the per-proof time with B1's `verify_strict`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lucid_consensus::ProofValue;
use lucid_consensus::ingest::Ingest;
use lucid_consensus::store::MemoryProofStore;
use lucid_consensus::testing;
use lucid_consensus::verify::Verifier;
use lucid_core::message::Message;
use lucid_core::{SignedMessage, Slot};

const NODES: u64 = 25_000;
const SLOT: Slot = Slot(1_000);

fn bench(c: &mut Criterion) {
    let params = testing::params();
    let keys = lucid_benches::keys(NODES);
    let store = MemoryProofStore::new();
    let mut registered = Ingest::new(params);
    let now =
        params.time.slot_start(SLOT).unwrap_or(params.time.genesis()).saturating_add_ms(60_000);
    for key in &keys {
        let message = testing::signed_registration(&params, key, 1);
        let _ = pollster::block_on(registered.ingest_registration(&store, now, message));
    }
    // Four proofs per node (every kind) in one slot: 100 000 proofs.
    let messages: Vec<SignedMessage> = keys
        .iter()
        .flat_map(|key| {
            [
                ProofValue::Relay { bytes_transferred: 1 << 30, sessions_relayed: 2 },
                ProofValue::Storage { chunks_stored: 10, size_bytes: 1 << 32 },
                ProofValue::Validation { validated_sessions: 3 },
                ProofValue::Beacon { metrics_digest: None },
            ]
            .map(|value| testing::proof(&params, key, SLOT, value).sign(&params.network, key))
        })
        .collect();

    let mut group = c.benchmark_group("ingest_100k");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    let verifiers = [
        ("one core", Verifier::single_threaded()),
        ("all cores", Verifier::new(0).unwrap_or_else(|_| Verifier::single_threaded())),
    ];
    for (name, verifier) in &verifiers {
        group.bench_function(*name, |b| {
            b.iter_batched(
                || (registered.clone(), MemoryProofStore::new(), messages.clone()),
                |(mut ingest, store, batch)| {
                    let report = pollster::block_on(ingest.ingest_batch(
                        &store,
                        verifier,
                        now,
                        black_box(batch),
                    ));
                    black_box(report.map(|r| r.accepted.len()).unwrap_or(0))
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
