//! Tests of the `pool-op` encoding: round trips, the exact body layout, strict decoding and the
//! canonical order of tags.

use lucid_consensus::testing::key;
use lucid_core::codec::{DecodeError, Writer};
use lucid_core::message::{Message, write_header};
use lucid_core::{PoolId, Slot, UnixMillis};
use proptest::prelude::*;

use super::*;
use crate::test_support::{network, node};

fn pool() -> PoolId {
    PoolId::from_bytes([7; 16])
}

fn every_op() -> Vec<Op> {
    vec![
        Op::Create { name: "alpha_pool-1".to_owned(), max_nodes: 100 },
        Op::Join { pool: pool() },
        Op::Leave { pool: pool() },
        Op::Remove { pool: pool(), member: node(2), ban: true },
        Op::Remove { pool: pool(), member: node(2), ban: false },
        Op::Unban { pool: pool(), node: node(3) },
        Op::SetMaxNodes { pool: pool(), max: 42 },
        Op::Disband { pool: pool() },
    ]
}

fn pool_op(op: Op) -> PoolOp {
    PoolOp { node: node(1), slot: Slot(5), ts: UnixMillis(1_704_067_800_500), op }
}

/// Signed bytes of `pool-op` v1 with a hand-written body.
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = Writer::new(&mut out);
    write_header(&mut writer, "pool-op", 1, &network());
    writer.raw(body);
    out
}

fn head(tag: u8) -> Vec<u8> {
    let mut body = Vec::new();
    Writer::new(&mut body).node_id(&node(1)).u64(5).i64(1_704_067_800_500).u8(tag);
    body
}

#[test]
fn every_op_round_trips_signed_and_verifies() {
    let signer = key(1);
    for op in every_op() {
        let message = pool_op(op).sign(&network(), &signer);
        let (net, decoded) = PoolOp::from_signed_bytes(message.bytes()).unwrap();
        assert_eq!(net, network());
        assert_eq!(decoded, pool_op(decoded.op.clone()));
        assert_eq!(decoded.to_signed_bytes(&network()), message.bytes());
        assert!(message.verify(&decoded.node));
        let (_, accepted) = AcceptedOp::from_message(&message).unwrap();
        assert_eq!(accepted, AcceptedOp::new(decoded, &network()));
        assert_eq!(accepted.digest, message.digest());
    }
}

#[test]
fn body_layout_follows_the_catalogue() {
    let cases: Vec<(Op, Vec<u8>)> = vec![
        (Op::Create { name: "abc".to_owned(), max_nodes: 9 }, {
            let mut b = head(1);
            b.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c', 9]);
            b
        }),
        (Op::Join { pool: pool() }, [head(2), vec![7; 16]].concat()),
        (Op::Leave { pool: pool() }, [head(3), vec![7; 16]].concat()),
        (
            Op::Remove { pool: pool(), member: node(2), ban: true },
            [head(4), vec![7; 16], node(2).as_bytes().to_vec(), vec![1]].concat(),
        ),
        (
            Op::Unban { pool: pool(), node: node(3) },
            [head(5), vec![7; 16], node(3).as_bytes().to_vec()].concat(),
        ),
        (Op::SetMaxNodes { pool: pool(), max: 42 }, [head(6), vec![7; 16], vec![42]].concat()),
        (Op::Disband { pool: pool() }, [head(7), vec![7; 16]].concat()),
    ];
    for (op, body) in cases {
        assert_eq!(pool_op(op.clone()).to_signed_bytes(&network()), with_body(&body), "{op:?}");
    }
}

