//! Tests of the uptime view.
