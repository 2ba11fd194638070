//! The session integration in process, with the fakes of `lucid-testkit` (`daemon.md` §12 item
//! 13): happy path (payment confirmed → active → terminated → revenue posted 95/5), trust
//! rejection, capacity, port exhaustion, payment replay refused (also across a restart through
//! the spent-txid registry), the client cannot set the price; expiry under paused tokio time
//! through the runner; and the work proofs of hosted sessions.
//!
//! In process, not on the real binary: the fakes live in this dev-only crate, and the binary
//! cannot select them by configuration (a binary that could would ship them).
//!
//! Needs the `session` feature and the fakes of `lucid-testkit/session`:
//! `cargo nextest run -p lucid-daemon --features session,lucid-testkit/session --test sessions`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lucid_consensus::ingest::Ingest;
use lucid_consensus::proof::{ProofKind, ProofValue};
use lucid_consensus::registration::{CAP_RELAY, Endpoint};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::{Clock, ErrorKind, HasKind, MicroUsdt, NodeId, Slot, SlotRange, UnixMillis};
use lucid_daemon::services::metrics::ServiceMetrics;
use lucid_daemon::services::registration::{RegistrationConfig, ensure_registration};
use lucid_daemon::services::runner::run_service;
use lucid_daemon::services::time::TokioClock;
use lucid_daemon::sessions::work::{WorkProofDeps, WorkProofProducer, proof_values};
use lucid_daemon::sessions::{
    NullRdpBackend, NullSessionProvider, NullTrustOracle, RdpBackend, SessionDeps, SessionError,
    SessionGate, SessionManager, SessionParams, SessionProvider, SessionService, TrustOracle,
    WorkSnapshot,
};
use lucid_payouts::Account;
use lucid_payouts::session::{
    EndReason, MemorySpentTxids, NullPaymentVerifier, PaymentCheck, PaymentStatus, PaymentVerifier,
    PortRange, SessionId, SessionRefusal, SessionRules, SessionState, SpentTxids, Txid, UserId,
};
use lucid_payouts::store::{LedgerStore, MemoryPayoutStore};
use lucid_testkit::fake_sessions::{
    FakePaymentVerifier, FakeRdpBackend, FakeSessionProvider, FakeTrustOracle,
};
use tokio_util::sync::CancellationToken;

const PRICE: MicroUsdt = MicroUsdt(3_000_000);
const PAY_TO: &str = "TTreasuryAddressOfTheSessionService1";

#[derive(Default)]
struct Gate {
    not_ready: AtomicBool,
    exhausted: AtomicBool,
}

impl SessionGate for Gate {
    fn node_ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }
    fn resources_ok(&self) -> bool {
        !self.exhausted.load(Ordering::SeqCst)
    }
}

struct Fixture {
    node: NodeId,
    clock: Arc<TokioClock>,
    provider: Arc<FakeSessionProvider>,
    trust: Arc<FakeTrustOracle>,
    rdp: Arc<FakeRdpBackend>,
    payments: Arc<FakePaymentVerifier>,
    spent: Arc<MemorySpentTxids>,
    ledger: Arc<MemoryPayoutStore>,
    gate: Arc<Gate>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            node: testing::key(1).node_id(),
            clock: Arc::new(TokioClock::new(UnixMillis(1_800_000_000_000))),
            provider: Arc::new(FakeSessionProvider::new()),
            trust: Arc::new(FakeTrustOracle::new(800_000)),
            rdp: Arc::new(FakeRdpBackend::new()),
            payments: Arc::new(FakePaymentVerifier::new()),
            spent: Arc::new(MemorySpentTxids::new()),
            ledger: Arc::new(MemoryPayoutStore::new()),
            gate: Arc::new(Gate::default()),
        }
    }

    fn manager(&self, rules: SessionRules) -> Arc<SessionManager> {
        Arc::new(
            SessionManager::new(SessionDeps {
                rules,
                node: self.node,
                pay_to: PAY_TO.to_owned(),
                provider: self.provider.clone(),
                trust: self.trust.clone(),
                rdp: self.rdp.clone(),
                payments: self.payments.clone(),
                spent: self.spent.clone(),
                ledger: self.ledger.clone(),
                clock: self.clock.clone(),
                gate: self.gate.clone(),
            })
            .unwrap(),
        )
    }

    async fn balance(&self, account: Account) -> i64 {
        self.ledger.account_balance(&account).await.unwrap()
    }
}

