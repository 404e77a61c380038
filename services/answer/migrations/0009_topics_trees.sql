-- Topics (专题; some offered as 问答套餐) and clarification trees (多轮互动), edited by KB
-- editors; seeded from seed/topics.jsonl and seed/clarifications.jsonl when empty.
CREATE TABLE topics (
    prefix      TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL UNIQUE,
    description TEXT        NOT NULL DEFAULT '',
    is_package  BOOLEAN     NOT NULL DEFAULT false,
    sort_order  INT         NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE clarification_trees (
    id         UUID        PRIMARY KEY,
    triggers   TEXT[]      NOT NULL,
    -- The root node: {"prompt", "options": [{"label", "node" | "item" (catalog id)}]}.
    root       JSONB       NOT NULL,
    enabled    BOOLEAN     NOT NULL DEFAULT true,
    version    INT         NOT NULL DEFAULT 1,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
