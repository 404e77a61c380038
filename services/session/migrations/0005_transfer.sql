-- 转接中: the conversation is back in the office's line after a transfer; the taxpayer cannot
-- end it until an agent takes it (§3.9.3).
ALTER TABLE conversations ADD COLUMN transferring BOOLEAN NOT NULL DEFAULT false;
