//! Integration tests of `lucid-daemon` (feature `tron`): the payout processor paying through the
//! TRON rail and the reqwest transport against the fake TRON node of `lucid-testkit`.

// `cfg(test)` tells clippy these are tests, where a panic is a failed test (`clippy.toml`).
#[cfg(test)]
mod tron_payouts;
#[cfg(test)]
mod tron_transport;
