//! Integer money: micro-USDT amounts, their one text form, basis-point rates, and the exact
//! largest-remainder split.
//!
//! 1 USDT = 1 000 000 micro-USDT = one USDT-TRC20 on-chain unit. Arithmetic is checked: an
//! overflow is a typed error, never a wrap or a silent saturation. No float appears here or in
//! any money path.

use std::fmt;
use std::str::FromStr;

/// Micro-USDT per USDT.
pub const MICROS_PER_USDT: u64 = 1_000_000;
/// Basis points in 100 %.
pub const BPS_DENOMINATOR: u32 = 10_000;
/// Longest accepted amount text (20 integer digits, a dot, 6 decimals).
const MAX_AMOUNT_TEXT: usize = 27;

/// An amount of micro-USDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MicroUsdt(pub u64);

/// Why an amount could not be parsed or computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// The text is not of the form `^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$`.
    #[error("amount must be a decimal string like \"10\" or \"10.5\" with at most 6 decimals")]
    Syntax,
    /// More than 6 fractional digits.
    #[error("amount has more than 6 decimal places")]
    TooPrecise,
    /// The amount does not fit in 64 bits of micro-USDT.
    #[error("amount is too large")]
    Overflow,
    /// A subtraction would go below zero.
    #[error("amount would become negative")]
    Underflow,
    /// An exact split was asked with weights summing to zero.
    #[error("cannot split an amount by weights that sum to zero")]
    ZeroWeights,
}

impl crate::HasKind for AmountError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidInput
    }
}

impl MicroUsdt {
    /// Zero.
    pub const ZERO: MicroUsdt = MicroUsdt(0);

    /// A whole number of USDT.
    pub const fn from_usdt(usdt: u64) -> Option<Self> {
        match usdt.checked_mul(MICROS_PER_USDT) {
            Some(micros) => Some(MicroUsdt(micros)),
            None => None,
        }
    }

    /// `self + other`, or `Overflow`.
    pub fn checked_add(self, other: MicroUsdt) -> Result<Self, AmountError> {
        self.0.checked_add(other.0).map(MicroUsdt).ok_or(AmountError::Overflow)
    }

    /// `self - other`, or `Underflow`.
    pub fn checked_sub(self, other: MicroUsdt) -> Result<Self, AmountError> {
        self.0.checked_sub(other.0).map(MicroUsdt).ok_or(AmountError::Underflow)
    }

    /// The amount as a signed ledger quantity, or `Overflow` above `i64::MAX`.
    pub fn to_signed(self) -> Result<i64, AmountError> {
        i64::try_from(self.0).map_err(|_| AmountError::Overflow)
    }

    /// `(self · bps + 5 000) div 10 000`: a basis-point rate rounded half up, in u128.
    pub fn bps_round_half_up(self, bps: u32) -> Result<Self, AmountError> {
        let product = u128::from(self.0) * u128::from(bps) + 5_000;
        u64::try_from(product / u128::from(BPS_DENOMINATOR))
            .map(MicroUsdt)
            .map_err(|_| AmountError::Overflow)
    }
}

impl fmt::Display for MicroUsdt {
    /// Always exactly 6 fractional digits: `10.000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / MICROS_PER_USDT, self.0 % MICROS_PER_USDT)
    }
}

impl FromStr for MicroUsdt {
    type Err = AmountError;

    /// Accepts exactly `^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$`: no sign, exponent, whitespace,
    /// leading zeros, NaN or infinity.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > MAX_AMOUNT_TEXT {
            return Err(if text.len() > MAX_AMOUNT_TEXT {
                AmountError::Overflow
            } else {
                AmountError::Syntax
            });
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
            return Err(AmountError::Syntax);
        }
        let mut micros: u64 = 0;
        for digit in whole.bytes() {
            micros = micros
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(digit - b'0')))
                .ok_or(AmountError::Overflow)?;
        }
        micros = micros.checked_mul(MICROS_PER_USDT).ok_or(AmountError::Overflow)?;
        if let Some(fraction) = fraction {
            if !all_digits(fraction) {
                return Err(AmountError::Syntax);
            }
            if fraction.len() > 6 {
                return Err(AmountError::TooPrecise);
            }
            let mut frac: u64 = 0;
            for digit in fraction.bytes() {
                frac = frac * 10 + u64::from(digit - b'0');
            }
            for _ in fraction.len()..6 {
                frac *= 10;
            }
            micros = micros.checked_add(frac).ok_or(AmountError::Overflow)?;
        }
        Ok(MicroUsdt(micros))
    }
}

/// Splits `total` exactly in proportion to `weights` (largest remainder method).
///
/// `base_i = floor(total · w_i / Σw)` in u128; the remainder `r = total − Σ base_i` (< n) goes +1
/// each to the `r` keys with the largest `total · w_i mod Σw`, ties by key ascending. The shares,
/// returned in input order, always sum to `total`, and each is within 1 of the exact proportion.
/// Keys should be distinct; the result is deterministic either way.
pub fn split_exact<K: Ord + Clone>(
    total: u64,
    weights: &[(K, u64)],
) -> Result<Vec<(K, u64)>, AmountError> {
    let weight_sum: u128 = weights.iter().map(|(_, w)| u128::from(*w)).sum();
    if weight_sum == 0 {
        return Err(AmountError::ZeroWeights);
    }
    let total_wide = u128::from(total);
    let mut shares: Vec<(K, u64)> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    let mut distributed: u128 = 0;
    for (index, (key, weight)) in weights.iter().enumerate() {
        let product = total_wide * u128::from(*weight);
        let base = product / weight_sum;
        distributed += base;
        // base <= total, so it fits in u64.
        shares.push((key.clone(), u64::try_from(base).map_err(|_| AmountError::Overflow)?));
        remainders.push((product % weight_sum, index));
    }
    let leftover = usize::try_from(total_wide - distributed).map_err(|_| AmountError::Overflow)?;
    if leftover > 0 {
        remainders.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| weights[a.1].0.cmp(&weights[b.1].0))
        });
        for &(_, index) in remainders.iter().take(leftover) {
            shares[index].1 += 1;
        }
    }
    Ok(shares)
}

#[cfg(test)]
mod tests;
