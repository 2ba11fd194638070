//! Tests of the peer-call message and the callee's guard: the golden vector, and every refusal
//! (missing, oversized, malformed, forged, wrong network, callee, method, expired, future,
//! wrong digest, replayed) plus the replay-cache bounds.

use lucid_core::{NodeKey, Signature};
use proptest::prelude::*;

use super::*;
use crate::ConsensusParams;

const METHOD: &str = "/lucid.node.v1.Peer/ExchangePeers";
const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fn caller() -> NodeKey {
    NodeKey::from_seed(&[1; 32])
}

fn callee() -> NodeKey {
    NodeKey::from_seed(&[2; 32])
}

fn network() -> NetworkId {
    ConsensusParams::mainnet().network
}

fn call(nonce: u8, ts: UnixMillis) -> PeerCall {
    PeerCall {
        caller: caller().node_id(),
        callee: callee().node_id(),
        method: METHOD.to_owned(),
        ts,
        nonce: [nonce; 16],
        payload_digest: payload_digest(b"request"),
    }
}

fn metadata(call: &PeerCall) -> Vec<u8> {
    encode_signed(&call.sign(&network(), &caller()))
}

fn guard() -> PeerCallGuard {
    PeerCallGuard::new(network(), callee().node_id())
}

fn check(guard: &mut PeerCallGuard, metadata: &[u8]) -> Result<NodeId, PeerCallRefusal> {
    guard.check(Some(metadata), METHOD, &payload_digest(b"request"), NOW)
}

/// The encoding of a `peer-call` is fixed: a change here breaks every node's peer calls.
/// Regenerate with `UPDATE_EXPECT=1 cargo test -p lucid-consensus peer_call` and a new version.
#[test]
fn golden_vector() {
    let signed = call(0x5a, NOW).sign(&network(), &caller());
    assert!(signed.verify(&caller().node_id()));
    let out = format!(
        "network mainnet {}\n\n[peer-call]\nsigner {}\nbytes {}\ndigest {}\nsignature {}\n",
        network(),
        caller().node_id(),
        lucid_core::ids::to_hex(signed.bytes()),
        signed.digest(),
        signed.signature()
    );
    expect_test::expect_file!["golden.txt"].assert_eq(&out);
    let (decoded_network, decoded) = PeerCall::from_signed_bytes(signed.bytes()).unwrap();
    assert_eq!(decoded_network, network());
    assert_eq!(decoded, call(0x5a, NOW));
}

#[test]
fn a_genuine_call_is_admitted_once_and_its_replay_is_refused() {
    let mut guard = guard();
    let signed = metadata(&call(1, NOW));
    assert_eq!(check(&mut guard, &signed), Ok(caller().node_id()));
    let replay = check(&mut guard, &signed).unwrap_err();
    assert_eq!(replay.reason, RefusalReason::Replayed);
    assert_eq!(replay.attributable, Some(caller().node_id()));
    // Within the five minutes the nonce stays refused, even signed anew at a later time.
    let later = UnixMillis(NOW.0 + 4 * 60 * 1000);
    let resigned = metadata(&call(1, later));
    let refused =
        guard.check(Some(&resigned), METHOD, &payload_digest(b"request"), later).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Replayed);
}

#[test]
fn every_malformed_or_forged_variant_is_refused_without_attribution() {
    let mut guard = guard();
    let missing = guard.check(None, METHOD, &payload_digest(b"request"), NOW).unwrap_err();
    assert_eq!(missing, PeerCallRefusal { reason: RefusalReason::Missing, attributable: None });
    let oversized = vec![0u8; MAX_PEER_CALL_BYTES + 1];
    assert_eq!(check(&mut guard, &oversized).unwrap_err().reason, RefusalReason::Oversized);
    for garbage in [&b""[..], &[0u8; 63][..], &[7u8; 200][..]] {
        let refused = check(&mut guard, garbage).unwrap_err();
        assert_eq!(refused.reason, RefusalReason::Malformed);
        assert_eq!(refused.attributable, None);
    }
    let genuine = metadata(&call(2, NOW));
    let mut truncated = genuine.clone();
    truncated.remove(70);
    assert_eq!(check(&mut guard, &truncated).unwrap_err().reason, RefusalReason::Malformed);
    // Signed by someone else in the caller's name: forged, and never counted against the caller.
    let forged_signed = call(3, NOW).to_signed_bytes(&network());
    let forged = encode_signed(&SignedMessage::new(
        forged_signed.clone(),
        NodeKey::from_seed(&[9; 32]).sign(&forged_signed),
    ));
    let refused = check(&mut guard, &forged).unwrap_err();
    assert_eq!(
        refused,
        PeerCallRefusal { reason: RefusalReason::BadSignature, attributable: None }
    );
    // A flipped bit in the signed bytes breaks the signature.
    let mut flipped = genuine.clone();
    flipped[40] ^= 1;
    assert_ne!(check(&mut guard, &flipped).unwrap_err().reason, RefusalReason::Replayed);
    let zero_signature = encode_signed(&SignedMessage::new(
        call(4, NOW).to_signed_bytes(&network()),
        Signature::from_bytes([0; 64]),
    ));
    assert_eq!(check(&mut guard, &zero_signature).unwrap_err().reason, RefusalReason::BadSignature);
    // None of those burnt the genuine call's nonce.
    assert_eq!(check(&mut guard, &genuine), Ok(caller().node_id()));
}

