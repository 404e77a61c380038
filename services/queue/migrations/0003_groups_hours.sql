-- Skill groups per office (routing by topic prefix, a default group, auto or manual
-- assignment, a cap on waiting entries and a maximum wait), their members, and business
-- hours of human service per office (inherited down the hierarchy).
CREATE TABLE skill_groups (
    id                UUID PRIMARY KEY,
    office_code       TEXT        NOT NULL,
    name              TEXT        NOT NULL,
    description       TEXT        NOT NULL DEFAULT '',
    topic_prefixes    TEXT[]      NOT NULL DEFAULT '{}',
    is_default        BOOLEAN     NOT NULL DEFAULT false,
    assignment_mode   TEXT        NOT NULL DEFAULT 'manual' CHECK (assignment_mode IN ('auto', 'manual')),
    max_waiting       INT         NOT NULL DEFAULT 0 CHECK (max_waiting >= 0),
    max_wait_minutes  INT         NOT NULL DEFAULT 0 CHECK (max_wait_minutes >= 0),
    client_request_id TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX skill_groups_name ON skill_groups (office_code, name);
-- One fallback group per office.
CREATE UNIQUE INDEX skill_groups_default ON skill_groups (office_code) WHERE is_default;
CREATE UNIQUE INDEX skill_groups_request ON skill_groups (client_request_id) WHERE client_request_id IS NOT NULL;

CREATE TABLE skill_group_members (
    group_id UUID NOT NULL REFERENCES skill_groups (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (group_id, agent_id)
);
CREATE INDEX skill_group_members_agent ON skill_group_members (agent_id);

-- NULL group: the office-wide line (an office without groups).
ALTER TABLE queue_entries
    ADD COLUMN skill_group_id   UUID,
    ADD COLUMN skill_group_name TEXT NOT NULL DEFAULT '',
    ADD COLUMN transfer_count   INT  NOT NULL DEFAULT 0;
CREATE INDEX queue_entries_group_waiting ON queue_entries (skill_group_id, enqueued_at, id) WHERE state = 'waiting';

-- The schedule is a zhengna.queue.v1.BusinessHoursSchedule (protobuf); an office without a
-- row inherits its parent's, and with none up to the province human service is always open.
CREATE TABLE business_hours (
    office_code TEXT PRIMARY KEY,
    schedule    BYTEA       NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
