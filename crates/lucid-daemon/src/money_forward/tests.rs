//! Who decides a payout request, through the node's `NodeApi` under paused tokio time: the
//! payer decides a node-signed withdrawal or cancel once and only for the node that signed it
//! (forged, signed by another node, malformed, oversized, of another type, for another
//! network, stale, from the future and replayed requests change nothing), and a forwarding
//! node refuses the payer's side of the peer calls, checks a request before it would forward
//! it, answers `PAYER_UNREACHABLE` without the payer, never creates a payout of its own, and
//! says its balance is not authoritative.

use std::sync::Arc;
use std::time::Duration;

use lucid_api::Failure;
use lucid_api::dto::{PageQuery, PayoutQuery};
use lucid_consensus::ConsensusParams;
use lucid_consensus::testing;
use lucid_core::message::Message as _;
use lucid_core::{
    Clock as _, MicroUsdt, NetworkId, NodeKey, SignedMessage, TimeParams, UnixMillis,
};
use lucid_payouts::payout::PayoutLimits;
use lucid_payouts::processor::ProcessorConfig;
use lucid_payouts::request::{CancelRequest, REQUEST_WINDOW_MS, WithdrawalRequest};
use lucid_payouts::store::{MemoryPayoutStore, PayoutStore as _};
use lucid_payouts::sweep::SweepSettings;
use lucid_payouts::testing::FakeChain;

use crate::Node;
use crate::money::tests::{memory_node, params, paused_runtime};
use crate::money::{MoneyWiring, PayoutLoops};
use crate::services::payouts::tests::{ClockedChain, credit};
use crate::services::time::TokioClock;

const HOUR: Duration = Duration::from_secs(3_600);

fn network() -> NetworkId {
    params().network
}

fn other_network() -> NetworkId {
    let time = TimeParams::test_network(UnixMillis(1_000_000), 1_000, 8).unwrap();
    ConsensusParams::test_network("elsewhere", time).network
}

fn withdrawal(
    signer: &NodeKey,
    network: &NetworkId,
    amount: Option<u64>,
    key: &str,
    ts: UnixMillis,
) -> SignedMessage {
    WithdrawalRequest {
        node: signer.node_id(),
        amount: amount.map(|usdt| MicroUsdt(usdt * 1_000_000)),
        idempotency_key: key.to_owned(),
        ts,
    }
    .sign(network, signer)
}

fn cancel(signer: &NodeKey, network: &NetworkId, payout_id: &str, ts: UnixMillis) -> SignedMessage {
    CancelRequest { node: signer.node_id(), payout_id: payout_id.to_owned(), ts }
        .sign(network, signer)
}

/// The same bytes under a signature of `forger`.
fn forged(signed: &SignedMessage, forger: &NodeKey) -> SignedMessage {
    SignedMessage::new(signed.bytes().to_vec(), forger.sign(signed.bytes()))
}

/// What a refused case must answer.
type Expected = fn(&Failure) -> bool;

/// The bytes with their last bit flipped (the signing time moves by 1 ms), the signature kept.
fn tampered(signed: &SignedMessage) -> SignedMessage {
    let mut bytes = signed.bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    SignedMessage::new(bytes, *signed.signature())
}

fn limits() -> PayoutLimits {
    PayoutLimits::new(MicroUsdt(10_000_000), MicroUsdt(40_000_000)).unwrap()
}

