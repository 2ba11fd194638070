-- Tables owned by pools (pools-payouts.md §2 and §6): pools and their membership rows. Ids are
-- BYTEA, slots, counters and versions BIGINT, statuses text. The constraints are the
-- backstop of the domain rules (§2.4): whatever a bug above the store writes, no pool holds more
-- than max_nodes ≤ 100 seats, no node holds two seats and no pool has two leader seats.
-- Same numbering and semantics as migrations/sqlite/0002_pools.sql.

CREATE TABLE pools (
    pool_id BYTEA NOT NULL PRIMARY KEY CHECK (length(pool_id) = 16),
    name TEXT NOT NULL,
    founder BYTEA NOT NULL CHECK (length(founder) = 32),
    leader BYTEA NOT NULL CHECK (length(leader) = 32),
    status TEXT NOT NULL CHECK (status IN ('forming', 'active', 'degraded', 'disbanded')),
    max_nodes BIGINT NOT NULL CHECK (max_nodes BETWEEN 1 AND 100),
    seats BIGINT NOT NULL CHECK (seats BETWEEN 0 AND max_nodes),
    created_slot BIGINT NOT NULL CHECK (created_slot >= 0),
    disbanded_slot BIGINT CHECK (disbanded_slot >= 0),
    -- Incremented by every change of the row: the compare-and-set token.
    version BIGINT NOT NULL CHECK (version >= 1),
    CHECK ((status = 'disbanded') = (disbanded_slot IS NOT NULL)),
    CHECK (status <> 'disbanded' OR seats = 0)
);

-- Rows are never deleted; `id` keeps their insertion order. There is no foreign key to `pools`:
-- a Join naming a pool that never existed is still recorded (`joining`, then `rejected` with
-- POOL_NOT_FOUND), exactly as the domain state does.
CREATE TABLE pool_members (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool_id BYTEA NOT NULL CHECK (length(pool_id) = 16),
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    role TEXT NOT NULL CHECK (role IN ('leader', 'member')),
    status TEXT NOT NULL CHECK (
        status IN ('joining', 'active', 'degraded', 'leaving', 'banned', 'closed', 'rejected')
    ),
    from_slot BIGINT NOT NULL CHECK (from_slot >= 0),
    to_slot BIGINT CHECK (to_slot >= 0),
    op_digest BYTEA NOT NULL CHECK (length(op_digest) = 32),
    reason TEXT CHECK (reason IN ('POOL_NOT_FOUND', 'POOL_DISBANDED', 'POOL_FULL',
        'ALREADY_IN_POOL', 'NOT_MEMBER', 'BANNED', 'NOT_LEADER', 'BELOW_SEATS', 'INVALID_NAME',
        'INVALID_MAX_NODES')),
    CHECK ((status = 'rejected') = (reason IS NOT NULL)),
    CHECK ((status IN ('banned', 'closed')) = (to_slot IS NOT NULL)),
    CHECK (role = 'member' OR status NOT IN ('joining', 'rejected'))
);

-- One seat per node, anywhere.
CREATE UNIQUE INDEX pool_members_one_seat_per_node ON pool_members (node_id)
    WHERE status IN ('active', 'degraded', 'leaving');
-- One leader seat per pool.
CREATE UNIQUE INDEX pool_members_one_leader_per_pool ON pool_members (pool_id)
    WHERE role = 'leader' AND status IN ('active', 'degraded', 'leaving');
-- One pending row per accepted Join, so that recording it twice concurrently records it once.
CREATE UNIQUE INDEX pool_members_one_pending_join ON pool_members (op_digest, node_id)
    WHERE status = 'joining';
-- The rows of a pool by status (seats, bans, pending joins).
CREATE INDEX pool_members_by_pool ON pool_members (pool_id, status);
-- The row of an accepted Join, found again when it is applied or rejected.
CREATE INDEX pool_members_by_op ON pool_members (op_digest, node_id);
