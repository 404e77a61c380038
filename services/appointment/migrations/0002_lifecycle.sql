-- Appointment lifecycle: invitations, slot capacity, transition history, reminders.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE appointments
    ADD COLUMN agent_id          TEXT        NOT NULL DEFAULT '',
    ADD COLUMN agent_name        TEXT        NOT NULL DEFAULT '',
    ADD COLUMN result_summary    TEXT        NOT NULL DEFAULT '',
    ADD COLUMN conversation_id   TEXT        NOT NULL DEFAULT '',
    ADD COLUMN reminded_at       TIMESTAMPTZ,
    -- Whether this appointment holds a place in its slot (released on cancel/reject/fail).
    ADD COLUMN holds_slot        BOOLEAN     NOT NULL DEFAULT true;

-- Existing rows used display names; keep the stored codes stable from now on.
UPDATE appointments SET service_type = 'general' WHERE service_type = '综合服务';

CREATE INDEX appointments_description_trgm ON appointments USING gin (description gin_trgm_ops);
CREATE INDEX appointments_due ON appointments (confirm_status, slot_start);

-- Booked places per unit and half-hour slot; capacity is enforced by a conditional upsert.
CREATE TABLE slot_bookings (
    unit_code  TEXT        NOT NULL,
    slot_start TIMESTAMPTZ NOT NULL,
    booked     INT         NOT NULL CHECK (booked >= 0),
    PRIMARY KEY (unit_code, slot_start)
);

-- Per-unit service hours and capacity (JSON of slots::SlotConfig); absent = the default.
CREATE TABLE slot_configs (
    unit_code  TEXT PRIMARY KEY,
    config     JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by TEXT        NOT NULL
);

-- Every transition with who, when and why.
CREATE TABLE appointment_history (
    id                 BIGSERIAL PRIMARY KEY,
    appointment_id     UUID        NOT NULL REFERENCES appointments (id),
    action             TEXT        NOT NULL,
    actor_role         TEXT        NOT NULL CHECK (actor_role IN ('taxpayer', 'agent', 'system')),
    actor_id           TEXT        NOT NULL,
    actor_name         TEXT        NOT NULL,
    confirm_status     TEXT        NOT NULL,
    interaction_status TEXT        NOT NULL,
    note               TEXT        NOT NULL DEFAULT '',
    at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX appointment_history_by_appointment ON appointment_history (appointment_id, id);
