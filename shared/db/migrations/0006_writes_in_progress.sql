-- A write that waits on Mistral (agent create, update, version switch, delete; conversation
-- delete) records its intent here first instead of holding a row lock across the call
-- (shared/db/_in_progress.py). One row per key being changed; a lease frees the key of a
-- holder that died.
CREATE TABLE writes_in_progress (
    key text PRIMARY KEY,
    holder text NOT NULL,
    operation text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);
