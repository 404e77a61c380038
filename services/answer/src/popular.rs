//! What taxpayers ask most, from the reply log: 问答套餐 (topics flagged as packages, ranked by
//! their items' asks over a window, §1.11), 热点推荐 (the most asked questions for the caller's
//! profile, §1.10) and 热词 (words most asked about, recomputed periodically, §1.14).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use zhengna_platform::ApiError;

use crate::engine::Engine;

/// Days of asks that rank packages, questions and hot words.
pub const WINDOW_DAYS: i32 = 30;
const HOT_WORD_DAYS: i32 = 7;
const HOT_WORDS_KEPT: usize = 48;

#[derive(Debug, Clone, Deserialize)]
pub struct Topic {
    pub prefix: String,
    pub topic: String,
    #[serde(default)]
    pub package: bool,
    #[serde(default)]
    pub description: String,
}

/// The topic catalog (`seed/topics.jsonl`).
pub fn topics() -> &'static [Topic] {
    static TOPICS: std::sync::OnceLock<Vec<Topic>> = std::sync::OnceLock::new();
    TOPICS.get_or_init(|| {
        include_str!("../seed/topics.jsonl").lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    })
}

/// A ranked question: item id, standard question, asks in the window.
pub type Ranked = (uuid::Uuid, String, i64);

#[derive(Clone)]
pub struct Popular {
    pool: PgPool,
}

impl Popular {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Asks per topic name in the window.
    pub async fn topic_asks(&self) -> Result<HashMap<String, (i64, i64)>, ApiError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT i.topic,
                    count(r.id) AS asks,
                    count(DISTINCT i.id) AS questions
             FROM kb_items i
             LEFT JOIN replies r ON r.item_id = i.id AND r.created_at > now() - make_interval(days => $1)
             WHERE i.status = 'published'
             GROUP BY i.topic",
        )
        .bind(WINDOW_DAYS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t, a, q)| (t, (a, q))).collect())
    }

    /// Published questions, most asked first, optionally of one topic and for an audience.
    pub async fn questions(
        &self,
        topic: Option<&str>,
        tags: &[String],
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Ranked>, i64), ApiError> {
        let today = zhengna_platform::time::shanghai_today();
        let filter = "i.status = 'published'
              AND ($1::text IS NULL OR i.topic = $1)
              AND (cardinality($2::text[]) = 0 OR cardinality(i.audience) = 0
                   OR i.audience && $2::text[] OR '所有纳税人' = ANY(i.audience))
              AND (i.valid_from IS NULL OR i.valid_from <= $3) AND (i.valid_to IS NULL OR i.valid_to >= $3)";
        let rows: Vec<Ranked> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT i.id, i.question,
                    (SELECT count(*) FROM replies r
                     WHERE r.item_id = i.id AND r.created_at > now() - make_interval(days => $4)) AS asks
             FROM kb_items i WHERE {filter}
             ORDER BY asks DESC, i.catalog_id, i.id OFFSET $5 LIMIT $6"
        )))
        .bind(topic)
        .bind(tags)
        .bind(today)
        .bind(WINDOW_DAYS)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM kb_items i WHERE {filter}")))
                .bind(topic)
                .bind(tags)
                .bind(today)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows, total))
    }

    /// The stored hot words, with when they were computed.
    pub async fn hot_words(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<(String, i32, f32)>, i64, Option<DateTime<Utc>>), ApiError> {
        let rows: Vec<(String, i32, f32)> =
            sqlx::query_as("SELECT word, rank, heat FROM hot_words ORDER BY rank OFFSET $1 LIMIT $2")
                .bind(offset)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        let (total, at): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT count(*), max(generated_at) FROM hot_words").fetch_one(&self.pool).await?;
        Ok((rows, total, at))
    }

    /// Recomputes the hot words from the last week's questions: KB words (two or more
    /// characters) counted once per asking taxpayer, so one person repeating a word cannot
    /// make it hot. The KB's own keywords (heat 0) fill the rest of the list.
    pub async fn recompute(&self, engine: &Engine) -> Result<usize, ApiError> {
        let asked: Vec<(String, String)> = sqlx::query_as(
            "SELECT taxpayer_id, question FROM replies
             WHERE created_at > now() - make_interval(days => $1) AND question <> ''
             ORDER BY created_at DESC LIMIT 50000",
        )
        .bind(HOT_WORD_DAYS)
        .fetch_all(&self.pool)
        .await?;
        let mut counts: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for (who, q) in &asked {
            for w in engine.analyze(q).words {
                if w.chars().count() >= 2 && w.chars().all(|c| !c.is_ascii()) && engine.is_kb_word(&w) {
                    counts.entry(w).or_default().insert(who.clone());
                }
            }
        }
        let mut ranked: Vec<(String, f32)> = counts.into_iter().map(|(w, s)| (w, s.len() as f32)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // Fill up with the KB's own keywords (heat 0), so 换一批 always has more to show.
        let mut seen: std::collections::HashSet<String> = ranked.iter().map(|(w, _)| w.clone()).collect();
        for item in engine.items() {
            if ranked.len() >= HOT_WORDS_KEPT {
                break;
            }
            if let Some(k) = item.keywords.first()
                && seen.insert(k.clone())
            {
                ranked.push((k.clone(), 0.0));
            }
        }
        ranked.truncate(HOT_WORDS_KEPT);
        let max = ranked.first().map(|r| r.1).unwrap_or(0.0).max(1.0);
        let mut tx = self.pool.begin().await?;
        // Replicas take turns; the last one to finish wins.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('zhengna_hot_words'))").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM hot_words").execute(&mut *tx).await?;
        let now = Utc::now();
        for (i, (w, heat)) in ranked.iter().enumerate() {
            sqlx::query("INSERT INTO hot_words (rank, word, heat, generated_at) VALUES ($1, $2, $3, $4)")
                .bind(i as i32 + 1)
                .bind(w)
                .bind(heat / max)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ranked.len())
    }
}
