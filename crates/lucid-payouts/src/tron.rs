//! The TRON USDT-TRC20 rail building blocks (feature `tron`): addresses, the hot-wallet key,
//! TRC20 call data and event logs, the raw transaction protobuf with its txid and signature, and
//! the fee limit.
//!
//! Everything here is pure: the reference block, the current time and the chain's energy price
//! come in as arguments, and the bytes to broadcast go out as data. The HTTP calls of
//! `pools-payouts.md` §7 belong to the `TronTransport` port, implemented outside this crate.

pub mod abi;
pub mod address;
pub mod fee;
pub mod key;
pub mod tx;

pub use abi::{TransferEvent, Uint256};
pub use address::{AddressError, TronAddress};
pub use fee::fee_limit_sun;
pub use key::{HotWalletKey, RecoverableSignature, recover};
pub use tx::{BlockRef, SignedTransfer, TransferParams, Txid, UnsignedTransfer};
