//! The node's own registration record: made sure of at start, before the first beacon.
//!
//! A registration binds the node's payout address and endpoint to its id (`consensus.md` §4.5).
//! Ingest refuses proofs of unregistered nodes (`UnknownNode`, §6.1 check 4), so without a record
//! the node's beacons would be refused by every peer and by the node itself.
//!
//! Rules (`daemon.md` §2, service 9: "re-sign own record if address/endpoint changed (seq + 1)"):
//! - The configured payout address and endpoint are both optional. A value that is not
//!   configured keeps the value of the node's current record, so a restart without the flag
//!   never erases an address.
//! - With both values known and equal (with capabilities and capacity) to the current record,
//!   nothing is signed. If any differs, a new record with `seq + 1` is signed (the first has
//!   `seq` 1) and goes through the node's own ingest, exactly like a peer's record.
//! - If a value is neither configured nor recorded, no record can be signed: the wire format
//!   has no "no address" (`payout_address` is 21 bytes starting 0x41, the endpoint is Onion or
//!   Direct). The node then runs unregistered: it signs no beacons (they could only be refused),
//!   reports [`RegistrationStatus::Missing`], and logs what the operator must set. This follows
//!   `DECISIONS.md` ("peers accept nothing from a node that the node did not sign") and the
//!   API's `NO_PAYOUT_ADDRESS` (`pools-payouts.md` §10): a node without a payout address is
//!   a legal state that earns nothing until the operator sets one. A record registered later
//!   (for example through the API) is picked up at the next tick.

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::Verdict;
use lucid_consensus::registration::{CAP_ALL, Endpoint, Registration};
use lucid_consensus::store::ProofStore;
use lucid_core::message::Message;
use lucid_core::{NodeKey, UnixMillis};

use super::{ServiceError, SharedIngest};

/// Parses a TRON payout address from its Base58Check text (`T…`), strictly (pattern, checksum,
/// length, version byte 0x41), with the rules of `lucid-payouts`.
pub fn parse_payout_address(text: &str) -> Result<[u8; 21], lucid_payouts::AddressError> {
    Ok(*lucid_payouts::TronAddress::from_base58(text)?.as_bytes())
}

/// The Base58Check text of a registered payout address (hex if its version byte is not 0x41,
/// which ingest never accepts).
pub fn payout_address_text(address: &[u8; 21]) -> String {
    lucid_payouts::TronAddress::from_bytes(*address)
        .map_or_else(|_| lucid_core::ids::to_hex(address), |address| address.to_base58())
}

/// What the node advertises in its registration; unset values keep the recorded ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// TRON payout address (21 bytes, 0x41 first), parsed and validated by the binary.
    pub payout_address: Option<[u8; 21]>,
    /// How peers reach the node (the onion service, or `peers.direct_addr` on test networks).
    pub endpoint: Option<Endpoint>,
    /// Capability bits (`CAP_*`).
    pub capabilities: u32,
    /// Storage offered to host, bytes (`shards.capacity_bytes`).
    pub storage_capacity_bytes: u64,
}

/// What [`ensure_registration`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// The current record already says what the configuration says.
    Current {
        /// Its sequence number.
        seq: u64,
    },
    /// A new record was signed and accepted by the node's own ingest.
    Published {
        /// Its sequence number.
        seq: u64,
    },
    /// No record exists and the configuration lacks what one needs.
    Missing {
        /// The configuration key the operator must set.
        missing: &'static str,
    },
}

impl RegistrationStatus {
    /// Whether the node has a registration record.
    pub fn is_registered(&self) -> bool {
        !matches!(self, RegistrationStatus::Missing { .. })
    }
}

/// Makes sure the node's registration record says what `config` says (see the module rules).
///
/// Idempotent: run again with the same configuration it finds the record current and signs
/// nothing, also across restarts.
pub async fn ensure_registration(
    params: &ConsensusParams,
    key: &NodeKey,
    config: &RegistrationConfig,
    store: &dyn ProofStore,
    ingest: &SharedIngest,
    now: UnixMillis,
) -> Result<RegistrationStatus, ServiceError> {
    let node = key.node_id();
    // The port offers the current record of every node; one scan at start (and while the node
    // is unregistered) is cheap next to what a node scans per epoch.
    let current = store
        .current_registrations()
        .await
        .map_err(ServiceError::consensus("registration", "reading registrations"))?
        .into_iter()
        .find(|record| record.registration.node == node)
        .map(|record| record.registration);
    let payout_address = config.payout_address.or(current.as_ref().map(|r| r.payout_address));
    let endpoint = config.endpoint.clone().or_else(|| current.as_ref().map(|r| r.endpoint.clone()));
    let Some(payout_address) = payout_address else {
        return Ok(RegistrationStatus::Missing {
            missing: "payout address (`init --payout-address`)",
        });
    };
    let Some(endpoint) = endpoint else {
        return Ok(RegistrationStatus::Missing {
            missing: "endpoint (Tor onion service or `peers.direct_addr`)",
        });
    };
    let capabilities = config.capabilities & CAP_ALL;
    let seq = match &current {
        Some(record)
            if record.payout_address == payout_address
                && record.endpoint == endpoint
                && record.capabilities == capabilities
                && record.storage_capacity_bytes == config.storage_capacity_bytes =>
        {
            // The record may have reached the store on another path (the API, a restart):
            // the node's ingest must know it, or it would refuse the node's own beacons.
            let mut ingest = ingest.lock().await;
            if !ingest.is_registered(&node) {
                ingest
                    .load_registrations(store)
                    .await
                    .map_err(ServiceError::consensus("registration", "loading registrations"))?;
            }
            return Ok(RegistrationStatus::Current { seq: record.seq });
        }
        Some(record) => record.seq.saturating_add(1),
        None => 1,
    };
    let record = Registration {
        node,
        seq,
        ts: now,
        payout_address,
        endpoint,
        capabilities,
        storage_capacity_bytes: config.storage_capacity_bytes,
    };
    let signed = record.sign(&params.network, key);
    let (outcome, _evidence) = ingest
        .lock()
        .await
        .ingest_registration(store, now, signed)
        .await
        .map_err(ServiceError::consensus("registration", "storing the own registration"))?;
    match outcome.verdict {
        Verdict::Accept | Verdict::Duplicate => {
            tracing::info!(seq, "own registration record published");
            Ok(RegistrationStatus::Published { seq })
        }
        Verdict::Reject(reason) => Err(ServiceError::OwnRegistrationRefused { seq, reason }),
    }
}
