-- Uploads and attachments. An upload is announced (CreateUpload: name, size and purpose
-- checked), its bytes are PUT once to a capability URL (content sniffed before anything is
-- stored, size enforced while streaming), then completed; the attachment keeps the upload's id.
CREATE TABLE uploads (
    id                UUID PRIMARY KEY,
    -- Caller subject: "taxpayer:<tax id>" or "agent:<agent id>".
    uploader          TEXT        NOT NULL,
    uploader_office   TEXT        NOT NULL,
    client_request_id TEXT        NOT NULL,
    purpose           TEXT        NOT NULL CHECK (purpose IN ('chat_image', 'chat_file', 'appointment', 'leave_message')),
    file_name         TEXT        NOT NULL,
    extension         TEXT        NOT NULL,
    declared_type     TEXT        NOT NULL,
    size_bytes        BIGINT      NOT NULL,
    conversation_id   UUID,
    -- SHA-256 of the PUT token; the token itself is only in the URL handed to the uploader.
    token_hash        BYTEA       NOT NULL,
    state             TEXT        NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'receiving', 'stored', 'complete', 'rejected')),
    -- Detected by content sniffing once the bytes arrive.
    content_type      TEXT,
    kind              TEXT CHECK (kind IN ('image', 'file')),
    storage_key       TEXT,
    rejection         TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL,
    receiving_at      TIMESTAMPTZ,
    stored_at         TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    UNIQUE (uploader, client_request_id)
);

-- Who besides the uploader may read an attachment: the taxpayer and the office (with its
-- parent offices) of the record it belongs to (a conversation, an appointment, a leave
-- message, a reply or a ticket).
CREATE TABLE attachment_grants (
    attachment_id UUID        NOT NULL REFERENCES uploads (id),
    reference     TEXT        NOT NULL,
    taxpayer_id   TEXT        NOT NULL,
    office_code   TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (attachment_id, reference)
);
