//! 留言: a taxpayer's message to an office, the office's replies, and its conversion into a
//! 工单. Replies and conversions create the taxpayer's notice in the same transaction that
//! stores them, so a reply never exists without its 留言回复 notice (and never gets two).

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use zhengna_platform::attachments::{MAX_PER_RECORD, StoredAttachment};
pub use zhengna_platform::db::escape_like;
use zhengna_platform::db::filters;
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::common::v1 as common;
use zhengna_proto::messaging::v1 as pb;

use crate::inbox::{self, NewNotification};

pub const MAX_CONTENT_CHARS: usize = 500;
pub const MAX_REPLY_CHARS: usize = 1000;

/// 留言类型: code and name.
pub const TYPES: &[(&str, &str)] = &[
    ("consult", "业务咨询"),
    ("suggestion", "意见建议"),
    ("complaint", "投诉"),
    ("praise", "表扬"),
    ("other", "其他"),
];

pub fn type_name(code: &str) -> Option<&'static str> {
    TYPES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The next human-readable number for `prefix` (see [`zhengna_platform::db::next_number`]).
pub async fn next_number(conn: &mut PgConnection, prefix: &str) -> Result<String, ApiError> {
    Ok(zhengna_platform::db::next_number(conn, prefix).await?)
}

/// Enqueues a messaging event on `zhengna.messaging.v1.events`.
pub async fn publish(
    conn: &mut PgConnection,
    key: &str,
    event_type: &str,
    payload: pb::messaging_event::Payload,
) -> Result<(), ApiError> {
    let event =
        pb::MessagingEvent { aggregate_id: key.to_owned(), occurred_at: Some(ts(Utc::now())), payload: Some(payload) };
    outbox::enqueue(
        conn,
        OutboxEvent { topic: zhengna_proto::topics::MESSAGING, key, event_type, payload: event.encode_to_vec() },
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaveRow {
    pub id: Uuid,
    pub number: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub org_code: String,
    pub org_name: String,
    pub type_code: String,
    pub content: String,
    pub phone: String,
    pub status: String,
    pub conversation_id: String,
    pub assignee_id: String,
    pub assignee_name: String,
    pub ticket_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attachments: sqlx::types::Json<Vec<StoredAttachment>>,
}

pub(crate) const COLUMNS: &str =
    "id, number, taxpayer_id, taxpayer_name, org_code, org_name, type_code, content, phone, status,
    conversation_id, assignee_id, assignee_name, ticket_id, created_at, updated_at, attachments";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyRow {
    pub id: Uuid,
    pub content: String,
    pub agent_id: String,
    pub agent_name: String,
    pub office_code: String,
    pub created_at: DateTime<Utc>,
    pub attachments: sqlx::types::Json<Vec<StoredAttachment>>,
}

impl ReplyRow {
    pub fn to_proto(&self) -> pb::LeaveMessageReply {
        pb::LeaveMessageReply {
            id: self.id.to_string(),
            content: self.content.clone(),
            attachments: self.attachments.0.iter().map(Into::into).collect(),
            agent: Some(common::AgentRef {
                id: self.agent_id.clone(),
                display_name: self.agent_name.clone(),
                office_code: self.office_code.clone(),
                ..Default::default()
            }),
            office: Some(common::OfficeRef { code: self.office_code.clone(), ..Default::default() }),
            created_at: Some(ts(self.created_at)),
        }
    }
}

pub fn status_to_pb(s: &str) -> pb::LeaveMessageStatus {
    match s {
        "pending" => pb::LeaveMessageStatus::Pending,
        "processing" => pb::LeaveMessageStatus::Processing,
        "replied" => pb::LeaveMessageStatus::Replied,
        "converted" => pb::LeaveMessageStatus::Converted,
        "closed" => pb::LeaveMessageStatus::Closed,
        _ => pb::LeaveMessageStatus::Unspecified,
    }
}

pub fn status_from_pb(s: pb::LeaveMessageStatus) -> Option<&'static str> {
    Some(match s {
        pb::LeaveMessageStatus::Unspecified => return None,
        pb::LeaveMessageStatus::Pending => "pending",
        pb::LeaveMessageStatus::Processing => "processing",
        pb::LeaveMessageStatus::Replied => "replied",
        pb::LeaveMessageStatus::Converted => "converted",
        pb::LeaveMessageStatus::Closed => "closed",
    })
}

