//! Unit tests of the hot-wallet key; known answers live in `tests/it`.

use super::*;

const SEED: [u8; 32] = [0x55; 32];

#[test]
fn debug_shows_only_the_address() {
    let secret = "00000000000000000000000000000000000000000000000000000000000000aa";
    let key = HotWalletKey::from_hex(secret, &SEED).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains(&key.address().to_base58()), "{debug}");
    assert!(!debug.contains(&secret[40..]), "{debug}");
}

#[test]
fn refuses_bad_keys() {
    let same_as_node = lucid_core::ids::to_hex(&SEED);
    let cases = [
        ("", "expected 64 hex characters"),
        ("0x01", "expected 64 hex characters"),
        (&same_as_node as &str, "the hot-wallet key must differ from the node identity key"),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "not a valid secp256k1 secret (zero or not below the group order)",
        ),
        (
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            "not a valid secp256k1 secret (zero or not below the group order)",
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(
            HotWalletKey::from_hex(text, &SEED).unwrap_err(),
            Error::HotWalletKey { reason },
            "{text:?}"
        );
    }
}

#[test]
fn accepts_uppercase_and_a_trailing_newline() {
    let lower = "0000000000000000000000000000000000000000000000000000000000000abc";
    let upper = format!("{}\n", lower.to_uppercase());
    let a = HotWalletKey::from_hex(lower, &SEED).unwrap();
    let b = HotWalletKey::from_hex(&upper, &SEED).unwrap();
    assert_eq!(a.address(), b.address());
}

#[test]
fn recovery_id_forms() {
    let key = HotWalletKey::from_hex(&"11".repeat(32), &SEED).unwrap();
    let txid = [3u8; 32];
    let signature = key.sign_txid(&txid).unwrap();
    assert_eq!(recover(&txid, &signature).unwrap(), key.address());
    let mut shifted = *signature.as_bytes();
    shifted[64] += 27;
    let reread = RecoverableSignature::from_bytes(&shifted).unwrap();
    assert_eq!(reread, signature);
    shifted[64] = 2;
    assert!(RecoverableSignature::from_bytes(&shifted).is_err());
    assert!(RecoverableSignature::from_bytes(&shifted[..64]).is_err());
}
