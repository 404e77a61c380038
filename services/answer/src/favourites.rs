//! 我的收藏: a taxpayer's favourite answers. Adding twice is one favourite; an item that
//! was retired or expired stays listed but is marked unavailable.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_proto::answer::v1 as pb;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    item_id: Uuid,
    question: String,
    topic: String,
    created_at: DateTime<Utc>,
    available: bool,
}

impl Row {
    fn to_proto(&self) -> pb::Favourite {
        pb::Favourite {
            id: self.id.to_string(),
            item_id: self.item_id.to_string(),
            question: self.question.clone(),
            topic: self.topic.clone(),
            created_at: Some(prost_types::Timestamp { seconds: self.created_at.timestamp(), nanos: 0 }),
            available: self.available,
        }
    }
}

const SELECT: &str = "SELECT f.id, f.item_id, i.question, i.topic, f.created_at,
        (i.status = 'published' AND (i.valid_from IS NULL OR i.valid_from <= $2)
         AND (i.valid_to IS NULL OR i.valid_to >= $2)) AS available
    FROM favourites f JOIN kb_items i ON i.id = f.item_id";

pub fn parse_item(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID", "问题标识无效，请刷新后重试。"))
}

#[derive(Clone)]
pub struct Favourites {
    pool: PgPool,
}

impl Favourites {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn add(&self, taxpayer: &str, item: Uuid, today: NaiveDate) -> Result<pb::Favourite, ApiError> {
        let published: Option<bool> = sqlx::query_scalar("SELECT status = 'published' FROM kb_items WHERE id = $1")
            .bind(item)
            .fetch_optional(&self.pool)
            .await?;
        match published {
            None => return Err(ApiError::NotFound("knowledge item".into())),
            Some(false) => {
                return Err(ApiError::refused("item is not published", "该问题的答案已停用，无法收藏。"));
            }
            Some(true) => {}
        }
        sqlx::query(
            "INSERT INTO favourites (id, taxpayer_id, item_id) VALUES ($1, $2, $3)
             ON CONFLICT (taxpayer_id, item_id) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(taxpayer)
        .bind(item)
        .execute(&self.pool)
        .await?;
        let row: Row =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE f.taxpayer_id = $1 AND f.item_id = $3")))
                .bind(taxpayer)
                .bind(today)
                .bind(item)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.to_proto())
    }

    pub async fn remove(&self, taxpayer: &str, item: Uuid) -> Result<bool, ApiError> {
        let n = sqlx::query("DELETE FROM favourites WHERE taxpayer_id = $1 AND item_id = $2")
            .bind(taxpayer)
            .bind(item)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Newest first.
    pub async fn list(
        &self,
        taxpayer: &str,
        today: NaiveDate,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<pb::Favourite>, i64), ApiError> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE f.taxpayer_id = $1 ORDER BY f.created_at DESC, f.id DESC OFFSET $3 LIMIT $4"
        )))
        .bind(taxpayer)
        .bind(today)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM favourites WHERE taxpayer_id = $1")
            .bind(taxpayer)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(Row::to_proto).collect(), total))
    }

    /// Which of `items` the taxpayer has favourited (to draw the star on answers).
    pub async fn check(&self, taxpayer: &str, items: &[Uuid]) -> Result<Vec<String>, ApiError> {
        let ids: Vec<Uuid> =
            sqlx::query_scalar("SELECT item_id FROM favourites WHERE taxpayer_id = $1 AND item_id = ANY($2)")
                .bind(taxpayer)
                .bind(items)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.iter().map(Uuid::to_string).collect())
    }
}
