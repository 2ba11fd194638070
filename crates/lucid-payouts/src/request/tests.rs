//! Tests of the signed payout requests: golden vectors, round trips, and every refusal of
//! [`check_request`] (malformed, oversized, forged, signed by another node, wrong network,
//! stale replay, future), with a proptest that a single flipped bit never passes.

use lucid_consensus::ConsensusParams;
use lucid_core::NodeKey;
use proptest::prelude::*;

use super::*;

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fn owner() -> NodeKey {
    NodeKey::from_seed(&[1; 32])
}

fn other() -> NodeKey {
    NodeKey::from_seed(&[2; 32])
}

fn network() -> NetworkId {
    ConsensusParams::mainnet().network
}

fn withdrawal(amount: Option<u64>, key: &str, ts: UnixMillis) -> WithdrawalRequest {
    WithdrawalRequest {
        node: owner().node_id(),
        amount: amount.map(MicroUsdt),
        idempotency_key: key.to_owned(),
        ts,
    }
}

fn cancel(payout_id: &str, ts: UnixMillis) -> CancelRequest {
    CancelRequest { node: owner().node_id(), payout_id: payout_id.to_owned(), ts }
}

/// The encodings are fixed: a change here breaks every signed request in flight.
/// Regenerate with `UPDATE_EXPECT=1 cargo test -p lucid-payouts request` and a new version.
#[test]
fn golden_vectors() {
    let mut out = format!("network mainnet {}\n", network());
    let cases: [(&str, SignedMessage); 3] = [
        (
            "withdrawal",
            withdrawal(Some(12_500_000), "wd-2026-11-27", NOW).sign(&network(), &owner()),
        ),
        ("withdrawal all", withdrawal(None, "k1", NOW).sign(&network(), &owner())),
        (
            "payout-cancel",
            cancel("payout_0123456789abcdef01234567", NOW).sign(&network(), &owner()),
        ),
    ];
    for (name, signed) in &cases {
        assert!(signed.verify(&owner().node_id()));
        out.push_str(&format!(
            "\n[{name}]\nsigner {}\nbytes {}\ndigest {}\nsignature {}\n",
            owner().node_id(),
            lucid_core::ids::to_hex(signed.bytes()),
            signed.digest(),
            signed.signature()
        ));
    }
    expect_test::expect_file!["golden.txt"].assert_eq(&out);
}

#[test]
fn genuine_requests_pass_and_decode_to_what_was_signed() {
    let signed = withdrawal(Some(10_000_000), "k", NOW).sign(&network(), &owner());
    let checked: WithdrawalRequest = check_request(&signed, &network(), NOW).unwrap();
    assert_eq!(checked, withdrawal(Some(10_000_000), "k", NOW));
    let all = withdrawal(None, "k-2_x", NOW).sign(&network(), &owner());
    let checked: WithdrawalRequest = check_request(&all, &network(), NOW).unwrap();
    assert_eq!(checked.amount, None);
    let signed = cancel("payout_abc", NOW).sign(&network(), &owner());
    let checked: CancelRequest = check_request(&signed, &network(), NOW).unwrap();
    assert_eq!(checked, cancel("payout_abc", NOW));
}

#[test]
fn the_window_is_300_seconds_each_way() {
    for (ts, expected) in [
        (NOW.0 - REQUEST_WINDOW_MS, None),
        (NOW.0 + REQUEST_WINDOW_MS, None),
        (NOW.0 - REQUEST_WINDOW_MS - 1, Some(RequestRefusal::Expired)),
        (NOW.0 + REQUEST_WINDOW_MS + 1, Some(RequestRefusal::FromFuture)),
    ] {
        let signed = cancel("payout_1", UnixMillis(ts)).sign(&network(), &owner());
        let result = check_request::<CancelRequest>(&signed, &network(), NOW);
        assert_eq!(result.err(), expected, "ts {ts}");
    }
}

#[test]
fn a_stale_replay_is_refused() {
    // The same bytes that passed at signing time are refused once the window has passed.
    let signed = withdrawal(None, "k", NOW).sign(&network(), &owner());
    assert!(check_request::<WithdrawalRequest>(&signed, &network(), NOW).is_ok());
    let later = UnixMillis(NOW.0 + REQUEST_WINDOW_MS + 1);
    assert_eq!(
        check_request::<WithdrawalRequest>(&signed, &network(), later).unwrap_err(),
        RequestRefusal::Expired
    );
}

