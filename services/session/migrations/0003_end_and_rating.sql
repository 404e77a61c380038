-- Ending a conversation (结束会话) and the service rating (服务评价).
ALTER TABLE conversations
    ADD COLUMN ended_at         TIMESTAMPTZ,
    ADD COLUMN end_reason       TEXT    NOT NULL DEFAULT '',
    ADD COLUMN rating_requested BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN rating           TEXT    NOT NULL DEFAULT '' CHECK (rating IN ('', 'resolved', 'unresolved')),
    ADD COLUMN rating_comment   TEXT    NOT NULL DEFAULT '',
    ADD COLUMN rated_at         TIMESTAMPTZ;
