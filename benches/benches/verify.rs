//! B1: `verify_strict` on one message, and 16 384 proofs on one core versus all cores.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lucid_consensus::verify::{Verifier, VerifyItem};
use lucid_core::keys::PublicKey;
use lucid_core::{Slot, verify_strict};

const PARALLEL_ITEMS: usize = 16_384;

fn bench(c: &mut Criterion) {
    let keys = lucid_benches::keys(256);
    let messages = lucid_benches::beacons(&keys, Slot(1_000));
    let publics: Vec<PublicKey> = keys.iter().map(|k| PublicKey::of(&k.node_id())).collect();

    let mut single = c.benchmark_group("verify_strict");
    single.throughput(Throughput::Elements(1));
    single.bench_function("one message, key from node id", |b| {
        let (node, message) = (keys[0].node_id(), &messages[0]);
        b.iter(|| {
            verify_strict(
                black_box(&node),
                black_box(message.bytes()),
                black_box(message.signature()),
            )
        })
    });
    single.bench_function("one message, decompressed key", |b| {
        let message = &messages[0];
        b.iter(|| {
            publics[0].verify_strict(black_box(message.bytes()), black_box(message.signature()))
        })
    });
    single.finish();

    let items: Vec<VerifyItem<'_>> = (0..PARALLEL_ITEMS)
        .map(|i| VerifyItem::of(&publics[i % publics.len()], &messages[i % messages.len()]))
        .collect();
    let mut many = c.benchmark_group("verify_16384");
    many.throughput(Throughput::Elements(PARALLEL_ITEMS as u64));
    many.sample_size(10);
    let one_core = Verifier::single_threaded();
    many.bench_function("one core", |b| b.iter(|| one_core.verify_all(black_box(&items))));
    let all_cores = Verifier::new(0).unwrap_or_else(|_| Verifier::single_threaded());
    many.bench_function(format!("all cores ({})", all_cores.threads()), |b| {
        b.iter(|| all_cores.verify_all(black_box(&items)))
    });
    many.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
