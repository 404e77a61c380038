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

/// Inserts a notice for `source_event` (ignored if that event already produced one).
pub async fn insert(conn: &mut PgConnection, source_event: Uuid, n: &NewNotification) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (id, taxpayer_id, category, kind, title, body, link_url, source_ref, source_event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (source_event) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&n.taxpayer_id)
    .bind(n.category)
    .bind(n.kind)
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.link_url)
    .bind(&n.source_ref)
    .bind(source_event)
    .execute(conn)
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
