-- Drafted answers (seed/kb): summary, answer blocks, similar questions, citations, related.
ALTER TABLE kb_items
    ADD COLUMN summary            TEXT   NOT NULL DEFAULT '',
    ADD COLUMN blocks             JSONB  NOT NULL DEFAULT '[]',
    ADD COLUMN similar_questions  TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN similar_normalized TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN citations          JSONB  NOT NULL DEFAULT '[]',
    ADD COLUMN related            TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX kb_items_similar ON kb_items USING gin (similar_normalized) WHERE status = 'published';
