//! Counters of the gossip loops, rendered in the Prometheus text format with the names of
//! `daemon.md` §4 (`lucid_gossip_bytes_total{direction}`) and the drop counter of the bounded
//! queues. Labels are bounded: a direction, never a peer.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of gossip, push and anti-entropy.
#[derive(Debug, Default)]
pub struct GossipMetrics {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped: AtomicU64,
    seals_signed: AtomicU64,
    evidence_forwarded: AtomicU64,
    late_accepted: AtomicU64,
    peer_faults: AtomicU64,
    rounds: AtomicU64,
    own_repushed: AtomicU64,
}

impl GossipMetrics {
    /// Counts signed bytes received from peers.
    pub fn count_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts signed bytes sent to peers.
    pub fn count_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `items` dropped because their queue (or their peer's calls in flight) was full.
    pub fn count_drops(&self, items: usize) {
        self.dropped.fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts one seal signed.
    pub fn count_seal(&self) {
        self.seals_signed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one piece of evidence forwarded (once per node, whatever the number of peers).
    pub fn count_evidence(&self) {
        self.evidence_forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts proofs accepted late through a peer's seal.
    pub fn count_late(&self, proofs: u64) {
        self.late_accepted.fetch_add(proofs, Ordering::Relaxed);
    }

    /// Counts one fault reported against a peer.
    pub fn count_fault(&self) {
        self.peer_faults.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one anti-entropy round.
    pub fn count_round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts own proofs pushed again to a peer that (re)appeared.
    pub fn count_repushed(&self, proofs: u64) {
        self.own_repushed.fetch_add(proofs, Ordering::Relaxed);
    }

    /// Own proofs pushed again so far.
    pub fn own_repushed(&self) -> u64 {
        self.own_repushed.load(Ordering::Relaxed)
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Seals signed so far.
    pub fn seals_signed(&self) -> u64 {
        self.seals_signed.load(Ordering::Relaxed)
    }

    /// Proofs accepted late so far.
    pub fn late_accepted(&self) -> u64 {
        self.late_accepted.load(Ordering::Relaxed)
    }

    /// Evidence forwarded so far.
    pub fn evidence_forwarded(&self) -> u64 {
        self.evidence_forwarded.load(Ordering::Relaxed)
    }

    /// Signed bytes (received, sent) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in.load(Ordering::Relaxed), self.bytes_out.load(Ordering::Relaxed))
    }

    /// Faults reported so far.
    pub fn peer_faults(&self) -> u64 {
        self.peer_faults.load(Ordering::Relaxed)
    }

    /// Anti-entropy rounds so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// The Prometheus text of every gossip counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (bytes_in, bytes_out) = self.bytes();
        let _ = writeln!(
            out,
            "# HELP lucid_gossip_bytes_total Signed message bytes exchanged with peers by gossip and anti-entropy.\n\
             # TYPE lucid_gossip_bytes_total counter\n\
             lucid_gossip_bytes_total{{direction=\"in\"}} {bytes_in}\n\
             lucid_gossip_bytes_total{{direction=\"out\"}} {bytes_out}"
        );
        let counters = [
            (
                "lucid_gossip_dropped_total",
                "Items dropped because a gossip queue was full.",
                self.dropped(),
            ),
            ("lucid_seals_signed_total", "Slot seals signed by this node.", self.seals_signed()),
            (
                "lucid_gossip_evidence_forwarded_total",
                "Equivocation evidence forwarded to peers (once per evidence).",
                self.evidence_forwarded(),
            ),
            (
                "lucid_gossip_late_accepted_total",
                "Proofs accepted late through a peer's seal.",
                self.late_accepted(),
            ),
            (
                "lucid_gossip_peer_faults_total",
                "Misbehaviour reported against peers.",
                self.peer_faults(),
            ),
            ("lucid_anti_entropy_rounds_total", "Anti-entropy rounds run.", self.rounds()),
            (
                "lucid_gossip_own_repushed_total",
                "Own proofs of the live grace pushed again to a peer that (re)appeared.",
                self.own_repushed(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_with_bounded_labels() {
        let metrics = GossipMetrics::default();
        metrics.count_in(10);
        metrics.count_out(7);
        metrics.count_drops(1);
        metrics.count_drops(1);
        let text = metrics.render();
        assert!(text.contains("lucid_gossip_bytes_total{direction=\"in\"} 10\n"), "{text}");
        assert!(text.contains("lucid_gossip_bytes_total{direction=\"out\"} 7\n"), "{text}");
        assert!(text.contains("lucid_gossip_dropped_total 2\n"), "{text}");
        assert!(text.contains("lucid_seals_signed_total 0\n"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 8);
    }
}
