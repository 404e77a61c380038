-- When the serving agent's console last showed it was connected (its conversation stream
-- refreshes this while open and clears it when closed). A taxpayer ending a human chat gets
-- the rating request only while the agent is connected (§3.9.3: not after the agent dropped
-- off).
ALTER TABLE conversations ADD COLUMN agent_seen_at TIMESTAMPTZ;
-- StartConversation resumes the taxpayer's open conversation.
CREATE INDEX conversations_open ON conversations (taxpayer_id, created_at DESC) WHERE mode <> 'ended';
