-- Appointment service schema: bookings and invitations (预约).
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

CREATE TABLE appointments (
    id                 UUID PRIMARY KEY,
    -- 预约编号: YY + yyyymmdd (Shanghai) + 6-digit daily sequence.
    number             TEXT        NOT NULL UNIQUE,
    origin             TEXT        NOT NULL CHECK (origin IN ('taxpayer', 'bureau')),
    taxpayer_id        TEXT        NOT NULL,
    taxpayer_name      TEXT        NOT NULL,
    service_type       TEXT        NOT NULL,
    method             TEXT        NOT NULL CHECK (method IN ('phone', 'online')),
    unit_code          TEXT        NOT NULL,
    unit_name          TEXT        NOT NULL,
    business_category  TEXT        NOT NULL,
    slot_start         TIMESTAMPTZ NOT NULL,
    slot_end           TIMESTAMPTZ NOT NULL,
    description        TEXT        NOT NULL,
    phone              TEXT        NOT NULL DEFAULT '',
    confirm_status     TEXT        NOT NULL,
    interaction_status TEXT        NOT NULL,
    reason             TEXT        NOT NULL DEFAULT '',
    client_request_id  TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (taxpayer_id, client_request_id)
);
CREATE INDEX appointments_taxpayer ON appointments (taxpayer_id, slot_start DESC);
CREATE INDEX appointments_unit ON appointments (unit_code, slot_start);

-- Daily counters for human-readable numbers.
CREATE TABLE number_counters (
    prefix TEXT   NOT NULL,
    day    DATE   NOT NULL,
    last   BIGINT NOT NULL,
    PRIMARY KEY (prefix, day)
);
