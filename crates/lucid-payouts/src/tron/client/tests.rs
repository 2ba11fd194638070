//! Unit tests of the TRON reply parsers: well-formed replies, and malformed, oversized, forged
//! and confused variants of each, which must all be typed errors (never a panic, never a default
//! that passes for a value).

use serde_json::json;

use super::*;
use crate::tron::abi::TRANSFER_TOPIC;

fn txid() -> Txid {
    Txid::of(b"some raw bytes")
}

fn is_malformed(result: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::TronResponse { .. }))
}

fn block_id(number: u64) -> String {
    let mut id = [0xabu8; 32];
    id[..8].copy_from_slice(&number.to_be_bytes());
    hex::encode(id)
}

#[test]
fn now_block_parses_and_refuses_forgeries() {
    let good = json!({
        "blockID": block_id(70_000_123),
        "block_header": { "raw_data": { "number": 70_000_123, "timestamp": 1_700_000_000_000_i64 } }
    });
    let head = parse_now_block(&good).unwrap();
    assert_eq!(head.reference.number, 70_000_123);
    assert_eq!(head.timestamp, UnixMillis(1_700_000_000_000));
    assert_eq!(head.reference.ref_block_hash(), [0xab; 8]);

    let mut wrong_height = good.clone();
    wrong_height["blockID"] = json!(block_id(70_000_124));
    let mut short_id = good.clone();
    short_id["blockID"] = json!("abcd");
    let mut negative_time = good.clone();
    negative_time["block_header"]["raw_data"]["timestamp"] = json!(-5);
    let mut string_number = good.clone();
    string_number["block_header"]["raw_data"]["number"] = json!("70000123");
    for bad in [
        wrong_height,
        short_id,
        negative_time,
        string_number,
        json!({}),
        json!([]),
        json!(null),
        json!({ "blockID": block_id(1) }),
    ] {
        assert!(is_malformed(parse_now_block(&bad)), "{bad}");
    }
}

#[test]
fn energy_fee_needs_exactly_one_positive_price() {
    let good = json!({ "chainParameter": [
        { "key": "getMaintenanceTimeInterval", "value": 21_600_000 },
        { "key": "getEnergyFee", "value": 420 },
        { "key": "getAllowTvmConstantinople" }
    ]});
    assert_eq!(parse_energy_fee(&good).unwrap(), 420);
    for bad in [
        json!({ "chainParameter": [] }),
        json!({ "chainParameter": [{ "key": "getEnergyFee", "value": 0 }] }),
        json!({ "chainParameter": [{ "key": "getEnergyFee", "value": -1 }] }),
        json!({ "chainParameter": [{ "key": "getEnergyFee", "value": 4.2 }] }),
        json!({ "chainParameter": [{ "key": "getEnergyFee" }] }),
        json!({ "chainParameter": [
            { "key": "getEnergyFee", "value": 420 }, { "key": "getEnergyFee", "value": 1 }
        ]}),
        json!({ "chainParameter": {} }),
        json!({}),
    ] {
        assert!(is_malformed(parse_energy_fee(&bad)), "{bad}");
    }
}

#[test]
fn energy_estimate_and_balance_parse_strictly() {
    let ok = json!({ "result": { "result": true }, "energy_used": 64_285 });
    assert_eq!(parse_energy_estimate(&ok).unwrap(), 64_285);
    for bad in [
        json!({ "result": { "result": false }, "energy_used": 64_285 }),
        json!({ "result": {}, "energy_used": 64_285 }),
        json!({ "result": { "result": true } }),
        json!({ "result": { "result": true }, "energy_used": 0 }),
        json!({ "energy_used": 64_285 }),
    ] {
        assert!(is_malformed(parse_energy_estimate(&bad)), "{bad}");
    }

    let word = format!("{:064x}", 12_345_678u64);
    let balance = json!({ "result": { "result": true }, "constant_result": [word] });
    assert_eq!(parse_balance_of(&balance).unwrap(), MicroUsdt(12_345_678));
    let too_big = format!("1{}", "0".repeat(63));
    for bad in [
        json!({ "result": { "result": true }, "constant_result": [] }),
        json!({ "result": { "result": true }, "constant_result": [word, word] }),
        json!({ "result": { "result": true }, "constant_result": ["zz"] }),
        json!({ "result": { "result": true }, "constant_result": ["00"] }),
        json!({ "result": { "result": true }, "constant_result": [7] }),
        json!({ "result": { "result": false }, "constant_result": [word] }),
        json!({ "result": { "result": true }, "constant_result": ["0".repeat(MAX_HEX_CHARS + 2)] }),
    ] {
        assert!(parse_balance_of(&bad).is_err(), "{bad}");
    }
    let overflow = json!({ "result": { "result": true }, "constant_result": [too_big] });
    assert!(matches!(parse_balance_of(&overflow), Err(Error::Abi { .. })));
}

