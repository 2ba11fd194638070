//! Tests of the beacon producer and the own registration under paused tokio time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lucid_consensus::ingest::Ingest;
use lucid_consensus::proof::ProofKind;
use lucid_consensus::registration::{CAP_RELAY, Endpoint};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::{Clock, NodeKey, SignedMessage, Slot, UnixMillis};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::services::metrics::ServiceMetrics;
use crate::services::registration::{RegistrationConfig, RegistrationStatus, ensure_registration};
use crate::services::runner::run_service;
use crate::services::tests::{FlakyProofStore, paused_runtime, proofs_of, sleep_until};
use crate::services::time::TokioClock;

fn payout_address(index: u64) -> [u8; 21] {
    testing::registration(&testing::small_params(), &testing::key(index), 1).payout_address
}

fn config() -> RegistrationConfig {
    RegistrationConfig {
        payout_address: Some(payout_address(1)),
        endpoint: Some(Endpoint::Direct("127.0.0.1:50051".into())),
        capabilities: CAP_RELAY,
        storage_capacity_bytes: 0,
    }
}

struct Fixture {
    params: ConsensusParams,
    clock: Arc<TokioClock>,
    key: Arc<NodeKey>,
    store: Arc<FlakyProofStore>,
    metrics: Arc<ServiceMetrics>,
}

impl Fixture {
    fn new(params: ConsensusParams, start: UnixMillis) -> Self {
        Fixture {
            params,
            clock: Arc::new(TokioClock::new(start)),
            key: Arc::new(testing::key(1)),
            store: Arc::new(FlakyProofStore::default()),
            metrics: Arc::new(ServiceMetrics::new()),
        }
    }

    fn at(&self, slot: u64, ms: i64) -> UnixMillis {
        self.params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(ms)
    }

    /// A producer as the node builds it at start: a fresh ingest loaded from the store.
    async fn producer(
        &self,
        registration: RegistrationConfig,
        outbox: Option<mpsc::Sender<SignedMessage>>,
    ) -> BeaconProducer {
        let mut ingest = Ingest::new(self.params);
        ingest.load_registrations(self.store.as_ref()).await.unwrap();
        BeaconProducer::new(BeaconDeps {
            params: self.params,
            clock: self.clock.clone(),
            key: self.key.clone(),
            registration,
            store: self.store.clone(),
            ingest: Arc::new(tokio::sync::Mutex::new(ingest)),
            verifier: Arc::new(Verifier::single_threaded()),
            outbox,
        })
    }

    fn spawn(
        &self,
        producer: BeaconProducer,
        cancel: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run_service(
            producer,
            self.clock.clone(),
            self.metrics.clone(),
            cancel.child_token(),
        ))
    }

    /// The node's stored beacons as (slot, ts).
    async fn beacons(&self) -> Vec<(u64, UnixMillis)> {
        proofs_of(self.store.as_ref(), ProofKind::UptimeBeacon)
            .await
            .into_iter()
            .filter(|p| p.proof.node == self.key.node_id())
            .map(|p| (p.proof.slot.0, p.proof.ts))
            .collect()
    }

    fn jitter(&self) -> i64 {
        i64::try_from(beacon_jitter_ms(&self.params, &self.key.node_id())).unwrap()
    }
}

#[test]
fn the_jitter_is_fixed_per_node_and_inside_the_scaled_range() {
    let small = testing::small_params();
    let mainnet = testing::params();
    let range_small = small.time.scale_ms(BEACON_JITTER_MS);
    assert_eq!(mainnet.time.scale_ms(BEACON_JITTER_MS), 10_000);
    let mut seen = std::collections::BTreeSet::new();
    for index in 0..64 {
        let node = testing::node(index);
        let jitter = beacon_jitter_ms(&mainnet, &node);
        assert!(jitter < 10_000);
        assert!(beacon_jitter_ms(&small, &node) < range_small);
        assert_eq!(jitter, beacon_jitter_ms(&mainnet, &node), "stable");
        seen.insert(jitter);
    }
    // Spread, not one constant.
    assert!(seen.len() > 32, "{seen:?}");
}

