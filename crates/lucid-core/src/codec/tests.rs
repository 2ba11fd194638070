//! Tests of the canonical codec primitives.

use proptest::prelude::*;

use super::*;

#[test]
fn integers_are_big_endian() {
    let mut out = Vec::new();
    Writer::new(&mut out).u16(0x0102).u32(0x0304_0506).u64(7).i64(-1).bool(true);
    assert_eq!(
        out,
        [
            1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 1
        ]
    );
}

#[test]
fn strict_booleans_and_trailing_bytes() {
    assert_eq!(Reader::new(&[2]).bool("b"), Err(DecodeError::UnknownTag { field: "b", tag: 2 }));
    let mut r = Reader::new(&[1, 0]);
    assert!(r.bool("b").unwrap());
    assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 1 }));
}

#[test]
fn length_prefix_limits() {
    let mut out = Vec::new();
    Writer::new(&mut out).lp(b"hello");
    assert_eq!(
        Reader::new(&out).lp("f", 4),
        Err(DecodeError::TooLong { field: "f", len: 5, max: 4 })
    );
    assert_eq!(Reader::new(&out).lp("f", 5).unwrap(), b"hello");
    assert_eq!(Reader::new(&out[..6]).lp("f", 5), Err(DecodeError::Truncated { field: "f" }));
    let bad_utf8 = [0, 0, 0, 1, 0xff];
    assert_eq!(Reader::new(&bad_utf8).lp_str("s", 8), Err(DecodeError::InvalidUtf8 { field: "s" }));
    // A huge declared length is refused before any allocation or read.
    assert!(matches!(
        Reader::new(&[0xff, 0xff, 0xff, 0xff]).lp("f", 64),
        Err(DecodeError::TooLong { .. })
    ));
}

proptest! {
    // P2: length prefixes make concatenations injective: ("ab","c") != ("a","bc").
    #[test]
    fn lp_pairs_are_injective(a in proptest::collection::vec(any::<u8>(), 0..16),
                              b in proptest::collection::vec(any::<u8>(), 0..16),
                              c in proptest::collection::vec(any::<u8>(), 0..16),
                              d in proptest::collection::vec(any::<u8>(), 0..16)) {
        let enc = |x: &[u8], y: &[u8]| { let mut o = Vec::new(); Writer::new(&mut o).lp(x).lp(y); o };
        prop_assert_eq!(enc(&a, &b) == enc(&c, &d), a == c && b == d);
    }

    #[test]
    fn primitives_round_trip(x in any::<u64>(), y in any::<i64>(), z in any::<u16>(), s in ".{0,20}") {
        let mut out = Vec::new();
        Writer::new(&mut out).u64(x).i64(y).u16(z).lp(s.as_bytes());
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.u64("x").unwrap(), x);
        prop_assert_eq!(r.i64("y").unwrap(), y);
        prop_assert_eq!(r.u16("z").unwrap(), z);
        prop_assert_eq!(r.lp_str("s", 100).unwrap(), s.as_str());
        prop_assert!(r.finish().is_ok());
    }

    #[test]
    fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut r = Reader::new(&bytes);
        let _ = r.u8("a");
        let _ = r.lp("b", 16);
        let _ = r.node_id("c");
        let _ = r.count("d", 4);
        let _ = r.bool("e");
    }
}
