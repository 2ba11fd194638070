//! The TRON USDT-TRC20 rail building blocks (feature `tron`): the hot-wallet key and the address
//! it derives,
//! TRC20 call data and event logs, the raw transaction protobuf with its txid and signature, and
//! the fee limit.
//!
//! The building blocks are pure: the reference block, the current time and the chain's energy
//! price come in as arguments, and the bytes to broadcast go out as data. The HTTP calls of
//! `pools-payouts.md` §7 go through the [`transport::TronTransport`] port (implemented outside this
//! crate); [`client`] parses every reply strictly and [`rail`] is the `PayoutRail` over it.

pub mod abi;
/// Re-exported so that `tron::address` keeps naming the address type; it lives in every build.
pub use crate::address;
pub mod client;
pub mod fee;
pub mod key;
pub mod rail;
pub mod transport;
pub mod tx;

pub use abi::{TransferEvent, Uint256};
pub use address::{AddressError, TronAddress};
pub use client::{BroadcastBytes, TronClient, TxLookup};
pub use fee::fee_limit_sun;
pub use key::{HotWalletKey, RecoverableSignature, recover};
pub use rail::{BuildMode, TronRail, TronRailConfig};
pub use transport::{Endpoint, TransportError, TransportResponse, TronTransport};
pub use tx::{BlockRef, SignedTransfer, TransferParams, Txid, UnsignedTransfer};
