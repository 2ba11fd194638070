//! Tests of the send protocol against the FAKE chain: the crash matrix (I13), lost responses
//! (I14), concurrent workers (I15), the circuit breaker, the ledger-only rail and preflight.
//! The machinery (fake chain, crash switch, matrix runner) lives in `crate::testing`, shared with
//! the SQL stores' crash matrix in `lucid-storage`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use lucid_core::UnixMillis;

use super::*;
use crate::rail::{LedgerOnlyRail, RejectCode, Txid};
use crate::store::{AttemptStatus, MemoryPayoutStore};
use crate::testing::{
    CrashSwitch, FakeChain, Fault, MAX_STEPS, MemoryHarness, Rng, STEP_MS, T0, TX_EXPIRATION_MS,
    World, config, crash_matrix, run_with_crashes,
};

const SEEDS: u64 = 300;

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

/// A world over a fresh in-memory store.
fn new_world(chain: FakeChain, payouts: &[(u64, u64)], max_retries: u32) -> World {
    run(World::new(Arc::new(MemoryHarness::default()), chain, payouts, max_retries))
}

/// Runs one worker without crashes until quiescence.
fn settle(world: &World) {
    run(run_with_crashes(world, &[], &Arc::new(CrashSwitch::default()), config()));
}

fn statuses(world: &World) -> Vec<PayoutStatus> {
    run(world.statuses())
}

fn payout(world: &World, id: &str) -> PayoutRecord {
    run(world.payout(id))
}

fn all_terminal(world: &World) -> bool {
    run(world.all_terminal())
}

/// I13, the crash matrix. For each of 300 seeds, a random world (1–3 payouts over up to 3
/// nodes, 0–3 retries, solidified after 1–3 polls) runs once without a crash to count its step
/// boundaries C: every commit of the protocol (claim, record_signed, begin_broadcast, mark_sent,
/// finalize_confirmed, finalize_failed_or_retry, mark_chain_mismatch, unclaim) and the rail calls
/// that act (build_and_sign, broadcast). It then runs once per boundary k in 0..C with the
/// process killed at k (that call and everything after it fails; a new processor with a new
/// lease owner restarts over the same store and chain), and for odd k killed a second time after
/// the restart at a seeded random boundary: 5 236 crash runs in all (about 17 per seed).
/// Faults, drawn per broadcast (40 % of unscripted broadcasts): lost response after acceptance,
/// timeout, OUT_OF_ENERGY revert, accepted but never included (expires), rejection with
/// BANDWITH_ERROR or TAPOS_ERROR; plus transport errors on 10 % of status polls. The test
/// asserts that crashes hit every boundary kind of the send path and that every fault kind was
/// drawn. After every step: store audit (one live attempt, postings match statuses) and at most
/// one successful transfer per payout. At quiescence: every payout confirmed or failed,
/// confirmed iff exactly one matching transfer (the confirmed attempt's), settled or released
/// exactly once, a new attempt only after the previous was proven dead, the ledger audit passes
/// and `earned == available + reserved + paid` for every node.
#[test]
fn crash_at_every_step_boundary() {
    let report = run(crash_matrix(0..SEEDS, || async {
        let harness: Arc<dyn crate::testing::CrashableStore> =
            Arc::new(MemoryHarness { store: Arc::new(MemoryPayoutStore::new()) });
        harness
    }));
    for boundary in [
        "claim",
        "build_and_sign",
        "record_signed",
        "begin_broadcast",
        "broadcast",
        "mark_sent",
        "finalize_confirmed",
        "finalize_failed_or_retry",
        "unclaim",
    ] {
        assert!(report.hits.contains_key(boundary), "no crash at {boundary}: {:?}", report.hits);
    }
    for fault in
        ["LoseResponse", "Timeout", "Revert", "NeverInclude", "Reject(Bandwidth)", "Reject(Tapos)"]
    {
        assert!(
            report.faults.contains_key(fault),
            "fault {fault} never drawn: {:?}",
            report.faults
        );
    }
    assert!(report.crash_runs >= 3_000, "only {} crash runs", report.crash_runs);
    // Signing failures were drawn, and some payouts reached the bound and failed unsigned.
    assert!(report.sign_failures > 0 && report.failed_unsigned > 0, "{report:?}");
}

