-- Issue 16: an entry Mistral holds that PostgreSQL cannot (a NaN, a NUL character, a
-- lone surrogate) is stored with those values replaced and marked 'unstorable', so the
-- conversation goes on being stored; before, every later turn failed on the same value.
ALTER TABLE conversation_entries DROP CONSTRAINT conversation_entries_status_check;
ALTER TABLE conversation_entries ADD CONSTRAINT conversation_entries_status_check
    CHECK (status IN ('complete', 'incomplete', 'unstorable'));
