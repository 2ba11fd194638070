//! `lucid_consensus::store::ProofStore` on SQL: the `registrations`, `proofs`, `evidence` and
//! `seals` tables of `consensus.md` §10, with the semantics of `MemoryProofStore`.
//!
//! Inserts are insert-if-absent. A batch of proofs is written in one transaction. First as if
//! every key were free: multi-row `INSERT … ON CONFLICT DO NOTHING` (SQLite, chunked below the
//! bind-parameter limit) or one binary `COPY` into `proofs` (PostgreSQL; a taken key fails it
//! with a unique violation), without `RETURNING`, and if every row went in, that is the answer.
//! Otherwise the transaction is rolled back and the batch judged key by key: an insert
//! `RETURNING` the keys that went in (`INSERT … SELECT FROM UNNEST` on PostgreSQL), and the keys
//! not returned read back in the same transaction and compared byte for byte to tell a duplicate
//! from a conflict. Rows are inserted in table key order (slot, node, kind), so that they append
//! to the key index and concurrent PostgreSQL transactions take their index locks in one order
//! and cannot deadlock. The `digest` column is not indexed (migration 0008): it is a hash of the
//! signed bytes, which decode to exactly one key, so the primary key already makes it unique.
//!
//! The signed bytes are the source of truth: reads decode them with the canonical decoder and
//! check them against the key and digest columns; a mismatch is an error, never a guess.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use lucid_consensus::proof::{ProofKey, ProofKind, ProofValue, TaskProof};
use lucid_consensus::registration::{Endpoint, Registration};
use lucid_consensus::seal::{SlotSeal, StoredSeal};
use lucid_consensus::store::{
    Evidence, InsertOutcome, ProofStore, StoredProof, StoredRegistration, TASK_PROOF_TYPE,
};
use lucid_consensus::tally::CountedProof;
use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, Signature, SignedMessage, Slot, SlotRange};

use crate::database::Database;
use crate::error::Error;
use crate::sql::{Query, Row, Tx, Value, row_chunks};
use crate::sums::sum_deltas;

/// Columns written per proof row (the bind count of one row).
const PROOF_COLUMNS: usize = 15;
/// Columns bound per key in a read-back (node_id, slot, kind).
const KEY_COLUMNS: usize = 3;

const INSERT_PROOFS: &str = "INSERT INTO proofs (node_id, slot, kind, ts_ms, bytes_transferred, \
     sessions_relayed, chunks_stored, size_bytes, validated_sessions, metrics_digest, \
     signed_bytes, signature, digest, received_at, late) VALUES ";
/// The columns a stored proof is rebuilt from, in the order [`read_proof`] expects.
const PROOF_SELECT: &str =
    "SELECT node_id, slot, kind, signed_bytes, signature, digest, late FROM proofs ";
/// The decoded columns a counted proof is rebuilt from, in the order [`read_counted`] expects.
const COUNTED_SELECT: &str = "SELECT slot, node_id, kind, bytes_transferred, sessions_relayed, \
     chunks_stored, size_bytes, validated_sessions, metrics_digest FROM proofs ";
const SEAL_SELECT: &str = "SELECT node_id, slot, signed_bytes, signature, digest FROM seals ";
const REGISTRATION_SELECT: &str =
    "SELECT node_id, seq, signed_bytes, signature, digest FROM registrations ";

/// A `u64` as a BIGINT, refusing values that would wrap.
pub(crate) fn to_sql(field: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { field, value })
}

fn kind_to_sql(kind: ProofKind) -> i16 {
    i16::from(kind.tag())
}

fn key_values(key: &ProofKey) -> Result<[Value; KEY_COLUMNS], Error> {
    Ok([
        Value::Blob(key.node.as_bytes().to_vec()),
        Value::Int(to_sql("slot", key.slot.0)?),
        Value::Small(kind_to_sql(key.kind)),
    ])
}

/// A key as its column values. Comparing raw columns avoids re-validating the node id (a curve
/// point decompression) for every returned row.
type RawKey = (Vec<u8>, i64, i16);

fn raw_key(key: &ProofKey) -> Result<RawKey, Error> {
    Ok((key.node.as_bytes().to_vec(), to_sql("slot", key.slot.0)?, kind_to_sql(key.kind)))
}

fn read_raw_key(row: &Row) -> Result<RawKey, Error> {
    let action = "reading a proof key";
    Ok((
        row.blob(0).map_err(Error::query(action))?,
        row.int(1).map_err(Error::query(action))?,
        row.small(2).map_err(Error::query(action))?,
    ))
}

fn key_text(node: &[u8], slot: i64, kind: i16) -> String {
    format!("(node {}, slot {slot}, kind {kind})", lucid_core::ids::to_hex(node))
}

/// The row of one proof, in `INSERT_PROOFS` column order.
fn proof_row(proof: &StoredProof, received_at: i64) -> Result<[Value; PROOF_COLUMNS], Error> {
    let p = &proof.proof;
    let (mut bytes_transferred, mut sessions_relayed, mut chunks_stored) = (None, None, None);
    let (mut size_bytes, mut validated_sessions, mut metrics_digest) = (None, None, None);
    match p.value {
        ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: sessions } => {
            bytes_transferred = Some(to_sql("bytes_transferred", bytes)?);
            sessions_relayed = Some(i64::from(sessions));
        }
        ProofValue::Storage { chunks_stored: chunks, size_bytes: size } => {
            chunks_stored = Some(to_sql("chunks_stored", chunks)?);
            size_bytes = Some(to_sql("size_bytes", size)?);
        }
        ProofValue::Validation { validated_sessions: sessions } => {
            validated_sessions = Some(i64::from(sessions));
        }
        ProofValue::Beacon { metrics_digest: digest } => {
            metrics_digest = digest.map(|d| d.as_bytes().to_vec());
        }
    }
    Ok([
        Value::Blob(p.node.as_bytes().to_vec()),
        Value::Int(to_sql("slot", p.slot.0)?),
        Value::Small(kind_to_sql(p.kind())),
        Value::Int(p.ts.0),
        Value::OptInt(bytes_transferred),
        Value::OptInt(sessions_relayed),
        Value::OptInt(chunks_stored),
        Value::OptInt(size_bytes),
        Value::OptInt(validated_sessions),
        Value::OptBlob(metrics_digest),
        Value::Blob(proof.message.bytes().to_vec()),
        Value::Blob(proof.message.signature().as_bytes().to_vec()),
        Value::Blob(proof.digest.as_bytes().to_vec()),
        Value::Int(received_at),
        Value::Bool(proof.late),
    ])
}

/// `INSERT_PROOFS` for PostgreSQL with one array bind per column, in the same column order,
/// returning the keys that went in.
const INSERT_PROOFS_UNNEST_RETURNING: &str = "INSERT INTO proofs (node_id, slot, kind, ts_ms, \
     bytes_transferred, sessions_relayed, chunks_stored, size_bytes, validated_sessions, \
     metrics_digest, signed_bytes, signature, digest, received_at, late) \
     SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int2[], $4::int8[], $5::int8[], \
     $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::bytea[], $11::bytea[], $12::bytea[], \
     $13::bytea[], $14::int8[], $15::bool[]) \
     ON CONFLICT DO NOTHING RETURNING node_id, slot, kind";

