//! Tests of identifier parsing and ordering.

use super::*;
use crate::keys::NodeKey;

fn node(seed: u8) -> NodeId {
    NodeKey::from_seed(&[seed; 32]).node_id()
}

#[test]
fn node_id_text_round_trip() {
    let id = node(7);
    let text = id.to_string();
    assert!(text.starts_with("node_"));
    assert_eq!(text.len(), 5 + 64);
    assert_eq!(text.parse::<NodeId>().unwrap(), id);
}

#[test]
fn node_id_parsing_is_strict() {
    let text = node(7).to_string();
    let upper = format!("node_{}", text[5..].to_uppercase());
    assert!(matches!(upper.parse::<NodeId>(), Err(IdParseError::NotLowercaseHex { .. })));
    assert!(matches!(text[5..].parse::<NodeId>(), Err(IdParseError::Prefix { .. })));
    assert!(matches!(text[..68].parse::<NodeId>(), Err(IdParseError::Length { .. })));
    assert!(matches!(format!("{text}0").parse::<NodeId>(), Err(IdParseError::Length { .. })));
    assert!(matches!(
        format!("pool_{}", &text[5..]).parse::<NodeId>(),
        Err(IdParseError::Prefix { .. })
    ));
}

#[test]
fn weak_keys_are_refused() {
    // The identity point (y = 1) and the point of order 2 (y = -1) are of small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(NodeId::from_bytes(identity), Err(IdParseError::WeakKey));
    let minus_one: [u8; 32] = {
        // p - 1 = 2^255 - 20, little-endian.
        let mut b = [0xffu8; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    };
    assert_eq!(NodeId::from_bytes(minus_one), Err(IdParseError::WeakKey));
    // y = 0 is a point of order 4.
    assert_eq!(NodeId::from_bytes([0u8; 32]), Err(IdParseError::WeakKey));
}

#[test]
fn non_canonical_keys_are_refused() {
    // y = p + 1 encodes the identity non-canonically (y >= p).
    let mut y = [0xffu8; 32];
    y[0] = 0xee;
    y[31] = 0x7f;
    assert_eq!(NodeId::from_bytes(y), Err(IdParseError::NonCanonicalKey));
    // The sign bit set on a point with x = 0 is non-canonical.
    let mut identity_negative = [0u8; 32];
    identity_negative[0] = 1;
    identity_negative[31] = 0x80;
    assert_eq!(NodeId::from_bytes(identity_negative), Err(IdParseError::NonCanonicalKey));
}

#[test]
fn pool_id_derivation_and_text() {
    let founder = node(1);
    let a = PoolId::derive(&founder, Slot(10), "alpha");
    assert_eq!(a, PoolId::derive(&founder, Slot(10), "alpha"));
    assert_ne!(a, PoolId::derive(&founder, Slot(11), "alpha"));
    assert_ne!(a, PoolId::derive(&node(2), Slot(10), "alpha"));
    assert_ne!(a, PoolId::derive(&founder, Slot(10), "alphb"));
    let text = a.to_string();
    assert_eq!(text.len(), 5 + 32);
    assert_eq!(text.parse::<PoolId>().unwrap(), a);
    assert!(text.replace("pool_", "node_").parse::<PoolId>().is_err());
}

#[test]
fn entity_order_is_byte_order() {
    let n = EntityId::Node(node(3));
    let p = EntityId::Pool(PoolId::from_bytes([0; 16]));
    // Tag 0x01 sorts before tag 0x02 whatever the ids.
    assert!(n < p);
    let (bytes, len) = n.to_bytes();
    assert_eq!(len, 33);
    assert_eq!(bytes[0], EntityId::TAG_NODE);
    let mut out = Vec::new();
    p.write_bytes(&mut out);
    assert_eq!(out.len(), 17);
    assert_eq!(n.to_string().parse::<EntityId>().unwrap(), n);
    assert_eq!(p.to_string().parse::<EntityId>().unwrap(), p);
}

#[test]
fn network_id_depends_on_name_and_genesis() {
    let a = NetworkId::derive("mainnet", UnixMillis(1));
    assert_ne!(a, NetworkId::derive("mainnet", UnixMillis(2)));
    assert_ne!(a, NetworkId::derive("testnet", UnixMillis(1)));
    assert_eq!(a.to_string().parse::<NetworkId>().unwrap(), a);
}

#[test]
fn digest_text_round_trip() {
    let d = Digest::from_bytes([0xab; 32]);
    assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    assert!("AB".repeat(32).parse::<Digest>().is_err());
}
