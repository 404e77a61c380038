//! ModerationAdminService: supervisors review interceptions (拦截情况有记录、可监控), see the
//! daily counts, and list and lift anti-harassment restrictions.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::identity::{self, AgentRole, Caller};
use zhengna_platform::paging::Page;
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::answer::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::moderation::{ALL_DIRECTIONS, Action, Direction, Entry, Override, direction_bit};

/// A sensitive-word hit as stored with an interception.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredHit {
    pub word: String,
    pub category: i32,
    pub start: usize,
    pub end: usize,
}

impl From<&crate::moderation::Hit> for StoredHit {
    fn from(h: &crate::moderation::Hit) -> Self {
        Self { word: h.word.clone(), category: h.category as i32, start: h.start, end: h.end }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct InterceptionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub direction: String,
    pub verdict: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub text: String,
    pub hits: sqlx::types::Json<Vec<StoredHit>>,
    pub emotion: String,
    pub signals: Vec<String>,
}

const COLUMNS: &str = "id, created_at, direction, verdict, conversation_id, sender_id, text, hits, emotion, signals";

fn direction_name(d: pb::ContentDirection) -> &'static str {
    match d {
        pb::ContentDirection::TaxpayerInput => "taxpayer_input",
        pb::ContentDirection::BotOutput => "bot_output",
        pb::ContentDirection::AgentOutput => "agent_output",
        pb::ContentDirection::Unspecified => "",
    }
}

fn verdict_name(v: pb::ModerationVerdict) -> &'static str {
    match v {
        pb::ModerationVerdict::Allow => "allow",
        pb::ModerationVerdict::Mask => "mask",
        pb::ModerationVerdict::Block => "block",
        pb::ModerationVerdict::Throttle => "throttle",
        pb::ModerationVerdict::Unspecified => "",
    }
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

impl InterceptionRow {
    pub fn to_proto(&self) -> pb::Interception {
        let direction =
            [pb::ContentDirection::TaxpayerInput, pb::ContentDirection::BotOutput, pb::ContentDirection::AgentOutput]
                .into_iter()
                .find(|d| direction_name(*d) == self.direction)
                .unwrap_or(pb::ContentDirection::Unspecified);
        let verdict = [
            pb::ModerationVerdict::Allow,
            pb::ModerationVerdict::Mask,
            pb::ModerationVerdict::Block,
            pb::ModerationVerdict::Throttle,
        ]
        .into_iter()
        .find(|v| verdict_name(*v) == self.verdict)
        .unwrap_or(pb::ModerationVerdict::Unspecified);
        let emotion = match self.emotion.as_str() {
            "Neutral" => pb::Emotion::Neutral,
            "Positive" => pb::Emotion::Positive,
            "Anxious" => pb::Emotion::Anxious,
            "Angry" => pb::Emotion::Angry,
            _ => pb::Emotion::Unspecified,
        };
        pb::Interception {
            id: self.id.to_string(),
            created_at: Some(ts(self.created_at)),
            direction: direction as i32,
            verdict: verdict as i32,
            conversation_id: self.conversation_id.clone(),
            sender_id: self.sender_id.clone(),
            text: self.text.clone(),
            hits: self
                .hits
                .0
                .iter()
                .map(|h| pb::SensitiveHit {
                    word: h.word.clone(),
                    category: h.category,
                    span: Some(pb::TextSpan {
                        start: i32::try_from(h.start).unwrap_or(i32::MAX),
                        end: i32::try_from(h.end).unwrap_or(i32::MAX),
                    }),
                    action: if self.verdict == "mask" {
                        pb::SensitiveAction::Mask as i32
                    } else {
                        pb::SensitiveAction::Block as i32
                    },
                })
                .collect(),
            harassment_signals: self
                .signals
                .iter()
                .map(|s| match s.as_str() {
                    "flood" => pb::HarassmentSignal::Flood as i32,
                    "repetition" => pb::HarassmentSignal::Repetition as i32,
                    "abuse" => pb::HarassmentSignal::Abuse as i32,
                    "injection" => pb::HarassmentSignal::Injection as i32,
                    _ => pb::HarassmentSignal::Unspecified as i32,
                })
                .collect(),
            emotion: emotion as i32,
        }
    }
}

