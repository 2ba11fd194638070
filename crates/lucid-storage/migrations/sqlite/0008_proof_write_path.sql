-- Issue 3 throughput of the proof write path, and the backfill of the proof sums.
-- Same numbering and semantics as the other backend's 0008_proof_write_path.sql.
--
-- 1. `proofs` loses the UNIQUE index on `digest` (the column stays). Digests are uniformly random,
--    so that index made every batch dirty about one index page per proof, written to the WAL at
--    commit and again at checkpoint: most of the time of a batched insert. The index checked
--    nothing the key does not: the digest is a hash of the signed bytes, the signed bytes decode
--    to exactly one key (node_id, slot, kind), and every read recomputes the digest and decodes
--    the key from the bytes and refuses a row where either disagrees with its columns. Two valid
--    rows with one digest would therefore have one key, which the primary key forbids. Nothing
--    looks proofs up by digest.
--    SQLite cannot drop a column constraint, so the table is rebuilt (same columns, same key).
--
-- 2. `proof_sums` keeps its beacon bitmap as twelve 60-bit integers instead of a 90-byte blob, so
--    that a batch merges its sums into the stored row in SQL (`|` on the words, `+` with an overflow
--    guard on the credits) instead of reading every touched row back first.
--    The table is recreated empty; its rows are recomputed from the proofs (see 3).
--
-- 3. `derived_state` names the tables derived from the proofs that are complete. A database whose
--    `proof_sums` row is missing here (every database created before this migration, whose proofs
--    inserted before 0007 have no sums) gets its sums recomputed from every stored proof when it is
--    opened, in Rust with the same code as the incremental path (`ProofValue::credits` works in
--    128-bit arithmetic with a cap, which SQL cannot reproduce exactly), in one transaction that
--    also writes the marker row.

CREATE TABLE proofs_rebuilt (
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    slot INTEGER NOT NULL CHECK (slot >= 0),
    kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),
    ts_ms INTEGER NOT NULL,
    bytes_transferred INTEGER,
    sessions_relayed INTEGER,
    chunks_stored INTEGER,
    size_bytes INTEGER,
    validated_sessions INTEGER,
    metrics_digest BLOB,
    signed_bytes BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    -- Unique by construction (see 1 above); not indexed.
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    received_at INTEGER NOT NULL,
    late INTEGER NOT NULL CHECK (late IN (0, 1)),
    PRIMARY KEY (slot, node_id, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO proofs_rebuilt SELECT node_id, slot, kind, ts_ms, bytes_transferred, sessions_relayed,
    chunks_stored, size_bytes, validated_sessions, metrics_digest, signed_bytes, signature, digest,
    received_at, late FROM proofs;
DROP TABLE proofs;
ALTER TABLE proofs_rebuilt RENAME TO proofs;

DROP TABLE proof_sums;
CREATE TABLE proof_sums (
    chunk INTEGER NOT NULL CHECK (chunk >= 0),
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    -- Credits of the chunk's relay, storage and validation proofs (ProofValue::credits, summed).
    relay INTEGER NOT NULL CHECK (relay >= 0),
    storage INTEGER NOT NULL CHECK (storage >= 0),
    validation INTEGER NOT NULL CHECK (validation >= 0),
    -- The beacon slots of the chunk: bit j of beacons_i is slot chunk * 720 + 60 * i + j.
    beacons_0 INTEGER NOT NULL CHECK (beacons_0 BETWEEN 0 AND 1152921504606846975),
    beacons_1 INTEGER NOT NULL CHECK (beacons_1 BETWEEN 0 AND 1152921504606846975),
    beacons_2 INTEGER NOT NULL CHECK (beacons_2 BETWEEN 0 AND 1152921504606846975),
    beacons_3 INTEGER NOT NULL CHECK (beacons_3 BETWEEN 0 AND 1152921504606846975),
    beacons_4 INTEGER NOT NULL CHECK (beacons_4 BETWEEN 0 AND 1152921504606846975),
    beacons_5 INTEGER NOT NULL CHECK (beacons_5 BETWEEN 0 AND 1152921504606846975),
    beacons_6 INTEGER NOT NULL CHECK (beacons_6 BETWEEN 0 AND 1152921504606846975),
    beacons_7 INTEGER NOT NULL CHECK (beacons_7 BETWEEN 0 AND 1152921504606846975),
    beacons_8 INTEGER NOT NULL CHECK (beacons_8 BETWEEN 0 AND 1152921504606846975),
    beacons_9 INTEGER NOT NULL CHECK (beacons_9 BETWEEN 0 AND 1152921504606846975),
    beacons_10 INTEGER NOT NULL CHECK (beacons_10 BETWEEN 0 AND 1152921504606846975),
    beacons_11 INTEGER NOT NULL CHECK (beacons_11 BETWEEN 0 AND 1152921504606846975),
    -- 0 when a sum would have overflowed: the chunk is then read proof by proof.
    exact INTEGER NOT NULL CHECK (exact IN (0, 1)),
    PRIMARY KEY (chunk, node_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE derived_state (
    name TEXT NOT NULL PRIMARY KEY CHECK (name IN ('proof_sums')),
    built_at INTEGER NOT NULL
) STRICT;
