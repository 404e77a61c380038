//! 有用 / 无用 feedback on bot replies (spec §1.6). A verdict is given once per reply. A 无用
//! asks for its reason (答非所问 / 答案错误 / 其他 + text), which may be added once. Useless
//! replies are the KB editors' review list (`feedback_review` index).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::answer::v1 as pb;

const MAX_COMMENT: usize = 200;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    reply_id: Uuid,
    item_id: Option<Uuid>,
    verdict: String,
    reason: Option<String>,
    comment: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

impl Row {
    fn to_proto(&self) -> pb::Feedback {
        pb::Feedback {
            id: self.id.to_string(),
            reply_id: self.reply_id.to_string(),
            item_id: self.item_id.map(|i| i.to_string()).unwrap_or_default(),
            verdict: match self.verdict.as_str() {
                "useful" => pb::FeedbackVerdict::Useful,
                _ => pb::FeedbackVerdict::Useless,
            } as i32,
            reason: match self.reason.as_deref() {
                Some("irrelevant") => pb::FeedbackReason::Irrelevant,
                Some("wrong_answer") => pb::FeedbackReason::WrongAnswer,
                Some("other") => pb::FeedbackReason::Other,
                _ => pb::FeedbackReason::Unspecified,
            } as i32,
            comment: self.comment.clone(),
            created_at: Some(ts(self.created_at)),
            updated_at: Some(ts(self.updated_at)),
        }
    }
}

const COLUMNS: &str = "id, reply_id, item_id, verdict, reason, comment, created_at, updated_at";

/// What the widget shows after a submission.
pub struct Outcome {
    pub feedback: pb::Feedback,
    pub prompt: String,
    pub show_reason_form: bool,
    pub suggest_transfer: bool,
}

#[derive(Clone)]
pub struct FeedbackStore {
    pool: PgPool,
}

impl FeedbackStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn submit(&self, taxpayer: &str, r: &pb::SubmitFeedbackRequest) -> Result<Outcome, ApiError> {
        let mut v = Vec::new();
        let reply = Uuid::parse_str(r.reply_id.trim()).ok();
        if reply.is_none() {
            v.push(FieldViolation::new("reply_id", "must be a UUID", "评价失败，请刷新后重试。"));
        }
        let verdict = match pb::FeedbackVerdict::try_from(r.verdict) {
            Ok(pb::FeedbackVerdict::Useful) => "useful",
            Ok(pb::FeedbackVerdict::Useless) => "useless",
            _ => {
                v.push(FieldViolation::new("verdict", "useful or useless", "请选择“有用”或“无用”。"));
                ""
            }
        };
        let reason = match pb::FeedbackReason::try_from(r.reason) {
            Ok(pb::FeedbackReason::Irrelevant) => Some("irrelevant"),
            Ok(pb::FeedbackReason::WrongAnswer) => Some("wrong_answer"),
            Ok(pb::FeedbackReason::Other) => Some("other"),
            _ => None,
        };
        let comment = r.comment.trim();
        if comment.chars().count() > MAX_COMMENT {
            v.push(FieldViolation::new("comment", "at most 200 characters", "补充说明最多200个字。"));
        }
        if verdict == "useful" && (reason.is_some() || !comment.is_empty()) {
            v.push(FieldViolation::new("reason", "only for useless", "只有“无用”需要选择原因。"));
        }
        if reason == Some("other") && comment.is_empty() {
            v.push(FieldViolation::new("comment", "required for OTHER", "选择“其他”时请填写具体原因。"));
        }
        let (Some(reply), true) = (reply, v.is_empty()) else { return Err(ApiError::InvalidArgument(v)) };

        let mut tx = self.pool.begin().await?;
        let owned: Option<(Option<Uuid>, String)> =
            sqlx::query_as("SELECT item_id, conversation_id FROM replies WHERE id = $1 AND taxpayer_id = $2")
                .bind(reply)
                .bind(taxpayer)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((item, conversation)) = owned else { return Err(ApiError::NotFound("reply".into())) };
        let existing: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM feedback WHERE reply_id = $1 FOR UPDATE"
        )))
        .bind(reply)
        .fetch_optional(&mut *tx)
        .await?;
        let row: Row = match existing {
            None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO feedback (id, reply_id, taxpayer_id, conversation_id, item_id, verdict, reason, comment)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            )))
            .bind(Uuid::now_v7())
            .bind(reply)
            .bind(taxpayer)
            .bind(&conversation)
            .bind(item)
            .bind(verdict)
            .bind(reason)
            .bind(comment)
            .fetch_one(&mut *tx)
            .await?,
            // The one allowed follow-up: the reason for a 无用 given without one.
            Some(e) if e.verdict == "useless" && e.reason.is_none() && verdict == "useless" && reason.is_some() => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE feedback SET reason = $2, comment = $3, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
                )))
                .bind(e.id)
                .bind(reason)
                .bind(comment)
                .fetch_one(&mut *tx)
                .await?
            }
            Some(_) => return Err(ApiError::refused("feedback already given", "您已评价过该答案，感谢您的反馈。")),
        };
        // Repeated 无用 in one conversation: offer a person.
        let useless: i64 = if conversation.is_empty() {
            0
        } else {
            sqlx::query_scalar(
                "SELECT count(*) FROM feedback WHERE conversation_id = $1 AND taxpayer_id = $2 AND verdict = 'useless'",
            )
            .bind(&conversation)
            .bind(taxpayer)
            .fetch_one(&mut *tx)
            .await?
        };
        tx.commit().await?;
        let show_reason_form = row.verdict == "useless" && row.reason.is_none();
        let prompt = if row.verdict == "useful" {
            "感谢您的评价！".to_owned()
        } else if show_reason_form {
            "很抱歉没能帮到您，请选择原因：答非所问、答案错误或其他。".to_owned()
        } else {
            "感谢您的反馈，我们会尽快改进答案。".to_owned()
        };
        Ok(Outcome { feedback: row.to_proto(), prompt, show_reason_form, suggest_transfer: useless >= 2 })
    }
}
