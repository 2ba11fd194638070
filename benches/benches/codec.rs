//! B9 and B11: canonical encode, strict decode and message digest per message type, and the
//! slot-seal Merkle root over one slot's digests.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lucid_consensus::registration::Registration;
use lucid_consensus::seal::seal_root;
use lucid_consensus::{ProofValue, TaskProof, testing};
use lucid_core::message::{Message, message_digest};
use lucid_core::{Digest, Slot};

fn bench(c: &mut Criterion) {
    let params = testing::params();
    let key = testing::key(1);
    let proof = testing::proof(
        &params,
        &key,
        Slot(1_000),
        ProofValue::Relay { bytes_transferred: 1 << 30, sessions_relayed: 2 },
    );
    let registration = testing::registration(&params, &key, 1);

    let mut group = c.benchmark_group("codec");
    let proof_bytes = proof.to_signed_bytes(&params.network);
    group.bench_function("task-proof encode", |b| {
        b.iter(|| black_box(&proof).to_signed_bytes(&params.network))
    });
    group.bench_function("task-proof decode", |b| {
        b.iter(|| TaskProof::from_signed_bytes(black_box(&proof_bytes)))
    });
    group.bench_function("task-proof digest", |b| {
        b.iter(|| message_digest(black_box(&proof_bytes)))
    });
    let registration_bytes = registration.to_signed_bytes(&params.network);
    group.bench_function("registration encode", |b| {
        b.iter(|| black_box(&registration).to_signed_bytes(&params.network))
    });
    group.bench_function("registration decode", |b| {
        b.iter(|| Registration::from_signed_bytes(black_box(&registration_bytes)))
    });
    group.finish();

    let mut seal = c.benchmark_group("seal_root");
    for count in [4_000u64, 40_000] {
        let digests: Vec<Digest> =
            (0..count).map(|i| lucid_core::hash::content_hash(&i.to_be_bytes())).collect();
        seal.throughput(Throughput::Elements(count));
        seal.bench_function(format!("{count} digests"), |b| {
            b.iter(|| seal_root(black_box(&digests)))
        });
    }
    seal.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
