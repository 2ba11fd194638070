//! Conversions: shapes refused with the field named, round trips byte for byte.

use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_consensus::{ProofKey, ProofKind, testing};
use lucid_core::{Digest, SignedMessage, Slot};
use proptest::prelude::*;

use super::*;
use crate::grpc::{GrpcError, pb};

fn field_of(error: GrpcError) -> &'static str {
    match error {
        GrpcError::InvalidField { field, .. } | GrpcError::TooMany { field, .. } => field,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn signed_message_shapes() {
    let ok = pb::SignedMessage { message: vec![1; 10], signature: vec![2; 64] };
    let message = SignedMessage::from_proto(ok.clone()).unwrap();
    assert_eq!(message.to_proto(), ok);
    let cases = [
        (pb::SignedMessage { message: Vec::new(), signature: vec![0; 64] }, "message"),
        (pb::SignedMessage { message: vec![0; 64 * 1024 + 1], signature: vec![0; 64] }, "message"),
        (pb::SignedMessage { message: vec![0; 10], signature: vec![0; 63] }, "signature"),
        (pb::SignedMessage { message: vec![0; 10], signature: vec![0; 65] }, "signature"),
        (pb::SignedMessage { message: vec![0; 10], signature: Vec::new() }, "signature"),
    ];
    for (input, field) in cases {
        assert_eq!(field_of(SignedMessage::from_proto(input).unwrap_err()), field);
    }
}

#[test]
fn cursors_round_trip_and_refuse_bad_ids_and_kinds() {
    for kind in [ProofKind::RelayBandwidth, ProofKind::UptimeBeacon] {
        let key = ProofKey { node: testing::node(3), slot: Slot(77), kind };
        let cursor = key.to_proto();
        assert_eq!(ProofKey::from_proto(cursor).unwrap(), key);
    }
    let good = testing::node(3).as_bytes().to_vec();
    let mut identity = vec![0u8; 32];
    identity[0] = 1;
    for (node, kind, field) in [
        (good.clone(), 0, "after.kind"),
        (good.clone(), 5, "after.kind"),
        (good.clone(), 256 + 1, "after.kind"),
        (good[..31].to_vec(), 1, "after.node"),
        (identity, 1, "after.node"),
    ] {
        let cursor = pb::ProofCursor { slot: 1, node, kind };
        assert_eq!(field_of(ProofKey::from_proto(cursor).unwrap_err()), field);
    }
}

#[test]
fn ranges_and_pages_are_bounded() {
    assert_eq!(slot_range(3, 10, 7).unwrap().len(), 7);
    assert!(slot_range(3, 11, 7).is_err());
    assert!(slot_range(3, 3, 7).is_err());
    assert!(slot_range(u64::MAX, 0, 7).is_err());
    assert_eq!(page_limit("limit", 0, 100).unwrap(), 100);
    assert_eq!(page_limit("limit", 100, 100).unwrap(), 100);
    assert_eq!(field_of(page_limit("limit", 101, 100).unwrap_err()), "limit");
}

#[test]
fn verdicts_keep_digest_and_reason() {
    let digest = Digest::from_bytes([9; 32]);
    let reject = Outcome { digest, verdict: Verdict::Reject(RejectReason::Equivocation) };
    let wire = reject.to_proto();
    assert_eq!(wire.digest, vec![9; 32]);
    assert_eq!(
        (wire.verdict(), wire.reason()),
        (pb::Verdict::Reject, pb::RejectReason::Equivocation)
    );
    let accept = Outcome { digest, verdict: Verdict::Accept }.to_proto();
    assert_eq!(
        (accept.verdict(), accept.reason()),
        (pb::Verdict::Accept, pb::RejectReason::Unspecified)
    );
}

proptest! {
    /// Any well-shaped pair converts, and converts back to exactly the same bytes: signed
    /// content is never re-encoded on the way through.
    #[test]
    fn wellformed_pairs_round_trip(message in proptest::collection::vec(any::<u8>(), 1..2048), signature in proptest::collection::vec(any::<u8>(), 64)) {
        let wire = pb::SignedMessage { message, signature };
        let converted = SignedMessage::from_proto(wire.clone()).unwrap();
        prop_assert_eq!(converted.to_proto(), wire);
    }

    /// A signature of any other length is refused, never truncated or padded.
    #[test]
    fn other_signature_lengths_are_refused(length in (0usize..200).prop_filter("not 64", |n| *n != 64)) {
        let wire = pb::SignedMessage { message: vec![1], signature: vec![0; length] };
        prop_assert!(SignedMessage::from_proto(wire).is_err());
    }
}