/// I14: an answer lost after acceptance is found by polling the same txid, and a timeout leads
/// to re-broadcasts of the same bytes; a second txid appears only once the first is proven dead.
#[test]
fn lost_broadcast_response_never_yields_a_second_txid_early() {
    // Lost response, transaction included: one txid, confirmed.
    let world = new_world(FakeChain::new(1, 0, 2), &[(0, 100)], 3);
    world.chain.script([Fault::LoseResponse]);
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
    let txids: std::collections::BTreeSet<Txid> =
        world.chain.broadcasts().iter().map(|(_, txid)| *txid).collect();
    assert_eq!(txids.len(), 1);
    assert_eq!(payout(&world, &world.ids[0]).status, PayoutStatus::Confirmed);

    // Timeouts until the transaction expires: same bytes again and again, then proven dead,
    // then a second attempt.
    let world = new_world(FakeChain::new(2, 0, 1), &[(0, 100)], 3);
    world.chain.script(std::iter::repeat_n(Fault::Timeout, 7));
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
    let broadcasts = world.chain.broadcasts();
    let first = broadcasts[0].1;
    let first_expiry = T0 + 1_000 + TX_EXPIRATION_MS;
    for (at, txid) in &broadcasts {
        if *txid != first {
            assert!(*at > first_expiry + config().dead_margin_ms, "second txid at {at}");
        }
    }
    assert!(broadcasts.iter().filter(|(_, txid)| *txid == first).count() >= 2);
    let attempts = run(world.store().attempts(&world.ids[0])).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, AttemptStatus::Expired);
    assert_eq!(attempts[1].status, AttemptStatus::Confirmed);
}

/// A definitive rejection proves nothing after a broadcast with unknown outcome; on the first
/// broadcast it ends the attempt, and a non-retryable code fails the payout at once.
#[test]
fn rejections_prove_death_only_on_the_first_broadcast() {
    let world = new_world(FakeChain::new(3, 0, 1), &[(0, 100)], 3);
    world.chain.script([Fault::Timeout, Fault::Reject(RejectCode::Bandwidth)]);
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
    let attempts = run(world.store().attempts(&world.ids[0])).unwrap();
    assert_eq!(attempts.len(), 1, "the rejection after a timeout must not end the attempt");
    assert_eq!(attempts[0].status, AttemptStatus::Confirmed);

    let world = new_world(FakeChain::new(4, 0, 1), &[(0, 100), (1, 50)], 3);
    world.chain.script([Fault::Reject(RejectCode::Tapos), Fault::Reject(RejectCode::SigError)]);
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
    let first = run(world.store().attempts(&world.ids[0])).unwrap();
    assert_eq!(
        first.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AttemptStatus::Rejected, AttemptStatus::Confirmed]
    );
    let second = payout(&world, &world.ids[1]);
    assert_eq!(
        (second.status, second.error_code.as_deref()),
        (PayoutStatus::Failed, Some("SIGERROR"))
    );
}

/// A failure receipt (OUT_OF_ENERGY) reverts the attempt and retries; attempts are bounded by
/// `1 + max_retries`, after which the payout fails and its reservation is released.
#[test]
fn reverts_retry_until_attempts_run_out() {
    let world = new_world(FakeChain::new(5, 0, 1), &[(0, 100), (1, 100)], 1);
    // First payout: revert, revert (out of attempts). Second: confirmed at once.
    world.chain.script([Fault::Revert, Fault::None, Fault::Revert]);
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
    let payouts: Vec<_> = world.ids.iter().map(|id| payout(&world, id)).collect();
    assert_eq!((payouts[0].status, payouts[0].attempt_count), (PayoutStatus::Failed, 2));
    assert_eq!((payouts[1].status, payouts[1].attempt_count), (PayoutStatus::Confirmed, 1));
}

/// SUCCESS without the matching Transfer: the payout stays sent with CHAIN_MISMATCH, nothing is
/// settled or released, and polling stops.
#[test]
fn chain_mismatch_stops_polling() {
    let world = new_world(FakeChain::new(6, 0, 1), &[(0, 100)], 3);
    world.chain.script([Fault::Mismatch]);
    let mut processor = world.processor("w", config());
    let mut now = T0 + 1_000;
    for _ in 0..5 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    let payout = payout(&world, &world.ids[0]);
    assert_eq!(
        (payout.status, payout.error_code.as_deref()),
        (PayoutStatus::Sent, Some(CHAIN_MISMATCH))
    );
    let report = run(processor.step(UnixMillis(now))).unwrap();
    assert_eq!((report.mismatches, report.confirmed, report.broadcasts), (0, 0, 0));
    run(world.check_always());
    assert_eq!(run(world.store().balance(&world.nodes[0])).unwrap().reserved, 100_000_000);
}

