-- 留言 and 工单.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE number_counters (
    prefix TEXT   NOT NULL,
    day    DATE   NOT NULL,
    last   BIGINT NOT NULL,
    PRIMARY KEY (prefix, day)
);

CREATE TABLE leave_messages (
    id                UUID PRIMARY KEY,
    -- 留言编号: LY + yyyymmdd (Shanghai) + 6-digit daily sequence.
    number            TEXT        NOT NULL UNIQUE,
    taxpayer_id       TEXT        NOT NULL,
    taxpayer_name     TEXT        NOT NULL,
    org_code          TEXT        NOT NULL,
    org_name          TEXT        NOT NULL,
    type_code         TEXT        NOT NULL,
    content           TEXT        NOT NULL,
    phone             TEXT        NOT NULL DEFAULT '',
    status            TEXT        NOT NULL CHECK (status IN ('pending', 'processing', 'replied', 'converted', 'closed')),
    conversation_id   TEXT        NOT NULL DEFAULT '',
    assignee_id       TEXT        NOT NULL DEFAULT '',
    assignee_name     TEXT        NOT NULL DEFAULT '',
    ticket_id         UUID,
    client_request_id TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (taxpayer_id, client_request_id)
);
CREATE INDEX leave_messages_taxpayer ON leave_messages (taxpayer_id, created_at DESC);
CREATE INDEX leave_messages_org ON leave_messages (org_code, created_at DESC);
CREATE INDEX leave_messages_content_trgm ON leave_messages USING gin (content gin_trgm_ops);

CREATE TABLE leave_message_replies (
    id                UUID PRIMARY KEY,
    leave_message_id  UUID        NOT NULL REFERENCES leave_messages (id),
    content           TEXT        NOT NULL,
    agent_id          TEXT        NOT NULL,
    agent_name        TEXT        NOT NULL,
    office_code       TEXT        NOT NULL,
    client_request_id TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (leave_message_id, client_request_id)
);

CREATE TABLE tickets (
    id                UUID PRIMARY KEY,
    -- 工单编号: GD + yyyymmdd + 6-digit daily sequence.
    number            TEXT        NOT NULL UNIQUE,
    source            TEXT        NOT NULL CHECK (source IN ('leave_message', 'conversation', 'manual')),
    source_id         TEXT        NOT NULL DEFAULT '',
    taxpayer_id       TEXT        NOT NULL DEFAULT '',
    taxpayer_name     TEXT        NOT NULL DEFAULT '',
    handling_office   TEXT        NOT NULL,
    original_office   TEXT        NOT NULL,
    title             TEXT        NOT NULL,
    description       TEXT        NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('open', 'in_progress', 'suspended', 'resolved', 'closed')),
    priority          TEXT        NOT NULL,
    assignee_id       TEXT        NOT NULL DEFAULT '',
    assignee_name     TEXT        NOT NULL DEFAULT '',
    resolution        TEXT        NOT NULL DEFAULT '',
    due_at            TIMESTAMPTZ NOT NULL,
    overdue           BOOLEAN     NOT NULL DEFAULT false,
    escalation_level  INT         NOT NULL DEFAULT 0,
    client_key        TEXT        NOT NULL UNIQUE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at         TIMESTAMPTZ
);
CREATE INDEX tickets_office ON tickets (handling_office, created_at DESC);
CREATE INDEX tickets_due ON tickets (due_at) WHERE status IN ('open', 'in_progress', 'suspended');

CREATE TABLE ticket_history (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   UUID        NOT NULL REFERENCES tickets (id),
    actor_role  TEXT        NOT NULL,
    actor_id    TEXT        NOT NULL,
    actor_name  TEXT        NOT NULL,
    from_status TEXT        NOT NULL,
    to_status   TEXT        NOT NULL,
    note        TEXT        NOT NULL DEFAULT '',
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_id, id);