#[test]
fn trigger_reply_is_hex_bounded() {
    let ok = json!({ "result": { "result": true }, "transaction": { "raw_data_hex": "0a0b" } });
    assert_eq!(parse_trigger(&ok).unwrap(), vec![0x0a, 0x0b]);
    let huge = "ab".repeat(MAX_HEX_CHARS);
    for bad in [
        json!({ "result": { "result": true }, "transaction": { "raw_data_hex": huge } }),
        json!({ "result": { "result": true }, "transaction": { "raw_data_hex": "0g" } }),
        json!({ "result": { "result": true }, "transaction": { "raw_data_hex": "abc" } }),
        json!({ "result": { "result": true }, "transaction": {} }),
        json!({ "result": { "result": false, "message": "REVERT" }, "transaction": {} }),
    ] {
        assert!(is_malformed(parse_trigger(&bad)), "{bad}");
    }
}

#[test]
fn accounts_default_absent_numbers_to_zero_but_refuse_wrong_types() {
    assert_eq!(parse_trx_balance(&json!({})).unwrap(), 0);
    assert_eq!(parse_trx_balance(&json!({ "balance": 5_000_000 })).unwrap(), 5_000_000);
    assert!(is_malformed(parse_trx_balance(&json!({ "balance": "5" }))));
    assert!(is_malformed(parse_trx_balance(&json!([]))));
    let resource = parse_account_resource(&json!({ "EnergyLimit": 100, "EnergyUsed": 30 }));
    assert_eq!(resource.unwrap().free_energy(), 70);
    let overused = parse_account_resource(&json!({ "EnergyLimit": 10, "EnergyUsed": 30 }));
    assert_eq!(overused.unwrap().free_energy(), 0);
    assert!(is_malformed(parse_account_resource(&json!({ "EnergyLimit": -1 }))));
}

#[test]
fn broadcast_codes_map_to_outcomes() {
    let parse = |body| parse_broadcast(&body, false).unwrap();
    assert_eq!(parse(json!({ "result": true, "txid": "00" })), BroadcastOutcome::Accepted);
    assert_eq!(parse(json!({ "code": "DUP_TRANSACTION_ERROR" })), BroadcastOutcome::Duplicate);
    assert_eq!(
        parse(json!({ "code": "SIGERROR", "message": "6261642073696721" })),
        BroadcastOutcome::Rejected(RejectCode::SigError)
    );
    assert_eq!(
        parse(json!({ "result": false, "code": "TRANSACTION_EXPIRATION_ERROR" })),
        BroadcastOutcome::Rejected(RejectCode::Expired)
    );
    assert_eq!(
        parse(json!({ "code": "SERVER_BUSY" })),
        BroadcastOutcome::Rejected(RejectCode::Other("SERVER_BUSY".to_owned()))
    );
    // After an unanswered try of the same bytes, a refusal proves nothing; a duplicate does.
    let after_unknown = |body| parse_broadcast(&body, true).unwrap();
    assert_eq!(after_unknown(json!({ "code": "SIGERROR" })), BroadcastOutcome::Unknown);
    assert_eq!(
        after_unknown(json!({ "code": "DUP_TRANSACTION_ERROR" })),
        BroadcastOutcome::Duplicate
    );
    for bad in [
        json!({}),
        json!({ "result": false }),
        json!({ "result": "true" }),
        json!({ "code": "" }),
        json!({ "code": "sigerror" }),
        json!({ "code": "X".repeat(65) }),
        json!("ok"),
    ] {
        assert!(is_malformed(parse_broadcast(&bad, false)), "{bad}");
    }
}