/// Inserts `rows` (in `proof_row` column order) with [`INSERT_PROOFS_UNNEST_RETURNING`] and returns the
/// keys that went in (the judging path; a fresh batch goes in by `COPY`).
async fn insert_proofs_unnest(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: Vec<[Value; PROOF_COLUMNS]>,
) -> Result<Vec<RawKey>, sqlx::Error> {
    use sqlx::Row as _;
    let n = rows.len();
    let (mut node, mut slot, mut kind, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut opt_ints: [Vec<Option<i64>>; 5] = Default::default();
    let (mut metrics, mut bytes, mut signature, mut digest) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut received, mut late) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for row in rows {
        match row {
            [
                Value::Blob(n),
                Value::Int(s),
                Value::Small(k),
                Value::Int(t),
                Value::OptInt(a),
                Value::OptInt(b),
                Value::OptInt(c),
                Value::OptInt(d),
                Value::OptInt(e),
                Value::OptBlob(m),
                Value::Blob(sb),
                Value::Blob(sig),
                Value::Blob(dg),
                Value::Int(r),
                Value::Bool(l),
            ] => {
                node.push(n);
                slot.push(s);
                kind.push(k);
                ts.push(t);
                for (column, value) in opt_ints.iter_mut().zip([a, b, c, d, e]) {
                    column.push(value);
                }
                metrics.push(m);
                bytes.push(sb);
                signature.push(sig);
                digest.push(dg);
                received.push(r);
                late.push(l);
            }
            _ => {
                return Err(sqlx::Error::Protocol(
                    "internal: a proof row does not have the proof columns".to_owned(),
                ));
            }
        }
    }
    let [bytes_transferred, sessions_relayed, chunks_stored, size_bytes, validated_sessions] =
        opt_ints;
    let query = sqlx::query(INSERT_PROOFS_UNNEST_RETURNING)
        .bind(node)
        .bind(slot)
        .bind(kind)
        .bind(ts)
        .bind(bytes_transferred)
        .bind(sessions_relayed)
        .bind(chunks_stored)
        .bind(size_bytes)
        .bind(validated_sessions)
        .bind(metrics)
        .bind(bytes)
        .bind(signature)
        .bind(digest)
        .bind(received)
        .bind(late);
    let returned = query.fetch_all(&mut **tx).await?;
    returned.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
}

/// `COPY` of proof rows in PostgreSQL's binary format, in [`INSERT_PROOFS`] column order.
const COPY_PROOFS: &str = "COPY proofs (node_id, slot, kind, ts_ms, bytes_transferred, \
     sessions_relayed, chunks_stored, size_bytes, validated_sessions, metrics_digest, \
     signed_bytes, signature, digest, received_at, late) FROM STDIN WITH (FORMAT binary)";

/// SQLSTATE of a unique violation: under `COPY`, a key of the batch was taken.
const UNIQUE_VIOLATION: &str = "23505";

/// `rows` (in `proof_row` column order) as the data of a binary `COPY`: the signature and header
/// of the format, one tuple per row (field count, then each field as a 32-bit length and the
/// value in network order, -1 for NULL), and the trailer. The [`Value`] of a column is of the
/// table's type (`Int` BIGINT, `Small` SMALLINT, `Bool` BOOLEAN, blobs BYTEA).
fn copy_data(rows: &[[Value; PROOF_COLUMNS]]) -> Result<Vec<u8>, Error> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let mut data = Vec::with_capacity(rows.len() * 400 + 32);
    data.extend_from_slice(SIGNATURE);
    data.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    data.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    let fields =
        i16::try_from(PROOF_COLUMNS).map_err(|_| lucid_core::internal!("too many columns"))?;
    let field = |data: &mut Vec<u8>, bytes: &[u8]| -> Result<(), Error> {
        let length = i32::try_from(bytes.len())
            .map_err(|_| lucid_core::internal!("a proof column of {} bytes", bytes.len()))?;
        data.extend_from_slice(&length.to_be_bytes());
        data.extend_from_slice(bytes);
        Ok(())
    };
    let null = |data: &mut Vec<u8>| data.extend_from_slice(&(-1i32).to_be_bytes());
    for row in rows {
        data.extend_from_slice(&fields.to_be_bytes());
        for value in row {
            match value {
                Value::Blob(bytes) | Value::OptBlob(Some(bytes)) => field(&mut data, bytes)?,
                Value::Int(v) | Value::OptInt(Some(v)) => field(&mut data, &v.to_be_bytes())?,
                Value::Small(v) | Value::OptSmall(Some(v)) => field(&mut data, &v.to_be_bytes())?,
                Value::Bool(v) => field(&mut data, &[u8::from(*v)])?,
                Value::OptBlob(None) | Value::OptInt(None) | Value::OptSmall(None) => {
                    null(&mut data)
                }
                Value::Text(_) | Value::OptText(_) => {
                    return Err(lucid_core::internal!("a proof row holds text").into());
                }
            }
        }
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(data)
}

/// The fast path on PostgreSQL: the rows by binary `COPY` straight into `proofs`, which bypasses
/// the executor and inserts in pages (much cheaper per row than `INSERT … ON CONFLICT`, which
/// probes the key index before every insert). `false` when a key was taken: the copy then
/// fails with a unique violation and the caller rolls back and judges key by key.
async fn copy_proofs(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &[[Value; PROOF_COLUMNS]],
) -> Result<bool, Error> {
    let action = "copying proofs";
    let data = copy_data(rows)?;
    let result = async {
        let mut copy = tx.copy_in_raw(COPY_PROOFS).await?;
        let sent = copy.send(data).await.map(|_| ());
        if let Err(error) = sent {
            // Ends the copy so the connection stays usable; the send error is the one to report.
            let _ = copy.abort("sending the proof rows failed").await;
            return Err(error);
        }
        copy.finish().await
    }
    .await;
    match result {
        Ok(copied) => Ok(usize::try_from(copied).ok() == Some(rows.len())),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            Ok(false)
        }
        Err(error) => Err(Error::query(action)(error)),
    }
}

/// The key columns (node_id, slot, kind) of a row, as a key.
fn read_key(row: &Row) -> Result<ProofKey, Error> {
    let node = row.blob(0).map_err(Error::query("reading a proof key"))?;
    let slot = row.int(1).map_err(Error::query("reading a proof key"))?;
    let kind = row.small(2).map_err(Error::query("reading a proof key"))?;
    let invalid = |detail: &str| Error::InvalidRow {
        table: "proofs",
        key: key_text(&node, slot, kind),
        detail: detail.to_owned(),
    };
    let node_bytes: [u8; 32] =
        node.as_slice().try_into().map_err(|_| invalid("node_id is not 32 bytes"))?;
    let node_id = NodeId::from_bytes(node_bytes).map_err(|_| invalid("node_id is not a key"))?;
    let slot = u64::try_from(slot).map_err(|_| invalid("negative slot"))?;
    let kind = u8::try_from(kind)
        .ok()
        .and_then(ProofKind::from_tag)
        .ok_or_else(|| invalid("unknown kind"))?;
    Ok(ProofKey { node: node_id, slot: Slot(slot), kind })
}

