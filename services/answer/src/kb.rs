//! Knowledge-base storage: catalog import and exact-match lookup of published, currently
//! valid items.

use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::{ApiError, StartupError};

/// One line of `standard-questions.jsonl`.
#[derive(Debug, Deserialize)]
pub struct CatalogItem {
    pub id: String,
    pub topic: String,
    pub question: String,
    #[serde(default)]
    pub facts: Vec<String>,
    #[serde(default)]
    pub basis: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    #[serde(default)]
    pub audience: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// One line of `seed/kb/*.jsonl` (see that folder's README).
#[derive(Debug, Deserialize)]
pub struct Draft {
    pub id: String,
    pub summary: String,
    pub blocks: serde_json::Value,
    pub similar: Vec<String>,
    pub citations: serde_json::Value,
    #[serde(default)]
    pub related: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Item {
    pub id: Uuid,
    pub catalog_id: Option<String>,
    pub topic: String,
    pub question: String,
    pub facts: sqlx::types::Json<Vec<String>>,
    pub basis: sqlx::types::Json<Vec<String>>,
    pub summary: String,
    pub blocks: sqlx::types::Json<serde_json::Value>,
    pub citations: sqlx::types::Json<serde_json::Value>,
    pub related: Vec<String>,
}

/// A moderation interception and its evidence.
pub struct Interception<'a> {
    pub id: Uuid,
    pub direction: &'a str,
    pub verdict: &'a str,
    pub conversation_id: &'a str,
    pub sender_id: &'a str,
    pub text: &'a str,
    pub hits: &'a [crate::moderation::Hit],
    pub emotion: String,
    /// Harassment signals (`flood`, `repetition`, `abuse`, `injection`).
    pub signals: Vec<String>,
}

/// Adds an answer event to the outbox in the caller's transaction.
pub(crate) async fn enqueue_event(
    tx: &mut sqlx::PgConnection,
    key: &str,
    event_type: &str,
    payload: zhengna_proto::answer::v1::answer_event::Payload,
) -> Result<(), ApiError> {
    use prost::Message as _;
    let now = chrono::Utc::now();
    let payload = zhengna_proto::answer::v1::AnswerEvent {
        aggregate_id: key.to_owned(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        payload: Some(payload),
    }
    .encode_to_vec();
    zhengna_platform::outbox::enqueue(
        tx,
        zhengna_platform::outbox::OutboxEvent { topic: zhengna_proto::topics::ANSWER, key, event_type, payload },
    )
    .await?;
    Ok(())
}

#[derive(Clone)]
pub struct Kb {
    pool: PgPool,
}

impl Kb {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Imports the catalog when the KB has no items; returns how many were imported.
    pub async fn seed_if_empty(&self, path: &Path) -> Result<usize, StartupError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM kb_items").fetch_one(&self.pool).await?;
        if count > 0 {
            return Ok(0);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartupError::Config(format!("seed.catalog_path {}: {e}", path.display())))?;
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let item: CatalogItem = serde_json::from_str(line)
                .map_err(|e| StartupError::Config(format!("{}:{}: {e}", path.display(), line_no + 1)))?;
            sqlx::query(
                "INSERT INTO kb_items (id, catalog_id, topic, question, question_normalized, facts, basis,
                                       keywords, audience, valid_from, valid_to, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'published')
                 ON CONFLICT (catalog_id) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(&item.id)
            .bind(&item.topic)
            .bind(&item.question)
            .bind(crate::normalize::normalize(&item.question))
            .bind(sqlx::types::Json(&item.facts))
            .bind(sqlx::types::Json(&item.basis))
            .bind(&item.keywords)
            .bind(&item.audience)
            .bind(item.valid_from)
            .bind(item.valid_to)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Applies the drafted answers in `dir` to items that have none yet (by catalog id).
    pub async fn apply_drafts(&self, dir: &Path) -> Result<usize, StartupError> {
        if !dir.is_dir() {
            return Ok(0);
        }
        let missing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM kb_items WHERE summary = ''").fetch_one(&self.pool).await?;
        if missing == 0 {
            return Ok(0);
        }
        let mut files: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")) {
            let text = std::fs::read_to_string(path)?;
            for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let d: Draft = serde_json::from_str(line)
                    .map_err(|e| StartupError::Config(format!("{}:{}: {e}", path.display(), line_no + 1)))?;
                let normalized: Vec<String> = d.similar.iter().map(|s| crate::normalize::normalize(s)).collect();
                n += sqlx::query(
                    "UPDATE kb_items SET summary = $2, blocks = $3, similar_questions = $4, similar_normalized = $5, citations = $6,
                         related = $7, updated_at = now()
                     WHERE catalog_id = $1 AND summary = ''",
                )
                .bind(&d.id)
                .bind(&d.summary)
                .bind(sqlx::types::Json(&d.blocks))
                .bind(&d.similar)
                .bind(&normalized)
                .bind(sqlx::types::Json(&d.citations))
                .bind(&d.related)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Standard questions of the given catalog ids, in that order (for 猜你想问).
    pub async fn questions(&self, catalog_ids: &[String]) -> Result<Vec<(Uuid, String, String)>, ApiError> {
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, catalog_id, question FROM kb_items WHERE catalog_id = ANY($1) AND status = 'published'",
        )
        .bind(catalog_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(catalog_ids.iter().filter_map(|c| rows.iter().find(|r| &r.1 == c).cloned()).collect())
    }

    /// What the matching engine indexes: every published item.
    pub async fn engine_items(&self) -> Result<Vec<crate::engine::EngineItem>, ApiError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Uuid,
            Option<String>,
            String,
            String,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Option<NaiveDate>,
            Option<NaiveDate>,
            sqlx::types::Json<Vec<String>>,
            String,
            i64,
        )> = sqlx::query_as(
            "SELECT i.id, i.catalog_id, i.topic, i.question, i.similar_questions, i.keywords, i.audience, i.valid_from,
                    i.valid_to, i.facts, i.summary,
                    (SELECT count(*) FROM replies r
                     WHERE r.item_id = i.id AND r.created_at > now() - interval '30 days') AS asked
             FROM kb_items i WHERE i.status = 'published' ORDER BY i.catalog_id, i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, catalog, topic, question, similar, keywords, audience, from, to, facts, summary, asked)| {
                crate::engine::EngineItem {
                    key: id.to_string(),
                    catalog_id: catalog.unwrap_or_default(),
                    question,
                    similar,
                    keywords,
                    content: facts.0.into_iter().chain(std::iter::once(summary).filter(|s| !s.is_empty())).collect(),
                    topic,
                    audience,
                    valid_from: from,
                    valid_to: to,
                    popularity: u32::try_from(asked).unwrap_or(u32::MAX),
                }
            })
            .collect())
    }

    /// Records one round of a conversation; returns how many rounds in a row are now
    /// unresolved (0 after an answer).
    pub async fn record_round(&self, conversation_id: &str, resolved: bool) -> Result<i32, ApiError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO conversation_rounds (conversation_id, unresolved) VALUES ($1, CASE WHEN $2 THEN 0 ELSE 1 END)
             ON CONFLICT (conversation_id) DO UPDATE
                SET unresolved = CASE WHEN $2 THEN 0 ELSE conversation_rounds.unresolved + 1 END, updated_at = now()
             RETURNING unresolved",
        )
        .bind(conversation_id)
        .bind(resolved)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Logs a reply and publishes `QuestionAsked` with it (one transaction, through the
    /// outbox); `event` is completed with the reply id.
    pub async fn log_reply(
        &self,
        decision: &str,
        mut event: zhengna_proto::answer::v1::QuestionAsked,
    ) -> Result<Uuid, ApiError> {
        let id = Uuid::now_v7();
        let item = Uuid::parse_str(&event.item_id).ok();
        let (taxpayer, conversation_id, question, confidence) =
            (event.taxpayer_id.clone(), event.conversation_id.clone(), event.question.clone(), event.confidence);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO replies (id, taxpayer_id, conversation_id, question, decision, item_id, confidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(&taxpayer)
        .bind(&conversation_id)
        .bind(&question)
        .bind(decision)
        .bind(item)
        .bind(confidence)
        .execute(&mut *tx)
        .await?;
        event.reply_id = id.to_string();
        let key = if conversation_id.is_empty() { taxpayer } else { conversation_id };
        enqueue_event(
            &mut tx,
            &key,
            "zhengna.answer.v1.QuestionAsked",
            zhengna_proto::answer::v1::answer_event::Payload::QuestionAsked(event),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The successor of a retired item, if it names one.
    pub async fn successor(&self, id: Uuid) -> Result<Option<Uuid>, ApiError> {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT superseded_by FROM kb_items WHERE id = $1 AND status = 'retired' AND superseded_by <> ''",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(next.and_then(|n| Uuid::parse_str(&n).ok()))
    }

    /// Records a moderation interception with its evidence; returns its id.
    pub async fn record_interception(&self, i: Interception<'_>) -> Result<Uuid, ApiError> {
        use zhengna_proto::answer::v1 as pb;
        let Interception { id, direction, verdict, conversation_id, sender_id, text, hits, emotion, signals } = i;
        let conversation_id: String = conversation_id.chars().take(64).collect();
        let sender_id: String = sender_id.chars().take(64).collect();
        let json: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| serde_json::json!({ "word": h.word, "category": h.category as i32, "start": h.start, "end": h.end }))
            .collect();
        let mut tx = self.pool.begin().await?;
        let created_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "INSERT INTO interceptions (id, direction, verdict, conversation_id, sender_id, text, hits, emotion, signals)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at",
        )
        .bind(id)
        .bind(direction)
        .bind(verdict)
        .bind(&conversation_id)
        .bind(&sender_id)
        .bind(text)
        .bind(sqlx::types::Json(json))
        .bind(&emotion)
        .bind(&signals)
        .fetch_one(&mut *tx)
        .await?;
        let record = crate::moderation_admin::InterceptionRow {
            id,
            created_at,
            direction: direction.to_owned(),
            verdict: verdict.to_owned(),
            conversation_id: conversation_id.clone(),
            sender_id: sender_id.clone(),
            text: text.to_owned(),
            hits: sqlx::types::Json(hits.iter().map(crate::moderation_admin::StoredHit::from).collect()),
            emotion,
            signals,
        };
        let key = if conversation_id.is_empty() { sender_id.clone() } else { conversation_id.clone() };
        enqueue_event(
            &mut tx,
            &key,
            "zhengna.answer.v1.MessageIntercepted",
            pb::answer_event::Payload::MessageIntercepted(pb::MessageIntercepted {
                conversation_id,
                interception: Some(record.to_proto()),
            }),
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("zhengna_moderation_interceptions_total", "direction" => direction.to_owned(), "verdict" => verdict.to_owned())
            .increment(1);
        Ok(id)
    }

    pub async fn by_id(&self, id: Uuid, today: NaiveDate) -> Result<Option<Item>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT id, catalog_id, topic, question, facts, basis, summary, blocks, citations, related FROM kb_items
             WHERE id = $1 AND status = 'published'
               AND (valid_from IS NULL OR valid_from <= $2)
               AND (valid_to IS NULL OR valid_to >= $2)",
        )
        .bind(id)
        .bind(today)
        .fetch_optional(&self.pool)
        .await?)
    }
}
