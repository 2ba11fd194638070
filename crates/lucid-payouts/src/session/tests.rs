//! Tests of the session lifecycle: each transition and refusal, and proptests of the book's
//! invariants over random operation sequences (ports never double-allocated, a txid never used
//! twice, revenue posted at most once and only for a session that ran, at its configured price).

use std::collections::{BTreeMap, BTreeSet};

use lucid_core::{MicroUsdt, NodeId, UnixMillis};
use proptest::prelude::*;

use super::*;
use crate::ledger::{Account, Ledger};

fn node() -> NodeId {
    lucid_consensus::testing::key(7).node_id()
}

fn id(n: u32) -> SessionId {
    SessionId::parse(&format!("s{n}")).unwrap()
}

fn user() -> UserId {
    UserId::parse("alice").unwrap()
}

fn txid(n: u8) -> Txid {
    Txid([n; 32])
}

const OK: Admission = Admission { node_ready: true, resources_ok: true, trust_ppm: 500_000 };

fn rules(max: u32, ports: (u16, u16)) -> SessionRules {
    SessionRules {
        max_concurrent: max,
        ports: PortRange::new(ports.0, ports.1).unwrap(),
        ..SessionRules::defaults(MicroUsdt(2_000_000))
    }
}

#[test]
fn happy_path_posts_the_configured_price_once_95_5() {
    let mut book = SessionBook::new(rules(10, (3389, 4000))).unwrap();
    let t0 = UnixMillis(1_000_000);
    let created = book.create(t0, id(1), user(), node(), OK).unwrap();
    assert_eq!((created.port, created.state), (3389, SessionState::PendingPayment));
    let start = book.payment_confirmed(t0, &id(1), txid(1), MicroUsdt(2_500_000)).unwrap();
    assert_eq!(start, SessionEffect::Start { id: id(1), port: 3389, user: user() });
    assert_eq!(book.get(&id(1)).unwrap().state, SessionState::Active);
    let stop = book.close(t0, &id(1), EndReason::Closed).unwrap().unwrap();
    assert_eq!(stop, SessionEffect::Stop { id: id(1), reason: EndReason::Closed });
    assert!(book.held_ports().contains(&3389), "a terminating session keeps its port");
    let Some(SessionEffect::PostRevenue { posting, .. }) = book.stopped(&id(1)).unwrap() else {
        panic!("no revenue")
    };
    assert_eq!(posting.key(), "session:s1");
    // The price, not the overpaid amount: 2 USDT, 5 % commission.
    let mut ledger = Ledger::new();
    ledger.apply(&posting).unwrap();
    assert_eq!(ledger.balance(&Account::Node(node())), 1_900_000);
    assert_eq!(ledger.balance(&Account::Treasury), 100_000);
    assert_eq!(ledger.balance(&Account::Sessions), -2_000_000);
    assert_eq!(book.stopped(&id(1)).unwrap(), None, "revenue is emitted once");
    assert!(book.held_ports().is_empty());
    assert_eq!(book.get(&id(1)).unwrap().state, SessionState::Terminated);
}

#[test]
fn admission_refusals_in_order() {
    let mut book = SessionBook::new(rules(1, (5000, 5000))).unwrap();
    let now = UnixMillis(0);
    let not_ready = Admission { node_ready: false, ..OK };
    assert_eq!(book.admit(not_ready), Err(SessionRefusal::NodeNotReady));
    let busy = Admission { resources_ok: false, ..OK };
    assert_eq!(book.admit(busy), Err(SessionRefusal::ResourcesExhausted));
    let distrusted = Admission { trust_ppm: 499_999, ..OK };
    assert_eq!(
        book.create(now, id(1), user(), node(), distrusted).unwrap_err(),
        SessionRefusal::TrustTooLow { ppm: 499_999 }
    );
    book.create(now, id(1), user(), node(), OK).unwrap();
    assert_eq!(
        book.create(now, id(1), user(), node(), OK).unwrap_err(),
        SessionRefusal::DuplicateSession { id: id(1) }
    );
    assert_eq!(
        book.create(now, id(2), user(), node(), OK).unwrap_err(),
        SessionRefusal::AtCapacity { max: 1 }
    );
    // More sessions allowed than ports: the ports run out first.
    let mut book = SessionBook::new(rules(5, (5000, 5001))).unwrap();
    book.create(now, id(1), user(), node(), OK).unwrap();
    book.create(now, id(2), user(), node(), OK).unwrap();
    assert!(matches!(
        book.create(now, id(3), user(), node(), OK).unwrap_err(),
        SessionRefusal::NoFreePort { .. }
    ));
}

