//! Session events the queue reacts to: a conversation that ended closes its queue entry and,
//! if an agent was serving it, gives that agent's place back. Runs in the consumer's
//! transaction (deduplicated by event id), so a redelivered event frees nothing twice.

use prost::Message as _;
use sqlx::{Postgres, Transaction};
use zhengna_platform::kafka::{Envelope, Handler, HandlerError};
use zhengna_proto::session::v1 as session;

pub struct SessionEvents;

impl Handler for SessionEvents {
    fn wants(&self, event_type: &str) -> bool {
        // Only an ended conversation changes the queue; messages are the bulk of the topic.
        event_type == "zhengna.session.v1.ConversationEnded" || event_type.is_empty()
    }

    async fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> Result<(), HandlerError> {
        let decoded = session::SessionEvent::decode(event.payload.as_slice())
            .map_err(|e| HandlerError::Permanent(format!("undecodable session event: {e}")))?;
        let Some(session::session_event::Payload::ConversationEnded(ended)) = decoded.payload else { return Ok(()) };
        let Some(conversation) = ended.conversation else { return Ok(()) };
        let closed: Option<(String, String)> = sqlx::query_as(
            "UPDATE queue_entries q SET state = CASE WHEN q.state = 'waiting' THEN 'cancelled' ELSE 'closed' END, closed_at = now()
             FROM (SELECT id, state AS before FROM queue_entries WHERE conversation_id = $1 AND state IN ('waiting', 'assigned') FOR UPDATE) o
             WHERE q.id = o.id
             RETURNING o.before, q.agent_id",
        )
        .bind(&conversation.id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((before, agent_id)) = closed
            && before == "assigned"
            && !agent_id.is_empty()
        {
            sqlx::query("UPDATE agents SET active_count = greatest(active_count - 1, 0) WHERE agent_id = $1")
                .bind(&agent_id)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("SELECT pg_notify($1, office_code) FROM queue_entries WHERE conversation_id = $2 ORDER BY enqueued_at DESC LIMIT 1")
            .bind(crate::store::CHANNEL)
            .bind(&conversation.id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