fn rules(max_concurrent: u32, first: u16, last: u16) -> SessionRules {
    SessionRules {
        max_concurrent,
        ports: PortRange::new(first, last).unwrap(),
        ..SessionRules::defaults(PRICE)
    }
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn params() -> SessionParams {
    SessionParams { payer_address: "TPayerAddress1".to_owned() }
}

fn txid(n: u8) -> Txid {
    Txid([n; 32])
}

fn refusal(error: SessionError) -> SessionRefusal {
    match error {
        SessionError::Refused(refusal) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

#[test]
fn happy_path_payment_active_terminated_revenue_95_5() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let created = sessions.create(user("alice"), params()).await.unwrap();
        assert_eq!(created.state, SessionState::PendingPayment);
        assert_eq!((created.port, created.price, created.pay_to.as_str()), (3389, PRICE, PAY_TO));
        f.payments.confirm(txid(1), PRICE);
        let active = sessions.confirm_payment(&created.id, txid(1)).await.unwrap();
        assert_eq!(active.state, SessionState::Active);
        assert!(f.rdp.is_running(&created.id));
        assert_eq!(sessions.active_sessions(), 1);
        // The payment was checked against the server's price and address, from the payer.
        let check = f.payments.calls().pop().unwrap();
        assert_eq!(
            check,
            PaymentCheck {
                txid: txid(1),
                from: "TPayerAddress1".into(),
                to: PAY_TO.into(),
                min: PRICE
            }
        );
        let ended = sessions.close(&created.id, EndReason::Closed).await.unwrap();
        assert_eq!(ended.state, SessionState::Terminated);
        assert!(!f.rdp.is_running(&created.id));
        assert_eq!(sessions.active_sessions(), 0);
        assert_eq!(f.balance(Account::Node(f.node)).await, 2_850_000);
        assert_eq!(f.balance(Account::Treasury).await, 150_000);
        assert_eq!(f.balance(Account::Sessions).await, -3_000_000);
        assert!(f.ledger.posting("session:fake-1").await.unwrap().is_some());
        assert_eq!(f.provider.closed(), [(created.id.clone(), EndReason::Closed)]);
        // Closing again and ticking post nothing more.
        sessions.close(&created.id, EndReason::Closed).await.unwrap();
        sessions.tick(f.clock.wall()).await.unwrap();
        assert_eq!(f.balance(Account::Node(f.node)).await, 2_850_000);
        assert!(f.ledger.ledger().unwrap().audit().is_ok());
    });
}

#[test]
fn trust_below_the_gate_is_refused_before_the_provider_is_asked() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        f.trust.set(&user("mallory"), 499_999);
        let error = sessions.create(user("mallory"), params()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Forbidden);
        assert_eq!(refusal(error), SessionRefusal::TrustTooLow { ppm: 499_999 });
        assert!(f.provider.created().is_empty());
        f.trust.set(&user("bob"), 500_000);
        let ok = sessions.create(user("bob"), params()).await.unwrap();
        assert_eq!(ok.port, 3389, "the refused request held no port");
    });
}

#[test]
fn capacity_is_max_concurrent_open_sessions() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(2, 3389, 4000));
        let first = sessions.create(user("a"), params()).await.unwrap();
        sessions.create(user("b"), params()).await.unwrap();
        let error = sessions.create(user("c"), params()).await.unwrap_err();
        assert_eq!(refusal(error), SessionRefusal::AtCapacity { max: 2 });
        assert_eq!(f.provider.created().len(), 2);
        sessions.close(&first.id, EndReason::Closed).await.unwrap();
        assert_eq!(sessions.create(user("c"), params()).await.unwrap().port, 3389);
    });
}