#[test]
fn lowest_free_port_first_and_freed_ports_are_reused() {
    let mut book = SessionBook::new(rules(10, (4000, 4009))).unwrap();
    let now = UnixMillis(0);
    for n in 0..3 {
        assert_eq!(book.create(now, id(n), user(), node(), OK).unwrap().port, 4000 + n as u16);
    }
    book.close(now, &id(1), EndReason::Closed).unwrap();
    assert_eq!(book.create(now, id(9), user(), node(), OK).unwrap().port, 4001);
}

#[test]
fn pending_expires_after_the_timeout_and_frees_its_port() {
    let mut book = SessionBook::new(rules(10, (3389, 3390))).unwrap();
    let t0 = UnixMillis(10_000);
    book.create(t0, id(1), user(), node(), OK).unwrap();
    assert_eq!(book.next_expiry(), Some(UnixMillis(610_000)));
    assert!(book.expire(UnixMillis(609_999)).is_empty());
    assert_eq!(
        book.expire(UnixMillis(610_000)),
        [SessionEffect::Ended { id: id(1), reason: EndReason::PaymentTimeout }]
    );
    assert!(book.held_ports().is_empty());
    // A payment arriving after the timeout activates nothing.
    assert!(
        book.payment_confirmed(UnixMillis(610_001), &id(1), txid(1), MicroUsdt(2_000_000)).is_err()
    );
}

#[test]
fn a_late_payment_expires_the_session_instead_of_activating_it() {
    let mut book = SessionBook::new(rules(10, (3389, 3390))).unwrap();
    book.create(UnixMillis(0), id(1), user(), node(), OK).unwrap();
    let late = book.payment_confirmed(UnixMillis(600_000), &id(1), txid(1), MicroUsdt(2_000_000));
    assert_eq!(
        late,
        Err(SessionRefusal::WrongState { id: id(1), state: SessionState::Terminated })
    );
    assert!(book.held_ports().is_empty());
    assert_eq!(book.spent_by(&txid(1)), None);
}

#[test]
fn active_ends_after_max_duration() {
    let mut book = SessionBook::new(rules(10, (3389, 3390))).unwrap();
    book.create(UnixMillis(0), id(1), user(), node(), OK).unwrap();
    book.payment_confirmed(UnixMillis(5_000), &id(1), txid(1), MicroUsdt(2_000_000)).unwrap();
    assert_eq!(book.next_expiry(), Some(UnixMillis(7_205_000)));
    assert!(book.expire(UnixMillis(7_204_999)).is_empty());
    assert_eq!(
        book.expire(UnixMillis(7_205_000)),
        [SessionEffect::Stop { id: id(1), reason: EndReason::MaxDuration }]
    );
    assert!(book.expire(UnixMillis(9_000_000)).is_empty(), "asked to stop once");
}

#[test]
fn a_txid_pays_for_one_session_and_underpayment_is_refused() {
    let mut book = SessionBook::new(rules(10, (3389, 3399))).unwrap();
    let now = UnixMillis(0);
    book.create(now, id(1), user(), node(), OK).unwrap();
    book.create(now, id(2), user(), node(), OK).unwrap();
    assert_eq!(
        book.payment_confirmed(now, &id(1), txid(1), MicroUsdt(1_999_999)),
        Err(SessionRefusal::Underpaid { price: MicroUsdt(2_000_000), paid: MicroUsdt(1_999_999) })
    );
    book.payment_confirmed(now, &id(1), txid(1), MicroUsdt(2_000_000)).unwrap();
    assert_eq!(
        book.payment_confirmed(now, &id(2), txid(1), MicroUsdt(2_000_000)),
        Err(SessionRefusal::TxidAlreadyUsed { txid: txid(1), by: id(1) })
    );
    // Replayed for the session it paid: still refused, nothing changes.
    assert!(book.payment_confirmed(now, &id(1), txid(1), MicroUsdt(2_000_000)).is_err());
    assert_eq!(book.get(&id(2)).unwrap().state, SessionState::PendingPayment);
}

#[test]
fn a_pending_session_closed_posts_nothing() {
    let mut book = SessionBook::new(rules(10, (3389, 3399))).unwrap();
    book.create(UnixMillis(0), id(1), user(), node(), OK).unwrap();
    let ended = book.close(UnixMillis(1), &id(1), EndReason::Closed).unwrap();
    assert_eq!(ended, Some(SessionEffect::Ended { id: id(1), reason: EndReason::Closed }));
    assert_eq!(book.stopped(&id(1)).unwrap(), None);
    assert_eq!(book.close(UnixMillis(2), &id(1), EndReason::Closed).unwrap(), None);
    assert!(matches!(
        book.close(UnixMillis(2), &id(5), EndReason::Closed),
        Err(SessionRefusal::UnknownSession { .. })
    ));
}

