//! Registration records: a node's signed statement of its payout address, endpoint, capabilities
//! and advertised storage, with a sequence number.
//!
//! Body v1 of `registration`: `node ‖ u64 seq ‖ i64 ts_ms ‖ payout_address[21] ‖ endpoint ‖
//! u32 capabilities ‖ u64 storage_capacity_bytes`. Peers accept only records signed by the node
//! itself; the current record is the one with the highest `seq`; an equal `seq` with different
//! bytes is an equivocation and the first record stays current.

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::message::Message;
use lucid_core::{NodeId, UnixMillis};

/// Version byte of TRON mainnet addresses (the first of the 21 address bytes).
pub const TRON_ADDRESS_VERSION: u8 = 0x41;
/// Longest `host:port` of a direct endpoint.
pub const MAX_DIRECT_ENDPOINT: usize = 255;

/// Capability bit: relays sessions.
pub const CAP_RELAY: u32 = 1 << 0;
/// Capability bit: hosts storage shards.
pub const CAP_STORAGE: u32 = 1 << 1;
/// Capability bit: validates sessions.
pub const CAP_VALIDATION: u32 = 1 << 2;
/// Every defined capability bit; all others must be zero.
pub const CAP_ALL: u32 = CAP_RELAY | CAP_STORAGE | CAP_VALIDATION;

/// Where a node can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A Tor onion service (v3): the service's ed25519 public key and port (tag 0x01).
    Onion {
        /// The onion service public key (the address is derived from it).
        service_key: [u8; 32],
        /// The virtual port.
        port: u16,
    },
    /// `host:port` on a test network without Tor (tag 0x02).
    Direct(String),
}

/// A node's registration record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The node; also the signer.
    pub node: NodeId,
    /// Sequence number; higher replaces lower.
    pub seq: u64,
    /// Signing time.
    pub ts: UnixMillis,
    /// TRON payout address, 21 bytes starting with 0x41.
    pub payout_address: [u8; 21],
    /// How peers reach the node.
    pub endpoint: Endpoint,
    /// Capability bits (`CAP_*`).
    pub capabilities: u32,
    /// Storage the node offers to host, in bytes.
    pub storage_capacity_bytes: u64,
}

impl Message for Registration {
    const TYPE_NAME: &'static str = "registration";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node).u64(self.seq).time(self.ts).raw(&self.payout_address);
        match &self.endpoint {
            Endpoint::Onion { service_key, port } => {
                out.u8(1).raw(service_key).u16(*port);
            }
            Endpoint::Direct(address) => {
                out.u8(2).lp(address.as_bytes());
            }
        }
        out.u32(self.capabilities).u64(self.storage_capacity_bytes);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let node = reader.node_id("node")?;
        let seq = reader.u64("seq")?;
        let ts = reader.time("ts_ms")?;
        let payout_address: [u8; 21] = reader.array("payout_address")?;
        if payout_address[0] != TRON_ADDRESS_VERSION {
            return Err(DecodeError::InvalidValue {
                field: "payout_address",
                rule: "must start with the TRON version byte 0x41",
            });
        }
        let endpoint = match reader.u8("endpoint")? {
            1 => Endpoint::Onion {
                service_key: reader.array("service_key")?,
                port: reader.u16("port")?,
            },
            2 => {
                let address = reader.lp_str("direct_endpoint", MAX_DIRECT_ENDPOINT)?;
                if address.is_empty()
                    || !address.is_ascii()
                    || address.contains(char::is_whitespace)
                {
                    return Err(DecodeError::InvalidValue {
                        field: "direct_endpoint",
                        rule: "must be a non-empty ASCII host:port without spaces",
                    });
                }
                Endpoint::Direct(address.to_owned())
            }
            tag => return Err(DecodeError::UnknownTag { field: "endpoint", tag }),
        };
        let capabilities = reader.u32("capabilities")?;
        if capabilities & !CAP_ALL != 0 {
            return Err(DecodeError::InvalidValue {
                field: "capabilities",
                rule: "only bits 0 (relay), 1 (storage) and 2 (validation) may be set",
            });
        }
        let storage_capacity_bytes = reader.u64("storage_capacity_bytes")?;
        Ok(Registration {
            node,
            seq,
            ts,
            payout_address,
            endpoint,
            capabilities,
            storage_capacity_bytes,
        })
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}
