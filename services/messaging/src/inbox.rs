//! The inbox: notifications per taxpayer, split into 待办提醒 (todo) and 消息提示 (notice).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;
use zhengna_platform::ApiError;

pub struct NewNotification {
    pub taxpayer_id: String,
    pub category: &'static str,
    pub kind: &'static str,
    pub title: String,
    pub body: String,
    pub link_url: String,
    pub source_ref: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub category: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub link_url: String,
    pub source_ref: String,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, category, kind, title, body, link_url, source_ref, read_at, created_at";

/// Channel on which new notices wake `WatchInbox` streams (payload: taxpayer id, or `*`).
pub const CHANNEL: &str = "zhengna_inbox";

/// Inserts a notice for `source_event` (ignored if that event already produced one), wakes
/// the taxpayer's watchers and publishes `NotificationCreated`, all in the caller's
/// transaction.
pub async fn insert(conn: &mut PgConnection, source_event: Uuid, n: &NewNotification) -> Result<(), sqlx::Error> {
    let row: Option<NotificationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (id, taxpayer_id, category, kind, title, body, link_url, source_ref, source_event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (source_event) DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(&n.taxpayer_id)
    .bind(n.category)
    .bind(n.kind)
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.link_url)
    .bind(&n.source_ref)
    .bind(source_event)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(()) };
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&n.taxpayer_id).execute(&mut *conn).await?;
    let event = zhengna_proto::messaging::v1::MessagingEvent {
        aggregate_id: n.taxpayer_id.clone(),
        occurred_at: Some(crate::leave::ts(row.created_at)),
        payload: Some(zhengna_proto::messaging::v1::messaging_event::Payload::NotificationCreated(
            zhengna_proto::messaging::v1::NotificationCreated {
                taxpayer_id: n.taxpayer_id.clone(),
                notification: Some(crate::api::notification_to_proto(&row)),
            },
        )),
    };
    zhengna_platform::outbox::enqueue(
        conn,
        zhengna_platform::outbox::OutboxEvent {
            topic: zhengna_proto::topics::MESSAGING,
            key: &n.taxpayer_id,
            event_type: "zhengna.messaging.v1.NotificationCreated",
            payload: prost::Message::encode_to_vec(&event),
        },
    )
    .await?;
    Ok(())
}

/// Keyset position of the last row of a page: `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(token: &str) -> Option<Self> {
        let (micros, id) = token.split_once('_')?;
        Some(Self { created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?, id: Uuid::parse_str(id).ok()? })
    }
}

pub struct ListQuery<'a> {
    pub taxpayer_id: &'a str,
    pub category: Option<&'static str>,
    pub unread_only: bool,
    pub limit: i64,
    pub after: Option<Cursor>,
}

#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
}

impl Inbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Newest first; returns the page and the total matching count.
    pub async fn list(&self, q: ListQuery<'_>) -> Result<(Vec<NotificationRow>, i64), ApiError> {
        let mut b = QueryBuilder::new(format!("SELECT {COLUMNS} FROM notifications WHERE taxpayer_id = "));
        b.push_bind(q.taxpayer_id);
        let mut count = QueryBuilder::new("SELECT count(*) FROM notifications WHERE taxpayer_id = ");
        count.push_bind(q.taxpayer_id);
        for qb in [&mut b, &mut count] {
            if let Some(c) = q.category {
                qb.push(" AND category = ").push_bind(c);
            }
            if q.unread_only {
                qb.push(" AND read_at IS NULL");
            }
        }
        if let Some(after) = q.after {
            b.push(" AND (created_at, id) < (").push_bind(after.created_at).push(", ").push_bind(after.id).push(")");
        }
        b.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(q.limit);
        let rows = b.build_query_as().fetch_all(&self.pool).await?;
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        Ok((rows, total))
    }

    /// Notices of a taxpayer newer than `after` (oldest first), at most `limit`.
    pub async fn newer_than(
        &self,
        taxpayer_id: &str,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, ApiError> {
        let mut b = QueryBuilder::new(format!("SELECT {COLUMNS} FROM notifications WHERE taxpayer_id = "));
        b.push_bind(taxpayer_id);
        if let Some(a) = after {
            b.push(" AND (created_at, id) > (").push_bind(a.created_at).push(", ").push_bind(a.id).push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
        Ok(b.build_query_as().fetch_all(&self.pool).await?)
    }

    /// The newest notice's position, where a new watcher starts.
    pub async fn latest(&self, taxpayer_id: &str) -> Result<Option<Cursor>, ApiError> {
        let row: Option<(DateTime<Utc>, Uuid)> = sqlx::query_as(
            "SELECT created_at, id FROM notifications WHERE taxpayer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(taxpayer_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(created_at, id)| Cursor { created_at, id }))
    }

    /// Unread counts per category: (todo, notice).
    pub async fn unread(&self, taxpayer_id: &str) -> Result<(i64, i64), ApiError> {
        let (todo, notice): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE category = 'todo'), count(*) FILTER (WHERE category = 'notice')
             FROM notifications WHERE taxpayer_id = $1 AND read_at IS NULL",
        )
        .bind(taxpayer_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((todo, notice))
    }

    /// Opens a notice (marking it read); someone else's notice is reported as absent.
    pub async fn open(&self, taxpayer_id: &str, id: Uuid) -> Result<Option<NotificationRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE notifications SET read_at = coalesce(read_at, now())
             WHERE id = $1 AND taxpayer_id = $2 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(taxpayer_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Marks the given notices (or all) read; returns how many changed.
    pub async fn mark_read(&self, taxpayer_id: &str, ids: Option<&[Uuid]>) -> Result<u64, ApiError> {
        let res = match ids {
            Some(ids) => sqlx::query(
                "UPDATE notifications SET read_at = now() WHERE taxpayer_id = $1 AND read_at IS NULL AND id = ANY($2)",
            )
            .bind(taxpayer_id)
            .bind(ids)
            .execute(&self.pool)
            .await?,
            None => {
                sqlx::query("UPDATE notifications SET read_at = now() WHERE taxpayer_id = $1 AND read_at IS NULL")
                    .bind(taxpayer_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        if res.rows_affected() > 0 {
            // Open WatchInbox streams (every tab and replica) push the lower unread count.
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(taxpayer_id).execute(&self.pool).await?;
        }
        Ok(res.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("ts"),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x_y"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
