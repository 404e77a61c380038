-- Every moderation interception (mask or block), with its evidence, for the admin review.
CREATE TABLE interceptions (
    id              UUID PRIMARY KEY,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    direction       TEXT        NOT NULL,
    verdict         TEXT        NOT NULL,
    conversation_id TEXT        NOT NULL DEFAULT '',
    sender_id       TEXT        NOT NULL DEFAULT '',
    text            TEXT        NOT NULL,
    hits            JSONB       NOT NULL DEFAULT '[]',
    emotion         TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX interceptions_time ON interceptions (created_at DESC);