#[test]
fn transaction_lookups_refuse_replies_about_another_txid() {
    let id = txid();
    assert!(!parse_transaction_known(&json!({}), &id).unwrap());
    assert!(parse_transaction_known(&json!({ "txID": id.to_hex() }), &id).unwrap());
    assert!(parse_transaction_known(&json!({ "txID": id.to_hex().to_uppercase() }), &id).unwrap());
    let other = Txid::of(b"other");
    assert!(is_malformed(parse_transaction_known(&json!({ "txID": other.to_hex() }), &id)));
    assert!(is_malformed(parse_transaction_known(&json!({ "ret": [] }), &id)));
    assert!(is_malformed(parse_transaction_known(&json!(null), &id)));
}

fn word(account: [u8; 20]) -> String {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&account);
    hex::encode(word)
}

fn info(result: &str, to: &TronAddress, amount: u64) -> serde_json::Value {
    let contract = TronAddress::from_account([7; 20]);
    let from = TronAddress::from_account([1; 20]);
    json!({
        "id": txid().to_hex(),
        "fee": 13_000_000,
        "blockNumber": 77,
        "blockTimeStamp": 1_700_000_003_000_i64,
        "contract_address": contract.to_hex(),
        "receipt": { "energy_usage_total": 64_285, "result": result },
        "log": [{
            "address": hex::encode(contract.account()),
            "topics": [hex::encode(TRANSFER_TOPIC), word(from.account()), word(to.account())],
            "data": format!("{amount:064x}"),
        }],
    })
}

#[test]
fn transaction_info_parses_receipts_and_logs() {
    let id = txid();
    assert_eq!(parse_transaction_info(&json!({}), &id).unwrap(), None);
    let contract = TronAddress::from_account([7; 20]);
    let from = TronAddress::from_account([1; 20]);
    let to = TronAddress::from_account([2; 20]);
    let parsed = parse_transaction_info(&info("SUCCESS", &to, 9_900_000), &id).unwrap().unwrap();
    assert!(parsed.success);
    assert_eq!((parsed.block, parsed.energy_used, parsed.fee_sun), (77, 64_285, 13_000_000));
    assert_eq!(parsed.contract, Some(contract));
    assert!(parsed.has_transfer(&contract, &from, &to, MicroUsdt(9_900_000)));
    assert!(!parsed.has_transfer(&contract, &from, &to, MicroUsdt(9_900_001)));
    assert!(!parsed.has_transfer(&contract, &to, &from, MicroUsdt(9_900_000)));
    assert!(!parsed.has_transfer(&from, &from, &to, MicroUsdt(9_900_000)));

    let mut reverted = info("OUT_OF_ENERGY", &to, 9_900_000);
    reverted["result"] = json!("FAILED");
    reverted["log"] = json!([]);
    let parsed = parse_transaction_info(&reverted, &id).unwrap().unwrap();
    assert!(!parsed.success);
    assert_eq!(parsed.result, "OUT_OF_ENERGY");
}

#[test]
fn transaction_info_refuses_malformed_and_forged_receipts() {
    let id = txid();
    let to = TronAddress::from_account([2; 20]);
    let good = info("SUCCESS", &to, 1);
    let mut variants = Vec::new();
    let mut other_id = good.clone();
    other_id["id"] = json!(Txid::of(b"x").to_hex());
    variants.push(other_id);
    let mut failed_success = good.clone();
    failed_success["result"] = json!("FAILED");
    variants.push(failed_success);
    let mut odd_top_result = good.clone();
    odd_top_result["result"] = json!("SUCCESS");
    variants.push(odd_top_result);
    for key in ["id", "blockNumber", "receipt"] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(key);
        variants.push(missing);
    }
    let mut no_result = good.clone();
    no_result["receipt"] = json!({ "energy_usage_total": 1 });
    variants.push(no_result);
    let mut many_logs = good.clone();
    many_logs["log"] = json!(vec![good["log"][0].clone(); MAX_LOGS + 1]);
    variants.push(many_logs);
    let mut bad_hex = good.clone();
    bad_hex["log"][0]["data"] = json!("xyz");
    variants.push(bad_hex);
    let mut bad_contract = good.clone();
    bad_contract["contract_address"] = json!("41zz");
    variants.push(bad_contract);
    let mut negative_fee = good.clone();
    negative_fee["fee"] = json!(-1);
    variants.push(negative_fee);
    for bad in variants {
        assert!(is_malformed(parse_transaction_info(&bad, &id)), "{bad}");
    }
}

