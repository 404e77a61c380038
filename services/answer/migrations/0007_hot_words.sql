-- 热词: words taxpayers ask about most, recomputed from the ask log by a periodic job.
CREATE TABLE hot_words (
    rank         INT PRIMARY KEY,
    word         TEXT        NOT NULL,
    heat         REAL        NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL
);
