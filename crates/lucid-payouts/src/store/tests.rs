//! Tests of the in-memory payout store: amount rules at creation (I11), idempotency (I12),
//! cancel only from pending (I16), daily caps at claim (I20), one live attempt (I14), leases.

use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};
use proptest::prelude::*;

use super::*;
use crate::payout::withdrawal_key;

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

fn address(index: u8) -> ChainAddress {
    let mut address = [index; 21];
    address[0] = 0x41;
    address
}

fn store_with(credits: &[(NodeId, MicroUsdt)]) -> MemoryPayoutStore {
    let store = MemoryPayoutStore::new();
    store.post(&Posting::epoch_reward(Epoch(1), credits).unwrap()).unwrap();
    store
}

fn request(node: NodeId, key: &str, gross: Option<MicroUsdt>, now: i64) -> NewPayout {
    NewPayout {
        node,
        origin: Origin::Withdrawal,
        idempotency_key: withdrawal_key(key).unwrap(),
        requested: gross,
        to_address: Some(address(1)),
        limits: PayoutLimits::default(),
        max_retries: 3,
        now: UnixMillis(now),
    }
}

fn created(outcome: CreateOutcome) -> PayoutRecord {
    match outcome {
        CreateOutcome::Created(payout) => payout,
        other => panic!("expected a new payout, got {other:?}"),
    }
}

fn transfer(tag: u8) -> SignedTransfer {
    SignedTransfer {
        txid: [tag; 32],
        raw: vec![tag; 8],
        signature: vec![tag; 65],
        expiration: UnixMillis(60_000),
        fee_limit_sun: 1,
    }
}

fn claim_all(store: &MemoryPayoutStore, caps: DailyCaps, now: i64) -> Vec<PayoutRecord> {
    run(store.claim(&ClaimRequest {
        batch_size: 1_000,
        lease_owner: "w".into(),
        lease_until: UnixMillis(now + 300_000),
        caps,
        now: UnixMillis(now),
    }))
    .unwrap()
}

#[test]
fn creation_follows_the_amount_rules() {
    // I11: no payout outside [minimum, maximum] or above the balance; fee + net == gross.
    let node = testing::node(1);
    let store = store_with(&[(node, usdt(20_000))]);
    let refused =
        |gross, key: &str| run(store.create_payout(&request(node, key, gross, 1))).unwrap();
    assert_eq!(
        refused(Some(MicroUsdt(9_999_999)), "a"),
        CreateOutcome::Refused(Refusal::BelowMinimum { minimum: usdt(10) })
    );
    assert_eq!(
        refused(Some(MicroUsdt(10_000_000_001)), "b"),
        CreateOutcome::Refused(Refusal::AboveMaximum { maximum: usdt(10_000) })
    );
    let mut no_address = request(node, "c", Some(usdt(10)), 1);
    no_address.to_address = None;
    assert_eq!(
        run(store.create_payout(&no_address)).unwrap(),
        CreateOutcome::Refused(Refusal::NoPayoutAddress)
    );
    // Default: everything available, capped at the maximum.
    let first = created(refused(None, "d"));
    assert_eq!(first.amounts.gross, usdt(10_000));
    assert_eq!(first.amounts.fee.0 + first.amounts.net.0, first.amounts.gross.0);
    let second = created(refused(Some(usdt(9_000)), "e"));
    assert_eq!(second.amounts.net, MicroUsdt(8_990_000_000));
    assert_eq!(
        refused(Some(usdt(1_001)), "f"),
        CreateOutcome::Refused(Refusal::InsufficientBalance { available: usdt(1_000) })
    );
    let balance = run(store.balance(&node)).unwrap();
    assert_eq!(
        (balance.earned, balance.reserved, balance.available),
        (20_000_000_000, 19_000_000_000, 1_000_000_000)
    );
    store.audit().unwrap();
}

