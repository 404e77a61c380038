//! Ending a conversation and rating it. The end, its notices (结束 and, when the agent ends
//! the service, the rating request) and the `ConversationEnded` event commit together; a
//! rating is accepted once, only after a rating request.

use chrono::Utc;
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_proto::common::v1 as common;
use zhengna_proto::session::v1 as pb;

use crate::store::{ConversationRow, NewMessage, insert_in, timestamp};

/// Who ends.
pub enum Ender<'a> {
    Taxpayer { tax_id: &'a str, name: &'a str },
    Agent { agent_id: &'a str, name: &'a str, request_rating: bool, summary: &'a str },
}

fn system(kind: pb::SystemNoticeKind, text: &str) -> pb::MessageContent {
    pb::MessageContent {
        body: Some(pb::message_content::Body::SystemNotice(pb::SystemNoticeContent {
            kind: kind as i32,
            text: text.into(),
            ref_id: String::new(),
        })),
    }
}

use crate::store::CONVERSATION_COLUMNS as CONVERSATION;

pub async fn end(pool: &PgPool, id: Uuid, who: Ender<'_>) -> Result<ConversationRow, ApiError> {
    let mut tx = pool.begin().await?;
    let (scope_sql, scope_val, actor) = match &who {
        Ender::Taxpayer { tax_id, name } => (
            "taxpayer_id",
            tax_id.to_string(),
            common::Actor {
                role: common::ActorRole::Taxpayer as i32,
                id: tax_id.to_string(),
                display_name: name.to_string(),
            },
        ),
        Ender::Agent { agent_id, name, .. } => (
            "agent_id",
            agent_id.to_string(),
            common::Actor {
                role: common::ActorRole::Agent as i32,
                id: agent_id.to_string(),
                display_name: name.to_string(),
            },
        ),
    };
    let row: Option<ConversationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations WHERE id = $1 AND {scope_sql} = $2 FOR UPDATE"
    )))
    .bind(id)
    .bind(&scope_val)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::NotFound("conversation".into()))?;
    if row.mode == "ended" {
        return Err(ApiError::refused("conversation has ended", "本次会话已结束。"));
    }
    if row.transferring {
        return Err(ApiError::refused("conversation is being transferred", "正在为您转接，暂不能结束会话，请稍候。"));
    }
    if matches!(who, Ender::Agent { .. }) && row.mode != "human" {
        return Err(ApiError::refused("conversation is not in human mode", "该会话当前不在人工服务中。"));
    }
    let (reason, text) = match &who {
        Ender::Taxpayer { .. } => ("taxpayer", "您已结束本次会话，感谢您的咨询。"),
        Ender::Agent { .. } => ("agent", "税务人员已结束本次服务，感谢您的咨询。"),
    };
    insert_in(
        &mut tx,
        id,
        &NewMessage {
            client_msg_id: format!("end:{id}"),
            sender: "system",
            sender_name: "系统".into(),
            reply_to: None,
            text: text.into(),
            content: system(pb::SystemNoticeKind::ConversationEnded, text),
        },
    )
    .await?;
    // §3.10: the rating request follows when the agent ends the service, and when the
    // taxpayer ends a human chat whose agent is still connected (§3.9.3 #3: not after the
    // agent dropped off).
    let request_rating = match who {
        Ender::Agent { request_rating, .. } => request_rating,
        Ender::Taxpayer { .. } if row.mode == "human" => sqlx::query_scalar::<_, bool>(
            "SELECT coalesce(agent_seen_at > now() - interval '90 seconds', false) FROM conversations WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?,
        Ender::Taxpayer { .. } => false,
    };
    if request_rating {
        let prompt = "请您对本次服务进行评价";
        insert_in(
            &mut tx,
            id,
            &NewMessage {
                client_msg_id: format!("rating:{id}"),
                sender: "system",
                sender_name: "系统".into(),
                reply_to: None,
                text: prompt.into(),
                content: pb::MessageContent {
                    body: Some(pb::message_content::Body::RatingRequest(pb::RatingRequestContent {
                        prompt: prompt.into(),
                    })),
                },
            },
        )
        .await?;
    }
    let ended: ConversationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET mode = 'ended', ended_at = now(), end_reason = $2, rating_requested = $3, updated_at = now()
         WHERE id = $1 RETURNING {CONVERSATION}"
    )))
    .bind(id)
    .bind(reason)
    .bind(request_rating)
    .fetch_one(&mut *tx)
    .await?;
    let summary = match &who {
        Ender::Agent { summary, .. } => summary.to_string(),
        Ender::Taxpayer { .. } => String::new(),
    };
    let event = pb::SessionEvent {
        aggregate_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        payload: Some(pb::session_event::Payload::ConversationEnded(pb::ConversationEnded {
            conversation: Some(ended.to_proto()),
            ended_by: Some(actor),
            summary,
            message_count: ended.last_seq as u64,
        })),
    };
    let key = id.to_string();
    outbox::enqueue(
        &mut tx,
        OutboxEvent {
            topic: zhengna_proto::topics::SESSION,
            key: &key,
            event_type: "zhengna.session.v1.ConversationEnded",
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// 服务评价: once, after a rating request, by the conversation's taxpayer.
pub async fn rate(
    pool: &PgPool,
    id: Uuid,
    tax_id: &str,
    resolved: bool,
    comment: &str,
) -> Result<ConversationRow, ApiError> {
    let mut tx = pool.begin().await?;
    let state: Option<(bool, String, String, String)> = sqlx::query_as(
        "SELECT rating_requested, rating, agent_id, agent_name FROM conversations WHERE id = $1 AND taxpayer_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tax_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (requested, rating, agent_id, agent_name) = state.ok_or_else(|| ApiError::NotFound("conversation".into()))?;
    if !requested {
        return Err(ApiError::refused("no rating was requested", "本次会话暂不需要评价。"));
    }
    if !rating.is_empty() {
        return Err(ApiError::AlreadyExists("rating".into()));
    }
    let result = if resolved { "resolved" } else { "unresolved" };
    let row: ConversationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET rating = $2, rating_comment = $3, rated_at = now() WHERE id = $1 RETURNING {CONVERSATION}"
    )))
    .bind(id)
    .bind(result)
    .bind(comment)
    .fetch_one(&mut *tx)
    .await?;
    let event = pb::SessionEvent {
        aggregate_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        payload: Some(pb::session_event::Payload::ConversationRated(pb::ConversationRated {
            taxpayer_id: tax_id.to_owned(),
            agent: Some(common::AgentRef { id: agent_id, display_name: agent_name, ..Default::default() }),
            result: if resolved { pb::RatingResult::Resolved as i32 } else { pb::RatingResult::Unresolved as i32 },
            comment: comment.to_owned(),
        })),
    };
    let key = id.to_string();
    outbox::enqueue(
        &mut tx,
        OutboxEvent {
            topic: zhengna_proto::topics::SESSION,
            key: &key,
            event_type: "zhengna.session.v1.ConversationRated",
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}
