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

/// A feedback with the question asked and the item answered (the editors' review list).
#[derive(Debug, sqlx::FromRow)]
struct ReviewRow {
    #[sqlx(flatten)]
    feedback: Row,
    question: String,
    catalog_id: Option<String>,
    standard_question: Option<String>,
    conversation_id: String,
}

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

    /// The editors' review list: feedback with the question asked and the item answered.
    pub async fn review(
        &self,
        r: &pb::ListFeedbackRequest,
        page: &zhengna_platform::paging::Page,
    ) -> Result<(Vec<pb::FeedbackReview>, i64), ApiError> {
        let verdict = match pb::FeedbackVerdict::try_from(r.verdict) {
            Ok(pb::FeedbackVerdict::Useful) => "useful",
            Ok(pb::FeedbackVerdict::Useless | pb::FeedbackVerdict::Unspecified) => "useless",
            Err(_) => return Err(ApiError::invalid("verdict", "unknown value", "评价参数有误。")),
        };
        let mut reasons = Vec::new();
        for (i, x) in r.reasons.iter().enumerate() {
            reasons.push(match pb::FeedbackReason::try_from(*x) {
                Ok(pb::FeedbackReason::Irrelevant) => "irrelevant",
                Ok(pb::FeedbackReason::WrongAnswer) => "wrong_answer",
                Ok(pb::FeedbackReason::Other) => "other",
                _ => return Err(ApiError::invalid(&format!("reasons[{i}]"), "unknown reason", "原因参数有误。")),
            });
        }
        let time = |t: Option<&prost_types::Timestamp>| t.and_then(|t| DateTime::from_timestamp(t.seconds, 0));
        let from = time(r.period.as_ref().and_then(|p| p.start.as_ref()));
        let until = time(r.period.as_ref().and_then(|p| p.end.as_ref()));
        let filter = "f.verdict = $1 AND (cardinality($2::text[]) = 0 OR f.reason = ANY($2))
             AND ($3 = '' OR k.catalog_id = $3)
             AND ($4::timestamptz IS NULL OR f.created_at >= $4) AND ($5::timestamptz IS NULL OR f.created_at < $5)";
        let from_sql = "feedback f JOIN replies r ON r.id = f.reply_id LEFT JOIN kb_items k ON k.id = f.item_id";
        let rows: Vec<ReviewRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT f.id, f.reply_id, f.item_id, f.verdict, f.reason, f.comment, f.created_at, f.updated_at,
                        r.question, k.catalog_id, k.question AS standard_question, r.conversation_id
                 FROM {from_sql} WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT $6 OFFSET $7"
        )))
        .bind(verdict)
        .bind(&reasons)
        .bind(r.catalog_id.trim())
        .bind(from)
        .bind(until)
        .bind(page.size)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {from_sql} WHERE {filter}")))
                .bind(verdict)
                .bind(&reasons)
                .bind(r.catalog_id.trim())
                .bind(from)
                .bind(until)
                .fetch_one(&self.pool)
                .await?;
        let reviews = rows
            .into_iter()
            .map(|r| pb::FeedbackReview {
                feedback: Some(r.feedback.to_proto()),
                question: r.question,
                catalog_id: r.catalog_id.unwrap_or_default(),
                standard_question: r.standard_question.unwrap_or_default(),
                conversation_id: r.conversation_id,
            })
            .collect();
        Ok((reviews, total))
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
        let key = if conversation.is_empty() { taxpayer.to_owned() } else { conversation.clone() };
        crate::kb::enqueue_event(
            &mut tx,
            &key,
            "zhengna.answer.v1.FeedbackGiven",
            pb::answer_event::Payload::FeedbackGiven(pb::FeedbackGiven {
                conversation_id: conversation.clone(),
                taxpayer_id: taxpayer.to_owned(),
                feedback: Some(row.to_proto()),
            }),
        )
        .await?;
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