#[test]
fn exactly_one_beacon_per_slot_each_at_its_aligned_time() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let (outbox, mut gossip) = mpsc::channel(64);
        let producer = f.producer(config(), Some(outbox)).await;
        let status = producer.status();
        let cancel = CancellationToken::new();
        let task = f.spawn(producer, &cancel);
        sleep_until(&f.clock, f.at(30, 0)).await;
        cancel.cancel();
        task.await.unwrap();

        let beacons = f.beacons().await;
        let expected: Vec<(u64, UnixMillis)> =
            (10..30).map(|slot| (slot, f.at(slot, f.jitter()))).collect();
        assert_eq!(beacons, expected);
        // Each went to gossip once, after its own ingest accepted it.
        let mut pushed = Vec::new();
        while let Ok(message) = gossip.try_recv() {
            pushed.push(message);
        }
        assert_eq!(pushed.len(), 20);
        // The registration was published first (seq 1) through ingest.
        let registrations = f.store.current_registrations().await.unwrap();
        assert_eq!(registrations.len(), 1);
        assert_eq!(registrations[0].registration.seq, 1);
        assert_eq!(registrations[0].registration.node, f.key.node_id());
        assert!(f.store.inner.all_evidence().is_empty());
        let status = status.borrow().clone();
        assert_eq!(status.last_signed, Some(Slot(29)));
        assert_eq!(status.registration, Some(RegistrationStatus::Published { seq: 1 }));
    });
}

#[test]
fn a_clock_jumping_back_never_signs_a_slot_twice() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(14, 500)).await;
        // NTP steps the clock back three slots: slots 11..=14 come round again.
        f.clock.jump(-3_000);
        sleep_until(&f.clock, f.at(16, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        let slots: Vec<u64> = f.beacons().await.into_iter().map(|(slot, _)| slot).collect();
        assert_eq!(slots, [10, 11, 12, 13, 14, 15, 16]);
        assert!(f.store.inner.all_evidence().is_empty());
        assert_eq!(f.metrics.loop_metrics("beacon").error.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn on_mainnet_timing_the_beacon_is_signed_at_slot_start_plus_jitter() {
    paused_runtime().block_on(async {
        let params = testing::params();
        let f = Fixture::new(
            params,
            params.time.slot_start(Slot(1_000)).unwrap().saturating_add_ms(-5_000),
        );
        let producer = f.producer(config(), None).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(producer, &cancel);
        sleep_until(&f.clock, f.at(1_003, 60_000)).await;
        cancel.cancel();
        task.await.unwrap();
        // Started 5 s before slot 1000, past slot 999's jitter point: slot 999 is signed at once
        // (it is still current), then every slot at its start plus the jitter.
        let mut expected = vec![(999, f.at(1_000, -5_000))];
        expected.extend((1_000..=1_003).map(|s| (s, f.at(s, f.jitter()))));
        assert_eq!(f.beacons().await, expected);
    });
}

#[test]
fn a_restart_mid_slot_does_not_sign_a_second_beacon() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(10, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        let key = lucid_consensus::proof::ProofKey {
            node: f.key.node_id(),
            slot: Slot(10),
            kind: ProofKind::UptimeBeacon,
        };
        let first = f.store.inner.get_proof(&key).await.unwrap().unwrap();

        // The node restarts in the same slot, with fresh state: it finds its beacon and signs
        // none for slot 10 (a second one would be an equivocation), then goes on with 11.
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(11, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(f.beacons().await, [(10, f.at(10, f.jitter())), (11, f.at(11, f.jitter()))]);
        let again = f.store.inner.get_proof(&first.key()).await.unwrap().unwrap();
        assert_eq!(again.message, first.message, "the stored beacon is the first one");
        assert!(f.store.inner.all_evidence().is_empty());
        // Same configuration: the registration is current, no second record.
        assert_eq!(f.store.current_registrations().await.unwrap()[0].registration.seq, 1);
    });
}

#[test]
fn a_stall_of_several_slots_is_not_back_filled() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(12, 500)).await;
        // The machine is suspended for five slots: the wall clock jumps, tokio's time does not.
        f.clock.jump(5_000);
        sleep_until(&f.clock, f.at(20, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        let slots: Vec<u64> = f.beacons().await.into_iter().map(|(slot, _)| slot).collect();
        // The wall clock went from 12.5 to 17.5 while the producer waited for 13 + jitter; it
        // wakes at 18 + jitter by the wall clock and never signs 13..=17.
        assert_eq!(slots, [10, 11, 12, 18, 19, 20]);
        let beacons = f.beacons().await;
        for (slot, ts) in beacons {
            assert_eq!(params.time.slot_of(ts).unwrap(), Slot(slot), "ts inside its slot");
        }
    });
}