#[test]
fn idempotency_replays_and_conflicts() {
    // I12: same key and body ⇒ the original payout; another amount ⇒ conflict; never two.
    let (a, b) = (testing::node(1), testing::node(2));
    let store = store_with(&[(a, usdt(100)), (b, usdt(100))]);
    let original = created(run(store.create_payout(&request(a, "k", Some(usdt(20)), 1))).unwrap());
    assert_eq!(
        run(store.create_payout(&request(a, "k", Some(usdt(20)), 2))).unwrap(),
        CreateOutcome::Replayed(original.clone())
    );
    assert_eq!(
        run(store.create_payout(&request(a, "k", Some(usdt(30)), 3))).unwrap(),
        CreateOutcome::Conflict(original.clone())
    );
    assert_eq!(
        run(store.create_payout(&request(a, "k", None, 4))).unwrap(),
        CreateOutcome::Replayed(original.clone())
    );
    // The same client key of another node is another payout.
    let other = created(run(store.create_payout(&request(b, "k", Some(usdt(20)), 5))).unwrap());
    assert_ne!(other.payout_id, original.payout_id);
    assert_eq!(run(store.list(None)).unwrap().len(), 2);
    assert_eq!(run(store.balance(&a)).unwrap().reserved, 20_000_000);
    store.audit().unwrap();
}

#[test]
fn cancel_only_from_pending() {
    // I16: cancel succeeds only from pending and releases the reservation once.
    let node = testing::node(1);
    let store = store_with(&[(node, usdt(100))]);
    let first = created(run(store.create_payout(&request(node, "a", Some(usdt(10)), 1))).unwrap());
    let cancelled = run(store.cancel(&first.payout_id, UnixMillis(2))).unwrap();
    assert_eq!(cancelled.status, PayoutStatus::Cancelled);
    assert!(matches!(
        run(store.cancel(&first.payout_id, UnixMillis(3))),
        Err(Error::StateChanged { found: PayoutStatus::Cancelled, .. })
    ));
    let second = created(run(store.create_payout(&request(node, "b", Some(usdt(10)), 4))).unwrap());
    let id = second.payout_id.clone();
    claim_all(&store, DailyCaps::default(), 5);
    assert!(run(store.cancel(&id, UnixMillis(6))).is_err(), "processing");
    run(store.record_signed(&id, "w", 1, &transfer(1), UnixMillis(7))).unwrap();
    assert!(run(store.cancel(&id, UnixMillis(8))).is_err(), "signed");
    assert_eq!(run(store.begin_broadcast(&id, &[1; 32], UnixMillis(9))).unwrap(), 0);
    run(store.mark_sent(&id, &[1; 32], UnixMillis(9))).unwrap();
    assert!(run(store.cancel(&id, UnixMillis(10))).is_err(), "sent");
    let receipt = Receipt { block: 1, energy_used: 1, fee_sun: 1 };
    run(store.finalize_confirmed(&id, &[1; 32], &receipt, UnixMillis(11))).unwrap();
    assert!(run(store.cancel(&id, UnixMillis(12))).is_err(), "confirmed");
    let balance = run(store.balance(&node)).unwrap();
    assert_eq!((balance.available, balance.reserved, balance.paid), (90_000_000, 0, 10_000_000));
    store.audit().unwrap();
}

