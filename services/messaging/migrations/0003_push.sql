-- 精准推送: the taxpayer directory and pushes.
CREATE TABLE taxpayer_directory (
    taxpayer_id TEXT PRIMARY KEY,
    name        TEXT        NOT NULL DEFAULT '',
    office_code TEXT        NOT NULL,
    tags        TEXT[]      NOT NULL DEFAULT '{}',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX taxpayer_directory_tags ON taxpayer_directory USING gin (tags);
CREATE INDEX taxpayer_directory_office ON taxpayer_directory (office_code text_pattern_ops);

CREATE TABLE pushes (
    id                UUID PRIMARY KEY,
    title             TEXT        NOT NULL,
    body              TEXT        NOT NULL,
    link_url          TEXT        NOT NULL DEFAULT '',
    category          TEXT        NOT NULL CHECK (category IN ('todo', 'notice')),
    -- Audience: tags (any/all), office subtrees, explicit taxpayers; all given criteria apply.
    tags              TEXT[]      NOT NULL DEFAULT '{}',
    tag_match         TEXT        NOT NULL CHECK (tag_match IN ('any', 'all')),
    office_prefixes   TEXT[]      NOT NULL DEFAULT '{}',
    taxpayer_ids      TEXT[]      NOT NULL DEFAULT '{}',
    -- The creator's office subtree: a push never leaves it.
    scope_prefix      TEXT        NOT NULL,
    scheduled_at      TIMESTAMPTZ NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'cancelled', 'failed')),
    created_by_id     TEXT        NOT NULL,
    created_by_name   TEXT        NOT NULL,
    client_key        TEXT        NOT NULL UNIQUE,
    recipient_count   INT         NOT NULL DEFAULT 0,
    failure_reason    TEXT        NOT NULL DEFAULT '',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at           TIMESTAMPTZ
);
CREATE INDEX pushes_due ON pushes (scheduled_at) WHERE status = 'scheduled';

-- One notice per taxpayer per push, whatever happens.
ALTER TABLE notifications ADD COLUMN push_id UUID;
CREATE UNIQUE INDEX notifications_one_per_push ON notifications (push_id, taxpayer_id) WHERE push_id IS NOT NULL;