#[test]
fn ports_run_out_and_the_lowest_free_one_is_taken() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 5000, 5001));
        let a = sessions.create(user("a"), params()).await.unwrap();
        let b = sessions.create(user("b"), params()).await.unwrap();
        assert_eq!((a.port, b.port), (5000, 5001));
        let error = sessions.create(user("c"), params()).await.unwrap_err();
        assert!(matches!(refusal(error), SessionRefusal::NoFreePort { .. }));
        f.payments.confirm(txid(1), PRICE);
        sessions.confirm_payment(&a.id, txid(1)).await.unwrap();
        sessions.close(&a.id, EndReason::Closed).await.unwrap();
        let c = sessions.create(user("c"), params()).await.unwrap();
        assert_eq!(c.port, 5000);
        f.payments.confirm(txid(2), PRICE);
        sessions.confirm_payment(&c.id, txid(2)).await.unwrap();
        assert_eq!(f.rdp.ports_in_use(), std::collections::BTreeSet::from([5000]));
    });
}

#[test]
fn a_payment_is_never_replayed_even_across_a_restart() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let first = sessions.create(user("a"), params()).await.unwrap();
        let second = sessions.create(user("a"), params()).await.unwrap();
        f.payments.confirm(txid(7), PRICE);
        sessions.confirm_payment(&first.id, txid(7)).await.unwrap();
        let replay = sessions.confirm_payment(&second.id, txid(7)).await.unwrap_err();
        assert_eq!(
            refusal(replay),
            SessionRefusal::TxidAlreadyUsed { txid: txid(7), by: first.id.clone() }
        );
        // The same txid for the session it paid: it is active, nothing to pay.
        assert!(sessions.confirm_payment(&first.id, txid(7)).await.is_err());
        assert_eq!(sessions.session(&second.id).await.unwrap().state, SessionState::PendingPayment);
        // A restarted node has an empty book; the registry still refuses the txid.
        let restarted = f.manager(rules(10, 3389, 4000));
        let third = restarted.create(user("a"), params()).await.unwrap();
        let replay = restarted.confirm_payment(&third.id, txid(7)).await.unwrap_err();
        assert!(matches!(refusal(replay), SessionRefusal::TxidAlreadyUsed { .. }));
        assert_eq!(f.rdp.spawned(), 1);
    });
}

#[test]
fn the_client_cannot_set_the_price() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let created = sessions.create(user("a"), params()).await.unwrap();
        // Underpaying by one micro-USDT is refused; the session keeps waiting.
        f.payments.confirm(txid(1), MicroUsdt(PRICE.0 - 1));
        let error = sessions.confirm_payment(&created.id, txid(1)).await.unwrap_err();
        assert_eq!(
            refusal(error),
            SessionRefusal::Underpaid { price: PRICE, paid: MicroUsdt(PRICE.0 - 1) }
        );
        assert_eq!(
            sessions.session(&created.id).await.unwrap().state,
            SessionState::PendingPayment
        );
        // Overpaying activates; the revenue is still the configured price, whatever the session
        // service reports at completion.
        f.payments.confirm(txid(2), MicroUsdt(999_000_000));
        sessions.confirm_payment(&created.id, txid(2)).await.unwrap();
        f.provider.complete(&created.id, f.node, MicroUsdt(999_000_000));
        sessions.tick(f.clock.wall()).await.unwrap();
        assert_eq!(sessions.session(&created.id).await.unwrap().state, SessionState::Terminated);
        assert_eq!(f.balance(Account::Sessions).await, -3_000_000);
        assert_eq!(f.balance(Account::Node(f.node)).await, 2_850_000);
    });
}

