-- Anti-harassment ladder (防攻击骚扰): every taxpayer input is logged briefly for flood and
-- repetition detection; each sender's strikes and current restriction are kept per sender.
CREATE TABLE moderation_inputs (
    sender_id TEXT        NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    digest    BIGINT      NOT NULL
);
CREATE INDEX moderation_inputs_sender ON moderation_inputs (sender_id, at);

CREATE TABLE restrictions (
    sender_id       TEXT        PRIMARY KEY,
    level           TEXT        NOT NULL CHECK (level IN ('none', 'warned', 'muted', 'blocked', 'lifted')),
    strikes         INT         NOT NULL DEFAULT 0,
    muted_until     TIMESTAMPTZ,
    last_strike_at  TIMESTAMPTZ,
    signals         TEXT[]      NOT NULL DEFAULT '{}',
    interception_id UUID,
    lifted_by       TEXT        NOT NULL DEFAULT '',
    lift_reason     TEXT        NOT NULL DEFAULT '',
    lifted_at       TIMESTAMPTZ
);
CREATE INDEX restrictions_recent ON restrictions (last_strike_at DESC);

-- Harassment signals behind an interception, and lookups by sender.
ALTER TABLE interceptions ADD COLUMN signals TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX interceptions_sender ON interceptions (sender_id, created_at DESC);

-- Texts checked per day (Asia/Shanghai), added by each replica now and then.
CREATE TABLE moderation_days (
    day     DATE   PRIMARY KEY,
    checked BIGINT NOT NULL DEFAULT 0
);