/// I15: four workers (threads, each its own processor over the shared store and chain, with
/// random faults) never pay a payout twice and settle or release each exactly once.
#[test]
fn four_concurrent_workers_never_send_a_payout_twice() {
    for seed in 0..4u64 {
        let mut rng = Rng::new(seed);
        let payouts: Vec<(u64, u64)> =
            (0..24).map(|_| (rng.below(4), 10 + rng.below(500))).collect();
        let chain = FakeChain::new(seed, 30, 2);
        chain.set_status_error_percent(5);
        let world = new_world(chain, &payouts, 3);
        let clock = AtomicI64::new(T0 + 1_000);
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (world, clock) = (&world, &clock);
                scope.spawn(move || {
                    let cfg = ProcessorConfig { batch_size: 3, ..config() };
                    let mut processor = world.processor(&format!("worker-{worker}"), cfg);
                    for _ in 0..MAX_STEPS {
                        let now = clock.fetch_add(STEP_MS / 4, Ordering::SeqCst);
                        world.chain.advance_to(UnixMillis(now));
                        if let Err(error) = run(processor.step(UnixMillis(now))) {
                            assert!(matches!(error, Error::Rail { .. }), "{error}");
                        }
                        run(world.check_always());
                        if all_terminal(world) {
                            break;
                        }
                    }
                });
            }
        });
        assert!(all_terminal(&world), "{:?}", statuses(&world));
        run(world.check_final(config().dead_margin_ms));
        // Every broadcast belongs to a recorded attempt of its payout.
        for (_, txid) in world.chain.broadcasts() {
            let payout = world.chain.payout_of(&txid).unwrap();
            let attempts = run(world.store().attempts(&payout)).unwrap();
            assert!(attempts.iter().any(|a| a.transfer.txid == txid));
        }
    }
}

/// Ten consecutive attempt failures open the circuit: claiming pauses for the cooldown, then
/// one payout half-opens it; a failure reopens it, a confirmation closes it.
#[test]
fn circuit_breaker_opens_after_ten_consecutive_failures() {
    let world = new_world(FakeChain::new(7, 0, 1), &[(0, 20); 14], 0);
    world.chain.script(std::iter::repeat_n(Fault::Reject(RejectCode::Tapos), 11));
    let caps = crate::payout::DailyCaps { max_count: 0, max_per_node: 0 };
    let cfg = ProcessorConfig { batch_size: 20, caps, ..config() };
    let mut processor = world.processor("w", cfg);
    let t = T0 + 1_000;
    world.chain.advance_to(UnixMillis(t));
    let report = run(processor.step(UnixMillis(t))).unwrap();
    assert_eq!((report.claimed, report.attempts_failed, report.failed), (14, 10, 10));
    let open_until = UnixMillis(t + cfg.circuit_cooldown_ms);
    assert_eq!(processor.circuit(), Circuit::Open { until: open_until });
    let pending = |w: &World| statuses(w).iter().filter(|s| **s == PayoutStatus::Pending).count();
    assert_eq!(pending(&world), 4);
    // Paused during the cooldown.
    let report = run(processor.step(UnixMillis(t + 60_000))).unwrap();
    assert_eq!(report.claimed, 0);
    // Half-open: one payout; it fails (the 11th rejection), so the circuit opens again.
    let t2 = open_until.0;
    world.chain.advance_to(UnixMillis(t2));
    let report = run(processor.step(UnixMillis(t2))).unwrap();
    assert_eq!((report.claimed, report.failed), (1, 1));
    assert_eq!(
        processor.circuit(),
        Circuit::Open { until: UnixMillis(t2 + cfg.circuit_cooldown_ms) }
    );
    // Half-open again: this one confirms, which closes the circuit; the rest then flows.
    let mut now = t2 + cfg.circuit_cooldown_ms;
    for _ in 0..5 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    assert_eq!(processor.circuit(), Circuit::Closed { failures: 0 });
    assert!(all_terminal(&world));
    run(world.check_final(cfg.dead_margin_ms));
}

