//! The canonical signing codec: the only byte encoding that is ever signed or hashed.
//!
//! Integers are fixed-width big-endian; booleans are exactly 0x00 or 0x01; fixed arrays are raw;
//! variable bytes and strings are `u32 length ‖ bytes` with a per-field maximum; `Option<T>` is
//! `0x00 | 0x01 ‖ T`; enums are `u8 tag ‖ fields`; lists are `u32 count ‖ items` with a bounded
//! count. Decoding is strict (unknown tags, bad booleans, over-long fields, invalid UTF-8 and
//! trailing bytes are errors), so `encode(decode(b)) == b` for every accepted `b`.
//! No floats, maps or JSON ever appear here.

use crate::ids::{Digest, IdParseError, NodeId, PoolId};
use crate::time::{Slot, UnixMillis};

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("input ends inside field `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes remain after the last field.
    #[error("{count} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
    /// A length prefix exceeds the field's maximum.
    #[error("field `{field}` is {len} bytes long, the maximum is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// A tag byte (enum, option, boolean) has no meaning.
    #[error("field `{field}` has unknown tag {tag:#04x}")]
    UnknownTag {
        /// The field.
        field: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A string field is not valid UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// An identifier field holds bytes that are not a valid identifier.
    #[error("field `{field}` is not a valid identifier: {source}")]
    InvalidId {
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: IdParseError,
    },
    /// A field's value violates a rule of its type.
    #[error("field `{field}` is invalid: {rule}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The rule broken.
        rule: &'static str,
    },
    /// The envelope does not start with the `LUCID\0` magic.
    #[error("not a Lucid message (bad magic)")]
    BadMagic,
    /// The envelope names a message type this node does not know.
    #[error("unknown message type `{type_name}`")]
    UnknownType {
        /// The type name found (lossy, for diagnostics only).
        type_name: String,
    },
    /// The envelope names a version of the type this node does not know.
    #[error("unsupported version {version} of `{type_name}`")]
    UnsupportedVersion {
        /// The type name.
        type_name: &'static str,
        /// The version found.
        version: u16,
    },
}

impl crate::HasKind for DecodeError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidInput
    }
}

/// Appends canonical encodings to a byte buffer. Methods chain.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    /// Big-endian u16.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian u32.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian u64.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian two's-complement i64.
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// 0x00 or 0x01.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    /// Raw bytes of a fixed-size field (no length prefix).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// `u32 length ‖ bytes`. Callers bound the length by the field's documented maximum, which
    /// is always far below `u32::MAX`; a longer input is a bug and is truncated to the prefix
    /// value so the output stays self-consistent (and decoding then refuses it as too long).
    pub fn lp(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!(u32::try_from(bytes.len()).is_ok(), "length-prefixed field over 4 GiB");
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.out.extend_from_slice(&bytes[..len as usize]);
        self
    }

    /// A slot number (u64).
    pub fn slot(&mut self, slot: Slot) -> &mut Self {
        self.u64(slot.0)
    }

    /// A timestamp (i64 unix milliseconds).
    pub fn time(&mut self, time: UnixMillis) -> &mut Self {
        self.i64(time.0)
    }

    /// A node id (32 raw bytes).
    pub fn node_id(&mut self, node: &NodeId) -> &mut Self {
        self.raw(node.as_bytes())
    }

    /// A pool id (16 raw bytes).
    pub fn pool_id(&mut self, pool: &PoolId) -> &mut Self {
        self.raw(pool.as_bytes())
    }

    /// A digest (32 raw bytes).
    pub fn digest(&mut self, digest: &Digest) -> &mut Self {
        self.raw(digest.as_bytes())
    }
}

/// Reads canonical encodings from a byte slice, strictly.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { count: self.input.len() })
        }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < len {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Big-endian i64.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// Exactly 0x00 or 0x01.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { field, tag }),
        }
    }

    /// An option tag: `false` for 0x00 (absent), `true` for 0x01 (present, value follows).
    pub fn option_tag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        self.bool(field)
    }

    /// `u32 length ‖ bytes` with at most `max` bytes.
    pub fn lp(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(field, len)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub fn lp_str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let bytes = self.lp(field, max)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// A list count of at most `max` items.
    pub fn count(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let len = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        Ok(len)
    }

    /// A slot number.
    pub fn slot(&mut self, field: &'static str) -> Result<Slot, DecodeError> {
        self.u64(field).map(Slot)
    }

    /// A timestamp.
    pub fn time(&mut self, field: &'static str) -> Result<UnixMillis, DecodeError> {
        self.i64(field).map(UnixMillis)
    }

    /// A node id, validated (canonical, not small-order).
    pub fn node_id(&mut self, field: &'static str) -> Result<NodeId, DecodeError> {
        NodeId::from_bytes(self.array(field)?)
            .map_err(|source| DecodeError::InvalidId { field, source })
    }

    /// A node id, recognised by `known` when it returns the id for these bytes (an id validated
    /// before, for example a registered node), else validated like [`Reader::node_id`].
    pub fn node_id_with(
        &mut self,
        field: &'static str,
        known: &dyn Fn(&[u8; 32]) -> Option<NodeId>,
    ) -> Result<NodeId, DecodeError> {
        let bytes: [u8; 32] = self.array(field)?;
        match known(&bytes) {
            Some(node) if node.as_bytes() == &bytes => Ok(node),
            _ => {
                NodeId::from_bytes(bytes).map_err(|source| DecodeError::InvalidId { field, source })
            }
        }
    }

    /// A pool id.
    pub fn pool_id(&mut self, field: &'static str) -> Result<PoolId, DecodeError> {
        self.array(field).map(PoolId::from_bytes)
    }

    /// A digest.
    pub fn digest(&mut self, field: &'static str) -> Result<Digest, DecodeError> {
        self.array(field).map(Digest::from_bytes)
    }
}

#[cfg(test)]
mod tests;
