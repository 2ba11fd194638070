//! Integration tests of lucid-daemon (feature `tron`).

mod tron_payouts;
