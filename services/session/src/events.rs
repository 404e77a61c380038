//! Queue events drive a conversation's mode: enqueued → 排队中 (the bot keeps answering),
//! assigned → 人工互动 (the bot goes quiet), cancelled → back to the bot. Each change and its
//! system notice are written in the consumer's transaction, with a notice id derived from
//! the queue entry, so a redelivered event changes nothing twice.

use prost::Message as _;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;
use zhengna_platform::kafka::{Envelope, Handler, HandlerError};
use zhengna_proto::queue::v1 as queue;
use zhengna_proto::session::v1 as pb;

use crate::store::{NewMessage, insert_in};

pub struct QueueEvents;

fn notice(kind: pb::SystemNoticeKind, text: String, ref_id: &str) -> pb::MessageContent {
    pb::MessageContent {
        body: Some(pb::message_content::Body::SystemNotice(pb::SystemNoticeContent {
            kind: kind as i32,
            text,
            ref_id: ref_id.to_owned(),
        })),
    }
}

impl Handler for QueueEvents {
    async fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> Result<(), HandlerError> {
        let decoded = queue::QueueEvent::decode(event.payload.as_slice())
            .map_err(|e| HandlerError::Permanent(format!("undecodable queue event: {e}")))?;
        use queue::queue_event::Payload;
        let (entry, change) = match decoded.payload {
            Some(Payload::EntryEnqueued(e)) => (e.entry, "enqueued"),
            Some(Payload::EntryAssigned(e)) => (e.entry, "assigned"),
            Some(Payload::EntryCancelled(e)) => (e.entry, "cancelled"),
            Some(Payload::EntryExpired(e)) if e.reason == "business_hours_closed" => (e.entry, "closed"),
            Some(Payload::EntryExpired(e)) => (e.entry, "expired"),
            Some(Payload::EntryTransferred(e)) if !e.to_agent_id.is_empty() => (e.entry, "to_agent"),
            Some(Payload::EntryTransferred(e)) => (e.entry, "to_line"),
            _ => return Ok(()),
        };
        let Some(entry) = entry else { return Ok(()) };
        let Ok(conversation) = Uuid::parse_str(&entry.conversation_id) else {
            return Err(HandlerError::Permanent("queue entry with a malformed conversation id".into()));
        };
        let taxpayer = entry.taxpayer.as_ref().map(|t| t.tax_id.clone()).unwrap_or_default();
        // Lock the conversation; an entry for someone else's conversation is ignored.
        let current: Option<(String, String)> =
            sqlx::query_as("SELECT mode, taxpayer_id FROM conversations WHERE id = $1 FOR UPDATE")
                .bind(conversation)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((mode, owner)) = current else {
            tracing::warn!(%conversation, "queue event for an unknown conversation");
            return Ok(());
        };
        if owner != taxpayer {
            tracing::warn!(%conversation, "queue entry's taxpayer does not own the conversation; ignored");
            return Ok(());
        }
        let agent = entry.agent.clone().unwrap_or_default();
        let (next, content) = match (change, mode.as_str()) {
            ("enqueued", "bot") => (
                "queued",
                notice(
                    pb::SystemNoticeKind::Queued,
                    "已为您转接人工服务，正在排队。排队期间智能助手将继续为您服务。".into(),
                    &entry.id,
                ),
            ),
            ("assigned", "bot" | "queued") => (
                "human",
                notice(
                    pb::SystemNoticeKind::AgentJoined,
                    format!("税务人员{}已接入，正在为您服务。", agent.display_name),
                    &entry.id,
                ),
            ),
            ("cancelled", "queued") => (
                "bot",
                notice(pb::SystemNoticeKind::QueueLeft, "您已取消排队，智能助手将继续为您服务。".into(), &entry.id),
            ),
            ("closed", "queued") => (
                "bot",
                notice(
                    pb::SystemNoticeKind::OutOfHours,
                    "人工服务已下班，本次排队已结束。您可以留言或预约互动，我们会尽快联系您；智能助手将继续为您服务。"
                        .into(),
                    &entry.id,
                ),
            ),
            ("expired", "queued") => (
                "bot",
                notice(
                    pb::SystemNoticeKind::QueueLeft,
                    "当前咨询人数较多，本次排队已超时结束。您可以稍后再次转人工，或留言、预约互动。".into(),
                    &entry.id,
                ),
            ),
            ("to_agent", "human") => (
                "human",
                notice(
                    pb::SystemNoticeKind::AgentJoined,
                    format!("已为您转接至税务人员{}，正在为您服务。", agent.display_name),
                    &entry.id,
                ),
            ),
            ("to_line", "human") => (
                "queued",
                notice(
                    pb::SystemNoticeKind::Transferring,
                    "正在为您转接其他税务人员，请稍候。排队期间智能助手将继续为您服务。".into(),
                    &entry.id,
                ),
            ),
            _ => return Ok(()),
        };
        let transferring = change == "to_line";
        sqlx::query(
            "UPDATE conversations SET mode = $2, queue_entry_id = $3, transferring = $7,
                 agent_id = CASE WHEN $2 = 'human' THEN $4 WHEN $7 THEN '' ELSE agent_id END,
                 agent_name = CASE WHEN $2 = 'human' THEN $5 WHEN $7 THEN '' ELSE agent_name END,
                 agent_office = CASE WHEN $2 = 'human' THEN $6 WHEN $7 THEN '' ELSE agent_office END
             WHERE id = $1",
        )
        .bind(conversation)
        .bind(next)
        .bind(&entry.id)
        .bind(&agent.id)
        .bind(&agent.display_name)
        .bind(&agent.office_code)
        .bind(transferring)
        .execute(&mut **tx)
        .await?;
        let text = match &content.body {
            Some(pb::message_content::Body::SystemNotice(n)) => n.text.clone(),
            _ => String::new(),
        };
        insert_in(
            tx,
            conversation,
            &NewMessage {
                // One notice per event (an entry can be assigned again after a transfer).
                client_msg_id: format!("queue:{change}:{}", event.event_id),
                sender: "system",
                sender_name: "系统".into(),
                reply_to: None,
                text,
                content,
            },
        )
        .await
        .map_err(|e| HandlerError::Retry(e.to_string()))?;
        Ok(())
    }
}
