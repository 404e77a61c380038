-- Messaging service schema: the taxpayer inbox (我的消息).
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

CREATE TABLE notifications (
    id          UUID PRIMARY KEY,
    taxpayer_id TEXT        NOT NULL,
    category    TEXT        NOT NULL CHECK (category IN ('todo', 'notice')),
    kind        TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    link_url    TEXT        NOT NULL DEFAULT '',
    -- What the notice is about (appointment id, 留言 id, push id…).
    source_ref  TEXT        NOT NULL DEFAULT '',
    -- The event that produced it: one notice per event even if the event is redelivered.
    source_event UUID       UNIQUE,
    read_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notifications_inbox ON notifications (taxpayer_id, category, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (taxpayer_id, category) WHERE read_at IS NULL;
