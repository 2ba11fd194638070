//! The daemon's resolved, validated configuration (no serde here: the binary owns the file and
//! environment formats and resolves them into this once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lucid_consensus::ConsensusParams;

/// Everything the daemon needs to start, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory (key, token, database, tor and shard files).
    pub data_dir: PathBuf,
    /// The network's name (for display; the parameters carry the id).
    pub network_name: String,
    /// Consensus parameters of the network.
    pub consensus: ConsensusParams,
    /// The HTTP listener.
    pub http_addr: SocketAddr,
    /// How long shutdown may take before it is forced.
    pub shutdown_grace: Duration,
    /// Signature verification threads (0: one per core).
    pub verify_threads: usize,
}
