-- Human interaction: the serving agent and the queue entry of a conversation.
ALTER TABLE conversations
    ADD COLUMN agent_id       TEXT NOT NULL DEFAULT '',
    ADD COLUMN agent_name     TEXT NOT NULL DEFAULT '',
    ADD COLUMN agent_office   TEXT NOT NULL DEFAULT '',
    ADD COLUMN queue_entry_id TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_agent ON conversations (agent_id) WHERE agent_id <> '';