impl LeaveRow {
    pub fn to_proto(&self, replies: &[ReplyRow], ticket_number: &str) -> pb::LeaveMessage {
        pb::LeaveMessage {
            id: self.id.to_string(),
            number: self.number.clone(),
            taxpayer: Some(common::TaxpayerRef {
                id: self.taxpayer_id.clone(),
                name: self.taxpayer_name.clone(),
                tax_id: self.taxpayer_id.clone(),
                office_code: self.org_code.clone(),
            }),
            org: Some(common::OfficeRef {
                code: self.org_code.clone(),
                name: self.org_name.clone(),
                ..Default::default()
            }),
            type_code: self.type_code.clone(),
            type_name: type_name(&self.type_code).unwrap_or_default().to_owned(),
            content: self.content.clone(),
            attachments: self.attachments.0.iter().map(Into::into).collect(),
            phone: self.phone.clone(),
            status: status_to_pb(&self.status) as i32,
            created_at: Some(ts(self.created_at)),
            updated_at: Some(ts(self.updated_at)),
            replies: replies.iter().map(ReplyRow::to_proto).collect(),
            ticket_id: self.ticket_id.map(|t| t.to_string()).unwrap_or_default(),
            ticket_number: ticket_number.to_owned(),
            conversation_id: self.conversation_id.clone(),
            assignee: (!self.assignee_id.is_empty()).then(|| common::AgentRef {
                id: self.assignee_id.clone(),
                display_name: self.assignee_name.clone(),
                ..Default::default()
            }),
        }
    }
}

/// A validated 留言.
#[derive(Debug, Clone)]
pub struct NewLeave {
    pub client_request_id: String,
    pub org_code: String,
    pub org_name: String,
    pub type_code: String,
    pub content: String,
    pub phone: String,
    pub conversation_id: String,
    /// Upload ids as submitted; linked through the session service by the API.
    pub attachment_ids: Vec<String>,
    pub attachments: Vec<StoredAttachment>,
}

/// Validates a 留言 from a taxpayer whose office is `own_office`.
pub fn validate(
    r: &pb::SubmitLeaveMessageRequest,
    own_office: &str,
    own_office_name: &str,
    default_phone: &str,
) -> Result<NewLeave, ApiError> {
    let mut v = Vec::new();
    let client_request_id = r.client_request_id.trim().to_owned();
    if client_request_id.is_empty() || client_request_id.chars().count() > 64 {
        v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "提交失败，请刷新页面后重试。"));
    }
    let org_code = match r.org_code.trim() {
        "" => own_office.to_owned(),
        o if o == own_office => o.to_owned(),
        o => {
            v.push(FieldViolation::new(
                "org_code",
                "must be the in-charge tax office",
                "留言机构应为您的主管税务机关。",
            ));
            o.to_owned()
        }
    };
    let type_code = r.type_code.trim().to_owned();
    if type_name(&type_code).is_none() {
        v.push(FieldViolation::new("type_code", "unknown type", "请选择留言类型。"));
    }
    let content = r.content.trim().to_owned();
    if content.is_empty() {
        v.push(FieldViolation::new("content", "must not be empty", "请输入留言内容。"));
    } else if content.chars().count() > MAX_CONTENT_CHARS {
        v.push(FieldViolation::new("content", "must be at most 500 characters", "留言内容最多500个字。"));
    }
    let phone = match r.phone.trim() {
        "" => default_phone.to_owned(),
        p => p.to_owned(),
    };
    let mobile = phone.len() == 11 && phone.starts_with('1') && phone.chars().all(|c| c.is_ascii_digit());
    if !phone.is_empty() && !mobile {
        v.push(FieldViolation::new("phone", "must be an 11-digit mobile number", "请填写正确的手机号码。"));
    }
    if r.attachment_ids.len() > MAX_PER_RECORD {
        v.push(FieldViolation::new("attachment_ids", "at most 5 attachments", "附件材料最多上传5份。"));
    }
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok(NewLeave {
        client_request_id,
        org_code,
        org_name: own_office_name.to_owned(),
        type_code,
        content,
        phone,
        conversation_id: r.conversation_id.trim().chars().take(64).collect(),
        attachment_ids: r.attachment_ids.iter().map(|a| a.trim().to_owned()).collect(),
        attachments: Vec::new(),
    })
}

/// Whose 留言 a caller may see.
#[derive(Debug, Clone)]
pub enum Scope {
    Taxpayer(String),
    Office { code: String, subordinates: bool },
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub number: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub type_code: Option<String>,
    pub status: Option<&'static str>,
    pub content: Option<String>,
    pub taxpayer: Option<String>,
    pub assignee: Option<String>,
}

