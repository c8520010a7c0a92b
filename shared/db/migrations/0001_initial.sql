-- The first schema. Every row carries its owner (the tenant), every listing
-- has a keyset index that starts with the owner, and hot-path writes are
-- appends (entries, usage events), never updates of a shared counter row.

CREATE TABLE api_keys (
    id                      text PRIMARY KEY,
    owner_id                text NOT NULL,
    name                    text NOT NULL,
    role                    text NOT NULL CHECK (role IN ('admin', 'user', 'read_only')),
    -- The visible start of the key, for listings; the secret is only hashed.
    prefix                  text NOT NULL,
    secret_hash             bytea NOT NULL UNIQUE,
    rate_limit_requests     integer CHECK (rate_limit_requests > 0),
    rate_limit_window       integer CHECK (rate_limit_window > 0),
    token_budget_per_minute integer CHECK (token_budget_per_minute >= 0),
    token_budget_per_day    integer CHECK (token_budget_per_day >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    last_used_at            timestamptz,
    rotated_at              timestamptz,
    revoked_at              timestamptz
);
CREATE INDEX api_keys_owner_keyset ON api_keys (owner_id, created_at, id);

CREATE TABLE agents (
    id              text PRIMARY KEY,
    owner_id        text NOT NULL,
    name            text NOT NULL,
    description     text,
    model           text NOT NULL,
    instructions    text,
    version         integer NOT NULL DEFAULT 0,
    tools           jsonb NOT NULL DEFAULT '[]',
    completion_args jsonb NOT NULL DEFAULT '{}',
    metadata        jsonb,
    -- Mistral's last answer for this agent, so fields the gateway does not
    -- know are kept and served back unchanged.
    body            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Names are unique per owner among live agents; a deleted agent frees its name.
CREATE UNIQUE INDEX agents_owner_name ON agents (owner_id, name) WHERE status = 'active';
CREATE INDEX agents_owner_keyset ON agents (owner_id, created_at, id);

CREATE TABLE conversations (
    id                     text PRIMARY KEY,
    owner_id               text NOT NULL,
    api_key_id             text,
    -- A conversation is with an agent or with a model (the seed's NOT NULL
    -- agent_id could not store model conversations). Agents are soft-deleted,
    -- so the reference never dangles and history is never cascaded away.
    agent_id               text REFERENCES agents (id),
    agent_version          text,
    model                  text,
    name                   text,
    description            text,
    status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'archived', 'deleted')),
    metadata               jsonb,
    instructions           text,
    tools                  jsonb,
    completion_args        jsonb,
    guardrails             jsonb,
    -- Set on conversations made by a restart: where they branched from.
    parent_conversation_id text,
    parent_entry_id        text,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CHECK (agent_id IS NOT NULL OR model IS NOT NULL)
);
CREATE INDEX conversations_owner_keyset ON conversations (owner_id, created_at DESC, id DESC);
CREATE INDEX conversations_owner_agent ON conversations (owner_id, agent_id, created_at DESC, id DESC);
CREATE INDEX conversations_owner_model ON conversations (owner_id, model, created_at DESC, id DESC);
CREATE INDEX conversations_metadata ON conversations USING gin (metadata jsonb_path_ops);

CREATE TABLE conversation_entries (
    conversation_id   text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Position in the conversation: the keyset for paging entries in order.
    seq               integer NOT NULL,
    id                text NOT NULL,
    owner_id          text NOT NULL,
    type              text NOT NULL,
    role              text,
    -- Plain text when the content is a string; chunks otherwise.
    content           text,
    content_json      jsonb,
    -- The entry exactly as Mistral sent or received it, for a faithful history.
    body              jsonb NOT NULL,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    agent_id          text,
    model             text,
    tool_name         text,
    tool_call_id      text,
    parent_entry_id   text,
    -- 'incomplete' when an upstream stream broke before this entry finished.
    status            text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'incomplete')),
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, id)
);
CREATE INDEX conversation_entries_owner_created ON conversation_entries (owner_id, created_at);

-- One row per request that reached the upstream: appended, summed on read.
CREATE TABLE usage_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id          text NOT NULL,
    api_key_id        text,
    operation         text NOT NULL,
    agent_id          text,
    model             text,
    conversation_id   text,
    status            integer NOT NULL,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_owner_created ON usage_events (owner_id, created_at);

CREATE TABLE idempotency_records (
    owner_id         text NOT NULL,
    key              text NOT NULL,
    operation        text NOT NULL,
    request_hash     bytea NOT NULL,
    status           text NOT NULL CHECK (status IN ('in_progress', 'completed')),
    -- While in progress: until when the first request holds the record.
    locked_until     timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_records_expires ON idempotency_records (expires_at);

CREATE TABLE batches (
    id           text PRIMARY KEY,
    owner_id     text NOT NULL,
    message_id   text,
    status       text NOT NULL
                 CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'rejected')),
    item_count   integer NOT NULL DEFAULT 0,
    error        jsonb,
    published_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_owner_keyset ON batches (owner_id, created_at DESC, id DESC);

CREATE TABLE batch_items (
    batch_id        text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    idx             integer NOT NULL,
    owner_id        text NOT NULL,
    custom_id       text,
    status          text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    request         jsonb NOT NULL,
    conversation_id text,
    result          jsonb,
    error           jsonb,
    attempts        integer NOT NULL DEFAULT 0,
    -- A running item belongs to one worker until this time; then another may take it over.
    lease_until     timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (batch_id, idx)
);