/// A signed pair from its columns, checking the stored digest.
fn read_pair(
    table: &'static str,
    key: impl Fn() -> String,
    bytes: Vec<u8>,
    signature: &[u8],
    digest: &[u8],
) -> Result<(SignedMessage, Digest), Error> {
    let invalid = |detail: &str| Error::InvalidRow { table, key: key(), detail: detail.to_owned() };
    let signature: [u8; 64] =
        signature.try_into().map_err(|_| invalid("signature is not 64 bytes"))?;
    let message = SignedMessage::new(bytes, Signature::from_bytes(signature));
    let computed = message.digest();
    if computed.as_bytes().as_slice() != digest {
        return Err(invalid("digest does not match the signed bytes"));
    }
    Ok((message, computed))
}

/// Task-proof evidence from a row of `evidence_in_range_sql`, each pair checked against its
/// digest column and both pairs against the key columns.
fn read_evidence(row: &Row) -> Result<Evidence, Error> {
    let action = "reading evidence";
    let key = read_key(row)?;
    let key_text = || format!("{}/{}/{:?}", key.node, key.slot.0, key.kind);
    let mut pairs = Vec::with_capacity(2);
    for column in [3, 6] {
        let bytes = row.blob(column).map_err(Error::query(action))?;
        let signature = row.blob(column + 1).map_err(Error::query(action))?;
        let digest = row.blob(column + 2).map_err(Error::query(action))?;
        let (message, _) = read_pair("evidence", key_text, bytes, &signature, &digest)?;
        let belongs = TaskProof::from_signed_bytes(message.bytes())
            .is_ok_and(|(_, proof)| proof.key() == key);
        if !belongs {
            return Err(Error::InvalidRow {
                table: "evidence",
                key: key_text(),
                detail: "a pair is not a task proof of the key".to_owned(),
            });
        }
        pairs.push(message);
    }
    let second = pairs.pop();
    let first = pairs.pop();
    let (Some(first), Some(second)) = (first, second) else {
        return Err(Error::InvalidRow {
            table: "evidence",
            key: key_text(),
            detail: "missing pair".to_owned(),
        });
    };
    Ok(Evidence::new(key.node, TASK_PROOF_TYPE, Some(key), first, second))
}

/// A full stored proof from a `PROOF_SELECT` row, decoded from its signed bytes (which
/// validates the node id once) and checked against the key and digest columns.
fn read_proof(row: &Row) -> Result<StoredProof, Error> {
    let action = "reading a stored proof";
    let (node, slot, kind) = read_raw_key(row)?;
    let bytes = row.blob(3).map_err(Error::query(action))?;
    let signature = row.blob(4).map_err(Error::query(action))?;
    let digest = row.blob(5).map_err(Error::query(action))?;
    let late = row.boolean(6).map_err(Error::query(action))?;
    let key_text = || key_text(&node, slot, kind);
    let (message, digest) = read_pair("proofs", key_text, bytes, &signature, &digest)?;
    let invalid = |detail: String| Error::InvalidRow { table: "proofs", key: key_text(), detail };
    let (_network, proof) = TaskProof::from_signed_bytes(message.bytes())
        .map_err(|error| invalid(format!("signed bytes do not decode: {error}")))?;
    if raw_key(&proof.key())? != (node.clone(), slot, kind) {
        return Err(invalid("signed bytes belong to another key".to_owned()));
    }
    Ok(StoredProof { proof, message, digest, late })
}

/// A counted proof from a [`COUNTED_SELECT`] row; `nodes` caches validated node ids.
fn read_counted(row: &Row, nodes: &mut HashMap<Vec<u8>, NodeId>) -> Result<CountedProof, Error> {
    let action = "reading a counted proof";
    let slot = row.int(0).map_err(Error::query(action))?;
    let node = row.blob(1).map_err(Error::query(action))?;
    let kind = row.small(2).map_err(Error::query(action))?;
    let invalid = |detail: &str| Error::InvalidRow {
        table: "proofs",
        key: key_text(&node, slot, kind),
        detail: detail.to_owned(),
    };
    let node_id = match nodes.get(&node) {
        Some(id) => *id,
        None => {
            let bytes: [u8; 32] =
                node.as_slice().try_into().map_err(|_| invalid("node_id is not 32 bytes"))?;
            let id = NodeId::from_bytes(bytes).map_err(|_| invalid("node_id is not a key"))?;
            nodes.insert(node.clone(), id);
            id
        }
    };
    let column = |index: usize, name: &str| -> Result<u64, Error> {
        let value = row.opt_int(index).map_err(Error::query(action))?;
        let value = value.ok_or_else(|| invalid(&format!("{name} is missing")))?;
        u64::try_from(value).map_err(|_| invalid(&format!("{name} is negative")))
    };
    let small = |index: usize, name: &str| -> Result<u32, Error> {
        u32::try_from(column(index, name)?).map_err(|_| invalid(&format!("{name} is out of range")))
    };
    let value = match u8::try_from(kind).ok().and_then(ProofKind::from_tag) {
        Some(ProofKind::RelayBandwidth) => ProofValue::Relay {
            bytes_transferred: column(3, "bytes_transferred")?,
            sessions_relayed: small(4, "sessions_relayed")?,
        },
        Some(ProofKind::StorageAvailability) => ProofValue::Storage {
            chunks_stored: column(5, "chunks_stored")?,
            size_bytes: column(6, "size_bytes")?,
        },
        Some(ProofKind::ValidationSignature) => {
            ProofValue::Validation { validated_sessions: small(7, "validated_sessions")? }
        }
        Some(ProofKind::UptimeBeacon) => {
            let digest = row.opt_blob(8).map_err(Error::query(action))?;
            let metrics_digest = match digest {
                None => None,
                Some(bytes) => {
                    let bytes: [u8; 32] = bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| invalid("metrics_digest is not 32 bytes"))?;
                    Some(Digest::from_bytes(bytes))
                }
            };
            ProofValue::Beacon { metrics_digest }
        }
        None => return Err(invalid("unknown kind")),
    };
    let slot = u64::try_from(slot).map_err(|_| invalid("negative slot"))?;
    Ok(CountedProof { node: node_id, slot: Slot(slot), value })
}

