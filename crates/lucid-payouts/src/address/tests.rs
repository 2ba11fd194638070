//! Unit tests of address parsing; known answers and properties live in `tests/it`.

use super::*;

#[test]
fn usdt_contract_round_trips() {
    let usdt = TronAddress::from_base58("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t").unwrap();
    assert_eq!(usdt.to_hex(), "41a614f803b6fd780986a42c78ec9c7f77e6ded13c");
    assert_eq!(TronAddress::from_hex(&usdt.to_hex()).unwrap(), usdt);
    assert_eq!(usdt.to_string(), "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t");
}

#[test]
fn refusals_are_typed() {
    let cases = [
        ("", AddressError::Pattern),
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6", AddressError::Pattern),
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6tt", AddressError::Pattern),
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60", AddressError::Pattern),
        (" TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", AddressError::Pattern),
        ("XR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", AddressError::Pattern),
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u", AddressError::Checksum),
    ];
    for (text, expected) in cases {
        assert_eq!(TronAddress::from_base58(text), Err(expected), "{text:?}");
    }
    assert_eq!(
        TronAddress::from_hex("42a614f803b6fd780986a42c78ec9c7f77e6ded13c"),
        Err(AddressError::Version(0x42))
    );
    assert_eq!(
        TronAddress::from_hex("41A614F803B6FD780986A42C78EC9C7F77E6DED13C"),
        Err(AddressError::Hex)
    );
}

#[test]
fn destination_is_neither_hot_wallet_nor_contract() {
    let usdt = TronAddress::from_base58("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t").unwrap();
    let wallet = TronAddress::from_account([7; 20]);
    let text = wallet.to_base58();
    assert_eq!(TronAddress::parse_destination(&text, &wallet, &usdt), Err(AddressError::HotWallet));
    let other = TronAddress::from_account([9; 20]);
    assert_eq!(
        TronAddress::parse_destination(&usdt.to_base58(), &other, &usdt),
        Err(AddressError::Contract)
    );
    assert_eq!(TronAddress::parse_destination(&text, &other, &usdt), Ok(wallet));
}
