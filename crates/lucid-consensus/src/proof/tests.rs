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

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn relay(bytes: u64, sessions: u32) -> u64 {
        ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: sessions }.credits()
    }

    proptest! {
        /// P7: relay credit ≥ sessions and ≥ ceil(bytes / 5 MiB), equal to the larger, monotone
        /// in both; every kind is defined for any input (saturating, never panics), ≤ CREDITS_MAX
        /// and monotone in its fields.
        #[test]
        fn p7_credits(
            bytes in any::<u64>(),
            more_bytes in any::<u64>(),
            sessions in any::<u32>(),
            more_sessions in any::<u32>(),
            chunks in any::<u64>(),
            size in any::<u64>(),
            validated in any::<u32>(),
        ) {
            let units = bytes.div_ceil(BYTES_PER_SESSION);
            let credit = relay(bytes, sessions);
            prop_assert!(credit >= u64::from(sessions));
            prop_assert!(credit >= units);
            prop_assert_eq!(credit, units.max(u64::from(sessions)));
            let bigger_bytes = bytes.saturating_add(more_bytes);
            let bigger_sessions = sessions.saturating_add(more_sessions);
            prop_assert!(relay(bigger_bytes, sessions) >= credit);
            prop_assert!(relay(bytes, bigger_sessions) >= credit);

            let storage = |c, s| ProofValue::Storage { chunks_stored: c, size_bytes: s }.credits();
            let base = storage(chunks, size);
            prop_assert!(base <= CREDITS_MAX);
            prop_assert!(storage(chunks.saturating_add(1), size) >= base);
            prop_assert!(storage(chunks, size.saturating_add(1 << 30)) >= base);
            let validation = ProofValue::Validation { validated_sessions: validated }.credits();
            prop_assert_eq!(validation, 5 * u64::from(validated));
            prop_assert_eq!(ProofValue::Beacon { metrics_digest: None }.credits(), 0);
        }
    }
}