#[test]
fn pending_and_rejected_payments_and_an_unready_node() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let created = sessions.create(user("a"), params()).await.unwrap();
        f.payments.script(
            txid(3),
            [PaymentStatus::Pending, PaymentStatus::Confirmed { amount: PRICE, confirmations: 19 }],
        );
        let pending = sessions.confirm_payment(&created.id, txid(3)).await.unwrap_err();
        assert!(matches!(pending, SessionError::PaymentPending { .. }));
        assert_eq!(
            sessions.confirm_payment(&created.id, txid(3)).await.unwrap().state,
            SessionState::Active
        );
        let other = sessions.create(user("a"), params()).await.unwrap();
        let unknown = sessions.confirm_payment(&other.id, txid(9)).await.unwrap_err();
        assert!(matches!(unknown, SessionError::PaymentRejected { .. }));
        let missing = SessionId::parse("nope").unwrap();
        assert_eq!(
            sessions.confirm_payment(&missing, txid(9)).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let bad = SessionParams { payer_address: "a b".into() };
        assert!(matches!(
            sessions.create(user("a"), bad).await.unwrap_err(),
            SessionError::InvalidInput { field: "payer_address", .. }
        ));
        f.gate.exhausted.store(true, Ordering::SeqCst);
        assert_eq!(
            refusal(sessions.create(user("a"), params()).await.unwrap_err()),
            SessionRefusal::ResourcesExhausted
        );
        f.gate.not_ready.store(true, Ordering::SeqCst);
        assert_eq!(
            refusal(sessions.create(user("a"), params()).await.unwrap_err()),
            SessionRefusal::NodeNotReady
        );
    });
}

#[test]
fn a_backend_that_cannot_host_ends_the_session_without_revenue() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let created = sessions.create(user("a"), params()).await.unwrap();
        f.rdp.fail_spawns(true);
        f.payments.confirm(txid(1), PRICE);
        let view = sessions.confirm_payment(&created.id, txid(1)).await.unwrap();
        assert_eq!(
            (view.state, view.end_reason),
            (SessionState::Terminated, Some(EndReason::BackendFailed))
        );
        assert_eq!(f.balance(Account::Sessions).await, 0);
        assert_eq!(sessions.create(user("a"), params()).await.unwrap().port, 3389);
    });
}

#[test]
fn a_failed_stop_holds_the_port_and_is_retried_by_the_service() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(rules(10, 3389, 4000));
        let created = sessions.create(user("a"), params()).await.unwrap();
        f.payments.confirm(txid(1), PRICE);
        sessions.confirm_payment(&created.id, txid(1)).await.unwrap();
        f.rdp.fail_stops(true);
        let view = sessions.close(&created.id, EndReason::Closed).await.unwrap();
        assert_eq!(view.state, SessionState::Terminating);
        assert_eq!(
            sessions.create(user("b"), params()).await.unwrap().port,
            3390,
            "3389 is still held"
        );
        f.rdp.fail_stops(false);
        sessions.tick(f.clock.wall()).await.unwrap();
        assert_eq!(sessions.session(&created.id).await.unwrap().state, SessionState::Terminated);
        assert_eq!(f.balance(Account::Node(f.node)).await, 2_850_000);
    });
}