/// I20 through the processor: over the caps, payouts stay pending until the next UTC day.
#[test]
fn daily_caps_hold_payouts_until_the_next_day() {
    let world = new_world(FakeChain::new(8, 0, 1), &[(0, 20); 5], 3);
    let caps = crate::payout::DailyCaps { max_count: 100, max_per_node: 2 };
    let mut processor = world.processor("w", ProcessorConfig { caps, ..config() });
    let mut now = T0 + 1_000;
    for _ in 0..10 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    let confirmed =
        |w: &World| statuses(w).iter().filter(|s| **s == PayoutStatus::Confirmed).count();
    assert_eq!(confirmed(&world), 2);
    let tomorrow = (crate::payout::utc_day(UnixMillis(now)) + 1) * 86_400_000;
    for step in 0..10 {
        let now = tomorrow + step * STEP_MS;
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
    }
    assert_eq!(confirmed(&world), 4);
    run(world.check_always());
}

/// The ledger-only rail signs nothing: payouts stay pending, reported as awaiting a chain.
#[test]
fn ledger_only_rail_leaves_payouts_pending() {
    let world = new_world(FakeChain::new(9, 0, 1), &[(0, 20), (1, 30)], 3);
    let mut processor =
        Processor::new(world.store(), Arc::new(LedgerOnlyRail), config(), "w".into());
    let report = run(processor.step(UnixMillis(T0 + 1_000))).unwrap();
    assert_eq!((report.awaiting_chain, report.claimed), (Some(2), 0));
    assert_eq!(statuses(&world), [PayoutStatus::Pending, PayoutStatus::Pending]);
    run(world.check_always());
}

/// A low hot wallet returns the batch to pending and signs nothing.
#[test]
fn low_hot_wallet_signs_nothing() {
    let world = new_world(FakeChain::new(10, 0, 1), &[(0, 20), (1, 30)], 3);
    world.chain.set_hot_wallet_low(true);
    let mut processor = world.processor("w", config());
    let report = run(processor.step(UnixMillis(T0 + 1_000))).unwrap();
    assert!(report.hot_wallet_low);
    assert_eq!((report.claimed, report.signed), (2, 0));
    assert_eq!(statuses(&world), [PayoutStatus::Pending, PayoutStatus::Pending]);
    assert!(world.chain.broadcasts().is_empty());
    world.chain.set_hot_wallet_low(false);
    world.chain.set_fault_percent(0);
    settle(&world);
    run(world.check_final(config().dead_margin_ms));
}

/// A signer that keeps failing does not retry forever: each failure is counted on the payout,
/// and at `max_sign_failures` it fails with `SIGNING_FAILED`, its reservation released once;
/// nothing was ever broadcast.
#[test]
fn signing_failures_are_bounded_and_release_the_reservation_once() {
    let world = new_world(FakeChain::new(12, 0, 1), &[(0, 100)], 3);
    world.chain.fail_next_signings(1_000);
    let cfg = ProcessorConfig { max_sign_failures: 3, ..config() };
    let mut processor = world.processor("w", cfg);
    let id = world.ids[0].clone();
    let before = run(world.store().balance(&world.nodes[0])).unwrap();
    for step in 1..=3u32 {
        let now = UnixMillis(T0 + 1_000 + i64::from(step) * STEP_MS);
        let report = run(processor.step(now)).unwrap();
        assert_eq!((report.claimed, report.signing_failures, report.signed), (1, 1, 0));
        let payout = payout(&world, &id);
        assert_eq!(payout.sign_failures, step);
        assert_eq!(payout.error_code.as_deref(), Some(SIGNING_FAILED));
        let expected = if step < 3 { PayoutStatus::Pending } else { PayoutStatus::Failed };
        assert_eq!(payout.status, expected);
        assert_eq!(report.failed, usize::from(step == 3));
        run(world.check_always());
    }
    // Failed for good: never claimed again, nothing broadcast, the reservation back once.
    let report = run(processor.step(UnixMillis(T0 + 100 * STEP_MS))).unwrap();
    assert_eq!((report.claimed, report.signing_failures), (0, 0));
    assert_eq!(world.chain.sign_failures(), 3);
    assert!(world.chain.broadcasts().is_empty());
    let after = run(world.store().balance(&world.nodes[0])).unwrap();
    assert_eq!(after.available, before.available + before.reserved);
    assert_eq!(after.reserved, 0);
    run(world.check_final(cfg.dead_margin_ms));
}