/// Texts checked, counted in memory and added to `moderation_days` now and then, so the
/// checkpoint itself never waits on a shared counter row.
#[derive(Clone, Default)]
pub struct CheckCounter(Arc<AtomicI64>);

impl CheckCounter {
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what was counted since the last flush to today's row (Asia/Shanghai).
    pub async fn flush(&self, pool: &PgPool) -> Result<(), ApiError> {
        let n = self.0.swap(0, Ordering::Relaxed);
        if n == 0 {
            return Ok(());
        }
        let today = Utc::now().with_timezone(&zhengna_platform::time::shanghai()).date_naive();
        let done = sqlx::query(
            "INSERT INTO moderation_days (day, checked) VALUES ($1, $2)
             ON CONFLICT (day) DO UPDATE SET checked = moderation_days.checked + EXCLUDED.checked",
        )
        .bind(today)
        .bind(n)
        .execute(pool)
        .await;
        if let Err(e) = done {
            // Keep the count for the next flush.
            self.0.fetch_add(n, Ordering::Relaxed);
            return Err(e.into());
        }
        Ok(())
    }
}

fn supervisor(caller: &Caller) -> Result<String, ApiError> {
    match caller {
        Caller::Agent(a) if matches!(a.role, AgentRole::Supervisor | AgentRole::Admin) => Ok(a.agent_id.clone()),
        _ => Err(ApiError::PermissionDenied("supervisors only".into())),
    }
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    Utc.timestamp_opt(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).single()
}

fn date(field: &str, d: Option<&common::Date>) -> Result<Option<NaiveDate>, ApiError> {
    let Some(d) = d else { return Ok(None) };
    NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).unwrap_or(0), u32::try_from(d.day).unwrap_or(0))
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, "not a calendar date", "日期无效。"))
}

pub struct ModerationAdminApi {
    pool: PgPool,
    checkpoint: crate::api::Checkpoint,
}

impl ModerationAdminApi {
    pub fn new(pool: PgPool, checkpoint: crate::api::Checkpoint) -> Self {
        Self { pool, checkpoint }
    }
}

/// A fingerprint of the supervisors' lexicon changes: rebuild the moderator when it changes.
pub async fn lexicon_state(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>), ApiError> {
    Ok(sqlx::query_as("SELECT count(*), max(updated_at) FROM lexicon_overrides").fetch_one(pool).await?)
}

/// The supervisors' changes to the shipped lists.
pub async fn lexicon_overrides(pool: &PgPool) -> Result<Vec<Override>, ApiError> {
    let rows: Vec<(String, bool, i32, String, i16, DateTime<Utc>)> =
        sqlx::query_as("SELECT word, removed, category, action, directions, updated_at FROM lexicon_overrides")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(word, removed, category, action, directions, updated_at)| Override {
            entry: (!removed).then(|| Entry {
                word: word.clone(),
                category: pb::SensitiveCategory::try_from(category).unwrap_or(pb::SensitiveCategory::Other),
                action: if action == "block" { Action::Block } else { Action::Mask },
                directions: u8::try_from(directions).unwrap_or(ALL_DIRECTIONS),
                updated_at: Some(updated_at),
            }),
            word,
        })
        .collect())
}

const DIRECTIONS: [(pb::ContentDirection, Direction); 3] = [
    (pb::ContentDirection::TaxpayerInput, Direction::TaxpayerInput),
    (pb::ContentDirection::BotOutput, Direction::BotOutput),
    (pb::ContentDirection::AgentOutput, Direction::AgentOutput),
];

