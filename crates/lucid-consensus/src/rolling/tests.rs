//! Tests of the rolling tally engine.
