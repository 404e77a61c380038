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
    #[serde(default)]
    pub sort_order: i32,
}

/// The seed topics (`seed/topics.jsonl`), loaded into an empty `topics` table.
pub fn seed_topics() -> Vec<Topic> {
    include_str!("../seed/topics.jsonl").lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
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

    /// 相关文件 for the hot questions (see [`related_files`]).
    pub async fn related_files(
        &self,
        questions: &[Ranked],
        limit: usize,
    ) -> Result<Vec<zhengna_proto::answer::v1::RelatedFile>, ApiError> {
        related_files(&self.pool, questions, limit).await
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

/// The document a citation names: the text before its article ("中华人民共和国个人所得税法
/// 第十一条" → the law), or the whole text.
fn document(citation: &str) -> (String, String) {
    let t = citation.trim();
    match t.rfind(" 第").or_else(|| t.rfind('第').filter(|i| t[*i..].ends_with('条'))) {
        Some(i) if i > 0 => (t[..i].trim().to_owned(), t[i..].trim().to_owned()),
        _ => (t.to_owned(), String::new()),
    }
}

/// Where a taxpayer reads a document in full: laws and regulations in the national laws
/// database, the bureau's own documents in its policy library.
fn document_url(title: &str) -> &'static str {
    if title.starts_with("中华人民共和国") || title.ends_with('法') || title.contains("条例") || title.contains("细则")
    {
        "https://flk.npc.gov.cn/"
    } else {
        "https://fgk.chinatax.gov.cn/"
    }
}

/// 相关文件 for 热点推荐 (§1.10): the policy documents behind the hot questions, in the order
/// of the questions they support, each with the articles cited and the first such question.
async fn related_files(
    pool: &PgPool,
    questions: &[Ranked],
    limit: usize,
) -> Result<Vec<zhengna_proto::answer::v1::RelatedFile>, ApiError> {
    let ids: Vec<uuid::Uuid> = questions.iter().map(|q| q.0).collect();
    let rows: Vec<(uuid::Uuid, sqlx::types::Json<serde_json::Value>)> =
        sqlx::query_as("SELECT id, citations FROM kb_items WHERE id = ANY($1)").bind(&ids).fetch_all(pool).await?;
    let mut files: Vec<(String, Vec<String>, String)> = Vec::new();
    for (id, question, _) in questions {
        let Some((_, cites)) = rows.iter().find(|(r, _)| r == id) else { continue };
        for c in cites.0.as_array().map(Vec::as_slice).unwrap_or_default() {
            let (title, article) = document(c["text"].as_str().unwrap_or_default());
            if title.is_empty() {
                continue;
            }
            match files.iter_mut().find(|f| f.0 == title) {
                Some(f) => {
                    if !article.is_empty() && !f.1.contains(&article) {
                        f.1.push(article);
                    }
                }
                None => {
                    files.push((title, [article].into_iter().filter(|a| !a.is_empty()).collect(), question.clone()))
                }
            }
        }
    }
    Ok(files
        .into_iter()
        .take(limit)
        .map(|(title, articles, question)| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            title.hash(&mut h);
            let cited = if articles.is_empty() { String::new() } else { format!("（{}）", articles.join("、")) };
            zhengna_proto::answer::v1::RelatedFile {
                id: format!("doc-{:016x}", h.finish()),
                url: document_url(&title).to_owned(),
                summary: format!("政策依据{cited}，相关问题：{question}"),
                title,
                published_at: None,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_name_their_document_and_article() {
        assert_eq!(
            document("中华人民共和国个人所得税法 第十一条"),
            ("中华人民共和国个人所得税法".to_owned(), "第十一条".to_owned())
        );
        assert_eq!(document("国家税务总局公告2024年第11号").1, "");
        assert_eq!(document_url("中华人民共和国个人所得税法"), "https://flk.npc.gov.cn/");
        assert_eq!(document_url("国家税务总局关于推广应用全面数字化电子发票的公告"), "https://fgk.chinatax.gov.cn/");
    }
}
