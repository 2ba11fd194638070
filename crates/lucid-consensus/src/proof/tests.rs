//! Tests of proof encoding, caps and credits.

use lucid_core::message::Message;

use super::*;
use crate::testing;

#[test]
fn credits_by_kind() {
    let relay = |b, s| ProofValue::Relay { bytes_transferred: b, sessions_relayed: s }.credits();
    assert_eq!(relay(0, 0), 0);
    assert_eq!(relay(1, 0), 1);
    assert_eq!(relay(BYTES_PER_SESSION, 0), 1);
    assert_eq!(relay(BYTES_PER_SESSION + 1, 0), 2);
    assert_eq!(relay(BYTES_PER_SESSION, 7), 7);
    assert_eq!(relay(u64::MAX, 0), u64::MAX.div_ceil(BYTES_PER_SESSION));
    let storage = |c, s| ProofValue::Storage { chunks_stored: c, size_bytes: s }.credits();
    assert_eq!(storage(0, (1 << 30) - 1), 9);
    assert_eq!(storage(3, 1 << 30), 16);
    assert_eq!(storage(u64::MAX, u64::MAX), CREDITS_MAX);
    assert_eq!(ProofValue::Validation { validated_sessions: 4 }.credits(), 20);
    assert_eq!(ProofValue::Beacon { metrics_digest: None }.credits(), 0);
}

#[test]
fn caps() {
    let ok = ProofValue::Relay {
        bytes_transferred: MAX_RELAY_BYTES,
        sessions_relayed: MAX_RELAY_SESSIONS,
    };
    assert!(ok.check_caps().is_ok());
    let over = ProofValue::Relay { bytes_transferred: MAX_RELAY_BYTES + 1, sessions_relayed: 0 };
    assert_eq!(over.check_caps().unwrap_err().field, "bytes_transferred");
    assert!(
        ProofValue::Storage { chunks_stored: MAX_STORAGE_CHUNKS + 1, size_bytes: 0 }
            .check_caps()
            .is_err()
    );
    assert!(
        ProofValue::Storage { chunks_stored: 0, size_bytes: MAX_STORAGE_BYTES + 1 }
            .check_caps()
            .is_err()
    );
    assert!(
        ProofValue::Validation { validated_sessions: MAX_VALIDATED_SESSIONS + 1 }
            .check_caps()
            .is_err()
    );
}

#[test]
fn encoding_round_trip_every_kind() {
    let params = testing::params();
    let key = testing::key(1);
    let values = [
        ProofValue::Relay { bytes_transferred: 5, sessions_relayed: 2 },
        ProofValue::Storage { chunks_stored: 3, size_bytes: 4 },
        ProofValue::Validation { validated_sessions: 9 },
        ProofValue::Beacon { metrics_digest: None },
        ProofValue::Beacon { metrics_digest: Some(lucid_core::Digest::from_bytes([3; 32])) },
    ];
    for value in values {
        let proof = testing::proof(&params, &key, Slot(100), value);
        let bytes = proof.to_signed_bytes(&params.network);
        let (network, decoded) = TaskProof::from_signed_bytes(&bytes).unwrap();
        assert_eq!(network, params.network);
        assert_eq!(decoded, proof);
        assert_eq!(decoded.to_signed_bytes(&params.network), bytes);
    }
}