fn word_proto(e: &Entry) -> pb::SensitiveWord {
    let directions = if e.directions == ALL_DIRECTIONS {
        Vec::new()
    } else {
        DIRECTIONS.iter().filter(|(_, d)| e.directions & direction_bit(*d) != 0).map(|(p, _)| *p as i32).collect()
    };
    let action = match e.action {
        Action::Block => pb::SensitiveAction::Block,
        Action::Mask => pb::SensitiveAction::Mask,
        // Shipped words: political and sexual ones block a taxpayer's message.
        Action::ByCategory if matches!(e.category, pb::SensitiveCategory::Political | pb::SensitiveCategory::Porn) => {
            pb::SensitiveAction::Block
        }
        Action::ByCategory => pb::SensitiveAction::Mask,
    };
    pb::SensitiveWord {
        word: e.word.clone(),
        category: e.category as i32,
        action: action as i32,
        directions,
        updated_at: e.updated_at.map(ts),
    }
}

#[tonic::async_trait]
impl pb::moderation_admin_service_server::ModerationAdminService for ModerationAdminApi {
    async fn list_interceptions(
        &self,
        request: Request<pb::ListInterceptionsRequest>,
    ) -> Result<Response<pb::ListInterceptionsResponse>, Status> {
        supervisor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let page = Page::from_request(r.page.as_ref())?;
        let period = r.period.as_ref();
        let from = time(period.and_then(|p| p.start.as_ref()));
        let until = time(period.and_then(|p| p.end.as_ref()));
        let direction = pb::ContentDirection::try_from(r.direction)
            .map_err(|_| ApiError::invalid("direction", "unknown value", "方向参数无效。"))?;
        let verdict = pb::ModerationVerdict::try_from(r.verdict)
            .map_err(|_| ApiError::invalid("verdict", "unknown value", "处理结果参数无效。"))?;
        let filter = "($1::timestamptz IS NULL OR created_at >= $1) AND ($2::timestamptz IS NULL OR created_at < $2)
             AND ($3 = '' OR direction = $3) AND ($4 = '' OR verdict = $4)
             AND ($5 = '' OR conversation_id = $5) AND ($6 = '' OR sender_id = $6)";
        let rows: Vec<InterceptionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM interceptions WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
        )))
        .bind(from)
        .bind(until)
        .bind(direction_name(direction))
        .bind(verdict_name(verdict))
        .bind(r.conversation_id.trim())
        .bind(r.sender_id.trim())
        .bind(page.size)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM interceptions WHERE {filter}")))
                .bind(from)
                .bind(until)
                .bind(direction_name(direction))
                .bind(verdict_name(verdict))
                .bind(r.conversation_id.trim())
                .bind(r.sender_id.trim())
                .fetch_one(&self.pool)
                .await
                .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListInterceptionsResponse {
            page: Some(page.response(rows.len(), total)),
            interceptions: rows.iter().map(InterceptionRow::to_proto).collect(),
        }))
    }

    async fn get_interception_stats(
        &self,
        request: Request<pb::GetInterceptionStatsRequest>,
    ) -> Result<Response<pb::GetInterceptionStatsResponse>, Status> {
        supervisor(&identity::caller(&request)?)?;
        let dates = request.get_ref().dates.as_ref();
        let today = Utc::now().with_timezone(&zhengna_platform::time::shanghai()).date_naive();
        let end = date("dates.end", dates.and_then(|d| d.end.as_ref()))?.unwrap_or(today);
        let start = date("dates.start", dates.and_then(|d| d.start.as_ref()))?.unwrap_or(end - chrono::Days::new(6));
        if start > end {
            return Err(ApiError::invalid("dates", "start is after end", "开始日期不能晚于结束日期。").into());
        }
        if (end - start).num_days() >= 92 {
            return Err(ApiError::invalid("dates", "at most 92 days", "统计区间最长92天。").into());
        }
        let rows: Vec<(NaiveDate, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "WITH days AS (SELECT d::date AS day FROM generate_series($1::date, $2::date, '1 day') d),
                  counted AS (
                    SELECT (created_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                           count(*) FILTER (WHERE verdict = 'mask') AS masked,
                           count(*) FILTER (WHERE verdict = 'block') AS blocked,
                           count(*) FILTER (WHERE verdict = 'throttle') AS throttled,
                           count(DISTINCT sender_id) FILTER (WHERE verdict = 'throttle') AS muted
                    FROM interceptions
                    WHERE created_at >= ($1::date)::timestamp AT TIME ZONE 'Asia/Shanghai'
                      AND created_at < ($2::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai'
                    GROUP BY 1)
             SELECT days.day, coalesce(m.checked, 0), coalesce(c.masked, 0), coalesce(c.blocked, 0),
                    coalesce(c.throttled, 0), coalesce(c.muted, 0)
             FROM days LEFT JOIN counted c ON c.day = days.day LEFT JOIN moderation_days m ON m.day = days.day
             ORDER BY days.day",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetInterceptionStatsResponse {
            days: rows
                .into_iter()
                .map(|(day, checked, masked, blocked, throttled, muted)| pb::InterceptionDayStats {
                    date: Some(common::Date {
                        year: day.year(),
                        month: i32::try_from(day.month()).unwrap_or(0),
                        day: i32::try_from(day.day()).unwrap_or(0),
                    }),
                    checked,
                    masked,
                    blocked,
                    throttled,
                    muted_senders: muted,
                })
                .collect(),
        }))
    }

    async fn list_restrictions(
        &self,
        request: Request<pb::ListRestrictionsRequest>,
    ) -> Result<Response<pb::ListRestrictionsResponse>, Status> {
        supervisor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let page = Page::from_request(r.page.as_ref())?;
        let (restrictions, total) = self.checkpoint.guard.list(r.active_only, r.sender_id.trim(), &page).await?;
        Ok(Response::new(pb::ListRestrictionsResponse {
            page: Some(page.response(restrictions.len(), total)),
            restrictions,
        }))
    }

    async fn lift_restriction(
        &self,
        request: Request<pb::LiftRestrictionRequest>,
    ) -> Result<Response<pb::LiftRestrictionResponse>, Status> {
        let by = supervisor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let mut v = Vec::new();
        let sender = r.sender_id.trim();
        if sender.is_empty() || sender.chars().count() > 64 {
            v.push(FieldViolation::new("sender_id", "must be 1-64 characters", "请指定要解除限制的用户。"));
        }
        let reason = r.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            v.push(FieldViolation::new("reason", "must be 1-200 characters", "请填写解除原因（200字以内）。"));
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let restriction = self
            .checkpoint
            .guard
            .lift(sender, &by, reason)
            .await?
            .ok_or_else(|| ApiError::NotFound("restriction".into()))?;
        Ok(Response::new(pb::LiftRestrictionResponse { restriction: Some(restriction) }))
    }

    async fn list_sensitive_words(
        &self,
        request: Request<pb::ListSensitiveWordsRequest>,
    ) -> Result<Response<pb::ListSensitiveWordsResponse>, Status> {
        supervisor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let page = Page::from_request(r.page.as_ref())?;
        let category = pb::SensitiveCategory::try_from(r.category)
            .map_err(|_| ApiError::invalid("category", "unknown value", "分类参数无效。"))?;
        let query = r.query.trim().to_lowercase();
        let moderator = self.checkpoint.moderator();
        let matching: Vec<&Entry> = moderator
            .entries()
            .iter()
            .filter(|e| query.is_empty() || e.word.contains(&query))
            .filter(|e| category == pb::SensitiveCategory::Unspecified || e.category == category)
            .collect();
        let total = matching.len() as i64;
        let words: Vec<pb::SensitiveWord> = matching
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.size).unwrap_or(0))
            .map(word_proto)
            .collect();
        Ok(Response::new(pb::ListSensitiveWordsResponse { page: Some(page.response(words.len(), total)), words }))
    }

    async fn add_sensitive_words(
        &self,
        request: Request<pb::AddSensitiveWordsRequest>,
    ) -> Result<Response<pb::AddSensitiveWordsResponse>, Status> {
        let by = supervisor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let mut v = Vec::new();
        if r.words.is_empty() || r.words.len() > 1000 {
            v.push(FieldViolation::new("words", "1 to 1000 words", "每次可添加1至1000个敏感词。"));
        }
        let mut rows = Vec::new();
        for (i, w) in r.words.iter().enumerate() {
            let word = w.word.trim().to_lowercase();
            if word.is_empty() || word.chars().count() > 50 {
                v.push(FieldViolation::new(
                    format!("words[{i}].word"),
                    "1 to 50 characters",
                    "敏感词不能为空，且不超过50个字。",
                ));
            }
            let category = match pb::SensitiveCategory::try_from(w.category) {
                Ok(pb::SensitiveCategory::Unspecified) | Err(_) => {
                    v.push(FieldViolation::new(
                        format!("words[{i}].category"),
                        "choose a category",
                        "请选择敏感词分类。",
                    ));
                    0
                }
                Ok(c) => c as i32,
            };
            let action = match pb::SensitiveAction::try_from(w.action) {
                Ok(pb::SensitiveAction::Mask) => "mask",
                Ok(pb::SensitiveAction::Block) => "block",
                _ => {
                    v.push(FieldViolation::new(
                        format!("words[{i}].action"),
                        "mask or block",
                        "请选择处理方式：替换或拦截。",
                    ));
                    ""
                }
            };
            let mut directions = 0u8;
            for (j, d) in w.directions.iter().enumerate() {
                match DIRECTIONS.iter().find(|(p, _)| *p as i32 == *d) {
                    Some((_, d)) => directions |= direction_bit(*d),
                    None => v.push(FieldViolation::new(
                        format!("words[{i}].directions[{j}]"),
                        "unknown direction",
                        "适用范围有误。",
                    )),
                }
            }
            if directions == 0 {
                directions = ALL_DIRECTIONS;
            }
            rows.push((word, category, action, i16::from(directions)));
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let known: std::collections::HashSet<String> =
            self.checkpoint.moderator().entries().iter().map(|e| e.word.clone()).collect();
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let (mut added, mut updated) = (0, 0);
        for (word, category, action, directions) in &rows {
            sqlx::query(
                "INSERT INTO lexicon_overrides (word, removed, category, action, directions, updated_by)
                 VALUES ($1, false, $2, $3, $4, $5)
                 ON CONFLICT (word) DO UPDATE SET removed = false, category = $2, action = $3, directions = $4,
                     updated_by = $5, updated_at = now()",
            )
            .bind(word)
            .bind(category)
            .bind(action)
            .bind(directions)
            .bind(&by)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
            if known.contains(word) {
                updated += 1;
            } else {
                added += 1;
            }
        }
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(added, updated, by, "sensitive words changed");
        Ok(Response::new(pb::AddSensitiveWordsResponse { added, updated }))
    }

    async fn remove_sensitive_words(
        &self,
        request: Request<pb::RemoveSensitiveWordsRequest>,
    ) -> Result<Response<pb::RemoveSensitiveWordsResponse>, Status> {
        let by = supervisor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        if r.words.is_empty() || r.words.len() > 1000 {
            return Err(ApiError::invalid("words", "1 to 1000 words", "每次可删除1至1000个敏感词。").into());
        }
        let known: std::collections::HashSet<String> =
            self.checkpoint.moderator().entries().iter().map(|e| e.word.clone()).collect();
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let mut removed = 0;
        for word in r.words.iter().map(|w| w.trim().to_lowercase()).filter(|w| known.contains(w)) {
            sqlx::query(
                "INSERT INTO lexicon_overrides (word, removed, updated_by) VALUES ($1, true, $2)
                 ON CONFLICT (word) DO UPDATE SET removed = true, updated_by = $2, updated_at = now()",
            )
            .bind(&word)
            .bind(&by)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
            removed += 1;
        }
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(removed, by, "sensitive words removed");
        Ok(Response::new(pb::RemoveSensitiveWordsResponse { removed }))
    }
}