/// A payer on the memory stores with a fake chain whose processor and sweep ran at start and
/// then wait an hour: payouts made by a test stay pending (so that they can be cancelled).
async fn payer_node(clock: &Arc<TokioClock>) -> (Node, Arc<MemoryPayoutStore>) {
    let (node, store, _proofs) = memory_node(clock).await;
    let rail = Arc::new(ClockedChain {
        chain: Arc::new(FakeChain::new(1, 0, 1)),
        clock: Arc::clone(clock),
    });
    node.spawn_money(MoneyWiring {
        ledger: store.clone(),
        epoch_reward: MicroUsdt(0),
        limits: limits(),
        max_retries: 3,
        payer_node_id: None,
        payouts: Some(PayoutLoops {
            rail,
            sweep: SweepSettings {
                genesis: params().time.genesis(),
                interval_ms: 3_600_000,
                limits: limits(),
                max_retries: 3,
            },
            processor: ProcessorConfig::default(),
            process_interval: HOUR,
        }),
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    (node, store)
}

#[test]
fn the_payer_decides_a_signed_request_once_and_only_for_its_signer() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new(UnixMillis(5_000_000)));
        let (node, store) = payer_node(&clock).await;
        credit(&store, 1, &[(1, 50), (2, 50)]);
        let api = node.api();
        let (owner, other) = (testing::key(1), testing::key(2));
        let now = clock.wall();

        let signed = withdrawal(&owner, &network(), Some(12), "k-1", now);
        let first = api.submit_withdrawal(signed.clone()).await.unwrap();
        assert!(first.created);
        let payout = first.payout;
        assert_eq!(
            (payout.node_id.as_str(), payout.origin.as_str(), payout.status.as_str()),
            (testing::node(1).to_string().as_str(), "withdrawal", "pending")
        );
        assert_eq!(
            (payout.gross.as_str(), payout.idempotency_key.as_str()),
            ("12.000000", "wd:k-1")
        );
        // Replayed, through the HTTP side and through the peer side: the original payout.
        for replay in [
            api.submit_withdrawal(signed.clone()).await.unwrap(),
            api.payer_withdrawal(signed.clone()).await.unwrap(),
        ] {
            assert!(!replay.created);
            assert_eq!(replay.payout.payout_id, payout.payout_id);
        }
        // The same key for another amount is a conflict, not a second payout.
        let conflict = withdrawal(&owner, &network(), Some(13), "k-1", now);
        assert_eq!(
            api.submit_withdrawal(conflict).await.unwrap_err(),
            Failure::IdempotencyConflict
        );

        // Refused before the ledger is touched, on both sides.
        let too_long_key = "k".repeat(65);
        let refused: Vec<(&str, SignedMessage, Expected)> = vec![
            ("tampered", tampered(&withdrawal(&owner, &network(), Some(10), "f", now)), |f| {
                *f == Failure::BadSignature
            }),
            (
                "signed by another node than it names",
                forged(&withdrawal(&owner, &network(), None, "o", now), &other),
                |f| *f == Failure::BadSignature,
            ),
            ("other network", withdrawal(&owner, &other_network(), Some(10), "n", now), |f| {
                matches!(f, Failure::InvalidInput(_))
            }),
            (
                "stale",
                withdrawal(
                    &owner,
                    &network(),
                    Some(10),
                    "s",
                    UnixMillis(now.0 - REQUEST_WINDOW_MS - 1),
                ),
                |f| matches!(f, Failure::InvalidInput(_)),
            ),
            (
                "future",
                withdrawal(
                    &owner,
                    &network(),
                    Some(10),
                    "u",
                    UnixMillis(now.0 + REQUEST_WINDOW_MS + 1),
                ),
                |f| matches!(f, Failure::InvalidInput(_)),
            ),
            ("garbage", SignedMessage::new(vec![7; 90], owner.sign(&[7; 90])), |f| {
                matches!(f, Failure::MalformedMessage(_))
            }),
            ("oversized key", withdrawal(&owner, &network(), Some(10), &too_long_key, now), |f| {
                matches!(f, Failure::MalformedMessage(_))
            }),
            ("a cancel", cancel(&owner, &network(), &payout.payout_id, now), |f| {
                matches!(f, Failure::MalformedMessage(_))
            }),
            ("over the balance", withdrawal(&owner, &network(), Some(39), "b", now), |f| {
                matches!(f, Failure::InsufficientBalance(_))
            }),
            ("over the maximum", withdrawal(&other, &network(), Some(41), "m", now), |f| {
                matches!(f, Failure::AboveMaximum(_))
            }),
            ("below the minimum", withdrawal(&other, &network(), Some(9), "l", now), |f| {
                matches!(f, Failure::BelowMinimum(_))
            }),
        ];
        for (case, signed, expected) in refused {
            for answer in [
                api.submit_withdrawal(signed.clone()).await,
                api.payer_withdrawal(signed.clone()).await,
            ] {
                let failure = answer.map(|w| w.payout.payout_id).unwrap_err();
                assert!(expected(&failure), "{case}: {failure:?}");
            }
        }
        assert_eq!(store.list(None).await.unwrap().len(), 1);

        // Cancels: by another node (validly signed) 403; forged, foreign, stale: refused;
        // unknown payout 404; the owner's cancels once, its replay meets a cancelled payout.
        let id = payout.payout_id.as_str();
        let by_other = cancel(&other, &network(), id, now);
        assert_eq!(api.payer_cancel(by_other.clone()).await.unwrap_err(), Failure::Forbidden);
        assert_eq!(api.submit_payout_cancel(id, by_other).await.unwrap_err(), Failure::Forbidden);
        let genuine = cancel(&owner, &network(), id, now);
        for forgery in [forged(&genuine, &other), tampered(&genuine)] {
            assert_eq!(api.payer_cancel(forgery).await.unwrap_err(), Failure::BadSignature);
        }
        let foreign = cancel(&owner, &other_network(), id, now);
        assert!(matches!(api.payer_cancel(foreign).await, Err(Failure::InvalidInput(_))));
        let stale = cancel(&owner, &network(), id, UnixMillis(now.0 - REQUEST_WINDOW_MS - 1));
        assert!(matches!(api.payer_cancel(stale).await, Err(Failure::InvalidInput(_))));
        let oversized = cancel(&owner, &network(), &"p".repeat(65), now);
        assert!(matches!(api.payer_cancel(oversized).await, Err(Failure::MalformedMessage(_))));
        let unknown = cancel(&owner, &network(), "payout_000000000000000000000000", now);
        assert!(matches!(api.payer_cancel(unknown).await, Err(Failure::NotFound(_))));
        // The path names another payout than the signed one.
        let elsewhere = api.submit_payout_cancel("payout_1", genuine.clone()).await;
        assert!(matches!(elsewhere, Err(Failure::InvalidInput(_))), "{elsewhere:?}");
        assert_eq!(store.balance(&testing::node(1)).await.unwrap().reserved, 12_000_000);

        let cancelled = api.submit_payout_cancel(id, genuine.clone()).await.unwrap();
        assert_eq!(cancelled.status, "cancelled");
        assert!(matches!(api.payer_cancel(genuine).await, Err(Failure::InvalidState(_))));
        let balance = store.balance(&testing::node(1)).await.unwrap();
        assert_eq!((balance.reserved, balance.available), (0, 50_000_000));

        // The payer's records through the peer side; its balances are authoritative.
        let page = api.payer_payouts(Some(testing::node(1)), PayoutQuery::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(api.payer_payout(id).await.unwrap().status, "cancelled");
        assert!(api.balance(testing::node(1)).await.unwrap().authoritative);
        assert_eq!(store.list(None).await.unwrap().len(), 1);
        store.audit().unwrap();
        node.drain().await.unwrap();
    });
}