fn read_registration(row: &Row) -> Result<StoredRegistration, Error> {
    let action = "reading a stored registration";
    let node = row.blob(0).map_err(Error::query(action))?;
    let seq = row.int(1).map_err(Error::query(action))?;
    let bytes = row.blob(2).map_err(Error::query(action))?;
    let signature = row.blob(3).map_err(Error::query(action))?;
    let digest = row.blob(4).map_err(Error::query(action))?;
    let key_text = || format!("(node {}, seq {seq})", lucid_core::ids::to_hex(&node));
    let (message, digest) = read_pair("registrations", key_text, bytes, &signature, &digest)?;
    let invalid =
        |detail: String| Error::InvalidRow { table: "registrations", key: key_text(), detail };
    let (_network, registration) = Registration::from_signed_bytes(message.bytes())
        .map_err(|error| invalid(format!("signed bytes do not decode: {error}")))?;
    if registration.node.as_bytes().as_slice() != node.as_slice()
        || i64::try_from(registration.seq).ok() != Some(seq)
    {
        return Err(invalid("signed bytes belong to another key".to_owned()));
    }
    Ok(StoredRegistration { registration, message, digest })
}

/// A stored seal from a [`SEAL_SELECT`] row, decoded from its signed bytes and checked against
/// the key and digest columns.
fn read_seal(row: &Row) -> Result<StoredSeal, Error> {
    let action = "reading a stored seal";
    let node = row.blob(0).map_err(Error::query(action))?;
    let slot = row.int(1).map_err(Error::query(action))?;
    let bytes = row.blob(2).map_err(Error::query(action))?;
    let signature = row.blob(3).map_err(Error::query(action))?;
    let digest = row.blob(4).map_err(Error::query(action))?;
    let key_text = || format!("(node {}, slot {slot})", lucid_core::ids::to_hex(&node));
    let (message, _digest) = read_pair("seals", key_text, bytes, &signature, &digest)?;
    let invalid = |detail: String| Error::InvalidRow { table: "seals", key: key_text(), detail };
    let (_network, seal) = SlotSeal::from_signed_bytes(message.bytes())
        .map_err(|error| invalid(format!("signed bytes do not decode: {error}")))?;
    if seal.node.as_bytes().as_slice() != node.as_slice()
        || i64::try_from(seal.slot.0).ok() != Some(slot)
    {
        return Err(invalid("signed bytes belong to another key".to_owned()));
    }
    Ok(StoredSeal::new(seal, message))
}

fn endpoint_text(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Onion { service_key, port } => {
            format!("onion:{}:{port}", lucid_core::ids::to_hex(service_key))
        }
        Endpoint::Direct(address) => format!("direct:{address}"),
    }
}

/// The keys of a batch: for each distinct key, in table key order (slot, node, kind), the batch
/// position of its first occurrence, the one that may be inserted; later occurrences of the same
/// key are judged against whatever the key holds afterwards, as if they had arrived one after
/// the other (the in-memory store's semantics).
///
/// Built by one sort instead of hash maps: a batch of 10 000 fresh proofs spent more time
/// hashing its keys (three lookups per proof) than sorting them.
struct BatchKeys {
    /// Each distinct key with the position of its first occurrence, in table key order.
    firsts: Vec<(ProofKey, usize)>,
    /// For each batch position, the position of the first occurrence of its key.
    first_of: Vec<usize>,
}

impl BatchKeys {
    fn of(proofs: &[StoredProof]) -> Self {
        let mut order: Vec<(ProofKey, usize)> =
            proofs.iter().enumerate().map(|(index, proof)| (proof.key(), index)).collect();
        // Table key order, then batch order among equal keys: the first of a run is the first
        // occurrence. Rows then append to the key index, and concurrent transactions take
        // their locks in one order.
        order.sort_unstable_by(|(a, i), (b, j)| {
            (a.slot, a.node, a.kind, i).cmp(&(b.slot, b.node, b.kind, j))
        });
        let mut firsts: Vec<(ProofKey, usize)> = Vec::with_capacity(order.len());
        let mut first_of = vec![0; proofs.len()];
        for (key, index) in order {
            let first = match firsts.last() {
                Some((last, first)) if *last == key => *first,
                _ => {
                    firsts.push((key, index));
                    index
                }
            };
            if let Some(slot) = first_of.get_mut(index) {
                *slot = first;
            }
        }
        BatchKeys { firsts, first_of }
    }
}

/// Which of a batch's distinct keys its write inserted.
enum Written {
    /// Every one (the fast path).
    All,
    /// These (the judging path).
    These(HashSet<ProofKey>),
}

impl Written {
    fn contains(&self, key: &ProofKey) -> bool {
        match self {
            Written::All => true,
            Written::These(keys) => keys.contains(key),
        }
    }
}

fn outcome_for(existing: &SignedMessage, incoming: &SignedMessage) -> InsertOutcome {
    if existing.bytes() == incoming.bytes() {
        InsertOutcome::Duplicate
    } else {
        InsertOutcome::Conflict { existing: existing.clone() }
    }
}

/// Where the wall time of one proof batch write went, phase by phase: the instrument behind the
/// persistence figures of `benches/RESULTS.md` (`Database::insert_proofs_phased`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritePhases {
    /// Deduplicating the batch by key, sorting it and building the bound rows.
    pub prepare: Duration,
    /// Waiting for the writer and opening the write transaction.
    pub begin: Duration,
    /// The proof insert statements (and, when a key was taken, the judging path).
    pub insert: Duration,
    /// Computing and merging the `proof_sums` rows.
    pub sums: Duration,
    /// The commit: on SQLite the WAL write and its fsync, on PostgreSQL the round trip and the
    /// server's WAL flush.
    pub commit: Duration,
    /// Batches that took the judging path (a key was taken, or the `testing` feature's
    /// `Database::force_proof_judging` was on).
    pub judged: u32,
}

impl WritePhases {
    /// Adds `other` phase by phase (to sum the batches of a run).
    pub fn add(&mut self, other: &WritePhases) {
        self.prepare += other.prepare;
        self.begin += other.begin;
        self.insert += other.insert;
        self.sums += other.sums;
        self.commit += other.commit;
        self.judged = self.judged.saturating_add(other.judged);
    }

    /// The sum of the phases.
    pub fn total(&self) -> Duration {
        self.prepare + self.begin + self.insert + self.sums + self.commit
    }
}

/// Times the phases of a batch write: each call to [`PhaseClock::lap`] charges the time since the
/// previous lap to one phase.
///
/// It reads the process's monotonic clock, not the `Clock` port: the phases measure this
/// process's own work for the benches (whose databases run on a manual clock, which would make
/// every phase zero), and no decision depends on them.
struct PhaseClock<'a> {
    phases: &'a mut WritePhases,
    last: Instant,
}

#[expect(
    clippy::disallowed_methods,
    reason = "instrumentation of the write's own duration; no logic reads it (see the type doc)"
)]
impl<'a> PhaseClock<'a> {
    fn start(phases: &'a mut WritePhases) -> Self {
        PhaseClock { phases, last: Instant::now() }
    }

    fn lap(&mut self, phase: fn(&mut WritePhases) -> &mut Duration) {
        let now = Instant::now();
        *phase(self.phases) += now.saturating_duration_since(self.last);
        self.last = now;
    }
}