async fn run_for(service: SessionService, clock: &Arc<TokioClock>, duration: Duration) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_service(
        service,
        Arc::clone(clock) as Arc<dyn Clock>,
        Arc::new(ServiceMetrics::new()),
        cancel.clone(),
    ));
    tokio::time::sleep(duration).await;
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn the_service_expires_pending_after_600s_and_active_after_7200s() {
    paused().block_on(async {
        let f = Fixture::new();
        let sessions = f.manager(SessionRules::defaults(PRICE));
        let pending = sessions.create(user("a"), params()).await.unwrap();
        let paid = sessions.create(user("b"), params()).await.unwrap();
        f.payments.confirm(txid(1), PRICE);
        sessions.confirm_payment(&paid.id, txid(1)).await.unwrap();
        let service = SessionService::new(Arc::clone(&sessions));
        run_for(service, &f.clock, Duration::from_secs(599)).await;
        assert_eq!(
            sessions.session(&pending.id).await.unwrap().state,
            SessionState::PendingPayment
        );
        let service = SessionService::new(Arc::clone(&sessions));
        run_for(service, &f.clock, Duration::from_secs(2)).await;
        let expired = sessions.session(&pending.id).await.unwrap();
        assert_eq!(
            (expired.state, expired.end_reason),
            (SessionState::Terminated, Some(EndReason::PaymentTimeout))
        );
        assert!(f.provider.closed().contains(&(pending.id.clone(), EndReason::PaymentTimeout)));
        assert_eq!(sessions.active_sessions(), 1);
        let service = SessionService::new(Arc::clone(&sessions));
        run_for(service, &f.clock, Duration::from_secs(7_200)).await;
        let ended = sessions.session(&paid.id).await.unwrap();
        assert_eq!(
            (ended.state, ended.end_reason),
            (SessionState::Terminated, Some(EndReason::MaxDuration))
        );
        assert_eq!(f.balance(Account::Node(f.node)).await, 2_850_000);
        assert!(f.rdp.ports_in_use().is_empty());
    });
}

#[test]
fn null_implementations_say_feature_disabled() {
    paused().block_on(async {
        let u = user("a");
        let id = SessionId::parse("s1").unwrap();
        let node = testing::key(1).node_id();
        let disabled = |e: SessionError| assert_eq!(e.kind(), ErrorKind::FeatureDisabled);
        disabled(NullSessionProvider.create(&u, node, &params()).await.unwrap_err());
        disabled(NullSessionProvider.close(&id, EndReason::Closed).await.unwrap_err());
        assert!(NullSessionProvider.completed().await.unwrap().is_empty());
        disabled(NullTrustOracle.score(&u).await.unwrap_err());
        disabled(NullRdpBackend.spawn(3389, &id, &u).await.err().unwrap());
        let check = PaymentCheck { txid: txid(1), from: "a".into(), to: "b".into(), min: PRICE };
        assert_eq!(
            NullPaymentVerifier.verify(&check).await.unwrap_err().kind(),
            ErrorKind::FeatureDisabled
        );
        // A manager over the null ports refuses every session, naming the feature.
        let f = Fixture::new();
        let sessions = SessionManager::new(SessionDeps {
            rules: SessionRules::defaults(PRICE),
            node,
            pay_to: PAY_TO.into(),
            provider: Arc::new(NullSessionProvider),
            trust: Arc::new(NullTrustOracle),
            rdp: Arc::new(NullRdpBackend),
            payments: Arc::new(NullPaymentVerifier),
            spent: f.spent.clone(),
            ledger: f.ledger.clone(),
            clock: f.clock.clone(),
            gate: f.gate.clone(),
        })
        .unwrap();
        disabled(sessions.create(u, params()).await.unwrap_err());
        assert!(f.spent.claim(&txid(1), &id, UnixMillis(0)).await.is_ok());
    });
}

#[test]
fn proof_values_respect_the_caps_and_skip_idle_kinds() {
    assert_eq!(proof_values(WorkSnapshot::default()), (None, None));
    let (relay, validation) = proof_values(WorkSnapshot {
        bytes: u64::MAX,
        sessions_relayed: u32::MAX,
        validated_sessions: u32::MAX,
    });
    assert_eq!(
        relay,
        Some(ProofValue::Relay { bytes_transferred: 150_000_000_000, sessions_relayed: 10_000 })
    );
    assert_eq!(validation, Some(ProofValue::Validation { validated_sessions: 100_000 }));
    let (relay, validation) =
        proof_values(WorkSnapshot { bytes: 0, sessions_relayed: 0, validated_sessions: 2 });
    assert_eq!((relay, validation), (None, Some(ProofValue::Validation { validated_sessions: 2 })));
}

