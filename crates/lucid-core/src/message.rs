//! The signed-message envelope shared by every message type, and the (bytes, signature) pair in
//! which messages are stored and transported.
//!
//! `signed_bytes = "LUCID" ‖ 0x00 ‖ u8 len ‖ type_name ‖ u16 version ‖ network_id[32] ‖ body`.
//! The signature is Ed25519 over exactly these bytes. A message's identity is its digest,
//! `derive_key(CTX_MESSAGE, signed_bytes)`: the signature is not part of it, so a second valid
//! signature over the same bytes is a duplicate and every node ends with the same digests.
//! Messages are never re-encoded from decoded fields in order to verify them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{CTX_MESSAGE, derive_key};
use crate::ids::{Digest, NetworkId, NodeId};
use crate::keys::{NodeKey, Signature, verify_strict};

/// The first six bytes of every signed message.
pub const MAGIC: &[u8; 6] = b"LUCID\0";

/// Largest signed message accepted anywhere (64 KiB); every catalogued type is far smaller.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest type name.
pub const MAX_TYPE_NAME: usize = 32;

/// A message type of the catalogue: its name, version and canonical body encoding.
pub trait Message: Sized {
    /// The ASCII type name in the envelope (for example `task-proof`).
    const TYPE_NAME: &'static str;
    /// The body version this implementation writes and reads.
    const VERSION: u16;

    /// Appends the canonical body.
    fn encode_body(&self, out: &mut Writer<'_>);

    /// Decodes the body strictly; the reader must be left at the end of the body.
    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The node whose signature makes this message valid.
    fn signer(&self) -> NodeId;

    /// The full signed bytes of this message on `network`.
    fn to_signed_bytes(&self, network: &NetworkId) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let mut writer = Writer::new(&mut out);
        write_header(&mut writer, Self::TYPE_NAME, Self::VERSION, network);
        self.encode_body(&mut writer);
        out
    }

    /// Decodes signed bytes of this type, strictly, returning the network they were made for.
    fn from_signed_bytes(bytes: &[u8]) -> Result<(NetworkId, Self), DecodeError> {
        decode_envelope(bytes, Self::TYPE_NAME, Self::VERSION, Self::decode_body)
    }

    /// Encodes for `network` and signs with `key`.
    ///
    /// The caller must make sure `key` is the signer's key; a mismatch yields a message that
    /// every node rejects as badly signed.
    fn sign(&self, network: &NetworkId, key: &NodeKey) -> SignedMessage {
        debug_assert_eq!(self.signer(), key.node_id(), "signing a message of another node");
        let bytes = self.to_signed_bytes(network);
        let signature = key.sign(&bytes);
        SignedMessage::new(bytes, signature)
    }
}

/// Decodes `bytes` as a message of `type_name` at `version`: size limit, header, `body`, and no
/// trailing bytes. Message types with more than one way to decode their body (for example with
/// a table of known signers) use this directly.
pub fn decode_envelope<T>(
    bytes: &[u8],
    type_name: &'static str,
    version: u16,
    body: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<(NetworkId, T), DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLong {
            field: "message",
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let mut reader = Reader::new(bytes);
    let header = read_header(&mut reader)?;
    if header.type_name != type_name {
        return Err(DecodeError::UnknownType { type_name: header.type_name.to_owned() });
    }
    if header.version != version {
        return Err(DecodeError::UnsupportedVersion { type_name, version: header.version });
    }
    let message = body(&mut reader)?;
    reader.finish()?;
    Ok((header.network, message))
}

/// The decoded envelope header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The message type name.
    pub type_name: &'a str,
    /// The body version.
    pub version: u16,
    /// The network the message was made for.
    pub network: NetworkId,
}

