//! Tests of slot and epoch arithmetic (P1).

use proptest::prelude::*;

use super::*;

const T: TimeParams = TimeParams::MAINNET;

#[test]
fn mainnet_constants() {
    assert_eq!(T.genesis(), UnixMillis(1_704_067_200_000));
    assert_eq!(T.slot_ms(), 120_000);
    assert_eq!(T.slots_per_epoch(), 720);
    assert_eq!(T.window_slots(), 5_040);
    assert_eq!(T.scale_ms(5_000), 5_000);
}

#[test]
fn before_genesis_is_an_error_not_a_negative_slot() {
    assert!(matches!(T.slot_of(UnixMillis(GENESIS_MS - 1)), Err(TimeError::BeforeGenesis { .. })));
    assert_eq!(T.slot_of(UnixMillis(GENESIS_MS)).unwrap(), Slot(0));
    assert_eq!(T.slot_of(UnixMillis(GENESIS_MS + 119_999)).unwrap(), Slot(0));
    assert_eq!(T.slot_of(UnixMillis(GENESIS_MS + 120_000)).unwrap(), Slot(1));
    assert!(T.slot_of(UnixMillis(i64::MIN)).is_err());
}

#[test]
fn windows() {
    assert!(T.window(Epoch(0)).unwrap().is_empty());
    assert_eq!(T.window(Epoch(1)).unwrap(), SlotRange { start: Slot(0), end: Slot(720) });
    assert_eq!(T.window(Epoch(7)).unwrap().len(), 5_040);
    assert_eq!(T.window(Epoch(8)).unwrap(), SlotRange { start: Slot(720), end: Slot(5_760) });
    assert!(T.window(Epoch(u64::MAX)).is_err());
    assert!(T.slot_start(Slot(u64::MAX)).is_err());
}

#[test]
fn test_network_bounds() {
    assert!(TimeParams::test_network(UnixMillis(0), 999, 8).is_err());
    assert!(TimeParams::test_network(UnixMillis(0), 1_000, 7).is_err());
    assert!(TimeParams::test_network(UnixMillis(-1), 1_000, 8).is_err());
    let t = TimeParams::test_network(UnixMillis(5_000), 1_000, 8).unwrap();
    assert_eq!(t.window_slots(), 56);
    assert_eq!(t.scale_ms(5_000), 41);
    assert_eq!(t.slot_of(UnixMillis(6_500)).unwrap(), Slot(1));
}

fn params() -> impl Strategy<Value = TimeParams> {
    prop_oneof![
        Just(TimeParams::MAINNET),
        (0i64..2_000_000_000_000, 1_000u64..200_000, 8u64..2_000)
            .prop_map(|(g, s, e)| { TimeParams::test_network(UnixMillis(g), s, e).unwrap() }),
    ]
}

proptest! {
    #[test]
    fn slot_of_inverts_slot_start(p in params(), s in 0u64..100_000_000, r in any::<u64>()) {
        let start = p.slot_start(Slot(s)).unwrap();
        let r = r % p.slot_ms();
        prop_assert_eq!(p.slot_of(start.saturating_add_ms(r as i64)).unwrap(), Slot(s));
    }

    #[test]
    fn slot_of_is_monotone(p in params(), a in 0i64..1_000_000_000_000, b in 0i64..1_000_000_000_000) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let g = p.genesis().0;
        prop_assert!(p.slot_of(UnixMillis(g + lo)).unwrap() <= p.slot_of(UnixMillis(g + hi)).unwrap());
    }

    #[test]
    fn epoch_of_is_division(p in params(), s in any::<u64>()) {
        prop_assert_eq!(p.epoch_of(Slot(s)), Epoch(s / p.slots_per_epoch()));
    }

    #[test]
    fn window_bounds(p in params(), e in 0u64..1_000_000) {
        let w = p.window(Epoch(e)).unwrap();
        prop_assert_eq!(w.end, p.epoch_start(Epoch(e)).unwrap());
        prop_assert!(w.len() <= p.window_slots());
        if e >= WINDOW_EPOCHS {
            prop_assert_eq!(w.len(), p.window_slots());
        } else {
            prop_assert_eq!(w.len(), e * p.slots_per_epoch());
        }
    }
}
