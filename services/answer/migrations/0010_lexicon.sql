-- Supervisors' changes to the shipped sensitive-word lists: a word added or changed
-- (category, action, directions), or a shipped word removed.
CREATE TABLE lexicon_overrides (
    word       TEXT        PRIMARY KEY,
    removed    BOOLEAN     NOT NULL DEFAULT false,
    category   INT         NOT NULL DEFAULT 0,
    action     TEXT        NOT NULL DEFAULT '' CHECK (action IN ('', 'mask', 'block')),
    directions SMALLINT    NOT NULL DEFAULT 7,
    updated_by TEXT        NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