/// Writes the envelope header.
pub fn write_header(out: &mut Writer<'_>, type_name: &str, version: u16, network: &NetworkId) {
    debug_assert!(type_name.len() <= MAX_TYPE_NAME && type_name.is_ascii());
    let len = u8::try_from(type_name.len()).unwrap_or(u8::MAX);
    out.raw(MAGIC).u8(len).raw(type_name.as_bytes()).u16(version).raw(network.as_bytes());
}

/// Reads and checks the envelope header (magic, ASCII type name).
pub fn read_header<'a>(reader: &mut Reader<'a>) -> Result<Header<'a>, DecodeError> {
    if reader.take("magic", MAGIC.len())? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let len = usize::from(reader.u8("type_name length")?);
    if len == 0 || len > MAX_TYPE_NAME {
        return Err(DecodeError::InvalidValue {
            field: "type_name",
            rule: "must be 1..=32 bytes long",
        });
    }
    let raw = reader.take("type_name", len)?;
    if !raw.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') {
        return Err(DecodeError::InvalidValue {
            field: "type_name",
            rule: "must be lowercase ASCII letters, digits and dashes",
        });
    }
    let type_name =
        std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { field: "type_name" })?;
    let version = reader.u16("version")?;
    let network = NetworkId::from_bytes(reader.array("network_id")?);
    Ok(Header { type_name, version, network })
}

/// A message as stored and transported: the exact signed bytes and one signature over them.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedMessage {
    bytes: Vec<u8>,
    signature: Signature,
}

impl SignedMessage {
    /// Pairs bytes with a signature; nothing is checked here.
    pub fn new(bytes: Vec<u8>, signature: Signature) -> Self {
        SignedMessage { bytes, signature }
    }

    /// The signed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Consumes the pair.
    pub fn into_parts(self) -> (Vec<u8>, Signature) {
        (self.bytes, self.signature)
    }

    /// The message digest: `derive_key(CTX_MESSAGE, signed_bytes)`.
    pub fn digest(&self) -> Digest {
        message_digest(&self.bytes)
    }

    /// Whether the signature is valid for `signer` under the network's one rule.
    pub fn verify(&self, signer: &NodeId) -> bool {
        verify_strict(signer, &self.bytes, &self.signature)
    }

    /// The signed bytes as the JSON form carries them (consensus.md §4.6): standard base64
    /// (RFC 4648 §4) with padding. The signature's form is its `to_hex`.
    pub fn message_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// Reads the pair of the JSON form `{"message": base64, "signature": 128 hex}`.
    ///
    /// Text longer than the base64 of one maximal message is refused before decoding, bytes
    /// longer than one message after it, and only
    /// canonical base64 is accepted (padding required, no trailing bits, no whitespace), so
    /// one byte string has exactly one JSON form. Nothing is verified here.
    pub fn from_json_form(message: &str, signature: &str) -> Result<Self, DecodeError> {
        if message.len() > MAX_MESSAGE_BASE64 {
            return Err(DecodeError::TooLong {
                field: "message",
                len: message.len(),
                max: MAX_MESSAGE_BASE64,
            });
        }
        let bytes = BASE64.decode(message).map_err(|_| DecodeError::InvalidValue {
            field: "message",
            rule: "standard base64 with padding",
        })?;
        // The text limit admits up to two bytes more than one message (the last group).
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLong {
                field: "message",
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let signature = signature
            .parse()
            .map_err(|source| DecodeError::InvalidId { field: "signature", source })?;
        Ok(SignedMessage::new(bytes, signature))
    }
}

/// The length of the base64 text of a [`MAX_MESSAGE_BYTES`] message.
pub const MAX_MESSAGE_BASE64: usize = MAX_MESSAGE_BYTES.div_ceil(3) * 4;

impl std::fmt::Debug for SignedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedMessage")
            .field("digest", &self.digest())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The digest of signed bytes.
pub fn message_digest(signed_bytes: &[u8]) -> Digest {
    derive_key(CTX_MESSAGE, &[signed_bytes])
}

#[cfg(test)]
mod tests;
