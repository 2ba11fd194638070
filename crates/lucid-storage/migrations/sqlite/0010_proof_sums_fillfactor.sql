-- PostgreSQL leaves room on the pages of `proof_sums` for in-place updates (see the other
-- backend's 0010_proof_sums_fillfactor.sql). SQLite rewrites a row in place in its b-tree page
-- and has no such setting: nothing to change here. Kept so both backends have the same
-- migration numbers.

SELECT 1;
