-- Tenant-owned Mistral resources (issue 19): files, libraries, library documents and batch
-- jobs live in Mistral under the gateway's one API key, so Mistral cannot tell tenants
-- apart. One row per object the gateway created records its owner (shared/resources); it is
-- written before the caller sees the object's id. `body` is Mistral's last answer for the
-- object, served back in lists; `parent_id` is a document's library.
CREATE TABLE owned_resources (
    kind        text NOT NULL CHECK (kind IN ('file', 'library', 'document', 'batch_job')),
    id          text NOT NULL,
    owner_id    text NOT NULL,
    parent_id   text,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);

-- A tenant's live objects of a kind (and a library's documents), newest first.
CREATE INDEX owned_resources_owner ON owned_resources (owner_id, kind, created_at DESC, id DESC)
    WHERE status = 'active';
CREATE INDEX owned_resources_parent ON owned_resources (parent_id, created_at DESC, id DESC)
    WHERE status = 'active' AND parent_id IS NOT NULL;