/// The work proofs of hosted sessions: one relay and one validation proof for the slot with the
/// activity, signed at slot start + 110 s (scaled), accepted by the node's own ingest; no proof
/// for a slot without activity.
#[test]
fn hosted_sessions_become_work_proofs_and_idle_slots_none() {
    paused().block_on(async {
        let params: ConsensusParams = testing::small_params();
        let f = Fixture::new();
        let key = Arc::new(testing::key(1));
        let clock = Arc::new(TokioClock::new(params.time.slot_start(Slot(100)).unwrap()));
        let store = Arc::new(MemoryProofStore::new());
        let ingest = Arc::new(tokio::sync::Mutex::new(Ingest::new(params)));
        let registration = RegistrationConfig {
            payout_address: Some(testing::registration(&params, &key, 1).payout_address),
            endpoint: Some(Endpoint::Direct("127.0.0.1:50051".into())),
            capabilities: CAP_RELAY,
            storage_capacity_bytes: 0,
        };
        let status = ensure_registration(
            &params,
            &key,
            &registration,
            store.as_ref(),
            &ingest,
            clock.wall(),
        )
        .await
        .unwrap();
        assert!(status.is_registered());
        let sessions = Arc::new(
            SessionManager::new(SessionDeps {
                rules: SessionRules::defaults(PRICE),
                node: key.node_id(),
                pay_to: PAY_TO.into(),
                provider: f.provider.clone(),
                trust: f.trust.clone(),
                rdp: f.rdp.clone(),
                payments: f.payments.clone(),
                spent: f.spent.clone(),
                ledger: f.ledger.clone(),
                clock: clock.clone(),
                gate: f.gate.clone(),
            })
            .unwrap(),
        );
        let created = sessions.create(user("a"), params_for()).await.unwrap();
        f.payments.confirm(txid(1), PRICE);
        sessions.confirm_payment(&created.id, txid(1)).await.unwrap();
        f.rdp.relay(&created.id, 12 * 1024 * 1024);
        let producer = WorkProofProducer::new(WorkProofDeps {
            params,
            clock: clock.clone(),
            key: key.clone(),
            store: store.clone(),
            ingest: ingest.clone(),
            verifier: Arc::new(Verifier::single_threaded()),
            outbox: None,
            sessions: Arc::clone(&sessions),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_service(
            producer,
            clock.clone() as Arc<dyn Clock>,
            Arc::new(ServiceMetrics::new()),
            cancel.clone(),
        ));
        // Slot 100 (1 s slots): due at 100 + 916 ms.
        tokio::time::sleep(Duration::from_millis(950)).await;
        let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
        let proofs = store.proofs_in_range(all, None, usize::MAX).await.unwrap();
        let values: Vec<(u64, ProofValue)> =
            proofs.iter().map(|p| (p.proof.slot.0, p.proof.value)).collect();
        assert_eq!(
            values,
            [
                (
                    100,
                    ProofValue::Relay { bytes_transferred: 12 * 1024 * 1024, sessions_relayed: 1 }
                ),
                (100, ProofValue::Validation { validated_sessions: 1 }),
            ]
        );
        let signed_at = proofs[0].proof.ts;
        assert_eq!(signed_at, params.time.slot_start(Slot(100)).unwrap().saturating_add_ms(916));
        // The session is closed: slot 101 still relays the bytes it moved before closing, slot
        // 102 has no activity and gets no proof.
        f.rdp.relay(&created.id, 1_000);
        sessions.close(&created.id, EndReason::Closed).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        cancel.cancel();
        task.await.unwrap();
        let proofs = store.proofs_in_range(all, None, usize::MAX).await.unwrap();
        let later: Vec<(u64, ProofKind, ProofValue)> = proofs
            .iter()
            .filter(|p| p.proof.slot.0 > 100)
            .map(|p| (p.proof.slot.0, p.proof.kind(), p.proof.value))
            .collect();
        assert_eq!(
            later,
            [(
                101,
                ProofKind::RelayBandwidth,
                ProofValue::Relay { bytes_transferred: 1_000, sessions_relayed: 1 }
            )]
        );
    });
}

fn params_for() -> SessionParams {
    params()
}
