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

/// Golden vectors: canonical bytes, digests and signatures of every message variant from fixed
/// keys (seeds 0x01…01, 0x02…02) on mainnet parameters. Any change to the encoding, the envelope,
/// the digest context or the signature scheme changes this file; refresh it only on purpose with
/// `UPDATE_EXPECT=1 cargo test -p lucid-consensus golden` and a new message version.
#[test]
fn golden_vectors() {
    use lucid_core::{Digest, NodeKey, UnixMillis};

    use crate::registration::{CAP_RELAY, CAP_STORAGE, Endpoint, Registration};

    let params = crate::ConsensusParams::mainnet();
    let alice = NodeKey::from_seed(&[1; 32]);
    let bob = NodeKey::from_seed(&[2; 32]);
    let slot = Slot(1_000_000);
    let ts = UnixMillis(params.time.slot_start(slot).unwrap().0 + 7_000);
    let proofs = [
        (
            "relay",
            &alice,
            ProofValue::Relay { bytes_transferred: 123_456_789, sessions_relayed: 3 },
        ),
        ("storage", &alice, ProofValue::Storage { chunks_stored: 42, size_bytes: 1 << 33 }),
        ("validation", &bob, ProofValue::Validation { validated_sessions: 17 }),
        ("beacon", &bob, ProofValue::Beacon { metrics_digest: None }),
        (
            "beacon+metrics",
            &bob,
            ProofValue::Beacon { metrics_digest: Some(Digest::from_bytes([0xab; 32])) },
        ),
    ];
    let mut out = String::new();
    out.push_str(&format!("network mainnet {}\n", params.network));
    let mut entry = |name: &str, signer: &NodeKey, signed: lucid_core::SignedMessage| {
        assert!(signed.verify(&signer.node_id()));
        out.push_str(&format!(
            "\n[{name}]\nsigner {}\nbytes {}\ndigest {}\nsignature {}\n",
            signer.node_id(),
            lucid_core::ids::to_hex(signed.bytes()),
            signed.digest(),
            signed.signature()
        ));
    };
    for (name, key, value) in proofs {
        let proof = TaskProof { node: key.node_id(), slot, ts, value };
        entry(name, key, proof.sign(&params.network, key));
    }
    let mut payout_address = [0x41u8; 21];
    payout_address[1..].copy_from_slice(&[0x11; 20]);
    let registrations = [
        ("registration onion", Endpoint::Onion { service_key: [0x22; 32], port: 50_051 }),
        ("registration direct", Endpoint::Direct("127.0.0.1:50051".to_owned())),
    ];
    for (name, endpoint) in registrations {
        let registration = Registration {
            node: alice.node_id(),
            seq: 7,
            ts,
            payout_address,
            endpoint,
            capabilities: CAP_RELAY | CAP_STORAGE,
            storage_capacity_bytes: 1 << 40,
        };
        entry(name, &alice, registration.sign(&params.network, &alice));
    }
    expect_test::expect_file!["golden.txt"].assert_eq(&out);
}

mod properties {
    use lucid_core::keys::PublicKey;
    use lucid_core::{Digest, SignedMessage, UnixMillis};
    use proptest::prelude::*;

    use super::*;
    use crate::verify::{Verifier, VerifyItem};

    fn value() -> impl Strategy<Value = ProofValue> {
        prop_oneof![
            (any::<u64>(), any::<u32>())
                .prop_map(|(b, s)| ProofValue::Relay { bytes_transferred: b, sessions_relayed: s }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(c, s)| ProofValue::Storage { chunks_stored: c, size_bytes: s }),
            any::<u32>().prop_map(|v| ProofValue::Validation { validated_sessions: v }),
            proptest::option::of(any::<[u8; 32]>())
                .prop_map(|d| ProofValue::Beacon { metrics_digest: d.map(Digest::from_bytes) }),
        ]
    }

