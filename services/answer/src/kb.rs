//! Knowledge-base storage: catalog import and exact-match lookup of published, currently
//! valid items.

use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::{ApiError, StartupError};

/// One line of `standard-questions.jsonl`.
#[derive(Debug, Deserialize)]
pub struct CatalogItem {
    pub id: String,
    pub topic: String,
    pub question: String,
    #[serde(default)]
    pub facts: Vec<String>,
    #[serde(default)]
    pub basis: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    #[serde(default)]
    pub audience: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Item {
    pub id: Uuid,
    pub catalog_id: Option<String>,
    pub topic: String,
    pub question: String,
    pub facts: sqlx::types::Json<Vec<String>>,
    pub basis: sqlx::types::Json<Vec<String>>,
}

#[derive(Clone)]
pub struct Kb {
    pool: PgPool,
}

impl Kb {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Imports the catalog when the KB has no items; returns how many were imported.
    pub async fn seed_if_empty(&self, path: &Path) -> Result<usize, StartupError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM kb_items").fetch_one(&self.pool).await?;
        if count > 0 {
            return Ok(0);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartupError::Config(format!("seed.catalog_path {}: {e}", path.display())))?;
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let item: CatalogItem = serde_json::from_str(line)
                .map_err(|e| StartupError::Config(format!("{}:{}: {e}", path.display(), line_no + 1)))?;
            sqlx::query(
                "INSERT INTO kb_items (id, catalog_id, topic, question, question_normalized, facts, basis,
                                       keywords, audience, valid_from, valid_to, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'published')
                 ON CONFLICT (catalog_id) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(&item.id)
            .bind(&item.topic)
            .bind(&item.question)
            .bind(crate::normalize::normalize(&item.question))
            .bind(sqlx::types::Json(&item.facts))
            .bind(sqlx::types::Json(&item.basis))
            .bind(&item.keywords)
            .bind(&item.audience)
            .bind(item.valid_from)
            .bind(item.valid_to)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The published item whose standard question equals `normalized`, valid on `today`.
    pub async fn exact(&self, normalized: &str, today: NaiveDate) -> Result<Option<Item>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT id, catalog_id, topic, question, facts, basis FROM kb_items
             WHERE question_normalized = $1 AND status = 'published'
               AND (valid_from IS NULL OR valid_from <= $2)
               AND (valid_to IS NULL OR valid_to >= $2)
             ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(normalized)
        .bind(today)
        .fetch_optional(&self.pool)
        .await?)
    }
}
