-- Item versions and edits waiting for publication; favourites (我的收藏).
ALTER TABLE kb_items
    ADD COLUMN version       INT   NOT NULL DEFAULT 1,
    -- Edits made by UpdateItem, applied (and the version bumped) by PublishItem.
    ADD COLUMN pending       JSONB,
    ADD COLUMN superseded_by TEXT  NOT NULL DEFAULT '';

CREATE TABLE favourites (
    id          UUID PRIMARY KEY,
    taxpayer_id TEXT        NOT NULL,
    item_id     UUID        NOT NULL REFERENCES kb_items (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (taxpayer_id, item_id)
);
CREATE INDEX favourites_item ON favourites (item_id);
