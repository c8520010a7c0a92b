-- The Idempotency-Key a tenant-owned Mistral object was created under (issue 19): a
-- create repeated after the gateway failed between recording the object and completing
-- the key (the key's lock then runs out and the repeat runs again) finds the object
-- this key already made and answers with it, instead of making a second one (a second
-- batch job is a second spend). NULL for objects made without a key or before this.
ALTER TABLE owned_resources ADD COLUMN idempotency_key text;
CREATE INDEX owned_resources_idempotency_key ON owned_resources (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
