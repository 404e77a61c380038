-- Taxpayer preferences: 快捷入口 (chosen quick entries, in order) and 字体大小.
CREATE TABLE preferences (
    taxpayer_id     TEXT PRIMARY KEY,
    quick_entry_ids TEXT[]      NOT NULL,
    font_size       TEXT        NOT NULL CHECK (font_size IN ('small', 'medium', 'large', 'extra_large')),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
