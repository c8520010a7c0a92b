-- Issue 18: the gateway answers as Mistral does.
-- Mistral accepts two agents of one name: the unique index goes, a plain one keeps the
-- `name` filter of agents.list and agents.list_pages on an index.
DROP INDEX agents_owner_name;
CREATE INDEX agents_owner_name ON agents (owner_id, name) WHERE status = 'active';

-- A conversation's agent_version is the version Mistral resolved, an integer, not what
-- the request sent. Rows stored before this kept the request's value (none, or an alias):
-- the nearest the database knows is the agent's version now.
UPDATE conversations c SET agent_version = a.version::text
    FROM agents a
    WHERE c.agent_id = a.id AND (c.agent_version IS NULL OR c.agent_version !~ '^[0-9]+$');
