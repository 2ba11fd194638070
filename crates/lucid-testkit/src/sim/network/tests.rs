//! Tests of the simulated network's model: routing, latency, loss, partitions, limits, counts.
