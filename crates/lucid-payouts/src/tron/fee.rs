//! The fee limit of a transfer: the most TRX (in sun) it may burn for energy.
//!
//! fee_limit = ceil(estimated_energy × energy_fee_sun × 1.2), in integer arithmetic as
//! ceil(energy × price × 12 / 10) over u128. The 20 % margin covers estimate drift; the energy and
//! price come from the chain at send time (a first transfer to a fresh address costs about twice
//! as much), never from constants. Above the cap the answer is a typed refusal: sending with a
//! lower limit would fail on chain and still burn TRX.

use crate::Error;

/// Default `tron.fee_limit_max_sun`: 100 TRX.
pub const DEFAULT_FEE_LIMIT_MAX_SUN: u64 = 100_000_000;
/// The network's own maximum fee limit: 15 000 TRX.
pub const NETWORK_FEE_LIMIT_MAX_SUN: u64 = 15_000_000_000;

/// The fee limit in sun for `estimated_energy` at `energy_fee_sun` per unit, or a refusal when
/// it exceeds `cap_sun` (itself bounded by the network maximum).
pub fn fee_limit_sun(
    estimated_energy: u64,
    energy_fee_sun: u64,
    cap_sun: u64,
) -> Result<u64, Error> {
    if estimated_energy == 0 {
        return Err(Error::FeeInput {
            reason: "a TRC20 transfer always needs energy; estimate is 0",
        });
    }
    if energy_fee_sun == 0 {
        return Err(Error::FeeInput { reason: "the energy price from the chain is 0" });
    }
    let cap = cap_sun.min(NETWORK_FEE_LIMIT_MAX_SUN);
    // u64 × u64 × 12 < 2^132 could overflow u128 only for absurd inputs; checked all the same.
    let scaled = u128::from(estimated_energy)
        .checked_mul(u128::from(energy_fee_sun))
        .and_then(|product| product.checked_mul(12))
        .ok_or(Error::FeeInput { reason: "energy × price overflows" })?;
    let fee_limit = scaled.div_ceil(10);
    match u64::try_from(fee_limit) {
        Ok(limit) if limit <= cap => Ok(limit),
        _ => Err(Error::FeeLimitAboveCap {
            energy: estimated_energy,
            energy_fee_sun,
            fee_limit_sun: fee_limit,
            cap_sun: cap,
        }),
    }
}

#[cfg(test)]
mod tests;
