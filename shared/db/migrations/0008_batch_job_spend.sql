-- Batch jobs through the gateway (issue 19): a job spends tokens outside every per-call
-- budget, so its spend is counted once, when the gateway first sees it finished
-- (shared/resources). `api_key_id` is the key that created the object (null for rows
-- written before this migration); `metered_at` is set, in the same transaction as the
-- job's one usage event, by the first request that sees the job finished: the guard
-- that makes two requests seeing it at once record one event.
ALTER TABLE owned_resources
    ADD COLUMN api_key_id text,
    ADD COLUMN metered_at timestamptz;
