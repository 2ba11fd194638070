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
