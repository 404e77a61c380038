-- Session service schema: conversations and their gap-free ordered messages.
-- Transactional outbox (platform::outbox) and consumer dedupe (platform::kafka::Consumer).
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    event_id     UUID        NOT NULL UNIQUE,
    topic        TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    traceparent  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    attempts     INT         NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE processed_events (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a handler rejected as permanently unprocessable; kept for operators, never retried.
CREATE TABLE dead_letter_events (
    id           BIGSERIAL PRIMARY KEY,
    consumer     TEXT        NOT NULL,
    event_id     UUID,
    topic        TEXT        NOT NULL,
    partition    INT         NOT NULL,
    kafka_offset BIGINT      NOT NULL,
    event_type   TEXT,
    payload      BYTEA,
    error        TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id            UUID PRIMARY KEY,
    taxpayer_id   TEXT        NOT NULL,
    taxpayer_name TEXT        NOT NULL,
    office_code   TEXT        NOT NULL,
    channel       TEXT        NOT NULL,
    mode          TEXT        NOT NULL CHECK (mode IN ('bot', 'queued', 'human', 'ended')),
    -- Highest seq handed out; bumped under the row lock, so seqs are gap-free.
    last_seq      BIGINT      NOT NULL DEFAULT 0,
    -- Messages with seq <= cleared_seq are hidden from the taxpayer's live view (清屏).
    cleared_seq   BIGINT      NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX conversations_taxpayer ON conversations (taxpayer_id, created_at DESC);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID        NOT NULL REFERENCES conversations (id),
    seq             BIGINT      NOT NULL,
    -- Sender-chosen idempotency key; a retried send returns the stored message.
    client_msg_id   TEXT        NOT NULL,
    sender          TEXT        NOT NULL CHECK (sender IN ('taxpayer', 'bot', 'agent', 'system')),
    sender_name     TEXT        NOT NULL,
    -- For bot replies: the seq of the taxpayer message answered (at most one reply each).
    reply_to        BIGINT,
    -- Plain text for search and transcripts; the full content is the encoded proto.
    text            TEXT        NOT NULL DEFAULT '',
    content         BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_msg_id)
);
CREATE UNIQUE INDEX messages_one_reply ON messages (conversation_id, reply_to) WHERE reply_to IS NOT NULL;