#[test]
fn a_request_signed_by_another_node_is_a_bad_signature() {
    // The body names the owner, the signature is another node's: the money is not theirs.
    let bytes = withdrawal(None, "k", NOW).to_signed_bytes(&network());
    let forged = SignedMessage::new(bytes.clone(), other().sign(&bytes));
    assert_eq!(
        check_request::<WithdrawalRequest>(&forged, &network(), NOW).unwrap_err(),
        RequestRefusal::BadSignature
    );
    let bytes = cancel("payout_1", NOW).to_signed_bytes(&network());
    let forged = SignedMessage::new(bytes.clone(), other().sign(&bytes));
    assert_eq!(
        check_request::<CancelRequest>(&forged, &network(), NOW).unwrap_err(),
        RequestRefusal::BadSignature
    );
}

#[test]
fn a_request_for_another_network_is_refused() {
    let time = lucid_core::TimeParams::test_network(NOW, 1000, 8).unwrap();
    let elsewhere = ConsensusParams::test_network("elsewhere", time).network;
    let signed = withdrawal(None, "k", NOW).sign(&elsewhere, &owner());
    assert_eq!(
        check_request::<WithdrawalRequest>(&signed, &network(), NOW).unwrap_err(),
        RequestRefusal::WrongNetwork
    );
}

#[test]
fn malformed_and_oversized_requests_are_refused() {
    let malformed = |bytes: Vec<u8>| {
        let signed = SignedMessage::new(bytes.clone(), owner().sign(&bytes));
        matches!(
            check_request::<WithdrawalRequest>(&signed, &network(), NOW),
            Err(RequestRefusal::Malformed(_))
        )
    };
    let good = withdrawal(Some(1), "k", NOW).to_signed_bytes(&network());
    // Truncated, trailing bytes, empty, garbage.
    assert!(malformed(good[..good.len() - 1].to_vec()));
    assert!(malformed([good.clone(), vec![0]].concat()));
    assert!(malformed(Vec::new()));
    assert!(malformed(vec![7; 300]));
    // Oversized: beyond the largest message, and a key beyond 64 bytes.
    assert!(malformed(vec![0; lucid_core::message::MAX_MESSAGE_BYTES + 1]));
    assert!(malformed(withdrawal(None, &"k".repeat(65), NOW).to_signed_bytes(&network())));
    // Keys and payout ids outside their character sets, empty ones, a bad option tag.
    assert!(malformed(withdrawal(None, "a b", NOW).to_signed_bytes(&network())));
    assert!(malformed(withdrawal(None, "", NOW).to_signed_bytes(&network())));
    let mut bad_tag = good.clone();
    let tag_at = good.len() - (8 + 4 + 1 + 8 + 1);
    assert_eq!(bad_tag[tag_at], 1);
    bad_tag[tag_at] = 2;
    assert!(malformed(bad_tag));
    // A payout-cancel is not a withdrawal.
    assert!(malformed(cancel("payout_1", NOW).to_signed_bytes(&network())));
    for id in ["", "payout-1", "payout_é", &"p".repeat(65)] {
        let bytes = cancel(id, NOW).to_signed_bytes(&network());
        let signed = SignedMessage::new(bytes.clone(), owner().sign(&bytes));
        assert!(
            matches!(
                check_request::<CancelRequest>(&signed, &network(), NOW),
                Err(RequestRefusal::Malformed(_))
            ),
            "{id:?}"
        );
    }
}

proptest! {
    #[test]
    fn encoding_round_trips(
        amount in proptest::option::of(any::<u64>()),
        key in "[A-Za-z0-9_-]{1,64}",
        ts in any::<i64>(),
    ) {
        let request = withdrawal(amount, &key, UnixMillis(ts));
        let bytes = request.to_signed_bytes(&network());
        let (net, decoded) = WithdrawalRequest::from_signed_bytes(&bytes).unwrap();
        prop_assert_eq!(net, network());
        prop_assert_eq!(decoded.to_signed_bytes(&network()), bytes);
        prop_assert_eq!(decoded, request);
    }

    #[test]
    fn a_flipped_bit_never_passes(at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let signed = withdrawal(Some(10_000_000), "k", NOW).sign(&network(), &owner());
        let mut bytes = signed.bytes().to_vec();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let tampered = SignedMessage::new(bytes, *signed.signature());
        prop_assert!(check_request::<WithdrawalRequest>(&tampered, &network(), NOW).is_err());
    }
}