#[test]
fn broadcast_bytes_refuse_corrupted_stored_attempts() {
    use crate::tron::key::HotWalletKey;
    use crate::tron::tx::{BlockRef, TransferParams, sign_transfer};
    let key = HotWalletKey::from_bytes(&[0x11; 32], &[0x22; 32]).unwrap();
    let params = TransferParams {
        owner: key.address(),
        contract: TronAddress::from_account([7; 20]),
        to: TronAddress::from_account([2; 20]),
        amount: MicroUsdt(9_900_000),
        reference: BlockRef { number: 5, id: [3; 32] },
        timestamp: UnixMillis(1_000),
        expiration: UnixMillis(61_000),
        fee_limit_sun: 30_000_000,
    };
    let signed = sign_transfer(&key, &params).unwrap();
    let owner = key.address();
    let sig = signed.signature.as_bytes().to_vec();
    let ok = BroadcastBytes::from_stored(&signed.txid.0, &signed.raw, &sig, &owner).unwrap();
    assert_eq!(ok, BroadcastBytes::from_signed(&signed).unwrap());
    assert_eq!(ok.txid(), signed.txid);

    let mut raw = signed.raw.clone();
    raw[3] ^= 1;
    assert!(BroadcastBytes::from_stored(&signed.txid.0, &raw, &sig, &owner).is_err());
    let mut bad_sig = sig.clone();
    bad_sig[10] ^= 1;
    assert!(BroadcastBytes::from_stored(&signed.txid.0, &signed.raw, &bad_sig, &owner).is_err());
    let stranger = TronAddress::from_account([9; 20]);
    assert!(BroadcastBytes::from_stored(&signed.txid.0, &signed.raw, &sig, &stranger).is_err());
    assert!(BroadcastBytes::from_stored(&signed.txid.0, &signed.raw, &sig[..64], &owner).is_err());
}

mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Arbitrary JSON, biased towards the field names TRON replies use, so that near-miss
    /// shapes (right names, wrong types or values) are common.
    fn json_value() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "blockID",
            "block_header",
            "raw_data",
            "number",
            "timestamp",
            "chainParameter",
            "key",
            "value",
            "getEnergyFee",
            "result",
            "energy_used",
            "constant_result",
            "transaction",
            "raw_data_hex",
            "balance",
            "EnergyLimit",
            "EnergyUsed",
            "code",
            "txID",
            "id",
            "blockNumber",
            "receipt",
            "result",
            "log",
            "address",
            "topics",
            "data",
            "fee",
            "contract_address",
            "energy_usage_total",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[0-9a-fA-F]{0,80}".prop_map(Value::from),
            "[A-Z_]{0,20}".prop_map(Value::from),
            Just(Value::from("SUCCESS")),
            Just(Value::from("FAILED")),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(names.clone(), inner, 0..6).prop_map(|map| {
                    Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        /// Every parser answers a value or a typed error for any JSON: never a panic.
        #[test]
        fn parsers_never_panic(body in json_value(), earlier_unknown in any::<bool>()) {
            let id = txid();
            let _ = parse_now_block(&body);
            let _ = parse_energy_fee(&body);
            let _ = parse_energy_estimate(&body);
            let _ = parse_balance_of(&body);
            let _ = parse_trigger(&body);
            let _ = parse_trx_balance(&body);
            let _ = parse_account_resource(&body);
            let _ = parse_broadcast(&body, earlier_unknown);
            let _ = parse_transaction_known(&body, &id);
            if let Ok(Some(info)) = parse_transaction_info(&body, &id) {
                // Whatever parsed is about our txid only.
                prop_assert_eq!(body["id"].as_str().map(str::to_ascii_lowercase), Some(id.to_hex()));
                let _ = info.has_transfer(&TronAddress::from_account([7; 20]),
                    &TronAddress::from_account([1; 20]), &TronAddress::from_account([2; 20]),
                    MicroUsdt(1));
            }
        }

        /// A refusal after an unanswered try of the same bytes never reads as definitive.
        #[test]
        fn refusals_after_unknown_prove_nothing(code in "[A-Z_]{1,30}") {
            let body = json!({ "code": code });
            let outcome = parse_broadcast(&body, true).unwrap();
            prop_assert!(matches!(outcome, BroadcastOutcome::Unknown | BroadcastOutcome::Duplicate));
        }
    }
}
