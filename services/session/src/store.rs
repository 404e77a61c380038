//! Conversation and message storage. Seqs come from `conversations.last_seq`, bumped under
//! the row lock in the transaction that inserts the message, so they are gap-free and
//! strictly increasing per conversation no matter which replica accepts the send.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_platform::identity::Taxpayer;
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_proto::session::v1 as pb;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Uuid,
    pub taxpayer_id: String,
    /// The taxpayer's 主管税务机关.
    pub office_code: String,
    pub channel: String,
    pub mode: String,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub agent_id: String,
    pub agent_name: String,
    pub agent_office: String,
    pub queue_entry_id: String,
    pub cleared_seq: i64,
    pub transferring: bool,
}

pub(crate) const CONVERSATION_COLUMNS: &str = "id, taxpayer_id, office_code, channel, mode, last_seq, created_at, agent_id, agent_name, agent_office, queue_entry_id, cleared_seq, transferring";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub client_msg_id: String,
    pub sender: String,
    pub sender_name: String,
    pub content: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub struct NewMessage {
    pub client_msg_id: String,
    pub sender: &'static str,
    pub sender_name: String,
    pub reply_to: Option<i64>,
    pub text: String,
    pub content: pb::MessageContent,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, client_msg_id, sender, sender_name, content, created_at";

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The taxpayer's open conversation (resumed), or a new one. Serialised per taxpayer so
    /// two tabs opening at once share one conversation.
    pub async fn start_or_resume(&self, tp: &Taxpayer, channel: &str) -> Result<(ConversationRow, bool), ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('conversation:' || $1, 0))")
            .bind(&tp.tax_id)
            .execute(&mut *tx)
            .await?;
        let open: Option<ConversationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE taxpayer_id = $1 AND channel = $2 AND mode <> 'ended'
             ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(&tp.tax_id)
        .bind(channel)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = open {
            tx.commit().await?;
            return Ok((row, true));
        }
        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO conversations (id, taxpayer_id, taxpayer_name, office_code, channel, mode)
             VALUES ($1, $2, $3, $4, $5, 'bot') RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&tp.tax_id)
        .bind(&tp.name)
        .bind(&tp.office_code)
        .bind(channel)
        .fetch_one(&mut *tx)
        .await?;
        let row: ConversationRow = row;
        let event = pb::SessionEvent {
            aggregate_id: row.id.to_string(),
            occurred_at: Some(timestamp(Utc::now())),
            payload: Some(pb::session_event::Payload::ConversationStarted(pb::ConversationStarted {
                conversation: Some(row.to_proto()),
            })),
        };
        let key = row.id.to_string();
        outbox::enqueue(
            &mut tx,
            OutboxEvent {
                topic: zhengna_proto::topics::SESSION,
                key: &key,
                event_type: "zhengna.session.v1.ConversationStarted",
                payload: event.encode_to_vec(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((row, false))
    }

    /// Marks the serving agent's console connected (`true`) or gone (`false`).
    pub async fn agent_seen(&self, id: Uuid, agent_id: &str, connected: bool) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE conversations SET agent_seen_at = CASE WHEN $3 THEN now() ELSE NULL END
             WHERE id = $1 AND agent_id = $2",
        )
        .bind(id)
        .bind(agent_id)
        .bind(connected)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Conversations an agent is serving now, most recent activity first, with the
    /// taxpayer's name.
    pub async fn serving(
        &self,
        agent_id: &str,
        office_prefix: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(ConversationRow, String)>, i64), ApiError> {
        let filter = "agent_id = $1 AND mode = 'human' AND ($2::text IS NULL OR agent_office LIKE $2 || '%')";
        let rows: Vec<(Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, taxpayer_name FROM conversations WHERE {filter}
             ORDER BY updated_at DESC, id LIMIT $3 OFFSET $4"
        )))
        .bind(agent_id)
        .bind(office_prefix)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM conversations WHERE {filter}")))
                .bind(agent_id)
                .bind(office_prefix)
                .fetch_one(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, name) in rows {
            if let Some(row) = self.conversation(id).await? {
                out.push((row, name));
            }
        }
        Ok((out, total))
    }

    /// The taxpayer's name on a conversation.
    pub async fn taxpayer_name(&self, id: Uuid) -> Result<String, ApiError> {
        Ok(sqlx::query_scalar("SELECT taxpayer_name FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or_default())
    }

    /// The latest message of a conversation.
    pub async fn last_message(&self, id: Uuid) -> Result<Option<MessageRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A conversation by id, for streams already authorised.
    pub async fn conversation(&self, id: Uuid) -> Result<Option<ConversationRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The conversation if it belongs to `tax_id`; someone else's is reported as absent.
    pub async fn taxpayer_conversation(&self, id: Uuid, tax_id: &str) -> Result<Option<ConversationRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND taxpayer_id = $2"
        )))
        .bind(id)
        .bind(tax_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The conversation if `agent_id` is serving it; otherwise it is reported as absent.
    pub async fn agent_conversation(&self, id: Uuid, agent_id: &str) -> Result<Option<ConversationRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND agent_id = $2"
        )))
        .bind(id)
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn by_client_id(&self, conversation: Uuid, client_msg_id: &str) -> Result<Option<MessageRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND client_msg_id = $2"
        )))
        .bind(conversation)
        .bind(client_msg_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores a message with the next seq. Returns the stored row and whether it is new
    /// (`false` when this client id was already stored: the earlier row is returned).
    pub async fn append(&self, conversation: Uuid, msg: NewMessage) -> Result<(MessageRow, bool), ApiError> {
        // Insert first: a retry is rare, so the earlier message is looked up only when the
        // insert conflicts on the client id (that transaction rolled back, so no seq is
        // skipped) or is refused (a retry after the conversation ended still gets its row).
        match self.insert(conversation, &msg).await {
            Ok(row) => Ok((row, true)),
            Err(e @ (ApiError::AlreadyExists(_) | ApiError::FailedPrecondition(_))) => {
                match self.by_client_id(conversation, &msg.client_msg_id).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn insert(&self, conversation: Uuid, msg: &NewMessage) -> Result<MessageRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row = insert_in(&mut tx, conversation, msg).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// 清屏: hides everything so far from the taxpayer's current view (history keeps it).
    pub async fn clear_screen(&self, id: Uuid, tax_id: &str) -> Result<Option<i64>, ApiError> {
        Ok(sqlx::query_scalar(
            "UPDATE conversations SET cleared_seq = last_seq WHERE id = $1 AND taxpayer_id = $2 RETURNING cleared_seq",
        )
        .bind(id)
        .bind(tax_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// 加载更多: up to `limit` messages before `before_seq` (0 = the end), oldest first.
    pub async fn history(&self, conversation: Uuid, before_seq: i64, limit: i64) -> Result<Vec<MessageRow>, ApiError> {
        let before = if before_seq <= 0 { i64::MAX } else { before_seq };
        let mut rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        )))
        .bind(conversation)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    pub async fn has_reply(&self, conversation: Uuid, seq: i64) -> Result<bool, ApiError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id = $1 AND reply_to = $2)")
            .bind(conversation)
            .bind(seq)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn messages_after(
        &self,
        conversation: Uuid,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )))
        .bind(conversation)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

impl ConversationRow {
    pub fn to_proto(&self) -> pb::Conversation {
        let mode = mode_pb(&self.mode);
        pb::Conversation {
            id: self.id.to_string(),
            taxpayer_id: self.taxpayer_id.clone(),
            mode: mode as i32,
            created_at: Some(timestamp(self.created_at)),
            last_seq: self.last_seq as u64,
            channel: self.channel.clone(),
            agent: (!self.agent_id.is_empty()).then(|| zhengna_proto::common::v1::AgentRef {
                id: self.agent_id.clone(),
                display_name: self.agent_name.clone(),
                office_code: self.agent_office.clone(),
                ..Default::default()
            }),
            queue_entry_id: self.queue_entry_id.clone(),
            cleared_through_seq: self.cleared_seq as u64,
            transferring: self.transferring,
            ..Default::default()
        }
    }
}

impl MessageRow {
    pub fn to_proto(&self) -> pb::Message {
        let sender = match self.sender.as_str() {
            "taxpayer" => pb::SenderRole::Taxpayer,
            "bot" => pb::SenderRole::Bot,
            "agent" => pb::SenderRole::Agent,
            "system" => pb::SenderRole::System,
            _ => pb::SenderRole::Unspecified,
        };
        let content = match pb::MessageContent::decode(self.content.as_slice()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(message_id = %self.id, error = %e, "stored message content does not decode");
                None
            }
        };
        pb::Message {
            id: self.id.to_string(),
            conversation_id: self.conversation_id.to_string(),
            seq: self.seq as u64,
            client_msg_id: self.client_msg_id.clone(),
            sender: sender as i32,
            sender_name: self.sender_name.clone(),
            content,
            created_at: Some(timestamp(self.created_at)),
            ..Default::default()
        }
    }
}

#[derive(sqlx::FromRow)]
struct Inserted {
    #[sqlx(flatten)]
    row: MessageRow,
    taxpayer_id: String,
    mode: String,
}

/// Stores a message with the next seq inside the caller's transaction (bumping
/// `last_seq` under the conversation's row lock) and wakes subscribers on commit.
pub async fn insert_in(
    tx: &mut sqlx::PgConnection,
    conversation: Uuid,
    msg: &NewMessage,
) -> Result<MessageRow, ApiError> {
    // One round trip: the next seq under the conversation's row lock, the message, and the
    // wake-up for subscribers (delivered on commit).
    let inserted: Option<Inserted> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH bumped AS (
             UPDATE conversations SET last_seq = last_seq + 1, updated_at = now()
             WHERE id = $1 AND mode <> 'ended' RETURNING last_seq, taxpayer_id, mode),
         stored AS (
             INSERT INTO messages (id, conversation_id, seq, client_msg_id, sender, sender_name, reply_to, text, content)
             SELECT $2, $1, bumped.last_seq, $3, $4, $5, $6, $7, $8 FROM bumped
             RETURNING {MESSAGE_COLUMNS}),
         woken AS (SELECT pg_notify($9, $1::text) FROM stored)
         SELECT stored.*, bumped.taxpayer_id, bumped.mode FROM stored, bumped, woken"
    )))
    .bind(conversation)
    .bind(Uuid::now_v7())
    .bind(&msg.client_msg_id)
    .bind(msg.sender)
    .bind(&msg.sender_name)
    .bind(msg.reply_to)
    .bind(&msg.text)
    .bind(msg.content.encode_to_vec())
    .bind(crate::hub::CHANNEL)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Inserted { row, taxpayer_id, mode }) = inserted else {
        return Err(ApiError::FailedPrecondition("conversation has ended".into()));
    };
    let event = pb::SessionEvent {
        aggregate_id: conversation.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        payload: Some(pb::session_event::Payload::MessageSent(pb::MessageSent {
            message: Some(row.to_proto()),
            taxpayer_id,
            mode: mode_pb(&mode) as i32,
        })),
    };
    let key = conversation.to_string();
    outbox::enqueue(
        &mut *tx,
        OutboxEvent {
            topic: zhengna_proto::topics::SESSION,
            key: &key,
            event_type: "zhengna.session.v1.MessageSent",
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    Ok(row)
}

fn mode_pb(mode: &str) -> pb::ConversationMode {
    match mode {
        "bot" => pb::ConversationMode::Bot,
        "queued" => pb::ConversationMode::Queued,
        "human" => pb::ConversationMode::Human,
        "ended" => pb::ConversationMode::Ended,
        _ => pb::ConversationMode::Unspecified,
    }
}
