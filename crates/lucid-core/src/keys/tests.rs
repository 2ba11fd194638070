//! Tests of signing and the strict verification rule.

use proptest::prelude::*;

use super::*;

#[test]
fn sign_and_verify() {
    let key = NodeKey::from_seed(&[9; 32]);
    let sig = key.sign(b"hello");
    assert!(verify_strict(&key.node_id(), b"hello", &sig));
    assert!(!verify_strict(&key.node_id(), b"hellp", &sig));
    let other = NodeKey::from_seed(&[10; 32]);
    assert!(!verify_strict(&other.node_id(), b"hello", &sig));
}

#[test]
fn rfc8032_test_vector_1() {
    // RFC 8032 section 7.1, TEST 1 (empty message).
    let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let key = NodeKey::from_seed_hex(seed).unwrap();
    assert_eq!(
        key.node_id().to_string(),
        "node_d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                    5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    assert_eq!(key.sign(b"").to_hex(), expected);
    assert_eq!(&*key.seed_hex(), seed);
}

#[test]
fn debug_never_shows_the_secret() {
    let seed = [0x5a; 32];
    let key = NodeKey::from_seed(&seed);
    let shown = format!("{key:?}");
    assert!(shown.starts_with("NodeKey(node_"));
    assert!(!shown.contains(&*key.seed_hex()));
    assert!(!shown.contains("5a5a5a"));
}

#[test]
fn seed_hex_parsing_is_strict() {
    assert!(NodeKey::from_seed_hex("00").is_err());
    assert!(NodeKey::from_seed_hex(&"G".repeat(64)).is_err());
    assert!(NodeKey::from_seed_hex(&format!("{}\n", "01".repeat(32))).is_ok());
}

#[test]
fn non_canonical_signature_scalar_is_rejected() {
    // s + L (the group order) is a non-canonical scalar; strict verification must refuse it.
    let key = NodeKey::from_seed(&[3; 32]);
    let sig = key.sign(b"m");
    let mut bytes = *sig.as_bytes();
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
        bytes[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert!(!verify_strict(&key.node_id(), b"m", &Signature::from_bytes(bytes)));
}

proptest! {
    // P3: flipping any bit of the message or the signature makes verification fail.
    #[test]
    fn bit_flips_fail(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 1..200), bit in any::<usize>()) {
        let key = NodeKey::from_seed(&seed);
        let sig = key.sign(&msg);
        prop_assert!(verify_strict(&key.node_id(), &msg, &sig));
        let mut flipped = msg.clone();
        let i = bit % (flipped.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert!(!verify_strict(&key.node_id(), &flipped, &sig));
        let mut sig_bytes = *sig.as_bytes();
        let j = bit % 512;
        sig_bytes[j / 8] ^= 1 << (j % 8);
        prop_assert!(!verify_strict(&key.node_id(), &msg, &Signature::from_bytes(sig_bytes)));
    }

    #[test]
    fn signature_text_round_trip(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        let mut arr = [0u8; 64];
        arr.copy_from_slice(&bytes);
        let sig = Signature::from_bytes(arr);
        prop_assert_eq!(sig.to_hex().parse::<Signature>().unwrap(), sig);
    }
}