#[test]
fn rules_are_validated_naming_the_key() {
    let bad = |rules: SessionRules| match SessionBook::new(rules) {
        Err(Error::InvalidSessionRule { key, .. }) => key,
        other => panic!("{other:?}"),
    };
    let ok = SessionRules::defaults(MicroUsdt(1));
    assert_eq!(bad(SessionRules { max_concurrent: 0, ..ok }), "session.max_concurrent");
    assert_eq!(bad(SessionRules { max_concurrent: 10_001, ..ok }), "session.max_concurrent");
    assert_eq!(bad(SessionRules { pending_timeout_ms: 999, ..ok }), "session.pending_timeout");
    assert_eq!(bad(SessionRules { max_duration_ms: 0, ..ok }), "session.max_duration");
    assert_eq!(bad(SessionRules { price: MicroUsdt(0), ..ok }), "session.price_usdt");
    assert_eq!(bad(SessionRules { price: MicroUsdt(u64::MAX), ..ok }), "session.price_usdt");
}

#[test]
fn ids_ports_and_txids_parse_strictly() {
    assert!(SessionId::parse("abc-DEF_09").is_some());
    for bad in ["", "a b", "a:b", "ä", &"x".repeat(65)] {
        assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        assert!(UserId::parse(bad).is_none(), "{bad:?}");
    }
    assert_eq!(PortRange::parse("3389-4000"), Some(PortRange::DEFAULT));
    assert_eq!(PortRange::parse("1-1").map(|r| r.len()), Some(1));
    for bad in ["", "3389", "4000-3389", "0-10", "1-65536", "+1-2", "1 -2", "a-b", "-", "1-2-3"] {
        assert!(PortRange::parse(bad).is_none(), "{bad:?}");
    }
    let text = "00ff".repeat(16);
    let parsed = Txid::parse_hex(&text).unwrap();
    assert_eq!(parsed.to_string(), text);
    assert_eq!(Txid::parse_hex(&text.to_uppercase()), Some(parsed));
    for bad in [&text[..62], &format!("{text}00"), &format!("{}g", &text[..63]), ""] {
        assert!(Txid::parse_hex(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn the_book_stays_bounded() {
    let mut book = SessionBook::new(rules(10, (3389, 3399))).unwrap();
    for n in 0..(KEEP_TERMINATED as u32 + 50) {
        book.create(UnixMillis(0), id(n), user(), node(), OK).unwrap();
        book.close(UnixMillis(0), &id(n), EndReason::Closed).unwrap();
    }
    assert_eq!(book.sessions().count(), KEEP_TERMINATED);
    assert!(book.get(&id(0)).is_none());
}

#[test]
fn memory_spent_txids_refuse_reuse_by_another_session() {
    let registry = MemorySpentTxids::new();
    let claim = |t, s| pollster::block_on(registry.claim(&txid(t), &id(s), UnixMillis(0))).unwrap();
    assert_eq!(claim(1, 1), TxidClaim::Claimed);
    assert_eq!(claim(1, 1), TxidClaim::Claimed, "idempotent for the same session");
    assert_eq!(claim(1, 2), TxidClaim::SpentBy(id(1)));
    assert_eq!(claim(2, 2), TxidClaim::Claimed);
}

#[test]
fn the_null_verifier_says_feature_disabled() {
    let check = PaymentCheck { txid: txid(1), from: "a".into(), to: "b".into(), min: MicroUsdt(1) };
    let error = pollster::block_on(NullPaymentVerifier.verify(&check)).unwrap_err();
    assert_eq!(lucid_core::HasKind::kind(&error), lucid_core::ErrorKind::FeatureDisabled);
}

#[derive(Clone, Debug)]
enum Step {
    Create { trust_ppm: u32 },
    Pay { session: u8, txid: u8, amount: u64 },
    Close { session: u8 },
    Stop { session: u8 },
    Advance { ms: u32 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u32..1_000_000).prop_map(|trust_ppm| Step::Create { trust_ppm }),
        3 => (0u8..12, 0u8..6, 1_900_000u64..2_100_000)
            .prop_map(|(session, txid, amount)| Step::Pay { session, txid, amount }),
        1 => (0u8..12).prop_map(|session| Step::Close { session }),
        2 => (0u8..12).prop_map(|session| Step::Stop { session }),
        2 => (0u32..4_000_000).prop_map(|ms| Step::Advance { ms }),
    ]
}

/// Applies an effect the way the daemon does: a stop is answered with `stopped`, and the revenue
/// it emits is posted (twice, to show that the posting is idempotent).
fn handle(
    book: &mut SessionBook,
    effect: SessionEffect,
    ledger: &mut Ledger,
    revenue: &mut BTreeMap<SessionId, u32>,
    price: MicroUsdt,
) -> Result<(), TestCaseError> {
    match effect {
        SessionEffect::Stop { id, .. } => {
            if let Some(SessionEffect::PostRevenue { id, posting }) = book.stopped(&id).unwrap() {
                *revenue.entry(id.clone()).or_default() += 1;
                let session = book.get(&id).unwrap();
                prop_assert!(session.activated_at.is_some());
                prop_assert_eq!(session.price, price);
                ledger.apply(&posting).unwrap();
                ledger.apply(&posting).unwrap();
            }
        }
        SessionEffect::PostRevenue { .. } => {
            return Err(TestCaseError::fail("revenue outside stopped"));
        }
        SessionEffect::Start { .. } | SessionEffect::Ended { .. } => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over any sequence: held ports are distinct, inside the range and exactly those of the
    /// sessions that are not terminated; a new session takes the lowest free port; open sessions
    /// never exceed the maximum; a txid activates one session; revenue is emitted at most once
    /// per session, only for one that was active, at the configured price, and posting it twice
    /// credits once.
    #[test]
    fn book_invariants(steps in proptest::collection::vec(step(), 1..80)) {
        let rules = rules(4, (7000, 7005));
        let mut book = SessionBook::new(rules).unwrap();
        let mut now = UnixMillis(1_000);
        let mut created = 0u32;
        let mut revenue: BTreeMap<SessionId, u32> = BTreeMap::new();
        let mut activated_by: BTreeMap<Txid, SessionId> = BTreeMap::new();
        let mut ledger = Ledger::new();
        for step in steps {
            match step {
                Step::Create { trust_ppm } => {
                    let free: Option<u16> = (7000..=7005).find(|p| !book.held_ports().contains(p));
                    let open = book.open();
                    let admission = Admission { trust_ppm, ..OK };
                    match book.create(now, id(created), user(), node(), admission) {
                        Ok(session) => {
                            prop_assert!(trust_ppm >= TRUST_GATE_PPM);
                            prop_assert!(open < 4);
                            prop_assert_eq!(Some(session.port), free);
                            prop_assert_eq!(session.price, rules.price);
                        }
                        Err(SessionRefusal::TrustTooLow { .. }) => prop_assert!(trust_ppm < TRUST_GATE_PPM),
                        Err(SessionRefusal::AtCapacity { .. }) => prop_assert_eq!(open, 4),
                        Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
                    }
                    created += 1;
                }
                Step::Pay { session, txid: t, amount } => {
                    let target = id(u32::from(session));
                    if let Ok(effect) = book.payment_confirmed(now, &target, txid(t), MicroUsdt(amount)) {
                        prop_assert!(amount >= rules.price.0);
                        prop_assert!(activated_by.insert(txid(t), target.clone()).is_none(), "txid reused");
                        handle(&mut book, effect, &mut ledger, &mut revenue, rules.price)?;
                    }
                }
                Step::Close { session } => {
                    if let Ok(Some(effect)) = book.close(now, &id(u32::from(session)), EndReason::Closed) {
                        handle(&mut book, effect, &mut ledger, &mut revenue, rules.price)?;
                    }
                }
                Step::Stop { session } => {
                    // Only a terminating session reacts.
                    let target = id(u32::from(session));
                    if book.get(&target).is_some_and(|s| s.state == SessionState::Terminating) {
                        handle(&mut book, SessionEffect::Stop { id: target, reason: EndReason::Closed }, &mut ledger, &mut revenue, rules.price)?;
                    } else {
                        prop_assert_eq!(book.stopped(&target).unwrap(), None);
                    }
                }
                Step::Advance { ms } => {
                    now = now.saturating_add_ms(i64::from(ms));
                    for effect in book.expire(now) {
                        handle(&mut book, effect, &mut ledger, &mut revenue, rules.price)?;
                    }
                }
            }
            let held = book.held_ports();
            let open: Vec<u16> = book
                .sessions()
                .filter(|s| s.state != SessionState::Terminated)
                .map(|s| s.port)
                .collect();
            prop_assert_eq!(open.len(), held.len(), "two open sessions share a port");
            prop_assert_eq!(open.iter().copied().collect::<BTreeSet<_>>(), held.clone());
            prop_assert!(held.iter().all(|p| (7000..=7005).contains(p)));
            prop_assert!(book.open() <= 4);
            prop_assert!(revenue.values().all(|n| *n == 1));
        }
        // Every posted session credited exactly 95 % of the price once.
        let posted = i64::try_from(revenue.len()).unwrap();
        prop_assert_eq!(ledger.balance(&Account::Node(node())), posted * 1_900_000);
        prop_assert_eq!(ledger.balance(&Account::Treasury), posted * 100_000);
        prop_assert!(ledger.audit().is_ok());
    }
}