#[test]
fn one_live_attempt_and_leases() {
    // I14 at the store: a second attempt needs the first dead; numbers consecutive; txids unique.
    let node = testing::node(1);
    let store = store_with(&[(node, usdt(100))]);
    let payout = created(run(store.create_payout(&request(node, "a", Some(usdt(10)), 1))).unwrap());
    let id = payout.payout_id.clone();
    assert_eq!(claim_all(&store, DailyCaps::default(), 2).len(), 1);
    assert!(run(store.record_signed(&id, "other", 1, &transfer(1), UnixMillis(3))).is_err());
    assert!(run(store.record_signed(&id, "w", 2, &transfer(1), UnixMillis(3))).is_err());
    run(store.record_signed(&id, "w", 1, &transfer(1), UnixMillis(3))).unwrap();
    assert!(run(store.record_signed(&id, "w", 2, &transfer(2), UnixMillis(4))).is_err());
    // A rejection after a second broadcast proves nothing.
    run(store.begin_broadcast(&id, &[1; 32], UnixMillis(5))).unwrap();
    assert_eq!(run(store.begin_broadcast(&id, &[1; 32], UnixMillis(6))).unwrap(), 1);
    let rejected = AttemptEnd::Rejected { code: "TAPOS_ERROR".into(), retryable: true };
    assert!(matches!(
        run(store.finalize_failed_or_retry(&id, &[1; 32], &rejected, UnixMillis(7))),
        Err(Error::AttemptRefused { .. })
    ));
    let back =
        run(store.finalize_failed_or_retry(&id, &[1; 32], &AttemptEnd::Expired, UnixMillis(8)))
            .unwrap();
    assert_eq!((back.status, back.attempt_count), (PayoutStatus::Pending, 1));
    claim_all(&store, DailyCaps::default(), 9);
    assert!(
        run(store.record_signed(&id, "w", 2, &transfer(1), UnixMillis(10))).is_err(),
        "txid reused"
    );
    // A lapsed claim returns to pending; the old owner can no longer sign.
    assert!(run(store.release_expired_leases(UnixMillis(300_008))).unwrap().is_empty());
    assert_eq!(run(store.release_expired_leases(UnixMillis(300_009))).unwrap(), vec![id.clone()]);
    assert!(run(store.record_signed(&id, "w", 2, &transfer(2), UnixMillis(300_010))).is_err());
    store.audit().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// I20: over any sequence of payouts and days, no UTC day has more first-signed payouts than
    /// the caps allow, network-wide or per node.
    #[test]
    fn claims_respect_daily_caps(
        max_count in 0u32..8,
        max_per_node in 0u32..4,
        owners in proptest::collection::vec(0u64..3, 1..30),
        days in 1i64..4,
    ) {
        let nodes: Vec<NodeId> = (1..=3).map(testing::node).collect();
        let credits: Vec<_> = nodes.iter().map(|node| (*node, usdt(1_000))).collect();
        let store = store_with(&credits);
        for (index, owner) in owners.iter().enumerate() {
            let node = nodes[usize::try_from(*owner).unwrap()];
            let key = format!("k{index}");
            created(run(store.create_payout(&request(node, &key, Some(usdt(10)), 0))).unwrap());
        }
        let caps = DailyCaps { max_count, max_per_node };
        let mut tag = 0u32;
        for day in 0..days {
            let now = day * 86_400_000 + 1_000;
            let claimed = claim_all(&store, caps, now);
            for payout in &claimed {
                tag += 1;
                let mut t = transfer(0);
                t.txid[..4].copy_from_slice(&tag.to_be_bytes());
                run(store.record_signed(&payout.payout_id, "w", 1, &t, UnixMillis(now))).unwrap();
            }
            let signed_today: Vec<PayoutRecord> = run(store.list(None)).unwrap().into_iter()
                .filter(|p| p.first_signed_at.is_some_and(|at| utc_day(at) == utc_day(UnixMillis(now))))
                .collect();
            if max_count > 0 {
                prop_assert!(signed_today.len() <= max_count as usize);
            }
            for node in &nodes {
                let mine = signed_today.iter().filter(|p| p.node == *node).count();
                if max_per_node > 0 {
                    prop_assert!(mine <= max_per_node as usize);
                }
            }
            // Caps hold back, they never starve: something is claimed while room is left.
            let pending = run(store.list(Some(PayoutStatus::Pending))).unwrap().len();
            if max_count == 0 && max_per_node == 0 {
                prop_assert_eq!(pending, 0);
            }
        }
        prop_assert!(store.audit().is_ok());
    }
}
