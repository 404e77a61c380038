-- Answer service schema: knowledge items (the full KB model arrives with the answering issue).
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

CREATE TABLE kb_items (
    id                  UUID PRIMARY KEY,
    -- Catalog code (e.g. FP-012) kept from the standard-question catalog.
    catalog_id          TEXT        UNIQUE,
    topic               TEXT        NOT NULL,
    question            TEXT        NOT NULL,
    -- question after normalisation; exact-match lookups use it.
    question_normalized TEXT        NOT NULL,
    facts               JSONB       NOT NULL DEFAULT '[]',
    basis               JSONB       NOT NULL DEFAULT '[]',
    keywords            TEXT[]      NOT NULL DEFAULT '{}',
    audience            TEXT[]      NOT NULL DEFAULT '{}',
    valid_from          DATE,
    valid_to            DATE,
    status              TEXT        NOT NULL DEFAULT 'published' CHECK (status IN ('draft', 'published', 'retired')),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX kb_items_question_normalized ON kb_items (question_normalized) WHERE status = 'published';
