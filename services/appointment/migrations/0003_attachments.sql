-- 附件材料: metadata of the linked uploads (the bytes stay with the session service).
ALTER TABLE appointments ADD COLUMN attachments JSONB NOT NULL DEFAULT '[]';
