//! Tests of amounts and the exact split (I7, I10).

use proptest::prelude::*;

use super::*;

#[test]
fn parse_and_format() {
    let cases = [
        ("0", 0),
        ("10", 10_000_000),
        ("10.5", 10_500_000),
        ("0.000001", 1),
        ("1.005", 1_005_000),
        ("18446744073709.551615", u64::MAX),
    ];
    for (text, micros) in cases {
        assert_eq!(text.parse::<MicroUsdt>(), Ok(MicroUsdt(micros)), "{text}");
    }
    assert_eq!(MicroUsdt(10_000_000).to_string(), "10.000000");
    assert_eq!(MicroUsdt(1).to_string(), "0.000001");
}

#[test]
fn invalid_text_is_rejected() {
    for bad in [
        "",
        " 1",
        "1 ",
        "-1",
        "+1",
        "01",
        "1.",
        ".5",
        "1e3",
        "NaN",
        "inf",
        "1.0000001",
        "1,5",
        "0x10",
        "１",
    ] {
        assert!(bad.parse::<MicroUsdt>().is_err(), "{bad:?} should be rejected");
    }
    assert_eq!("1.1234567".parse::<MicroUsdt>(), Err(AmountError::TooPrecise));
    assert_eq!("18446744073709.551616".parse::<MicroUsdt>(), Err(AmountError::Overflow));
    assert_eq!("99999999999999999999".parse::<MicroUsdt>(), Err(AmountError::Overflow));
    assert_eq!("9".repeat(1000).parse::<MicroUsdt>(), Err(AmountError::Overflow));
}

#[test]
fn checked_arithmetic() {
    assert_eq!(MicroUsdt(u64::MAX).checked_add(MicroUsdt(1)), Err(AmountError::Overflow));
    assert_eq!(MicroUsdt(0).checked_sub(MicroUsdt(1)), Err(AmountError::Underflow));
    assert_eq!(MicroUsdt::from_usdt(10), Some(MicroUsdt(10_000_000)));
    assert_eq!(MicroUsdt::from_usdt(u64::MAX), None);
    assert_eq!(MicroUsdt(u64::MAX).to_signed(), Err(AmountError::Overflow));
}

#[test]
fn bps_rounding() {
    // 1 % of 10 USDT = 0.1 USDT; 5 % of 0.000010 = 0.0000005 rounds half up to 0.000001.
    assert_eq!(MicroUsdt(10_000_000).bps_round_half_up(100), Ok(MicroUsdt(100_000)));
    assert_eq!(MicroUsdt(10).bps_round_half_up(500), Ok(MicroUsdt(1)));
    assert_eq!(MicroUsdt(9).bps_round_half_up(500), Ok(MicroUsdt(0)));
    assert_eq!(MicroUsdt(u64::MAX).bps_round_half_up(10_000), Ok(MicroUsdt(u64::MAX)));
    assert_eq!(MicroUsdt(u64::MAX).bps_round_half_up(20_000), Err(AmountError::Overflow));
}

#[test]
fn split_examples() {
    // 10 split 1:1:1 → the remainder 1 goes to the smallest key among equal remainders.
    let shares = split_exact(10, &[("b", 1), ("a", 1), ("c", 1)]).unwrap();
    assert_eq!(shares, vec![("b", 3), ("a", 4), ("c", 3)]);
    assert_eq!(split_exact(7, &[("x", 0), ("y", 5)]).unwrap(), vec![("x", 0), ("y", 7)]);
    assert_eq!(split_exact::<&str>(7, &[("x", 0)]), Err(AmountError::ZeroWeights));
    assert_eq!(split_exact::<&str>(7, &[]), Err(AmountError::ZeroWeights));
    let big = split_exact(u64::MAX, &[(1, u64::MAX), (2, u64::MAX)]).unwrap();
    assert_eq!(big[0].1 + big[1].1, u64::MAX);
}

proptest! {
    // I10: parse → format → parse is the identity.
    #[test]
    fn amount_text_round_trip(micros in any::<u64>()) {
        let text = MicroUsdt(micros).to_string();
        prop_assert_eq!(text.parse::<MicroUsdt>(), Ok(MicroUsdt(micros)));
    }

    #[test]
    fn parse_never_panics(text in ".{0,40}") {
        let _ = text.parse::<MicroUsdt>();
    }

    // I7: shares sum to the total, each within 1 of proportional, deterministic.
    #[test]
    fn split_is_exact(total in any::<u64>(), weights in proptest::collection::vec(0u64..u64::MAX, 1..50)) {
        let keyed: Vec<(usize, u64)> = weights.iter().copied().enumerate().collect();
        let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        prop_assume!(sum > 0);
        let shares = split_exact(total, &keyed).unwrap();
        let got: u128 = shares.iter().map(|(_, s)| u128::from(*s)).sum();
        prop_assert_eq!(got, u128::from(total));
        for ((_, share), (_, w)) in shares.iter().zip(&keyed) {
            let exact_floor = u128::from(total) * u128::from(*w) / sum;
            prop_assert!(u128::from(*share) == exact_floor || u128::from(*share) == exact_floor + 1);
        }
        let mut reversed = keyed.clone();
        reversed.reverse();
        let mut again = split_exact(total, &reversed).unwrap();
        again.reverse();
        prop_assert_eq!(again, shares);
    }
}
