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
//! - A real signed USDT `transfer` on the Nile testnet (contract
//!   `TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf`), as a TRON node returned it from
//!   `/wallet/gettransactionbyid` (`raw_data_hex`, `txID`, `signature`), quoted in the test suite of
//!   a public Go TRON client: see `real_chain_transaction`. java-tron made those bytes and some
//!   wallet signed them, so they test our encoding and signature rules against the chain itself.

use std::collections::BTreeMap;

use lucid_core::{MicroUsdt, UnixMillis};
use lucid_payouts::Error;
use lucid_payouts::tron::abi::{
    self, BALANCE_OF_SELECTOR, TRANSFER_SELECTOR, TRANSFER_TOPIC, balance_of_call_data,
    transfer_call_data,
};
use lucid_payouts::tron::tx::{self, BlockRef, ExpectedTransfer, TransferParams, Txid};
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

/// Fields of the real Nile transaction (see the module doc), as the node's JSON gave them.
const REAL_RAW_HEX: &str = concat!(
    "0a028ad92208eaef69105495eb1540f09fc0cfcd335aae01081f12a9010a31747970652e676f6f676c6561706973",
    "2e636f6d2f70726f746f636f6c2e54726967676572536d617274436f6e747261637412740a1541495511a493d8c3",
    "62be4267224e6d81013a6862ee121541eca9bc828a3005b9a3b909f2cc5c2a54794de05f2244a9059cbb00000000",
    "000000000000004150125bea243a640bf85348873b6c4f3c517aee7a000000000000000000000000000000000000",
    "00000000000000000000000000017090cbbccfcd33900180c2d72f",
);
const REAL_TXID: &str = "c70b20da8cb8d96a99c1aceb283412acb9dea313a9e467178431a3c6ae8b9f08";
const REAL_SIGNATURE: &str = concat!(
    "1788bf0281f67c42f5a09322523edee9969e808a863776f21ab6543de9dd42ca",
    "0e4955577879df8074086c620eb96709ba9a95d60a166de190a081e8d69801da00",
);

fn bytes_of(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
}

#[test]
fn real_chain_transaction() {
    let owner = TronAddress::from_hex("41495511a493d8c362be4267224e6d81013a6862ee").unwrap();
    let contract = TronAddress::from_hex("41eca9bc828a3005b9a3b909f2cc5c2a54794de05f").unwrap();
    assert_eq!(contract.to_base58(), "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf");
    let to = TronAddress::from_hex("4150125bea243a640bf85348873b6c4f3c517aee7a").unwrap();
    let raw = bytes_of(REAL_RAW_HEX);

    // txid = SHA-256(raw_data bytes), as the node computed it, and the wallet's signature
    // recovers the owner.
    assert_eq!(Txid::of(&raw).to_hex(), REAL_TXID);
    let signature = RecoverableSignature::from_bytes(&bytes_of(REAL_SIGNATURE)).unwrap();
    assert_eq!(recover(&Txid::of(&raw).0, &signature).unwrap(), owner);

    // That wallet wrote the recipient's ABI word as 11 zero bytes ‖ 0x41 ‖ 20 bytes (the EVM
    // reads only the low 20 bytes, so it still paid `to`). It is not the canonical call data of
    // `pools-payouts.md` §7, so the remote check refuses it: a node handing this back to us for
    // signing would be refused at `data`.
    let expected = ExpectedTransfer {
        owner,
        contract,
        to,
        amount: MicroUsdt(1),
        fee_limit_sun: 100_000_000,
        expiration: UnixMillis(1_773_182_914_544),
    };
    assert_eq!(
        tx::verify_remote_tx(&raw, &expected),
        Err(Error::RemoteTransaction { field: "data" })
    );

    // Building the same transfer locally gives the node's bytes except that one 0x41, which we
    // write as 0x00: the protobuf framing, TAPOS, times and fee limit agree byte for byte. Only
    // the low two bytes of the block number and bytes 8..16 of the block id enter (TAPOS).
    let mut id = [0u8; 32];
    id[8..16].copy_from_slice(&bytes_of("eaef69105495eb15"));
    let params = TransferParams {
        owner,
        contract,
        to,
        amount: MicroUsdt(1),
        reference: BlockRef { number: 0x8ad9, id },
        timestamp: UnixMillis(1_773_182_854_544),
        expiration: expected.expiration,
        fee_limit_sun: expected.fee_limit_sun,
    };
    let built = tx::build_transfer(&params).unwrap();
    let canonical_hex = REAL_RAW_HEX.replacen("00000000004150125bea", "00000000000050125bea", 1);
    assert_ne!(canonical_hex, REAL_RAW_HEX);
    assert_eq!(lucid_core::ids::to_hex(&built.raw), canonical_hex);
    let checked = tx::verify_remote_tx(&built.raw, &expected).unwrap();
    assert_eq!(checked.txid, built.txid);
}