#[test]
fn wrong_network_callee_method_time_and_digest_are_refused_and_attributed() {
    let mut guard = guard();
    let other_network = ConsensusParams::test_network(
        "other",
        lucid_core::TimeParams::test_network(UnixMillis(0), 1000, 8).unwrap(),
    )
    .network;
    let wrong_network = encode_signed(&call(10, NOW).sign(&other_network, &caller()));
    let cases: Vec<(Vec<u8>, RefusalReason)> = vec![
        (wrong_network, RefusalReason::WrongNetwork),
        (
            metadata(&PeerCall { callee: caller().node_id(), ..call(11, NOW) }),
            RefusalReason::WrongCallee,
        ),
        (
            metadata(&PeerCall { method: "/lucid.node.v1.Peer/Hello".into(), ..call(12, NOW) }),
            RefusalReason::WrongMethod,
        ),
        (metadata(&call(13, UnixMillis(NOW.0 - MAX_SKEW_MS - 1))), RefusalReason::Expired),
        (metadata(&call(14, UnixMillis(NOW.0 + MAX_SKEW_MS + 1))), RefusalReason::FromFuture),
        (
            metadata(&PeerCall { payload_digest: payload_digest(b"other"), ..call(15, NOW) }),
            RefusalReason::DigestMismatch,
        ),
    ];
    for (signed, reason) in cases {
        let refused = check(&mut guard, &signed).unwrap_err();
        assert_eq!(refused.reason, reason);
        assert_eq!(refused.attributable, Some(caller().node_id()));
    }
    // The edges of the window are inside it.
    assert!(check(&mut guard, &metadata(&call(16, UnixMillis(NOW.0 - MAX_SKEW_MS)))).is_ok());
    assert!(check(&mut guard, &metadata(&call(17, UnixMillis(NOW.0 + MAX_SKEW_MS)))).is_ok());
    // Refused calls recorded no nonce.
    assert_eq!(guard.remembered(), 2);
}

#[test]
fn the_replay_cache_is_bounded_and_forgets_after_five_minutes() {
    let mut guard = PeerCallGuard::with_capacity(network(), callee().node_id(), 2);
    assert!(check(&mut guard, &metadata(&call(20, NOW))).is_ok());
    assert!(check(&mut guard, &metadata(&call(21, NOW))).is_ok());
    let full = check(&mut guard, &metadata(&call(22, NOW))).unwrap_err();
    assert_eq!(full.reason, RefusalReason::ReplayCacheFull);
    assert_eq!(guard.remembered(), 2);
    let later = UnixMillis(NOW.0 + REPLAY_WINDOW_MS + 1);
    let fresh = metadata(&call(22, later));
    assert!(guard.check(Some(&fresh), METHOD, &payload_digest(b"request"), later).is_ok());
    assert_eq!(guard.remembered(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any call round-trips through its signed bytes, and any single-byte change of the
    /// metadata is refused (never admitted under another reading).
    #[test]
    fn round_trip_and_tamper(
        nonce in any::<[u8; 16]>(),
        offset in -MAX_SKEW_MS..=MAX_SKEW_MS,
        method in "/[a-zA-Z./]{1,60}",
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let original = PeerCall { method: method.clone(), nonce, ..call(0, UnixMillis(NOW.0 + offset)) };
        let signed = metadata(&original);
        let (_, decoded) = PeerCall::from_signed_bytes(decode_signed(&signed).unwrap().bytes()).unwrap();
        prop_assert_eq!(&decoded, &original);
        let mut tampered = signed.clone();
        let at = position.index(tampered.len());
        tampered[at] ^= flip;
        let mut guard = guard();
        prop_assert!(guard.check(Some(&tampered), &method, &payload_digest(b"request"), NOW).is_err());
        prop_assert_eq!(guard.check(Some(&signed), &method, &payload_digest(b"request"), NOW), Ok(caller().node_id()));
    }
}