#[test]
fn a_forwarding_node_never_creates_a_payout_of_its_own() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new(UnixMillis(5_000_000)));
        let (node, store, _proofs) = memory_node(&clock).await;
        node.spawn_money(MoneyWiring {
            ledger: store.clone(),
            epoch_reward: MicroUsdt(0),
            limits: limits(),
            max_retries: 3,
            payer_node_id: Some(testing::node(9)),
            payouts: None,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The forwarding node computes the same earnings: its own ledger holds balances.
        let own = NodeKey::from_seed(&[3; 32]);
        credit(&store, 1, &[(1, 50)]);
        store
            .post(
                &lucid_payouts::ledger::Posting::epoch_reward(
                    lucid_core::Epoch(2),
                    &[(own.node_id(), MicroUsdt(50_000_000))],
                )
                .unwrap(),
            )
            .unwrap();
        let api = node.api();
        let owner = testing::key(1);
        let now = clock.wall();

        // The payer's side of the peer calls: refused, never forwarded again.
        let signed = withdrawal(&owner, &network(), Some(12), "k-1", now);
        let id = "payout_000000000000000000000000";
        let not_payer = |answer: Result<String, Failure>| {
            assert!(matches!(answer, Err(Failure::FeatureDisabled(_))), "{answer:?}");
        };
        not_payer(api.payer_withdrawal(signed.clone()).await.map(|w| w.payout.payout_id));
        not_payer(api.payer_cancel(cancel(&owner, &network(), id, now)).await.map(|p| p.payout_id));
        not_payer(
            api.payer_payouts(None, PayoutQuery::default())
                .await
                .map(|p| p.next_cursor.unwrap_or_default()),
        );
        not_payer(api.payer_payout(id).await.map(|p| p.payout_id));

        // A request is checked before it would leave: forgeries and foreign, stale or
        // malformed requests are refused here.
        let forged_request = forged(&signed, &testing::key(2));
        assert_eq!(api.submit_withdrawal(forged_request).await.unwrap_err(), Failure::BadSignature);
        let foreign = withdrawal(&owner, &other_network(), Some(12), "k-2", now);
        assert!(matches!(api.submit_withdrawal(foreign).await, Err(Failure::InvalidInput(_))));
        let stale =
            withdrawal(&owner, &network(), None, "k-3", UnixMillis(now.0 - REQUEST_WINDOW_MS - 1));
        assert!(matches!(api.submit_withdrawal(stale).await, Err(Failure::InvalidInput(_))));
        let garbage = SignedMessage::new(vec![1; 40], owner.sign(&[1; 40]));
        assert!(matches!(api.submit_withdrawal(garbage).await, Err(Failure::MalformedMessage(_))));
        let forged_cancel = forged(&cancel(&owner, &network(), id, now), &testing::key(2));
        assert_eq!(
            api.submit_payout_cancel(id, forged_cancel).await.unwrap_err(),
            Failure::BadSignature
        );

        // A genuine request without a reachable payer: 503, nothing decided here.
        assert_eq!(
            api.submit_withdrawal(signed.clone()).await.unwrap_err(),
            Failure::PayerUnreachable
        );
        assert_eq!(api.submit_withdrawal(signed).await.unwrap_err(), Failure::PayerUnreachable);
        let genuine_cancel = cancel(&owner, &network(), id, now);
        assert_eq!(
            api.submit_payout_cancel(id, genuine_cancel).await.unwrap_err(),
            Failure::PayerUnreachable
        );
        // The operator's calls: its own node's are signed and forwarded, another node's refused.
        let admin_own = api.request_withdrawal(own.node_id(), "admin-1", None).await;
        assert_eq!(admin_own.map(|w| w.created).unwrap_err(), Failure::PayerUnreachable);
        let admin_other = api.request_withdrawal(testing::node(1), "admin-2", None).await;
        assert!(matches!(admin_other, Err(Failure::FeatureDisabled(_))), "{admin_other:?}");
        let bad_key = api.request_withdrawal(own.node_id(), "no spaces", None).await;
        assert!(matches!(bad_key, Err(Failure::InvalidInput(_))), "{bad_key:?}");
        assert_eq!(api.cancel_payout(id).await.unwrap_err(), Failure::PayerUnreachable);
        // Reads come from the payer too.
        let read = api.payouts(None, PayoutQuery::default()).await;
        assert_eq!(read.map(|p| p.items.len()).unwrap_err(), Failure::PayerUnreachable);
        assert_eq!(api.payout(id).await.unwrap_err(), Failure::PayerUnreachable);
        // So does a payout stub: it is the payer's record, never an empty local one.
        assert_eq!(api.payout_stub(id).await.unwrap_err(), Failure::PayerUnreachable);
        // A bad filter or page size is the client's error, answered here, not a 503.
        let bad_status = PayoutQuery { status: Some("paid-ish".to_owned()), ..Default::default() };
        let read = api.payouts(None, bad_status).await;
        assert!(matches!(read, Err(Failure::InvalidInput(_))), "{:?}", read.map(|p| p.items.len()));
        let bad_limit = PayoutQuery { limit: Some(1_000), ..Default::default() };
        let read = api.payouts(None, bad_limit).await;
        assert!(matches!(read, Err(Failure::InvalidInput(_))), "{:?}", read.map(|p| p.items.len()));

        // The ledger and the payout figures are the payer's: 503 without it, never this
        // node's own entries (it holds 50 USDT of its own node's rewards); the payer's side of
        // those peer calls is refused here.
        let ledger = api.ledger(own.node_id(), PageQuery::default()).await;
        assert_eq!(ledger.map(|l| l.items.len()).unwrap_err(), Failure::PayerUnreachable);
        assert_eq!(
            api.payout_stats().await.map(|s| s.paid_gross).unwrap_err(),
            Failure::PayerUnreachable
        );
        not_payer(api.payer_ledger(own.node_id(), PageQuery::default()).await.map(|l| l.node_id));
        not_payer(api.payer_payout_stats().await.map(|s| s.paid_gross));
        // A bad page size or cursor is still the client's mistake.
        for page in [
            PageQuery { limit: Some(0), cursor: None },
            PageQuery { limit: Some(101), cursor: None },
            PageQuery { limit: None, cursor: Some("x".to_owned()) },
        ] {
            let answer = api.ledger(own.node_id(), page).await;
            assert!(
                matches!(answer, Err(Failure::InvalidInput(_))),
                "{:?}",
                answer.map(|l| l.node_id)
            );
        }
        // The configuration says who pays, without asking it.
        let config = api.payout_config().await.unwrap();
        assert_eq!(
            (config.role.as_str(), config.payer_node_id.clone(), config.rail.clone()),
            ("forwarder", Some(testing::node(9).to_string()), None)
        );
        assert_eq!(
            (config.minimum_micro_usdt, config.maximum_micro_usdt),
            (10_000_000, 40_000_000)
        );

        // Its own figures are not authoritative, and no request made a payout here.
        let balance = api.balance(own.node_id()).await.unwrap();
        assert!(!balance.authoritative);
        assert_eq!(balance.available, "50.000000");
        assert!(!api.balance(testing::node(1)).await.unwrap().authoritative);
        assert!(store.list(None).await.unwrap().is_empty());
        store.audit().unwrap();
        node.drain().await.unwrap();
    });
}

