-- Batch jobs metered without being read, and priced before they run (shared/resources).
-- `swept_at` is when the sweep (the batch function's `POST /gateway/v1/batch-jobs/sweep`,
-- run by Cloud Scheduler) last took the job to ask Mistral about it: a run takes the jobs
-- not yet metered that were swept longest ago (never first), so a run that cannot finish
-- them all leaves the rest at the front of the next run's queue, and two runs at once take
-- different jobs (FOR UPDATE SKIP LOCKED). `budget_reservation` is what the create reserved
-- of the tenant's token budget (tokens and the Redis buckets they went into), settled
-- against the job's real tokens when it is metered; null when nothing was reserved.
ALTER TABLE owned_resources
    ADD COLUMN swept_at timestamptz,
    ADD COLUMN budget_reservation jsonb;

-- The sweep's queue: live batch jobs whose spend is not counted yet, least recently swept
-- first.
CREATE INDEX owned_resources_unmetered_jobs
    ON owned_resources (swept_at ASC NULLS FIRST, created_at, id)
    WHERE kind = 'batch_job' AND status = 'active' AND metered_at IS NULL;
