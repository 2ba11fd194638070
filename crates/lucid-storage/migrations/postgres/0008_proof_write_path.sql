-- Issue 3 throughput of the proof write path, and the backfill of the proof sums.
-- Same numbering and semantics as migrations/sqlite/0008_proof_write_path.sql, which explains
-- each step:
-- 1. `proofs` loses the UNIQUE index on `digest` (the column stays; unique by construction).
-- 2. `proof_sums` keeps its beacon bitmap as twelve 60-bit integers, merged in SQL.
-- 3. `derived_state` marks the derived tables that are complete; a database without the
--    `proof_sums` row gets its sums recomputed from every stored proof when it is opened.

ALTER TABLE proofs DROP CONSTRAINT proofs_digest_key;

DROP TABLE proof_sums;
CREATE TABLE proof_sums (
    chunk BIGINT NOT NULL CHECK (chunk >= 0),
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    -- Credits of the chunk's relay, storage and validation proofs (ProofValue::credits, summed).
    relay BIGINT NOT NULL CHECK (relay >= 0),
    storage BIGINT NOT NULL CHECK (storage >= 0),
    validation BIGINT NOT NULL CHECK (validation >= 0),
    -- The beacon slots of the chunk: bit j of beacons_i is slot chunk * 720 + 60 * i + j.
    beacons_0 BIGINT NOT NULL CHECK (beacons_0 BETWEEN 0 AND 1152921504606846975),
    beacons_1 BIGINT NOT NULL CHECK (beacons_1 BETWEEN 0 AND 1152921504606846975),
    beacons_2 BIGINT NOT NULL CHECK (beacons_2 BETWEEN 0 AND 1152921504606846975),
    beacons_3 BIGINT NOT NULL CHECK (beacons_3 BETWEEN 0 AND 1152921504606846975),
    beacons_4 BIGINT NOT NULL CHECK (beacons_4 BETWEEN 0 AND 1152921504606846975),
    beacons_5 BIGINT NOT NULL CHECK (beacons_5 BETWEEN 0 AND 1152921504606846975),
    beacons_6 BIGINT NOT NULL CHECK (beacons_6 BETWEEN 0 AND 1152921504606846975),
    beacons_7 BIGINT NOT NULL CHECK (beacons_7 BETWEEN 0 AND 1152921504606846975),
    beacons_8 BIGINT NOT NULL CHECK (beacons_8 BETWEEN 0 AND 1152921504606846975),
    beacons_9 BIGINT NOT NULL CHECK (beacons_9 BETWEEN 0 AND 1152921504606846975),
    beacons_10 BIGINT NOT NULL CHECK (beacons_10 BETWEEN 0 AND 1152921504606846975),
    beacons_11 BIGINT NOT NULL CHECK (beacons_11 BETWEEN 0 AND 1152921504606846975),
    -- 0 when a sum would have overflowed: the chunk is then read proof by proof.
    exact BIGINT NOT NULL CHECK (exact IN (0, 1)),
    PRIMARY KEY (chunk, node_id)
);

CREATE TABLE derived_state (
    name TEXT NOT NULL PRIMARY KEY CHECK (name IN ('proof_sums')),
    built_at BIGINT NOT NULL
);
