//! Unit tests of the TRON rail's own rules: a node-built transaction is signed only when it is
//! exactly the intended transfer, the configuration is checked, and `Debug` never shows the key.
//! The rail's calls end to end are tested against the fake TRON node in `lucid-daemon`.

use std::sync::Arc;

use prost::Message as _;

use super::*;
use crate::tron::client::TronClient;
use crate::tron::transport::{Endpoint, TransportError, TransportResponse, TronTransport};
use crate::tron::tx::{BlockRef, build_transfer, proto};

/// A transport with no node behind it: these tests never reach the network.
struct Unreachable;

#[async_trait]
impl TronTransport for Unreachable {
    async fn post(
        &self,
        endpoint: Endpoint,
        _path: &str,
        _body: &serde_json::Value,
    ) -> Result<TransportResponse, TransportError> {
        Err(TransportError::Connection { endpoint: endpoint.as_str(), message: "none".into() })
    }
}

const SECRET: [u8; 32] = [0x11; 32];

fn rail() -> TronRail {
    let key = HotWalletKey::from_bytes(&SECRET, &[0x22; 32]).unwrap();
    let config = TronRailConfig {
        build: BuildMode::RemoteTrigger,
        ..TronRailConfig::new(TronAddress::from_account([7; 20]))
    };
    TronRail::new(TronClient::new(Arc::new(Unreachable), 0), key, config).unwrap()
}

fn params(rail: &TronRail) -> TransferParams {
    TransferParams {
        owner: rail.hot_wallet(),
        contract: TronAddress::from_account([7; 20]),
        to: TronAddress::from_account([2; 20]),
        amount: MicroUsdt(9_900_000),
        reference: BlockRef { number: 5, id: [3; 32] },
        timestamp: UnixMillis(1_000_000),
        expiration: UnixMillis(1_060_000),
        fee_limit_sun: 30_000_000,
    }
}

#[test]
fn an_exact_remote_transaction_is_signed_with_its_own_txid() {
    let rail = rail();
    let params = params(&rail);
    let raw = build_transfer(&params).unwrap().raw;
    let signed = rail.sign_remote(&raw, &params, params.timestamp).unwrap();
    assert_eq!(signed.txid, Txid::of(&raw));
    assert_eq!(crate::tron::recover(&signed.txid.0, &signed.signature).unwrap(), rail.hot_wallet());
}

#[test]
fn a_tampered_remote_transaction_is_refused_before_signing() {
    let rail = rail();
    let params = params(&rail);
    let refuse = |tampered: TransferParams, field: &'static str| {
        let raw = build_transfer(&tampered).unwrap().raw;
        let error = rail.sign_remote(&raw, &params, params.timestamp).unwrap_err();
        assert_eq!(error, Error::RemoteTransaction { field }, "{field}");
    };
    refuse(TransferParams { to: TronAddress::from_account([6; 20]), ..params }, "data");
    refuse(TransferParams { amount: MicroUsdt(9_900_001), ..params }, "data");
    refuse(TransferParams { contract: TronAddress::from_account([8; 20]), ..params }, "contract");
    refuse(TransferParams { fee_limit_sun: 30_000_001, ..params }, "fee limit");
    // An expiration the node pushed far out, or one already past.
    refuse(TransferParams { expiration: UnixMillis(2_000_000), ..params }, "expiration");
    refuse(
        TransferParams {
            timestamp: UnixMillis(900_000),
            expiration: UnixMillis(999_000),
            ..params
        },
        "expiration",
    );

    // Another owner (the node asks us to sign someone else's transfer).
    let other = HotWalletKey::from_bytes(&[0x33; 32], &[0x22; 32]).unwrap();
    let raw = build_transfer(&TransferParams { owner: other.address(), ..params }).unwrap().raw;
    let error = rail.sign_remote(&raw, &params, params.timestamp).unwrap_err();
    assert_eq!(error, Error::RemoteTransaction { field: "owner" });

    // TRX smuggled as call value, a memo, garbage.
    let mut message = proto::Raw::decode(build_transfer(&params).unwrap().raw.as_slice()).unwrap();
    message.data = b"memo".to_vec();
    let error = rail.sign_remote(&message.encode_to_vec(), &params, params.timestamp).unwrap_err();
    assert_eq!(error, Error::RemoteTransaction { field: "memo" });
    let mut message = proto::Raw::decode(build_transfer(&params).unwrap().raw.as_slice()).unwrap();
    let any = message.contract[0].parameter.as_mut().unwrap();
    let mut trigger = proto::TriggerSmartContract::decode(any.value.as_slice()).unwrap();
    trigger.call_value = 1;
    any.value = trigger.encode_to_vec();
    let error = rail.sign_remote(&message.encode_to_vec(), &params, params.timestamp).unwrap_err();
    assert_eq!(error, Error::RemoteTransaction { field: "call value" });
    assert!(rail.sign_remote(&[0xff, 0xff, 0xff], &params, params.timestamp).is_err());
}

#[test]
fn configuration_is_checked_and_debug_hides_the_key() {
    let key = || HotWalletKey::from_bytes(&SECRET, &[0x22; 32]).unwrap();
    let client = || TronClient::new(Arc::new(Unreachable), 0);
    let contract = TronAddress::from_account([7; 20]);
    for expiration in [0, -1, MAX_EXPIRATION_MS] {
        let config =
            TronRailConfig { tx_expiration_ms: expiration, ..TronRailConfig::new(contract) };
        assert!(TronRail::new(client(), key(), config).is_err());
    }
    let own = TronRailConfig::new(key().address());
    assert!(TronRail::new(client(), key(), own).is_err());

    let shown = format!("{:?}", rail());
    assert!(shown.contains(&rail().hot_wallet().to_base58()));
    assert!(!shown.to_lowercase().contains(&hex::encode(SECRET)), "{shown}");
}
