//! Unit tests of the ABI shapes; known answers and properties live in `tests/it`.

use super::*;

fn log(from: &TronAddress, to: &TronAddress, amount: u64) -> EventLog {
    EventLog {
        address: TronAddress::from_account([0xaa; 20]).account().to_vec(),
        topics: vec![
            TRANSFER_TOPIC.to_vec(),
            address_word(from).to_vec(),
            address_word(to).to_vec(),
        ],
        data: Uint256::from_micro(MicroUsdt(amount)).0.to_vec(),
    }
}

#[test]
fn transfer_event_matches_only_the_exact_transfer() {
    let contract = TronAddress::from_account([0xaa; 20]);
    let from = TronAddress::from_account([1; 20]);
    let to = TronAddress::from_account([2; 20]);
    let event = TransferEvent::from_log(&log(&from, &to, 5)).unwrap();
    assert!(event.matches(&contract, &from, &to, MicroUsdt(5)));
    assert!(!event.matches(&contract, &from, &to, MicroUsdt(6)));
    assert!(!event.matches(&contract, &to, &from, MicroUsdt(5)));
    assert!(!event.matches(&from, &from, &to, MicroUsdt(5)));

    let mut other = log(&from, &to, 5);
    other.topics[0][0] ^= 1;
    assert_eq!(TransferEvent::from_log(&other), None);
    let mut short = log(&from, &to, 5);
    short.topics.pop();
    assert_eq!(TransferEvent::from_log(&short), None);
    let mut prefixed = log(&from, &to, 5);
    prefixed.address = contract.as_bytes().to_vec();
    assert_eq!(TransferEvent::from_log(&prefixed), Some(event));
}

#[test]
fn call_data_refusals() {
    let to = TronAddress::from_account([2; 20]);
    let good = transfer_call_data(&to, MicroUsdt(1));
    assert!(decode_transfer_call_data(&good[..67]).is_err());
    let mut selector = good.clone();
    selector[0] = 0;
    assert!(decode_transfer_call_data(&selector).is_err());
    let mut dirty_padding = good.clone();
    dirty_padding[4] = 1;
    assert!(decode_transfer_call_data(&dirty_padding).is_err());
    let mut huge = good.clone();
    huge[36] = 1;
    assert!(decode_transfer_call_data(&huge).is_err());
    assert_eq!(decode_transfer_call_data(&good).unwrap(), (to, MicroUsdt(1)));
}
