-- The read path (issue 5): every listing the history function serves walks an index.
-- The gateway's conversation list may ask for the archived ones only. They are few,
-- so walking the owner's keyset index and filtering would read almost every row of a
-- large tenant; this partial index holds only archived rows and costs active
-- conversations nothing on insert. (`status=active` walks conversations_owner_keyset:
-- active rows are the bulk, so that filter discards little.)
CREATE INDEX conversations_owner_archived
    ON conversations (owner_id, created_at DESC, id DESC)
    WHERE status = 'archived';
