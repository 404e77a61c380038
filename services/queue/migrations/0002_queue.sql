-- The human queue: agents with presence and capacity, and queue entries.
CREATE TABLE agents (
    agent_id       TEXT PRIMARY KEY,
    name           TEXT        NOT NULL,
    office_code    TEXT        NOT NULL,
    presence       TEXT        NOT NULL CHECK (presence IN ('online', 'busy', 'away', 'offline')),
    capacity       INT         NOT NULL CHECK (capacity BETWEEN 0 AND 50),
    -- Conversations being served; raised only under this row's lock while below capacity.
    active_count   INT         NOT NULL DEFAULT 0 CHECK (active_count >= 0),
    presence_since TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_assigned  TIMESTAMPTZ
);
CREATE INDEX agents_office ON agents (office_code);

CREATE TABLE queue_entries (
    id               UUID PRIMARY KEY,
    conversation_id  TEXT        NOT NULL,
    taxpayer_id      TEXT        NOT NULL,
    taxpayer_name    TEXT        NOT NULL,
    -- The office whose agents serve it (the 主管税务机关, or the nearest ancestor with agents).
    office_code      TEXT        NOT NULL,
    trigger          TEXT        NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('waiting', 'assigned', 'cancelled', 'expired', 'closed')),
    topic_hint       TEXT        NOT NULL DEFAULT '',
    question_summary TEXT        NOT NULL DEFAULT '',
    channel          TEXT        NOT NULL DEFAULT '',
    agent_id         TEXT        NOT NULL DEFAULT '',
    agent_name       TEXT        NOT NULL DEFAULT '',
    enqueued_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    assigned_at      TIMESTAMPTZ,
    closed_at        TIMESTAMPTZ
);
-- One open entry per conversation.
CREATE UNIQUE INDEX queue_entries_open ON queue_entries (conversation_id) WHERE state IN ('waiting', 'assigned');
CREATE INDEX queue_entries_waiting ON queue_entries (office_code, enqueued_at, id) WHERE state = 'waiting';