#[test]
fn a_tick_that_outlasts_its_slot_skips_instead_of_signing_late() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(11, 500)).await;
        // The next own-beacon lookup (slot 12) takes 3.5 slots.
        f.store.slow_get_ms.store(3_500, Ordering::SeqCst);
        sleep_until(&f.clock, f.at(18, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        let slots: Vec<u64> = f.beacons().await.into_iter().map(|(slot, _)| slot).collect();
        // Slot 12's beacon would be signed in slot 15: not at all. 13, 14, 15 passed during the
        // tick: skipped, not queued.
        assert_eq!(slots, [10, 11, 16, 17, 18]);
        let counters = f.metrics.loop_metrics("beacon");
        assert_eq!(counters.skipped.load(Ordering::SeqCst), 3);
        assert_eq!(counters.error.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_failing_store_is_retried_within_the_slot() {
    paused_runtime().block_on(async {
        let params = testing::params();
        let f = Fixture::new(params, params.time.slot_start(Slot(500)).unwrap());
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(config(), None).await, &cancel);
        sleep_until(&f.clock, f.at(500, 60_000)).await;
        // The next two inserts (slot 501's beacon) fail: retried after 1 s and 2 s.
        f.store.fail_inserts.store(2, Ordering::SeqCst);
        sleep_until(&f.clock, f.at(502, 60_000)).await;
        cancel.cancel();
        task.await.unwrap();
        let beacons = f.beacons().await;
        assert_eq!(beacons.iter().map(|b| b.0).collect::<Vec<_>>(), [500, 501, 502]);
        assert_eq!(beacons[1].1, f.at(501, f.jitter() + 3_000), "signed at the third attempt");
        let counters = f.metrics.loop_metrics("beacon");
        assert_eq!(counters.error.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn an_unregistered_node_signs_nothing_until_a_record_exists() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        // Capabilities and capacity as the record below advertises them.
        let no_address = RegistrationConfig {
            payout_address: None,
            endpoint: None,
            capabilities: lucid_consensus::registration::CAP_ALL,
            storage_capacity_bytes: 1 << 30,
        };
        let cancel = CancellationToken::new();
        let task = f.spawn(f.producer(no_address.clone(), None).await, &cancel);
        sleep_until(&f.clock, f.at(14, 0)).await;
        assert!(f.beacons().await.is_empty());
        assert!(f.store.current_registrations().await.unwrap().is_empty());
        // The operator registers through another path (the API signs a record with an address).
        let record = testing::signed_registration(&params, &f.key, 1);
        let mut api_ingest = Ingest::new(params);
        let (outcome, _) =
            api_ingest.ingest_registration(f.store.as_ref(), f.clock.wall(), record).await.unwrap();
        assert_eq!(outcome.verdict, lucid_consensus::ingest::Verdict::Accept);
        sleep_until(&f.clock, f.at(16, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        // The producer's own ingest learnt the record when it found it: beacons from slot 14.
        let slots: Vec<u64> = f.beacons().await.into_iter().map(|(slot, _)| slot).collect();
        assert_eq!(slots, [14, 15, 16]);
        // It took the record as it is (nothing configured to change) and never failed a tick.
        assert_eq!(f.store.current_registrations().await.unwrap()[0].registration.seq, 1);
        assert_eq!(f.metrics.loop_metrics("beacon").error.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn the_own_registration_is_re_signed_only_when_it_changes() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let key = testing::key(3);
        let store = MemoryProofStore::new();
        let ingest = Arc::new(tokio::sync::Mutex::new(Ingest::new(params)));
        let now = params.time.slot_start(Slot(5)).unwrap();
        let ensure = |config: RegistrationConfig, now| {
            let ingest = ingest.clone();
            let store = &store;
            let key = &key;
            async move { ensure_registration(&params, key, &config, store, &ingest, now).await.unwrap() }
        };
        let missing = ensure(RegistrationConfig { payout_address: None, ..config() }, now).await;
        assert!(matches!(missing, RegistrationStatus::Missing { .. }));
        let missing = ensure(RegistrationConfig { endpoint: None, ..config() }, now).await;
        assert!(matches!(missing, RegistrationStatus::Missing { .. }));
        assert_eq!(ensure(config(), now).await, RegistrationStatus::Published { seq: 1 });
        assert!(ingest.lock().await.is_registered(&key.node_id()));
        assert_eq!(ensure(config(), now.saturating_add_ms(10)).await, RegistrationStatus::Current { seq: 1 });
        // Unset values keep the recorded ones: a restart without the flags changes nothing.
        let bare = RegistrationConfig { payout_address: None, endpoint: None, ..config() };
        assert_eq!(ensure(bare, now.saturating_add_ms(20)).await, RegistrationStatus::Current { seq: 1 });
        // A new payout address: seq + 1.
        let moved = RegistrationConfig { payout_address: Some(payout_address(2)), ..config() };
        assert_eq!(ensure(moved.clone(), now.saturating_add_ms(30)).await, RegistrationStatus::Published { seq: 2 });
        assert_eq!(ensure(moved, now.saturating_add_ms(40)).await, RegistrationStatus::Current { seq: 2 });
        let current = store.current_registrations().await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].registration.payout_address, payout_address(2));
        assert_eq!(current[0].registration.seq, 2);
        // Nothing conflicting was ever signed.
        assert!(store.all_evidence().is_empty());
    });
}

#[test]
fn a_malformed_registration_config_is_refused_by_the_own_ingest_and_signs_nothing() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let key = testing::key(4);
        let store = MemoryProofStore::new();
        let ingest = Arc::new(tokio::sync::Mutex::new(Ingest::new(params)));
        let now = params.time.slot_start(Slot(5)).unwrap();
        // Not a TRON address (wrong version byte).
        let mut not_tron = payout_address(1);
        not_tron[0] = 0x42;
        let wrong_version = RegistrationConfig { payout_address: Some(not_tron), ..config() };
        // An endpoint longer than the 255 bytes the record may carry.
        let oversized =
            RegistrationConfig { endpoint: Some(Endpoint::Direct("h".repeat(300))), ..config() };
        // An endpoint with whitespace.
        let spaced = RegistrationConfig {
            endpoint: Some(Endpoint::Direct("host name:1".into())),
            ..config()
        };
        for bad in [wrong_version, oversized, spaced] {
            let refused = ensure_registration(&params, &key, &bad, &store, &ingest, now).await;
            assert!(
                matches!(
                    refused,
                    Err(ServiceError::OwnRegistrationRefused {
                        reason: lucid_consensus::ingest::RejectReason::Malformed,
                        ..
                    })
                ),
                "{bad:?}: {refused:?}"
            );
        }
        assert!(store.current_registrations().await.unwrap().is_empty());
        assert!(!ingest.lock().await.is_registered(&key.node_id()));
        // Capability bits beyond the defined ones are dropped, not signed.
        let extra_bits = RegistrationConfig { capabilities: u32::MAX, ..config() };
        let published =
            ensure_registration(&params, &key, &extra_bits, &store, &ingest, now).await.unwrap();
        assert_eq!(published, RegistrationStatus::Published { seq: 1 });
        let record = &store.current_registrations().await.unwrap()[0].registration;
        assert_eq!(record.capabilities, lucid_consensus::registration::CAP_ALL);
    });
}

#[test]
fn a_producer_with_a_malformed_address_retries_and_never_signs() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let f = Fixture::new(params, params.time.slot_start(Slot(10)).unwrap());
        let mut not_tron = payout_address(1);
        not_tron[0] = 0;
        let bad = RegistrationConfig { payout_address: Some(not_tron), ..config() };
        let producer = f.producer(bad, None).await;
        let status = producer.status();
        let cancel = CancellationToken::new();
        let task = f.spawn(producer, &cancel);
        sleep_until(&f.clock, f.at(20, 0)).await;
        cancel.cancel();
        task.await.unwrap();
        assert!(f.beacons().await.is_empty());
        assert!(f.metrics.loop_metrics("beacon").error.load(Ordering::SeqCst) >= 2);
        assert_eq!(status.borrow().last_signed, None);
    });
}

