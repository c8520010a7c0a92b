-- Tenancy (issue 15): tenants as objects, the operator role, per-key allow-lists,
-- rotation with a grace window, and an append-only audit log.

-- A tenant and its limits; a null limit is the deployment's default (Settings).
CREATE TABLE tenants (
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    disabled                boolean NOT NULL DEFAULT false,
    rate_limit_requests     integer CHECK (rate_limit_requests > 0),
    rate_limit_window       integer CHECK (rate_limit_window > 0),
    token_budget_per_minute integer CHECK (token_budget_per_minute >= 0),
    token_budget_per_day    integer CHECK (token_budget_per_day >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Every owner the data already names becomes a tenant, named after its id.
INSERT INTO tenants (id, name)
SELECT owner_id, owner_id FROM (
    SELECT owner_id FROM api_keys
    UNION SELECT owner_id FROM agents
    UNION SELECT owner_id FROM conversations
    UNION SELECT owner_id FROM usage_events
    UNION SELECT owner_id FROM batches
) AS owners
ON CONFLICT (id) DO NOTHING;

ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_tenant FOREIGN KEY (owner_id) REFERENCES tenants (id);

-- A new role, `operator`: the people who run the deployment.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_role_check CHECK (role IN ('operator', 'admin', 'user', 'read_only'));

-- Allow-lists: the models and agents a key may use (empty: no restriction).
ALTER TABLE api_keys
    ADD COLUMN allowed_models text[] NOT NULL DEFAULT '{}',
    ADD COLUMN allowed_agents text[] NOT NULL DEFAULT '{}',
    -- After a rotation with a grace window, the old secret works until it expires.
    ADD COLUMN previous_secret_hash bytea,
    ADD COLUMN previous_secret_expires_at timestamptz;
CREATE INDEX api_keys_previous_secret ON api_keys (previous_secret_hash)
    WHERE previous_secret_hash IS NOT NULL;

-- One row per change made through the administration routes, in the change's own
-- transaction. Never a secret in `changes`.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    tenant_id    text NOT NULL,
    actor_key_id text,
    actor_prefix text,
    actor_role   text,
    action       text NOT NULL,
    target_id    text,
    request_id   text,
    outcome      text NOT NULL DEFAULT 'success',
    changes      jsonb NOT NULL DEFAULT '{}'
);
-- Newest first, per tenant (an admin's view) and across tenants (an operator's).
CREATE INDEX audit_log_tenant_keyset ON audit_log (tenant_id, id DESC);

-- Append-only for everyone but a superuser: the table's owner (the migrating user, and
-- the app's user where it is the same, as in the local stack) cannot update or delete a
-- row either. On Cloud SQL the functions' users are not the owner and are also refused
-- the privilege itself (deploy/grants.py), so they cannot drop or disable the trigger.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
