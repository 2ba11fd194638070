//! Tests of the `op` module.