impl Database {
    /// Inserts `proofs` as `ProofStore::insert_proofs` does, and adds the wall time of each phase
    /// of the write to `phases` (instrumentation; the outcomes are the same).
    pub async fn insert_proofs_phased(
        &self,
        proofs: &[StoredProof],
        phases: &mut WritePhases,
    ) -> Result<Vec<InsertOutcome>, Error> {
        self.insert_proofs_timed(proofs, phases).await
    }

    /// Tests only: with `on`, every later proof batch skips the fast path (multi-row insert on
    /// SQLite, `COPY` on PostgreSQL) and is judged key by key, the path a batch with a taken key
    /// takes; the outcomes must be the same either way.
    #[cfg(feature = "testing")]
    pub fn force_proof_judging(&self, on: bool) {
        self.force_judging.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a batch may try the fast path first (always, outside of tests that force the
    /// judging path).
    fn proof_fast_path(&self) -> bool {
        #[cfg(feature = "testing")]
        if self.force_judging.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        true
    }

    /// Inserts the proofs (see the module doc); the error is this crate's.
    async fn insert_proofs_sql(&self, proofs: &[StoredProof]) -> Result<Vec<InsertOutcome>, Error> {
        let mut phases = WritePhases::default();
        let outcomes = self.insert_proofs_timed(proofs, &mut phases).await?;
        tracing::trace!(
            proofs = proofs.len(),
            prepare_us = phases.prepare.as_micros(),
            begin_us = phases.begin.as_micros(),
            insert_us = phases.insert.as_micros(),
            sums_us = phases.sums.as_micros(),
            commit_us = phases.commit.as_micros(),
            "proof batch written"
        );
        Ok(outcomes)
    }

    async fn insert_proofs_timed(
        &self,
        proofs: &[StoredProof],
        phases: &mut WritePhases,
    ) -> Result<Vec<InsertOutcome>, Error> {
        if proofs.is_empty() {
            return Ok(Vec::new());
        }
        let mut clock = PhaseClock::start(phases);
        let received_at = self.clock.wall().0;
        let BatchKeys { firsts, first_of } = BatchKeys::of(proofs);
        let first_proofs = || firsts.iter().filter_map(|(_, index)| proofs.get(*index));
        let rows = || first_proofs().map(|proof| proof_row(proof, received_at));
        clock.lap(|p| &mut p.prepare);

        let action = "inserting proofs";
        let mut tx = self.begin_write().await.map_err(Error::query(action))?;
        clock.lap(|p| &mut p.begin);
        let mut fresh_sums = None;
        let (written, existing) = if !self.proof_fast_path() {
            clock.phases.judged = clock.phases.judged.saturating_add(1);
            let (inserted, existing) = self.insert_judging(&mut tx, &firsts, rows()).await?;
            (Written::These(inserted), existing)
        } else {
            // The sums of the whole batch are computed while the database inserts it (they are
            // only used if every key was free), and a due WAL checkpoint runs on another
            // connection meanwhile.
            let (all_free, sums, ()) = tokio::join!(
                self.insert_if_all_free(&mut tx, firsts.len(), rows()),
                async { sum_deltas(first_proofs()) },
                self.checkpoint_if_due(firsts.len())
            );
            if all_free? {
                fresh_sums = Some(sums);
                (Written::All, HashMap::new())
            } else {
                // Some key of the batch was taken: undo and start over, judging every key.
                clock.phases.judged = clock.phases.judged.saturating_add(1);
                tx.rollback().await.map_err(Error::query(action))?;
                tx = self.begin_write().await.map_err(Error::query(action))?;
                let (inserted, existing) = self.insert_judging(&mut tx, &firsts, rows()).await?;
                (Written::These(inserted), existing)
            }
        };
        clock.lap(|p| &mut p.insert);
        // The per-chunk sums of what this batch inserted, in the same transaction.
        let sums = match fresh_sums {
            Some(sums) => sums,
            None => sum_deltas(first_proofs().filter(|proof| written.contains(&proof.key()))),
        };
        self.merge_sums(&mut tx, &sums).await?;
        clock.lap(|p| &mut p.sums);
        tx.commit().await.map_err(Error::query("committing inserted proofs"))?;
        clock.lap(|p| &mut p.commit);

        let mut outcomes = Vec::with_capacity(proofs.len());
        for (index, proof) in proofs.iter().enumerate() {
            let key = proof.key();
            let outcome = if written.contains(&key) {
                let first = first_of.get(index).copied();
                if first == Some(index) {
                    InsertOutcome::Inserted
                } else {
                    let stored = first.and_then(|i| proofs.get(i)).ok_or_else(|| {
                        lucid_core::internal!("batch index of an inserted key is missing")
                    })?;
                    outcome_for(&stored.message, &proof.message)
                }
            } else {
                let stored = existing.get(&key).ok_or_else(|| {
                    // ON CONFLICT skipped the row, so some unique key was taken; the only
                    // other unique column is the digest, which determines the key.
                    lucid_core::internal!("proof {key:?} was neither inserted nor found")
                })?;
                outcome_for(stored, &proof.message)
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// The fast path of [`Database::insert_proofs_sql`]: inserts the `count` rows of `rows`
    /// (distinct keys, table key order) with `ON CONFLICT DO NOTHING` and no `RETURNING` (on
    /// SQLite every returned row is a hop from the driver's worker thread), and tells whether
    /// every row went in. When one did not, the caller rolls back and takes
    /// [`Database::insert_judging`]: a fresh batch, the common case (the ingest drops the
    /// duplicates it has seen before the store), costs one statement per chunk and no read.
    ///
    /// On SQLite the statement of the next chunk is built while the driver's worker thread runs
    /// the current one, so building rows and binding them overlaps the engine's work.
    async fn insert_if_all_free(
        &self,
        tx: &mut Tx,
        count: usize,
        rows: impl Iterator<Item = Result<[Value; PROOF_COLUMNS], Error>>,
    ) -> Result<bool, Error> {
        let action = "inserting proofs";
        if let Some(pg) = tx.postgres() {
            let rows: Vec<[Value; PROOF_COLUMNS]> = rows.collect::<Result<_, Error>>()?;
            return copy_proofs(pg, &rows).await;
        }
        let mut rows = rows;
        let mut build = |count: usize| -> Result<(usize, Query), Error> {
            let mut query = self.query(INSERT_PROOFS);
            for position in 0..count {
                let row = rows
                    .next()
                    .ok_or_else(|| lucid_core::internal!("fewer proof rows than counted"))??;
                if position > 0 {
                    query.push(", ");
                }
                query.tuple(row);
            }
            query.push(" ON CONFLICT DO NOTHING");
            Ok((count, query))
        };
        // Smallest chunk first: the driver starts on a short statement while the longer ones
        // are built.
        let mut sizes: Vec<usize> = row_chunks(count, self.max_binds() / PROOF_COLUMNS).collect();
        sizes.sort_unstable();
        let mut chunks = sizes.into_iter();
        let mut next = chunks.next().map(&mut build).transpose()?;
        while let Some((count, mut query)) = next.take() {
            let following = chunks.next();
            let (affected, built) =
                tokio::join!(tx.execute(&mut query), async { following.map(&mut build) });
            let affected = affected.map_err(Error::query(action))?;
            if usize::try_from(affected).ok() != Some(count) {
                return Ok(false);
            }
            next = built.transpose()?;
        }
        Ok(true)
    }

    /// The judging path of [`Database::insert_proofs_sql`]: inserts the free keys of `rows`
    /// (`RETURNING` the keys that went in) and reads back what the taken keys hold, in `tx`.
    async fn insert_judging(
        &self,
        tx: &mut Tx,
        firsts: &[(ProofKey, usize)],
        rows: impl Iterator<Item = Result<[Value; PROOF_COLUMNS], Error>>,
    ) -> Result<(HashSet<ProofKey>, HashMap<ProofKey, SignedMessage>), Error> {
        let action = "inserting proofs";
        let rows: Vec<[Value; PROOF_COLUMNS]> = rows.collect::<Result<_, Error>>()?;
        let by_raw: HashMap<RawKey, ProofKey> = firsts
            .iter()
            .map(|(key, _)| Ok((raw_key(key)?, *key)))
            .collect::<Result<_, Error>>()?;
        let mut inserted: HashSet<ProofKey> = HashSet::with_capacity(rows.len());
        let mut returned: Vec<RawKey> = Vec::with_capacity(rows.len());
        if let Some(pg) = tx.postgres() {
            // PostgreSQL: one statement with one array per column, whatever the batch size:
            // 15 binds instead of 15 per row, and one short statement to parse and plan.
            returned = insert_proofs_unnest(pg, rows).await.map_err(Error::query(action))?;
        } else {
            for chunk in rows.chunks(self.max_binds() / PROOF_COLUMNS) {
                let mut query = self.query(INSERT_PROOFS);
                for (position, row) in chunk.iter().enumerate() {
                    if position > 0 {
                        query.push(", ");
                    }
                    query.tuple(row.iter().cloned());
                }
                query.push(" ON CONFLICT DO NOTHING RETURNING node_id, slot, kind");
                for row in tx.fetch_all(&mut query).await.map_err(Error::query(action))? {
                    returned.push(read_raw_key(&row)?);
                }
            }
        }
        for raw in returned {
            let key = by_raw.get(&raw).ok_or_else(|| {
                lucid_core::internal!("the database returned a key that was not inserted")
            })?;
            inserted.insert(*key);
        }

        // Keys that were not free: read back what they hold, in the same transaction.
        let taken: Vec<ProofKey> =
            firsts.iter().map(|(key, _)| *key).filter(|key| !inserted.contains(key)).collect();
        let mut existing: HashMap<ProofKey, SignedMessage> = HashMap::with_capacity(taken.len());
        for chunk in taken.chunks(self.max_binds() / KEY_COLUMNS) {
            let mut query = self.query(PROOF_SELECT);
            // In the column order of the table key, so the lookup walks the key index.
            query.push("WHERE (slot, node_id, kind) IN (VALUES ");
            for (position, key) in chunk.iter().enumerate() {
                if position > 0 {
                    query.push(", ");
                }
                let [node, slot, kind] = key_values(key)?;
                query.tuple([slot, node, kind]);
            }
            query.push(")");
            let action = "reading back proofs under taken keys";
            for row in tx.fetch_all(&mut query).await.map_err(Error::query(action))? {
                let stored = read_proof(&row)?;
                existing.insert(stored.key(), stored.message);
            }
        }
        Ok((inserted, existing))
    }

    /// One page of every stored proof as the tally counts them, in key order strictly after
    /// `after`, read in `tx` (the backfill of the proof sums).
    pub(crate) async fn counted_page(
        &self,
        tx: &mut Tx,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<CountedProof>, Error> {
        let everything = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
        let Some(mut query) = self.page_query(COUNTED_SELECT, everything, after, limit)? else {
            return Ok(Vec::new());
        };
        let rows =
            tx.fetch_all(&mut query).await.map_err(Error::query("reading every stored proof"))?;
        let mut nodes: HashMap<Vec<u8>, NodeId> = HashMap::new();
        rows.iter().map(|row| read_counted(row, &mut nodes)).collect()
    }

    /// One page of `select` over the proofs of `range` in key order, strictly after `after`;
    /// `None` when the page is empty without asking the database.
    fn page_query(
        &self,
        select: &str,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Option<Query>, Error> {
        // Slots beyond BIGINT are never stored, so a range or cursor starting there is empty.
        let Ok(start) = i64::try_from(range.start.0) else { return Ok(None) };
        if range.is_empty() || limit == 0 || after.is_some_and(|k| i64::try_from(k.slot.0).is_err())
        {
            return Ok(None);
        }
        let mut query = self.query(select);
        query.push("WHERE slot >= ").bind(Value::Int(start));
        // An end beyond the BIGINT range is no bound at all: every stored slot lies below it.
        if let Ok(end) = i64::try_from(range.end.0) {
            query.push(" AND slot < ").bind(Value::Int(end));
        }
        if let Some(after) = after {
            let [node, slot, kind] = key_values(&after)?;
            // Row-value comparison: strictly after (slot, node, kind) in paging order.
            query.push(" AND (slot, node_id, kind) > (").bind(slot);
            query.push(", ").bind(node);
            query.push(", ").bind(kind);
            query.push(")");
        }
        query.push(" ORDER BY slot, node_id, kind LIMIT ");
        query.bind(Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        Ok(Some(query))
    }

    async fn get_proof_sql(&self, key: &ProofKey) -> Result<Option<StoredProof>, Error> {
        // Slots beyond BIGINT are never stored (inserting them is refused), so nothing is there.
        if i64::try_from(key.slot.0).is_err() {
            return Ok(None);
        }
        let mut query = self.query(PROOF_SELECT);
        let [node, slot, kind] = key_values(key)?;
        query.push("WHERE node_id = ").bind(node);
        query.push(" AND slot = ").bind(slot);
        query.push(" AND kind = ").bind(kind);
        let rows =
            self.reader().fetch_all(&mut query).await.map_err(Error::query("reading a proof"))?;
        rows.first().map(read_proof).transpose()
    }

    async fn proofs_in_range_sql(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, Error> {
        let Some(mut query) = self.page_query(PROOF_SELECT, range, after, limit)? else {
            return Ok(Vec::new());
        };
        let rows = self
            .reader()
            .fetch_all(&mut query)
            .await
            .map_err(Error::query("reading proofs of a slot range"))?;
        rows.iter().map(read_proof).collect()
    }

    /// The accepted proofs with slot in `range` as the tally counts them, in key order (slot,
    /// node, kind) strictly after `after`, at most `limit`: the paging of `proofs_in_range`
    /// without the signed pairs.
    ///
    /// Reads the decoded columns only (they were written from the decoded proof), so a window of
    /// millions of proofs is not decoded and its node ids are validated once per distinct node
    /// of the page instead of once per proof. A row whose columns do not fit its kind is an
    /// error. Callers compute the tally with `lucid_consensus::tally::TallyBuilder`, excluding
    /// the keys of `evidence_keys(range)`.
    pub async fn counted_proofs_in_range(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<CountedProof>, Error> {
        let Some(mut query) = self.page_query(COUNTED_SELECT, range, after, limit)? else {
            return Ok(Vec::new());
        };
        let rows = self
            .reader()
            .fetch_all(&mut query)
            .await
            .map_err(Error::query("reading counted proofs of a slot range"))?;
        let mut nodes: HashMap<Vec<u8>, NodeId> = HashMap::new();
        rows.iter().map(|row| read_counted(row, &mut nodes)).collect()
    }

    /// The accepted proofs of `nodes` with slot in `range` as the tally counts them, in key
    /// order: the proof-by-proof reads of [`Database::tally_from_sums`].
    pub(crate) async fn counted_proofs_of_nodes(
        &self,
        range: SlotRange,
        nodes: &[NodeId],
    ) -> Result<Vec<CountedProof>, Error> {
        let (Ok(start), Ok(end)) = (i64::try_from(range.start.0), i64::try_from(range.end.0))
        else {
            return Ok(Vec::new());
        };
        let mut counted = Vec::new();
        let mut cache: HashMap<Vec<u8>, NodeId> = HashMap::new();
        for chunk in nodes.chunks(self.max_binds().saturating_sub(2).max(1)) {
            let mut query = self.query(COUNTED_SELECT);
            query.push("WHERE slot >= ").bind(Value::Int(start));
            query.push(" AND slot < ").bind(Value::Int(end));
            query.push(" AND node_id IN (");
            for (position, node) in chunk.iter().enumerate() {
                if position > 0 {
                    query.push(", ");
                }
                query.bind(Value::Blob(node.as_bytes().to_vec()));
            }
            query.push(") ORDER BY slot, node_id, kind");
            let rows = self
                .reader()
                .fetch_all(&mut query)
                .await
                .map_err(Error::query("reading the proofs of some nodes"))?;
            for row in &rows {
                counted.push(read_counted(row, &mut cache)?);
            }
        }
        Ok(counted)
    }

    async fn insert_evidence_sql(&self, evidence: &Evidence) -> Result<bool, Error> {
        let (digest_a, digest_b) = evidence.digests();
        let (slot, kind) = match &evidence.proof_key {
            Some(key) => (Some(to_sql("slot", key.slot.0)?), Some(kind_to_sql(key.kind))),
            None => (None, None),
        };
        let mut query = self.query(
            "INSERT INTO evidence (digest_a, digest_b, node_id, type_name, slot, kind, \
             first_bytes, first_signature, second_bytes, second_signature, detected_at) VALUES ",
        );
        query.tuple([
            Value::Blob(digest_a.as_bytes().to_vec()),
            Value::Blob(digest_b.as_bytes().to_vec()),
            Value::Blob(evidence.node.as_bytes().to_vec()),
            Value::Text(evidence.type_name.to_owned()),
            Value::OptInt(slot),
            Value::OptSmall(kind),
            Value::Blob(evidence.first.bytes().to_vec()),
            Value::Blob(evidence.first.signature().as_bytes().to_vec()),
            Value::Blob(evidence.second.bytes().to_vec()),
            Value::Blob(evidence.second.signature().as_bytes().to_vec()),
            Value::Int(self.clock.wall().0),
        ]);
        query.push(" ON CONFLICT DO NOTHING");
        let action = "inserting evidence";
        let mut tx = self.begin_write().await.map_err(Error::query(action))?;
        let changed = tx.execute(&mut query).await.map_err(Error::query(action))?;
        tx.commit().await.map_err(Error::query(action))?;
        Ok(changed == 1)
    }

    async fn evidence_keys_sql(&self, range: SlotRange) -> Result<Vec<ProofKey>, Error> {
        let Ok(start) = i64::try_from(range.start.0) else { return Ok(Vec::new()) };
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = self.query(
            "SELECT DISTINCT node_id, slot, kind FROM evidence WHERE slot IS NOT NULL AND slot >= ",
        );
        query.bind(Value::Int(start));
        if let Ok(end) = i64::try_from(range.end.0) {
            query.push(" AND slot < ").bind(Value::Int(end));
        }
        let rows = self
            .reader()
            .fetch_all(&mut query)
            .await
            .map_err(Error::query("reading evidence keys"))?;
        let mut keys = rows.iter().map(read_key).collect::<Result<Vec<_>, _>>()?;
        // Sorted here rather than in SQL so the order is exactly `ProofKey`'s `Ord`.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn evidence_in_range_sql(
        &self,
        range: SlotRange,
        limit: usize,
    ) -> Result<Vec<Evidence>, Error> {
        let Ok(start) = i64::try_from(range.start.0) else { return Ok(Vec::new()) };
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = self.query(
            "SELECT node_id, slot, kind, first_bytes, first_signature, digest_a, second_bytes, \
             second_signature, digest_b FROM evidence WHERE slot IS NOT NULL AND slot >= ",
        );
        query.bind(Value::Int(start));
        if let Ok(end) = i64::try_from(range.end.0) {
            query.push(" AND slot < ").bind(Value::Int(end));
        }
        query.push(" ORDER BY digest_a, digest_b LIMIT ");
        query.bind(Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let action = "reading evidence of a slot range";
        let rows = self.reader().fetch_all(&mut query).await.map_err(Error::query(action))?;
        rows.iter().map(read_evidence).collect()
    }

    async fn insert_registration_sql(
        &self,
        record: &StoredRegistration,
    ) -> Result<InsertOutcome, Error> {
        let r = &record.registration;
        let node = Value::Blob(r.node.as_bytes().to_vec());
        let seq = Value::Int(to_sql("seq", r.seq)?);
        let mut query = self.query(
            "INSERT INTO registrations (node_id, seq, ts_ms, payout_address, endpoint, \
             capabilities, storage_capacity_bytes, signed_bytes, signature, digest, received_at) \
             VALUES ",
        );
        query.tuple([
            node.clone(),
            seq.clone(),
            Value::Int(r.ts.0),
            Value::Blob(r.payout_address.to_vec()),
            Value::Text(endpoint_text(&r.endpoint)),
            Value::Int(i64::from(r.capabilities)),
            Value::Int(to_sql("storage_capacity_bytes", r.storage_capacity_bytes)?),
            Value::Blob(record.message.bytes().to_vec()),
            Value::Blob(record.message.signature().as_bytes().to_vec()),
            Value::Blob(record.digest.as_bytes().to_vec()),
            Value::Int(self.clock.wall().0),
        ]);
        query.push(" ON CONFLICT DO NOTHING");
        let action = "inserting a registration";
        let mut tx = self.begin_write().await.map_err(Error::query(action))?;
        let changed = tx.execute(&mut query).await.map_err(Error::query(action))?;
        let outcome = if changed == 1 {
            InsertOutcome::Inserted
        } else {
            let mut query = self.query(REGISTRATION_SELECT);
            query.push("WHERE node_id = ").bind(node);
            query.push(" AND seq = ").bind(seq);
            let rows = tx.fetch_all(&mut query).await.map_err(Error::query(action))?;
            let stored = rows.first().map(read_registration).transpose()?.ok_or_else(|| {
                lucid_core::internal!("registration {:?} was neither inserted nor found", r.node)
            })?;
            outcome_for(&stored.message, &record.message)
        };
        tx.commit().await.map_err(Error::query(action))?;
        Ok(outcome)
    }

    async fn insert_seal_sql(&self, stored: &StoredSeal) -> Result<InsertOutcome, Error> {
        let seal = &stored.seal;
        let node = Value::Blob(seal.node.as_bytes().to_vec());
        let slot = Value::Int(to_sql("slot", seal.slot.0)?);
        let mut query = self.query(
            "INSERT INTO seals (node_id, slot, count, root, ts_ms, signed_bytes, signature, \
             digest, received_at) VALUES ",
        );
        query.tuple([
            node.clone(),
            slot.clone(),
            Value::Int(i64::from(seal.count)),
            Value::Blob(seal.root.as_bytes().to_vec()),
            Value::Int(seal.ts.0),
            Value::Blob(stored.message.bytes().to_vec()),
            Value::Blob(stored.message.signature().as_bytes().to_vec()),
            Value::Blob(stored.digest.as_bytes().to_vec()),
            Value::Int(self.clock.wall().0),
        ]);
        query.push(" ON CONFLICT DO NOTHING");
        let action = "inserting a seal";
        let mut tx = self.begin_write().await.map_err(Error::query(action))?;
        let changed = tx.execute(&mut query).await.map_err(Error::query(action))?;
        let outcome = if changed == 1 {
            InsertOutcome::Inserted
        } else {
            let mut query = self.query(SEAL_SELECT);
            query.push("WHERE node_id = ").bind(node);
            query.push(" AND slot = ").bind(slot);
            let rows = tx.fetch_all(&mut query).await.map_err(Error::query(action))?;
            let existing = rows.first().map(read_seal).transpose()?.ok_or_else(|| {
                lucid_core::internal!("seal of {} was neither inserted nor found", seal.slot)
            })?;
            outcome_for(&existing.message, &stored.message)
        };
        tx.commit().await.map_err(Error::query(action))?;
        Ok(outcome)
    }

    async fn get_seal_sql(&self, node: &NodeId, slot: Slot) -> Result<Option<StoredSeal>, Error> {
        // Slots beyond BIGINT are never stored (inserting them is refused), so nothing is there.
        let Ok(slot) = i64::try_from(slot.0) else { return Ok(None) };
        let mut query = self.query(SEAL_SELECT);
        query.push("WHERE node_id = ").bind(Value::Blob(node.as_bytes().to_vec()));
        query.push(" AND slot = ").bind(Value::Int(slot));
        let rows =
            self.reader().fetch_all(&mut query).await.map_err(Error::query("reading a seal"))?;
        rows.first().map(read_seal).transpose()
    }

    async fn current_registrations_sql(&self) -> Result<Vec<StoredRegistration>, Error> {
        let mut query = self.query(REGISTRATION_SELECT);
        query.push(
            "AS r WHERE seq = (SELECT MAX(seq) FROM registrations AS m \
             WHERE m.node_id = r.node_id) ORDER BY node_id",
        );
        let rows = self
            .reader()
            .fetch_all(&mut query)
            .await
            .map_err(Error::query("reading current registrations"))?;
        rows.iter().map(read_registration).collect()
    }
}

#[async_trait::async_trait]
impl ProofStore for Database {
    async fn insert_proofs(
        &self,
        proofs: &[StoredProof],
    ) -> Result<Vec<InsertOutcome>, lucid_consensus::Error> {
        self.insert_proofs_sql(proofs).await.map_err(|e| e.into_store("inserting proofs"))
    }

    async fn get_proof(
        &self,
        key: &ProofKey,
    ) -> Result<Option<StoredProof>, lucid_consensus::Error> {
        self.get_proof_sql(key).await.map_err(|e| e.into_store("reading a proof"))
    }

    async fn proofs_in_range(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        self.proofs_in_range_sql(range, after, limit)
            .await
            .map_err(|e| e.into_store("reading proofs of a slot range"))
    }

    async fn insert_evidence(&self, evidence: &Evidence) -> Result<bool, lucid_consensus::Error> {
        self.insert_evidence_sql(evidence).await.map_err(|e| e.into_store("inserting evidence"))
    }

    async fn evidence_keys(
        &self,
        range: SlotRange,
    ) -> Result<Vec<ProofKey>, lucid_consensus::Error> {
        self.evidence_keys_sql(range).await.map_err(|e| e.into_store("reading evidence keys"))
    }

    async fn evidence_in_range(
        &self,
        range: SlotRange,
        limit: usize,
    ) -> Result<Vec<Evidence>, lucid_consensus::Error> {
        self.evidence_in_range_sql(range, limit)
            .await
            .map_err(|e| e.into_store("reading evidence of a slot range"))
    }

    async fn insert_registration(
        &self,
        registration: &StoredRegistration,
    ) -> Result<InsertOutcome, lucid_consensus::Error> {
        self.insert_registration_sql(registration)
            .await
            .map_err(|e| e.into_store("inserting a registration"))
    }

    async fn current_registrations(
        &self,
    ) -> Result<Vec<StoredRegistration>, lucid_consensus::Error> {
        self.current_registrations_sql()
            .await
            .map_err(|e| e.into_store("reading current registrations"))
    }

    async fn insert_seal(
        &self,
        seal: &StoredSeal,
    ) -> Result<InsertOutcome, lucid_consensus::Error> {
        self.insert_seal_sql(seal).await.map_err(|e| e.into_store("inserting a seal"))
    }

    async fn get_seal(
        &self,
        node: &NodeId,
        slot: Slot,
    ) -> Result<Option<StoredSeal>, lucid_consensus::Error> {
        self.get_seal_sql(node, slot).await.map_err(|e| e.into_store("reading a seal"))
    }

    async fn stored_tally(
        &self,
        params: &lucid_consensus::ConsensusParams,
        epoch: lucid_core::Epoch,
        membership: &(dyn lucid_consensus::tally::MembershipView + Sync),
        revision: u32,
    ) -> Result<Option<lucid_consensus::tally::Tally>, lucid_consensus::Error> {
        let tally = self
            .tally_from_sums(params, epoch, membership, revision)
            .await
            .map_err(|e| e.into_store("computing a tally from the proof sums"))?;
        Ok(Some(tally))
    }
}
