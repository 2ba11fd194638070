//! Property tests of invariants I17 (amount ↔ uint256, ABI round trip), I18 (Base58Check) and
//! I19 (txid, signature recovery, refusal of tampered transactions) of `pools-payouts.md` §11.

use lucid_core::{MicroUsdt, UnixMillis};
use lucid_payouts::Error;
use lucid_payouts::tron::abi::{Uint256, decode_transfer_call_data, transfer_call_data};
use lucid_payouts::tron::tx::{self, BlockRef, ExpectedTransfer, TransferParams, Txid, proto};
use lucid_payouts::tron::{AddressError, HotWalletKey, TronAddress, recover};
use proptest::prelude::*;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const NODE_SEED: [u8; 32] = [0x77; 32];
const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

fn account() -> impl Strategy<Value = [u8; 20]> {
    proptest::array::uniform20(any::<u8>())
}

fn secret() -> impl Strategy<Value = [u8; 32]> {
    // Any 32 bytes with a non-zero leading byte below 0xff are a valid secret (below the order).
    (1u8..0xff, proptest::array::uniform31(any::<u8>())).prop_map(|(first, rest)| {
        let mut secret = [0u8; 32];
        secret[0] = first;
        secret[1..].copy_from_slice(&rest);
        secret
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// I18: every 0x41 payload round-trips through Base58Check and hex.
    #[test]
    fn base58check_round_trips(account in account()) {
        let address = TronAddress::from_account(account);
        let text = address.to_base58();
        prop_assert_eq!(text.len(), 34);
        prop_assert!(text.starts_with('T'));
        prop_assert_eq!(TronAddress::from_base58(&text), Ok(address));
        prop_assert_eq!(TronAddress::from_hex(&address.to_hex()), Ok(address));
    }

    /// I18: any version byte other than 0x41 is refused, with a valid checksum.
    #[test]
    fn other_version_bytes_are_refused(version in any::<u8>(), account in account()) {
        prop_assume!(version != 0x41);
        let mut payload = [0u8; 21];
        payload[0] = version;
        payload[1..].copy_from_slice(&account);
        prop_assert_eq!(TronAddress::from_bytes(payload), Err(AddressError::Version(version)));
        let text = bs58::encode(payload).with_check().into_string();
        prop_assert!(TronAddress::from_base58(&text).is_err());
        let hex = lucid_core::ids::to_hex(&payload);
        prop_assert_eq!(TronAddress::from_hex(&hex), Err(AddressError::Version(version)));
    }

    /// I17: micro-USDT ↔ uint256 is the identity.
    #[test]
    fn amount_uint256_identity(amount in any::<u64>()) {
        let word = Uint256::from_micro(MicroUsdt(amount));
        prop_assert_eq!(word.to_micro(), Ok(MicroUsdt(amount)));
        // The word is the big-endian number itself.
        let mut expected = [0u8; 32];
        expected[24..].copy_from_slice(&amount.to_be_bytes());
        prop_assert_eq!(word.0, expected);
    }

    /// I17: transfer call data decodes back to (to, amount).
    #[test]
    fn transfer_call_data_round_trips(account in account(), amount in any::<u64>()) {
        let to = TronAddress::from_account(account);
        let data = transfer_call_data(&to, MicroUsdt(amount));
        prop_assert_eq!(data.len(), 68);
        prop_assert_eq!(decode_transfer_call_data(&data), Ok((to, MicroUsdt(amount))));
    }

    /// I19: txid == SHA-256(raw), the signature recovers the hot wallet, the remote check accepts
    /// our own bytes, and a transaction differing in owner, contract, data or fee limit is refused.
    #[test]
    fn transactions_are_bound_to_what_we_meant(
        secret in secret(),
        to in account(),
        amount in 1u64..=u64::MAX,
        block in any::<u64>(),
        block_id in proptest::array::uniform32(any::<u8>()),
        timestamp in 1_600_000_000_000i64..2_000_000_000_000,
        lifetime in 1i64..=tx::MAX_EXPIRATION_MS,
        fee_limit in 1u64..=15_000_000_000,
        tamper in 0usize..4,
        flip in any::<u8>(),
    ) {
        let key = HotWalletKey::from_bytes(&secret, &NODE_SEED).unwrap();
        let params = TransferParams {
            owner: key.address(),
            contract: TronAddress::from_base58(USDT).unwrap(),
            to: TronAddress::from_account(to),
            amount: MicroUsdt(amount),
            reference: BlockRef { number: block, id: block_id },
            timestamp: UnixMillis(timestamp),
            expiration: UnixMillis(timestamp + lifetime),
            fee_limit_sun: fee_limit,
        };
        prop_assume!(params.to != params.owner && params.to != params.contract);
        let signed = tx::sign_transfer(&key, &params).unwrap();
        let sha: [u8; 32] = Sha256::digest(&signed.raw).into();
        prop_assert_eq!(signed.txid, Txid(sha));
        prop_assert_eq!(recover(&signed.txid.0, &signed.signature), Ok(key.address()));
        let expected = ExpectedTransfer::from(&params);
        let checked = tx::verify_remote_tx(&signed.raw, &expected);
        prop_assert_eq!(checked.map(|t| t.txid), Ok(signed.txid));

        // Tamper with one checked field, keep the encoding canonical, and expect a refusal.
        let mut raw = proto::Raw::decode(signed.raw.as_slice()).unwrap();
        let parameter = raw.contract[0].parameter.clone().unwrap();
        let mut trigger = proto::TriggerSmartContract::decode(parameter.value.as_slice()).unwrap();
        let bit = 1u8 << (flip % 8);
        let field = match tamper {
            0 => { trigger.owner_address[1 + usize::from(flip % 20)] ^= bit; "owner" }
            1 => { trigger.contract_address[1 + usize::from(flip % 20)] ^= bit; "contract" }
            2 => { trigger.data[usize::from(flip) % 68] ^= bit; "data" }
            _ => { raw.fee_limit ^= i64::from(bit); "fee limit" }
        };
        if let Some(parameter) = raw.contract[0].parameter.as_mut() {
            parameter.value = trigger.encode_to_vec();
        }
        let result = tx::verify_remote_tx(&raw.encode_to_vec(), &expected);
        prop_assert_eq!(result, Err(Error::RemoteTransaction { field }));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// I18: every single-character mutation of a valid address is refused. (A mutation keeps a
    /// valid checksum with probability 2^-32; 64 cases of 34 × 57 mutations keep a spurious
    /// failure below one run in 30 000.)
    #[test]
    fn every_single_character_mutation_is_refused(account in account()) {
        let text = TronAddress::from_account(account).to_base58();
        for position in 0..text.len() {
            for &replacement in BASE58 {
                let mut bytes = text.clone().into_bytes();
                if bytes[position] == replacement {
                    continue;
                }
                bytes[position] = replacement;
                let mutated = String::from_utf8(bytes).unwrap();
                prop_assert!(TronAddress::from_base58(&mutated).is_err(), "{} accepted", mutated);
            }
        }
    }
}
