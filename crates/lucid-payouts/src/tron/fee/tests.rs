//! Table tests of the fee limit.

use super::*;

#[test]
fn fee_limit_table() {
    // (energy, price, cap) → expected; worked out by hand as energy × price × 12 / 10, rounded up.
    let cases: [(u64, u64, u64, Result<u64, Error>); 6] = [
        (65_000, 100, DEFAULT_FEE_LIMIT_MAX_SUN, Ok(7_800_000)),
        (130_285, 210, DEFAULT_FEE_LIMIT_MAX_SUN, Ok(32_831_820)),
        (1, 1, DEFAULT_FEE_LIMIT_MAX_SUN, Ok(2)),
        (3, 3, DEFAULT_FEE_LIMIT_MAX_SUN, Ok(11)),
        (5, 1, 6, Ok(6)),
        (
            5,
            1,
            5,
            Err(Error::FeeLimitAboveCap {
                energy: 5,
                energy_fee_sun: 1,
                fee_limit_sun: 6,
                cap_sun: 5,
            }),
        ),
    ];
    for (energy, price, cap, expected) in cases {
        assert_eq!(fee_limit_sun(energy, price, cap), expected, "{energy} × {price} cap {cap}");
    }
}

#[test]
fn refusals() {
    assert!(matches!(fee_limit_sun(0, 100, 1), Err(Error::FeeInput { .. })));
    assert!(matches!(fee_limit_sun(1, 0, 1), Err(Error::FeeInput { .. })));
    assert!(matches!(
        fee_limit_sun(u64::MAX, u64::MAX, u64::MAX),
        Err(Error::FeeInput { .. }) | Err(Error::FeeLimitAboveCap { .. })
    ));
    // The cap is bounded by the network maximum.
    assert!(matches!(
        fee_limit_sun(100_000_000, 1_000, u64::MAX),
        Err(Error::FeeLimitAboveCap { cap_sun: NETWORK_FEE_LIMIT_MAX_SUN, .. })
    ));
}
