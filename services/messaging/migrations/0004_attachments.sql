-- 附件材料 of 留言, replies and tickets: metadata of uploads linked through the session
-- service (which keeps the bytes and decides who may download them).
ALTER TABLE leave_messages ADD COLUMN attachments JSONB NOT NULL DEFAULT '[]';
ALTER TABLE leave_message_replies ADD COLUMN attachments JSONB NOT NULL DEFAULT '[]';
ALTER TABLE tickets ADD COLUMN attachments JSONB NOT NULL DEFAULT '[]';