    fn proof() -> impl Strategy<Value = TaskProof> {
        (0u64..50, any::<u64>(), any::<i64>(), value()).prop_map(|(k, slot, ts, value)| TaskProof {
            node: testing::key(k).node_id(),
            slot: Slot(slot),
            ts: UnixMillis(ts),
            value,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        // P2: decode(encode(m)) == m and encode(decode(b)) == b.
        #[test]
        fn round_trip(p in proof()) {
            let network = testing::params().network;
            let bytes = p.to_signed_bytes(&network);
            let (n, decoded) = TaskProof::from_signed_bytes(&bytes).unwrap();
            prop_assert_eq!(n, network);
            prop_assert_eq!(decoded, p);
            prop_assert_eq!(decoded.to_signed_bytes(&network), bytes);
        }

        // The ingest decoder with a table of known signers decodes exactly what the plain
        // decoder does, for known and unknown signers, and for damaged bytes.
        #[test]
        fn decoding_with_known_signers_agrees(p in proof(), flip in any::<prop::sample::Index>(), known_too in any::<bool>()) {
            let network = testing::params().network;
            let mut bytes = p.to_signed_bytes(&network);
            let registered: std::collections::HashSet<lucid_core::NodeId> = if known_too { [p.node].into() } else { Default::default() };
            let known = |raw: &[u8; 32]| registered.get(raw).copied();
            prop_assert_eq!(TaskProof::from_signed_bytes_with(&bytes, &known), TaskProof::from_signed_bytes(&bytes));
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x55;
            prop_assert_eq!(TaskProof::from_signed_bytes_with(&bytes, &known), TaskProof::from_signed_bytes(&bytes));
        }

        // P2: the encoding is injective.
        #[test]
        fn injective(a in proof(), b in proof()) {
            let network = testing::params().network;
            prop_assert_eq!(a.to_signed_bytes(&network) == b.to_signed_bytes(&network), a == b);
        }

        // P2: a trailing byte, an unknown kind tag, a bad option tag or a truncation fails.
        #[test]
        fn strict_decoding(p in proof(), extra in any::<u8>(), tag in 5u8..=255, cut in any::<prop::sample::Index>()) {
            let network = testing::params().network;
            let bytes = p.to_signed_bytes(&network);
            let mut trailing = bytes.clone();
            trailing.push(extra);
            prop_assert!(TaskProof::from_signed_bytes(&trailing).is_err());
            let header = 6 + 1 + TaskProof::TYPE_NAME.len() + 2 + 32;
            let mut bad_kind = bytes.clone();
            bad_kind[header] = tag;
            prop_assert!(TaskProof::from_signed_bytes(&bad_kind).is_err());
            prop_assert!(TaskProof::from_signed_bytes(&bytes[..cut.index(bytes.len())]).is_err());
            if let ProofValue::Beacon { .. } = p.value {
                let option_at = header + 1 + 32 + 8 + 8;
                let mut bad_option = bytes.clone();
                bad_option[option_at] = 2;
                prop_assert!(TaskProof::from_signed_bytes(&bad_option).is_err());
            }
        }

        // P3: sign/verify holds; any bit flip of bytes or signature fails; another key fails;
        // the parallel verifier's verdicts equal per-item strict verdicts.
        #[test]
        fn signatures(p in proof(), bit in any::<prop::sample::Index>(), other in 50u64..60) {
            let params = testing::params();
            let key = (0..50).map(testing::key).find(|k| k.node_id() == p.node).unwrap();
            let signed = p.sign(&params.network, &key);
            prop_assert!(signed.verify(&p.node));
            prop_assert!(!signed.verify(&testing::key(other).node_id()));
            let mut bytes = signed.bytes().to_vec();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            let flipped = SignedMessage::new(bytes, *signed.signature());
            prop_assert!(!flipped.verify(&p.node));
            let mut sig = *signed.signature().as_bytes();
            let j = bit.index(512);
            sig[j / 8] ^= 1 << (j % 8);
            let bad_sig = SignedMessage::new(signed.bytes().to_vec(), lucid_core::Signature::from_bytes(sig));
            prop_assert!(!bad_sig.verify(&p.node));
            let public = PublicKey::of(&p.node);
            let all = [signed, flipped, bad_sig];
            let items: Vec<_> = all.iter().map(|m| VerifyItem::of(&public, m)).collect();
            let verdicts = Verifier::single_threaded().verify_all(&items);
            prop_assert_eq!(verdicts, vec![true, false, false]);
        }
    }
}
mod credit_properties {
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
