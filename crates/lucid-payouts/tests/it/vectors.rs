//! Known-answer tests against `tests/vectors/tron_vectors.txt`.
//!
//! Where the values come from:
//! - `tests/vectors/tron_vectors.py` computed every value with Python libraries that share no code
//!   with this crate: `ecdsa` (secp256k1, RFC 6979 with HMAC-SHA-256, low S via
//!   `sigencode_strings_canonize`, recovery id by textbook public-key recovery), `pycryptodome`
//!   (Keccak-256), `base58` (Base58Check) and Google's `protobuf` runtime with the TRON messages
//!   declared as descriptors from the field numbers of `tronprotocol/protocol`. See
//!   `tests/vectors/README.md` for how it was run.
//! - Published values the script also asserts or reproduces: the USDT-TRC20 contract
//!   `TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t` is `41a614f803b6fd780986a42c78ec9c7f77e6ded13c`
//!   (`pools-payouts.md` §7, Tronscan); the selectors `a9059cbb` and `70a08231` and the Transfer
//!   topic `ddf252ad…b3ef` are the standard ERC-20/TRC20 values (`pools-payouts.md` §7); the
//!   20-byte account of secret keys 1 and 2 are the well-known Ethereum addresses
//!   `0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf` and `0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF`
//!   (same Keccak-256 derivation, so the TRON address is 0x41 ‖ those bytes).

use std::collections::BTreeMap;

use lucid_core::{MicroUsdt, UnixMillis};
use lucid_payouts::tron::abi::{
    self, BALANCE_OF_SELECTOR, TRANSFER_SELECTOR, TRANSFER_TOPIC, balance_of_call_data,
    transfer_call_data,
};
use lucid_payouts::tron::tx::{self, BlockRef, ExpectedTransfer, TransferParams};
use lucid_payouts::tron::{HotWalletKey, RecoverableSignature, TronAddress, recover};

const NODE_SEED: [u8; 32] = [0x77; 32];

fn vectors() -> BTreeMap<String, String> {
    include_str!("../vectors/tron_vectors.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line.split_once(" = ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

fn get<'a>(vectors: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    vectors.get(name).unwrap_or_else(|| panic!("vector {name} missing"))
}

fn address(text: &str) -> TronAddress {
    TronAddress::from_base58(text).unwrap()
}

#[test]
fn private_keys_to_addresses() {
    let v = vectors();
    for name in ["key_one", "key_two", "key_sha", "key_max"] {
        let key =
            HotWalletKey::from_hex(get(&v, &format!("{name}.secret_hex")), &NODE_SEED).unwrap();
        assert_eq!(key.address().to_hex(), get(&v, &format!("{name}.address_hex")), "{name}");
        assert_eq!(key.address().to_base58(), get(&v, &format!("{name}.address_base58")), "{name}");
        assert_eq!(address(get(&v, &format!("{name}.address_base58"))), key.address());
    }
    // Published Ethereum addresses of secret keys 1 and 2 (see the module doc).
    assert_eq!(get(&v, "key_one.address_hex"), "417e5f4552091a69125d5dfcb7b8c2659029395bdf");
    assert_eq!(get(&v, "key_two.address_hex"), "412b5ad5c4795c026514f8317c7a215e218dccd6cf");
}

#[test]
fn usdt_contract_decodes_to_the_published_hex() {
    let v = vectors();
    let usdt = address(get(&v, "usdt.address_base58"));
    assert_eq!(usdt.to_hex(), "41a614f803b6fd780986a42c78ec9c7f77e6ded13c");
    assert_eq!(usdt.to_hex(), get(&v, "usdt.address_hex"));
}

#[test]
fn selectors_and_topic() {
    let v = vectors();
    let hex = lucid_core::ids::to_hex;
    assert_eq!(hex(&TRANSFER_SELECTOR), get(&v, "selector.transfer"));
    assert_eq!(hex(&BALANCE_OF_SELECTOR), get(&v, "selector.balance_of"));
    assert_eq!(hex(&TRANSFER_TOPIC), get(&v, "topic.transfer"));
}

#[test]
fn transfer_and_balance_call_data() {
    let v = vectors();
    let to = address(get(&v, "call.to_base58"));
    let amount = MicroUsdt(get(&v, "call.amount").parse().unwrap());
    let data = transfer_call_data(&to, amount);
    assert_eq!(lucid_core::ids::to_hex(&data), get(&v, "call.data_hex"));
    assert_eq!(abi::decode_transfer_call_data(&data).unwrap(), (to, amount));
    let owner = address(get(&v, "key_one.address_base58"));
    assert_eq!(
        lucid_core::ids::to_hex(&balance_of_call_data(&owner)),
        get(&v, "call.balance_of_hex")
    );
}

fn fixed_params(v: &BTreeMap<String, String>) -> TransferParams {
    let number = |name: &str| get(v, name).parse::<i64>().unwrap();
    TransferParams {
        owner: address(get(v, "tx.owner_base58")),
        contract: address(get(v, "tx.contract_base58")),
        to: address(get(v, "tx.to_base58")),
        amount: MicroUsdt(get(v, "tx.amount").parse().unwrap()),
        reference: BlockRef {
            number: get(v, "tx.ref_block_num").parse().unwrap(),
            id: lucid_core::ids::from_hex::<32>("block id", get(v, "tx.ref_block_id_hex")).unwrap(),
        },
        timestamp: UnixMillis(number("tx.timestamp")),
        expiration: UnixMillis(number("tx.expiration")),
        fee_limit_sun: get(v, "tx.fee_limit").parse().unwrap(),
    }
}

#[test]
fn fixed_transaction_raw_bytes_txid_and_signature() {
    let v = vectors();
    let params = fixed_params(&v);
    let key = HotWalletKey::from_hex(get(&v, "tx.owner_secret_hex"), &NODE_SEED).unwrap();
    assert_eq!(key.address(), params.owner);

    let signed = tx::sign_transfer(&key, &params).unwrap();
    assert_eq!(lucid_core::ids::to_hex(&signed.raw), get(&v, "tx.raw_hex"));
    assert_eq!(signed.txid.to_hex(), get(&v, "tx.txid_hex"));
    assert_eq!(signed.signature.to_hex(), get(&v, "tx.signature_hex"));
    assert_eq!(recover(&signed.txid.0, &signed.signature).unwrap(), params.owner);

    // The Python signature, read back from its bytes (v as written and with the +27 offset),
    // recovers the same address.
    let mut bytes: Vec<u8> = (0..65)
        .map(|i| u8::from_str_radix(&get(&v, "tx.signature_hex")[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let python = RecoverableSignature::from_bytes(&bytes).unwrap();
    assert_eq!(recover(&signed.txid.0, &python).unwrap(), params.owner);
    bytes[64] += 27;
    let offset = RecoverableSignature::from_bytes(&bytes).unwrap();
    assert_eq!(recover(&signed.txid.0, &offset).unwrap(), params.owner);

    // The same bytes, as a remote node would return them, pass the remote check.
    let checked = tx::verify_remote_tx(&signed.raw, &ExpectedTransfer::from(&params)).unwrap();
    assert_eq!(checked.txid, signed.txid);
}
