-- Consecutive questions per conversation the bot could not answer outright (多轮未解决);
-- after the configured number the reply proposes a human (spec §1.4 step 4).
CREATE TABLE conversation_rounds (
    conversation_id TEXT PRIMARY KEY,
    unresolved      INT         NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