/// Signing failures below the bound only delay the payout.
#[test]
fn signing_recovers_before_the_bound() {
    let world = new_world(FakeChain::new(13, 0, 1), &[(0, 100)], 3);
    world.chain.fail_next_signings(2);
    let cfg = ProcessorConfig { max_sign_failures: 3, ..config() };
    run(run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()), cfg));
    let payout = payout(&world, &world.ids[0]);
    assert_eq!((payout.status, payout.sign_failures), (PayoutStatus::Confirmed, 2));
    run(world.check_final(cfg.dead_margin_ms));
}

/// The retry delay doubles from 2 s, is capped at 60 s, and its jitter keeps it between half
/// and all of that.
#[test]
fn retry_delay_doubles_caps_and_jitters() {
    let full: Vec<i64> = (1..=8).map(|n| retry_delay_ms(n, 1_000)).collect();
    assert_eq!(full, [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    assert_eq!(retry_delay_ms(1, 0), 1_000);
    assert_eq!(retry_delay_ms(u32::MAX, 1_000), RETRY_MAX_MS);
    assert_eq!(retry_delay_ms(0, 1_000), RETRY_BASE_MS);
    for failures in 1..10 {
        let base = retry_delay_ms(failures, 1_000);
        for jitter in [0, 1, 499, 500, 999, 1_000, 5_000] {
            let delay = retry_delay_ms(failures, jitter);
            assert!(delay >= base / 2 && delay <= base, "{failures} {jitter} {delay}");
        }
    }
}

/// Transport errors while polling do not stop the step, and the payout is polled again only
/// after its backoff, computed from the `now` given (no sleeping): over 60 s of steps every
/// 500 ms, a handful of polls instead of 120.
#[test]
fn transport_errors_back_off_from_the_time_given() {
    let world = new_world(FakeChain::new(14, 0, 1), &[(0, 100)], 3);
    let mut processor = world.processor("w", config());
    let t = T0 + 1_000;
    world.chain.advance_to(UnixMillis(t));
    let report = run(processor.step(UnixMillis(t))).unwrap();
    assert_eq!(report.sent, 1);
    world.chain.set_status_error_percent(100);
    let calls_before = world.chain.status_calls();
    let mut errors = 0;
    let mut skipped = 0;
    for k in 1..=120 {
        let now = UnixMillis(t + k * 500);
        world.chain.advance_to(now);
        let report = run(processor.step(now)).unwrap();
        errors += report.transport_errors;
        skipped += report.backing_off;
    }
    let polls = world.chain.status_calls() - calls_before;
    // Delays of at least 1, 2, 4, 8, 16, 30, 30 s: at most 8 polls in 60 s.
    assert!((3..=8).contains(&polls), "{polls} polls");
    assert_eq!(u64::try_from(errors).unwrap(), polls);
    assert!(skipped > 100, "{skipped}");
    world.chain.set_status_error_percent(0);
    let mut now = t + 121 * 500;
    for _ in 0..20 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    assert_eq!(statuses(&world), [PayoutStatus::Confirmed]);
    run(world.check_final(config().dead_margin_ms));
}

/// Consecutive rail failures of any kind open the worker's circuit: ten signing failures in a
/// row stop the batch, the rest goes back to pending unsigned.
#[test]
fn circuit_opens_after_consecutive_signing_failures() {
    let world = new_world(FakeChain::new(15, 0, 1), &[(0, 20); 12], 3);
    world.chain.fail_next_signings(1_000);
    let caps = crate::payout::DailyCaps { max_count: 0, max_per_node: 0 };
    let cfg = ProcessorConfig { batch_size: 20, caps, max_sign_failures: 100, ..config() };
    let mut processor = world.processor("w", cfg);
    let t = T0 + 1_000;
    let report = run(processor.step(UnixMillis(t))).unwrap();
    assert_eq!((report.claimed, report.signing_failures, report.failed), (12, 10, 0));
    assert_eq!(
        processor.circuit(),
        Circuit::Open { until: UnixMillis(t + cfg.circuit_cooldown_ms) }
    );
    let reasons: Vec<Option<String>> =
        world.ids.iter().map(|id| payout(&world, id).error_code).collect();
    let open = reasons.iter().filter(|r| r.as_deref() == Some("CIRCUIT_OPEN")).count();
    assert_eq!(open, 2);
    assert!(statuses(&world).iter().all(|s| *s == PayoutStatus::Pending));
    run(world.check_always());
}

/// A restarted worker with the same owner frees the claims its earlier run held (nothing was
/// signed for them) at once, leaves claims of other owners to their leases, and the payouts
/// are then paid exactly once.
#[test]
fn a_restarted_worker_frees_its_own_claims_at_once() {
    let world = new_world(FakeChain::new(3, 0, 1), &[(0, 100), (1, 200), (2, 300)], 3);
    let store = world.store();
    let now = UnixMillis(T0 + 1_000);
    let claim = |owner: &str, batch_size| {
        run(store.claim(&ClaimRequest {
            batch_size,
            lease_owner: owner.to_owned(),
            lease_until: now.saturating_add_ms(300_000),
            caps: DailyCaps::default(),
            now,
        }))
        .unwrap()
    };
    assert_eq!(claim("node-a", 2).len(), 2);
    assert_eq!(claim("node-b", 1).len(), 1);
    // "node-a" died after claiming; its successor has the same owner name.
    let restarted = world.processor("node-a", config());
    assert_eq!(run(restarted.recover_own_claims(now)).unwrap(), 2);
    assert_eq!(run(restarted.recover_own_claims(now)).unwrap(), 0, "a second run frees nothing");
    let processing: Vec<_> = run(store.list(Some(PayoutStatus::Processing))).unwrap();
    assert_eq!(processing.len(), 1);
    assert_eq!(processing[0].lease_owner.as_deref(), Some("node-b"));
    assert_eq!(run(store.list(Some(PayoutStatus::Pending))).unwrap().len(), 2);
    run(world.check_always());
    settle(&world);
    assert!(all_terminal(&world), "{:?}", statuses(&world));
    run(world.check_final(config().dead_margin_ms));
}

/// An administrator's resolve ends a `CHAIN_MISMATCH` payout once: settle confirms it with
/// `payout_settle`, release fails it with `payout_release`; a second resolve, and a resolve of
/// a payout that is not flagged, change nothing.
#[test]
fn only_a_chain_mismatch_can_be_resolved_and_only_once() {
    for resolution in crate::store::Resolution::ALL {
        let world = new_world(FakeChain::new(7, 0, 1), &[(0, 100), (1, 50)], 3);
        world.chain.script([Fault::Mismatch]);
        let store = world.store();
        let pending = &world.ids[1];
        let refused = run(store.resolve_chain_mismatch(pending, resolution, UnixMillis(T0)));
        assert!(matches!(refused, Err(Error::AttemptRefused { .. })), "{refused:?}");
        let mut processor = world.processor("w", ProcessorConfig { batch_size: 1, ..config() });
        let mut now = T0 + 1_000;
        while run(world.payout(&world.ids[0])).error_code.as_deref() != Some(CHAIN_MISMATCH) {
            world.chain.advance_to(UnixMillis(now));
            run(processor.step(UnixMillis(now))).unwrap();
            now += STEP_MS;
            assert!(now < T0 + 1_000 + 20 * STEP_MS, "no mismatch was flagged");
        }
        let id = &world.ids[0];
        let resolved = run(store.resolve_chain_mismatch(id, resolution, UnixMillis(now))).unwrap();
        let balance = run(store.balance(&world.nodes[0])).unwrap();
        match resolution {
            crate::store::Resolution::Settle => {
                assert_eq!(resolved.status, PayoutStatus::Confirmed);
                assert_eq!((balance.paid, balance.reserved), (100_000_000, 0));
            }
            crate::store::Resolution::Release => {
                assert_eq!(resolved.status, PayoutStatus::Failed);
                assert_eq!((balance.paid, balance.reserved), (0, 0));
            }
        }
        let attempts = run(store.attempts(id)).unwrap();
        assert!(attempts.iter().all(|a| !a.status.is_live()));
        assert_eq!(
            attempts.last().unwrap().result_code.as_deref(),
            Some(resolution.attempt_code())
        );
        let again = run(store.resolve_chain_mismatch(id, resolution, UnixMillis(now)));
        assert!(matches!(again, Err(Error::AttemptRefused { .. })), "{again:?}");
        assert_eq!(run(store.balance(&world.nodes[0])).unwrap(), balance);
        run(world.check_always());
    }
}