/// The payer's ledger, newest first with the balance after each entry, paged by cursor until
/// every entry was seen once; its stats and configuration.
#[test]
fn the_payer_answers_a_nodes_ledger_page_by_page_and_its_payout_figures() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new(UnixMillis(5_000_000)));
        let (node, store) = payer_node(&clock).await;
        let api = node.api();
        let owner = testing::key(1);
        // Three credits and a payout (its reserve), then the payout cancelled (its release).
        credit(&store, 1, &[(1, 20), (2, 5)]);
        credit(&store, 2, &[(1, 7)]);
        credit(&store, 3, &[(1, 3)]);
        let payout = api
            .submit_withdrawal(withdrawal(&owner, &network(), Some(12), "k-1", clock.wall()))
            .await
            .unwrap()
            .payout;
        tokio::time::sleep(Duration::from_millis(10)).await;
        api.submit_payout_cancel(
            &payout.payout_id,
            cancel(&owner, &network(), &payout.payout_id, clock.wall()),
        )
        .await
        .unwrap();
        let node_1 = testing::node(1);
        let all = api.ledger(node_1, PageQuery { limit: Some(100), cursor: None }).await.unwrap();
        assert!(all.authoritative);
        assert!(all.next_cursor.is_none());
        let lines: Vec<(&str, &str, &str)> = all
            .items
            .iter()
            .map(|l| (l.kind.as_str(), l.amount.as_str(), l.balance_after.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("payout_release", "12.000000", "30.000000"),
                ("payout_reserve", "-12.000000", "18.000000"),
                ("epoch_reward", "3.000000", "30.000000"),
                ("epoch_reward", "7.000000", "27.000000"),
                ("epoch_reward", "20.000000", "20.000000"),
            ]
        );
        assert_eq!(api.balance(node_1).await.unwrap().available, "30.000000");
        // Pages of two: every entry once, in the same order.
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = api.ledger(node_1, PageQuery { limit: Some(2), cursor }).await.unwrap();
            assert!(page.items.len() <= 2);
            paged.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, all.items);
        // A registered node without entries has an empty ledger; a node nobody knows is 404.
        assert_eq!(
            api.ledger(testing::node(8), PageQuery::default()).await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Node)
        );
        let own = NodeKey::from_seed(&[3; 32]).node_id();
        assert!(api.ledger(own, PageQuery::default()).await.unwrap().items.is_empty());
        // The peer side answers the payer's ledger as it is, without the 404.
        assert!(
            api.payer_ledger(testing::node(8), PageQuery::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(
            api.payer_ledger(node_1, PageQuery { limit: Some(100), cursor: None }).await.unwrap(),
            all
        );
        // Cursors that are no ledger position are refused.
        for cursor in [
            "",
            "x",
            ":epoch_reward:1",
            "-5:k",
            "5:",
            "12a:k",
            "99999999999999999999999:k",
            "5:a\u{7}b",
        ] {
            let page = PageQuery { limit: None, cursor: Some(cursor.to_owned()) };
            let answer = api.ledger(node_1, page).await;
            assert!(
                matches!(answer, Err(Failure::InvalidInput(_))),
                "{cursor:?}: {:?}",
                answer.map(|l| l.items.len())
            );
        }
        let stats = api.payout_stats().await.unwrap();
        assert_eq!(stats.by_status.get("cancelled"), Some(&1));
        assert_eq!(stats.paid_gross, "0.000000");
        let peer_stats = api.payer_payout_stats().await.unwrap();
        assert_eq!(peer_stats.by_status, stats.by_status);
        let config = api.payout_config().await.unwrap();
        assert_eq!(
            (config.role.as_str(), config.rail.as_deref(), config.payer_node_id.clone()),
            ("payer", Some("fake"), Some(NodeKey::from_seed(&[3; 32]).node_id().to_string()))
        );
        assert_eq!(
            (config.fee_bps, config.fee_min_micro_usdt, config.fee_max_micro_usdt),
            (100, 100_000, 10_000_000)
        );
        store.audit().unwrap();
        node.drain().await.unwrap();
    });
}
