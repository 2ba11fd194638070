//! Tests of the envelope.

use super::*;
use crate::codec::Reader;

#[derive(Debug, PartialEq)]
struct Ping {
    node: NodeId,
    n: u64,
}

impl Message for Ping {
    const TYPE_NAME: &'static str = "ping";
    const VERSION: u16 = 1;
    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node).u64(self.n);
    }
    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ping { node: reader.node_id("node")?, n: reader.u64("n")? })
    }
    fn signer(&self) -> NodeId {
        self.node
    }
}

fn net() -> NetworkId {
    NetworkId::derive("test", crate::time::UnixMillis(0))
}

#[test]
fn envelope_layout() {
    let key = NodeKey::from_seed(&[1; 32]);
    let ping = Ping { node: key.node_id(), n: 5 };
    let bytes = ping.to_signed_bytes(&net());
    assert_eq!(&bytes[..6], b"LUCID\0");
    assert_eq!(bytes[6], 4);
    assert_eq!(&bytes[7..11], b"ping");
    assert_eq!(&bytes[11..13], &[0, 1]);
    assert_eq!(&bytes[13..45], net().as_bytes());
    assert_eq!(bytes.len(), 45 + 32 + 8);
    let (network, decoded) = Ping::from_signed_bytes(&bytes).unwrap();
    assert_eq!(network, net());
    assert_eq!(decoded, ping);
}

#[test]
fn strict_envelope_decoding() {
    let key = NodeKey::from_seed(&[1; 32]);
    let bytes = Ping { node: key.node_id(), n: 5 }.to_signed_bytes(&net());
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(Ping::from_signed_bytes(&bad), Err(DecodeError::BadMagic));
    let mut v2 = bytes.clone();
    v2[12] = 2;
    assert!(matches!(
        Ping::from_signed_bytes(&v2),
        Err(DecodeError::UnsupportedVersion { version: 2, .. })
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(Ping::from_signed_bytes(&trailing), Err(DecodeError::TrailingBytes { .. })));
    assert!(matches!(
        Ping::from_signed_bytes(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut other_type = bytes.clone();
    other_type[7] = b'q';
    assert!(matches!(Ping::from_signed_bytes(&other_type), Err(DecodeError::UnknownType { .. })));
    let mut upper = bytes;
    upper[7] = b'P';
    assert!(matches!(Ping::from_signed_bytes(&upper), Err(DecodeError::InvalidValue { .. })));
    let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(Ping::from_signed_bytes(&huge), Err(DecodeError::TooLong { .. })));
}

#[test]
fn digest_ignores_the_signature() {
    let key = NodeKey::from_seed(&[1; 32]);
    let signed = Ping { node: key.node_id(), n: 5 }.sign(&net(), &key);
    assert!(signed.verify(&key.node_id()));
    let other_sig =
        SignedMessage::new(signed.bytes().to_vec(), crate::keys::Signature::from_bytes([0; 64]));
    assert_eq!(signed.digest(), other_sig.digest());
    assert!(!other_sig.verify(&key.node_id()));
    assert!(format!("{signed:?}").contains("digest"));
}

#[test]
fn the_json_form_is_base64_and_hex_and_reads_back_exactly() {
    let key = NodeKey::from_seed(&[1; 32]);
    let signed = Ping { node: key.node_id(), n: 5 }.sign(&net(), &key);
    let message = signed.message_base64();
    assert!(message.starts_with("TFVDSUQA"), "base64 of the LUCID\\0 magic: {message}");
    let signature = signed.signature().to_hex();
    let read = SignedMessage::from_json_form(&message, &signature).unwrap();
    assert_eq!(read, signed);
    assert!(read.verify(&key.node_id()));
}

#[test]
fn the_json_form_refuses_what_is_not_its_one_encoding() {
    let key = NodeKey::from_seed(&[1; 32]);
    let signed = Ping { node: key.node_id(), n: 5 }.sign(&net(), &key);
    let message = signed.message_base64();
    let signature = signed.signature().to_hex();
    let refused = |message: &str, signature: &str| {
        SignedMessage::from_json_form(message, signature).expect_err(message)
    };
    // Hex of the bytes (the form of an earlier API), unpadded, URL-safe alphabet, whitespace.
    let hex = crate::ids::to_hex(signed.bytes());
    assert!(matches!(
        refused(&hex, &signature),
        DecodeError::InvalidValue { field: "message", .. }
    ));
    // 85 bytes: base64 ends in one `=`.
    assert!(message.ends_with("=="));
    assert!(matches!(
        refused(message.trim_end_matches('='), &signature),
        DecodeError::InvalidValue { .. }
    ));
    let url_safe = "-_-_".to_owned() + &message[4..];
    assert!(matches!(refused(&url_safe, &signature), DecodeError::InvalidValue { .. }));
    assert!(matches!(
        refused(&format!(" {message}"), &signature),
        DecodeError::InvalidValue { .. }
    ));
    // The last data character with a trailing bit set decodes to the same bytes in a lax
    // decoder; here it is a second encoding, so it is refused.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut trailing_bits = message.clone().into_bytes();
    let last_data = trailing_bits.len() - 3;
    let value = ALPHABET.iter().position(|&c| c == trailing_bits[last_data]).unwrap();
    assert_eq!(value & 0b1111, 0, "a canonical last character has no trailing bits");
    trailing_bits[last_data] = ALPHABET[value | 1];
    let trailing_bits = String::from_utf8(trailing_bits).unwrap();
    assert!(matches!(refused(&trailing_bits, &signature), DecodeError::InvalidValue { .. }));
    // Oversized: refused by length before any decoding.
    let huge = "A".repeat(MAX_MESSAGE_BASE64 + 4);
    assert!(matches!(refused(&huge, &signature), DecodeError::TooLong { field: "message", .. }));
    let one_too_many = BASE64.encode(vec![7u8; MAX_MESSAGE_BYTES + 1]);
    assert_eq!(one_too_many.len(), MAX_MESSAGE_BASE64, "the same number of base64 groups");
    assert!(matches!(
        refused(&one_too_many, &signature),
        DecodeError::TooLong { field: "message", len, .. } if len == MAX_MESSAGE_BYTES + 1
    ));
    // The largest message fits.
    let largest = BASE64.encode(vec![7u8; MAX_MESSAGE_BYTES]);
    assert_eq!(largest.len(), MAX_MESSAGE_BASE64);
    assert!(SignedMessage::from_json_form(&largest, &signature).is_ok());
    // The signature: 128 lowercase hex, nothing else.
    assert!(matches!(refused(&message, "00"), DecodeError::InvalidId { field: "signature", .. }));
    assert!(matches!(
        refused(&message, &signature.to_uppercase()),
        DecodeError::InvalidId { field: "signature", .. }
    ));
}