fn push_scope(q: &mut QueryBuilder<Postgres>, scope: &Scope) {
    match scope {
        Scope::Taxpayer(t) => {
            q.push(" AND taxpayer_id = ").push_bind(t.clone());
        }
        Scope::Office { code, subordinates } => filters::office(q, "org_code", code, *subordinates),
    }
}

fn push_filter(q: &mut QueryBuilder<Postgres>, f: &Filter) {
    if let Some(n) = &f.number {
        q.push(" AND number = ").push_bind(n.clone());
    }
    if let Some(t) = f.from {
        q.push(" AND created_at >= ").push_bind(t);
    }
    if let Some(t) = f.to {
        q.push(" AND created_at < ").push_bind(t);
    }
    if let Some(t) = &f.type_code {
        q.push(" AND type_code = ").push_bind(t.clone());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s);
    }
    if let Some(c) = &f.content {
        filters::contains(q, "content", c);
    }
    if let Some(t) = &f.taxpayer {
        filters::taxpayer(q, "taxpayer_id", "taxpayer_name", t);
    }
    if let Some(a) = &f.assignee {
        q.push(" AND assignee_id = ").push_bind(a.clone());
    }
}

#[derive(Clone)]
pub struct LeaveMessages {
    pool: PgPool,
}

impl LeaveMessages {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn by_request(&self, taxpayer_id: &str, client_request_id: &str) -> Result<Option<LeaveRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM leave_messages WHERE taxpayer_id = $1 AND client_request_id = $2"
        )))
        .bind(taxpayer_id)
        .bind(client_request_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores a 留言 (a repeated client request id returns the first one).
    pub async fn submit(&self, taxpayer_id: &str, taxpayer_name: &str, m: &NewLeave) -> Result<LeaveRow, ApiError> {
        if let Some(existing) = self.by_request(taxpayer_id, &m.client_request_id).await? {
            return Ok(existing);
        }
        let mut tx = self.pool.begin().await?;
        let number = next_number(&mut tx, "LY").await?;
        let inserted: Result<LeaveRow, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leave_messages (id, number, taxpayer_id, taxpayer_name, org_code, org_name, type_code, content,
                 phone, status, conversation_id, client_request_id, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12) RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&number)
        .bind(taxpayer_id)
        .bind(taxpayer_name)
        .bind(&m.org_code)
        .bind(&m.org_name)
        .bind(&m.type_code)
        .bind(&m.content)
        .bind(&m.phone)
        .bind(&m.conversation_id)
        .bind(&m.client_request_id)
        .bind(sqlx::types::Json(&m.attachments))
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted.map_err(ApiError::from) {
            Ok(row) => row,
            Err(ApiError::AlreadyExists(_)) => {
                drop(tx);
                return self
                    .by_request(taxpayer_id, &m.client_request_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("leave message vanished after conflict".into()));
            }
            Err(e) => return Err(e),
        };
        publish(
            &mut tx,
            &row.id.to_string(),
            "zhengna.messaging.v1.LeaveMessageSubmitted",
            pb::messaging_event::Payload::LeaveMessageSubmitted(pb::LeaveMessageSubmitted {
                leave_message: Some(row.to_proto(&[], "")),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn get(&self, id: Uuid, scope: &Scope) -> Result<Option<(LeaveRow, Vec<ReplyRow>, String)>, ApiError> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM leave_messages WHERE id = "));
        q.push_bind(id);
        push_scope(&mut q, scope);
        let Some(row) = q.build_query_as::<LeaveRow>().fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let replies = self.replies(id).await?;
        let ticket_number = match row.ticket_id {
            Some(t) => sqlx::query_scalar("SELECT number FROM tickets WHERE id = $1")
                .bind(t)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(Some((row, replies, ticket_number)))
    }

    async fn replies(&self, id: Uuid) -> Result<Vec<ReplyRow>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT id, content, agent_id, agent_name, office_code, created_at, attachments FROM leave_message_replies
             WHERE leave_message_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn list(
        &self,
        scope: &Scope,
        f: &Filter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<LeaveRow>, i64), ApiError> {
        let mut rows = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM leave_messages WHERE true"));
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM leave_messages WHERE true");
        for q in [&mut rows, &mut count] {
            push_scope(q, scope);
            push_filter(q, f);
        }
        rows.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let page = rows.build_query_as().fetch_all(&self.pool).await?;
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        Ok((page, total))
    }

    /// Assigns a 留言 of the office to an agent (→ 处理中).
    pub async fn assign(&self, id: Uuid, office: &str, agent_id: &str, agent_name: &str) -> Result<LeaveRow, ApiError> {
        let row: Option<LeaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE leave_messages SET assignee_id = $3, assignee_name = $4, updated_at = now(),
                 status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END
             WHERE id = $1 AND org_code = $2 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(office)
        .bind(agent_id)
        .bind(agent_name)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| ApiError::NotFound("leave message".into()))
    }

    /// Stores an agent's reply and the taxpayer's 留言回复 notice together.
    #[allow(clippy::too_many_arguments)]
    pub async fn reply(
        &self,
        id: Uuid,
        office: &str,
        agent_id: &str,
        agent_name: &str,
        client_request_id: &str,
        content: &str,
        attachments: &[StoredAttachment],
        close: bool,
    ) -> Result<LeaveRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<LeaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM leave_messages WHERE id = $1 AND org_code = $2 FOR UPDATE"
        )))
        .bind(id)
        .bind(office)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM leave_message_replies WHERE leave_message_id = $1 AND client_request_id = $2",
        )
        .bind(id)
        .bind(client_request_id)
        .fetch_optional(&mut *tx)
        .await?;
        if existing.is_some() {
            return Ok(row);
        }
        if row.status == "closed" {
            return Err(ApiError::refused("leave message is closed", "该留言已办结，不能再回复。"));
        }
        let reply: ReplyRow = sqlx::query_as(
            "INSERT INTO leave_message_replies (id, leave_message_id, content, agent_id, agent_name, office_code,
                 client_request_id, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, content, agent_id, agent_name, office_code, created_at, attachments",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(content)
        .bind(agent_id)
        .bind(agent_name)
        .bind(office)
        .bind(client_request_id)
        .bind(sqlx::types::Json(attachments))
        .fetch_one(&mut *tx)
        .await?;
        let status = if close {
            "closed"
        } else if row.status == "converted" {
            "converted"
        } else {
            "replied"
        };
        let updated: LeaveRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE leave_messages SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(status)
        .fetch_one(&mut *tx)
        .await?;
        inbox::insert(
            &mut tx,
            reply.id,
            &NewNotification {
                taxpayer_id: row.taxpayer_id.clone(),
                category: "notice",
                kind: "leave_message_reply",
                title: "留言回复".into(),
                body: format!("您的留言（编号：{}）已收到{}的回复：{}", row.number, row.org_name_or_code(), content),
                link_url: format!("/personal/leave-messages/{}", row.id),
                source_ref: row.id.to_string(),
            },
        )
        .await?;
        publish(
            &mut tx,
            &row.id.to_string(),
            "zhengna.messaging.v1.LeaveMessageReplied",
            pb::messaging_event::Payload::LeaveMessageReplied(pb::LeaveMessageReplied {
                leave_message: Some(updated.to_proto(&[], "")),
                reply: Some(reply.to_proto()),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }
}

impl LeaveRow {
    fn org_name_or_code(&self) -> &str {
        if self.org_name.is_empty() { &self.org_code } else { &self.org_name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> pb::SubmitLeaveMessageRequest {
        pb::SubmitLeaveMessageRequest {
            client_request_id: "c1".into(),
            type_code: "consult".into(),
            content: "请问小规模纳税人季度销售额多少以内免征增值税？".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_limits() {
        let ok = validate(&req(), "13701020000", "历下区税务局", "13800000000").expect("valid");
        assert_eq!((ok.org_code.as_str(), ok.phone.as_str()), ("13701020000", "13800000000"));
        let long = pb::SubmitLeaveMessageRequest { content: "税".repeat(501), ..req() };
        let Err(ApiError::InvalidArgument(v)) = validate(&long, "13701020000", "", "") else {
            panic!("expected invalid")
        };
        assert_eq!(v[0].field, "content");
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = pb::SubmitLeaveMessageRequest {
            org_code: "13702000000".into(),
            phone: "123".into(),
            attachment_ids: (0..6).map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        let Err(ApiError::InvalidArgument(v)) = validate(&r, "13701020000", "", "") else { panic!("expected invalid") };
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["client_request_id", "org_code", "type_code", "content", "phone", "attachment_ids"]);
    }
}
