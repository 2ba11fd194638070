//! Integration tests of `lucid-payouts` (feature `tron`): known-answer vectors computed outside
//! this code, and the property tests of invariants I17–I19 of `pools-payouts.md` §11.

// `cfg(test)` tells clippy these are tests, where a panic is a failed test (`clippy.toml`).
#[cfg(test)]
mod props;
#[cfg(test)]
mod vectors;