#[test]
fn strict_decoding_refuses_malformed_ops() {
    let create = |name: &[u8]| {
        let mut b = head(1);
        Writer::new(&mut b).lp(name).u8(10);
        with_body(&b)
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("name too short", create(b"ab")),
        ("name too long", create(&[b'a'; 65])),
        ("uppercase name", create(b"Alpha")),
        ("space in name", create(b"al pha")),
        ("dot in name", create(b"al.pha")),
        ("non-ascii name", create("poolé".as_bytes())),
        ("invalid utf-8", create(&[b'a', b'b', 0xff])),
        ("unknown tag 0", with_body(&[head(0), vec![7; 16]].concat())),
        ("unknown tag 8", with_body(&[head(8), vec![7; 16]].concat())),
        (
            "bad ban bool",
            with_body(&[head(4), vec![7; 16], node(2).as_bytes().to_vec(), vec![2]].concat()),
        ),
        ("truncated pool id", with_body(&[head(2), vec![7; 15]].concat())),
        ("trailing byte", with_body(&[head(7), vec![7; 16], vec![0]].concat())),
        ("invalid member key", with_body(&[head(5), vec![7; 16], vec![0; 32]].concat())),
    ];
    for (what, bytes) in cases {
        assert!(PoolOp::from_signed_bytes(&bytes).is_err(), "{what} decoded");
    }
    // Limits on the name length hold at both ends.
    assert!(PoolOp::from_signed_bytes(&create(b"abc")).is_ok());
    assert!(PoolOp::from_signed_bytes(&create(&[b'z'; 64])).is_ok());
    assert!(PoolOp::from_signed_bytes(&create(b"a_b-9")).is_ok());
}

#[test]
fn other_types_and_versions_are_refused() {
    let op = pool_op(Op::Join { pool: pool() });
    let mut bytes = op.to_signed_bytes(&network());
    // The version field follows the 6-byte magic, the length byte and "pool-op".
    bytes[6 + 1 + 7 + 1] = 2;
    assert!(matches!(
        PoolOp::from_signed_bytes(&bytes),
        Err(DecodeError::UnsupportedVersion { version: 2, .. })
    ));
    let registration = lucid_consensus::testing::signed_registration(
        &lucid_consensus::testing::params(),
        &key(1),
        1,
    );
    assert!(matches!(
        PoolOp::from_signed_bytes(registration.bytes()),
        Err(DecodeError::UnknownType { .. })
    ));
}

#[test]
fn max_nodes_is_a_rule_not_a_decoding_error() {
    for max in [0, 101, 255] {
        let op = pool_op(Op::Create { name: "abc".to_owned(), max_nodes: max });
        let bytes = op.to_signed_bytes(&network());
        assert_eq!(PoolOp::from_signed_bytes(&bytes).unwrap().1, op);
    }
}

#[test]
fn tags_sort_in_canonical_application_order() {
    let mut tags: Vec<OpTag> = every_op().iter().map(Op::tag).collect();
    tags.sort();
    tags.dedup();
    let wire: Vec<u8> = tags.iter().map(|t| t.wire()).collect();
    // Create, Leave, Remove, Unban, SetMaxNodes, Join, Disband.
    assert_eq!(wire, vec![1, 3, 4, 5, 6, 2, 7]);
}

#[test]
fn effect_slot_is_three_slots_later() {
    assert_eq!(pool_op(Op::Join { pool: pool() }).effect_slot(), Some(Slot(8)));
    let mut late = pool_op(Op::Join { pool: pool() });
    late.slot = Slot(u64::MAX - 1);
    assert_eq!(late.effect_slot(), None);
}

fn any_op() -> impl Strategy<Value = Op> {
    let pool = any::<[u8; 16]>().prop_map(PoolId::from_bytes);
    let member = (0..20usize).prop_map(node);
    prop_oneof![
        ("[a-z0-9_-]{3,64}", any::<u8>())
            .prop_map(|(name, max_nodes)| Op::Create { name, max_nodes }),
        pool.clone().prop_map(|pool| Op::Join { pool }),
        pool.clone().prop_map(|pool| Op::Leave { pool }),
        (pool.clone(), member.clone(), any::<bool>()).prop_map(|(pool, member, ban)| Op::Remove {
            pool,
            member,
            ban
        }),
        (pool.clone(), member).prop_map(|(pool, node)| Op::Unban { pool, node }),
        (pool.clone(), any::<u8>()).prop_map(|(pool, max)| Op::SetMaxNodes { pool, max }),
        pool.prop_map(|pool| Op::Disband { pool }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn decode_inverts_encode(op in any_op(), slot in any::<u64>(), ts in any::<i64>(), signer in 0..20usize) {
        let op = PoolOp { node: node(signer), slot: Slot(slot), ts: UnixMillis(ts), op };
        let bytes = op.to_signed_bytes(&network());
        let (_, decoded) = PoolOp::from_signed_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &op);
        // Every proper prefix fails (no field is optional at the end).
        for cut in [bytes.len() - 1, bytes.len() / 2] {
            prop_assert!(PoolOp::from_signed_bytes(&bytes[..cut]).is_err());
        }
    }
}