#[derive(Clone, Debug)]
enum Step {
    /// Time passes normally.
    Run(u64),
    /// The wall clock steps (suspend forward, NTP back) while tokio's time does not.
    Jump(i64),
    /// The process restarts with fresh state over the same store.
    Restart,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (1u64..3_000).prop_map(Step::Run),
        2 => (-4_000i64..8_000).prop_map(Step::Jump),
        1 => Just(Step::Restart),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever the clock and the process do, the node never signs two beacons for one slot
    /// (no evidence, no refused own beacon), and every beacon is signed inside its slot, no
    /// earlier than slot start plus the jitter.
    #[test]
    fn never_two_beacons_for_a_slot_whatever_the_clock_does(
        start_ms in 0i64..1_000,
        steps in proptest::collection::vec(step(), 1..25),
    ) {
        paused_runtime().block_on(async {
            let params = testing::small_params();
            let f = Fixture::new(params, params.time.slot_start(Slot(20)).unwrap().saturating_add_ms(start_ms));
            let mut cancel = CancellationToken::new();
            let mut task = f.spawn(f.producer(config(), None).await, &cancel);
            for step in steps {
                match step {
                    Step::Run(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
                    Step::Jump(ms) => f.clock.jump(ms),
                    Step::Restart => {
                        cancel.cancel();
                        task.await.unwrap();
                        cancel = CancellationToken::new();
                        task = f.spawn(f.producer(config(), None).await, &cancel);
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
            cancel.cancel();
            task.await.unwrap();
            assert!(f.store.inner.all_evidence().is_empty());
            assert_eq!(f.metrics.loop_metrics("beacon").error.load(Ordering::SeqCst), 0);
            for (slot, ts) in f.beacons().await {
                assert_eq!(params.time.slot_of(ts).unwrap(), Slot(slot));
                assert!(ts >= f.at(slot, f.jitter()), "slot {slot} signed at {ts}, before its jitter point");
            }
        });
    }
}
