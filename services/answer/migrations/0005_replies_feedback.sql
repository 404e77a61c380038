-- Every bot reply (the ask log): feedback and favourites refer to it, hot words and
-- popularity are computed from it.
CREATE TABLE replies (
    id              UUID PRIMARY KEY,
    taxpayer_id     TEXT        NOT NULL,
    conversation_id TEXT        NOT NULL DEFAULT '',
    question        TEXT        NOT NULL,
    decision        TEXT        NOT NULL,
    item_id         UUID,
    confidence      REAL        NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX replies_item_time ON replies (item_id, created_at) WHERE item_id IS NOT NULL;

-- 有用/无用 on a reply, once; a 无用 may then be completed once with its reason (§1.6).
-- Useless ones are the KB editors' review list.
CREATE TABLE feedback (
    id           UUID PRIMARY KEY,
    reply_id     UUID        NOT NULL UNIQUE REFERENCES replies (id),
    taxpayer_id  TEXT        NOT NULL,
    conversation_id TEXT     NOT NULL DEFAULT '',
    item_id      UUID,
    verdict      TEXT        NOT NULL CHECK (verdict IN ('useful', 'useless')),
    reason       TEXT        CHECK (reason IN ('irrelevant', 'wrong_answer', 'other')),
    comment      TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX feedback_review ON feedback (created_at) WHERE verdict = 'useless';
