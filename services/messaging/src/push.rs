//! 精准推送: a message to every taxpayer matching a segment (tags, office subtrees, explicit
//! taxpayers), delivered as one notice each. A due push is sent by a single
//! `INSERT … SELECT` over the taxpayer directory in one transaction with its status change;
//! the unique (push, taxpayer) index makes a second attempt a no-op, so each taxpayer gets
//! exactly one notice however often or wherever the sender runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use zhengna_platform::identity::Taxpayer;
use zhengna_platform::{ApiError, FieldViolation, offices};
use zhengna_proto::common::v1 as common;
use zhengna_proto::messaging::v1 as pb;

use crate::leave::{escape_like, publish, ts};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// How often due pushes are looked for.
    pub poll_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self { poll_secs: 5 }
    }
}

/// A profile for the directory.
#[derive(Debug, Clone)]
pub struct Profile {
    pub tax_id: String,
    pub name: String,
    pub office_code: String,
    pub tags: Vec<String>,
}

impl From<&Taxpayer> for Profile {
    fn from(t: &Taxpayer) -> Self {
        Self {
            tax_id: t.tax_id.clone(),
            name: t.name.clone(),
            office_code: t.office_code.clone(),
            tags: t.tags.clone(),
        }
    }
}

/// Upserts profiles (one statement for the whole batch); unchanged rows are not rewritten.
pub async fn upsert_profiles(pool: &PgPool, profiles: &[Profile]) -> Result<u64, ApiError> {
    if profiles.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = profiles.iter().map(|p| p.tax_id.as_str()).collect();
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let offices: Vec<&str> = profiles.iter().map(|p| p.office_code.as_str()).collect();
    // Tags travel as one '\u{1f}'-joined string per profile (arrays of arrays cannot be bound).
    let tags: Vec<String> = profiles.iter().map(|p| p.tags.join("\u{1f}")).collect();
    let res = sqlx::query(
        "INSERT INTO taxpayer_directory (taxpayer_id, name, office_code, tags)
         SELECT id, name, office, CASE WHEN t = '' THEN '{}'::text[] ELSE string_to_array(t, chr(31)) END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(id, name, office, t)
         ON CONFLICT (taxpayer_id) DO UPDATE SET name = EXCLUDED.name, office_code = EXCLUDED.office_code,
             tags = EXCLUDED.tags, updated_at = now()
         WHERE (taxpayer_directory.name, taxpayer_directory.office_code, taxpayer_directory.tags)
               IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.office_code, EXCLUDED.tags)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&offices)
    .bind(&tags)
    .execute(pool)
    .await?;
    Ok(res.rows_affected())
}

/// A validated audience.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    pub tags: Vec<String>,
    pub all_tags: bool,
    pub office_prefixes: Vec<String>,
    pub taxpayer_ids: Vec<String>,
}

/// Checks an audience against the creator's office subtree `scope`.
pub fn audience(a: Option<&pb::PushAudience>, scope: &str, field: &str) -> Result<Audience, ApiError> {
    let Some(a) = a else {
        return Err(ApiError::invalid(field, "is required", "请设置推送对象。"));
    };
    let mut v = Vec::new();
    let clean = |list: &[String]| -> Vec<String> {
        let mut out: Vec<String> = list.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        out.sort();
        out.dedup();
        out
    };
    let tags = clean(&a.taxpayer_tags);
    let mut prefixes = Vec::new();
    for (i, code) in clean(&a.office_codes).iter().enumerate() {
        match offices::subtree_prefix(code) {
            Some(p) if p.starts_with(scope) => prefixes.push(p.to_owned()),
            Some(_) => v.push(FieldViolation::new(
                format!("{field}.office_codes[{i}]"),
                "outside your office",
                "只能向本单位及下级单位的纳税人推送。",
            )),
            None => v.push(FieldViolation::new(
                format!("{field}.office_codes[{i}]"),
                "not an office code",
                "税务机关代码有误。",
            )),
        }
    }
    let taxpayer_ids: Vec<String> = clean(&a.taxpayer_ids).into_iter().map(|t| t.to_uppercase()).collect();
    if tags.is_empty() && prefixes.is_empty() && taxpayer_ids.is_empty() {
        v.push(FieldViolation::new(
            field,
            "give tags, offices or taxpayers",
            "请至少设置一个推送条件（标签、税务机关或纳税人）。",
        ));
    }
    if tags.len() > 50 || taxpayer_ids.len() > 10_000 {
        v.push(FieldViolation::new(field, "too many criteria", "推送条件过多。"));
    }
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    let all_tags = pb::TagMatch::try_from(a.tag_match) == Ok(pb::TagMatch::All);
    Ok(Audience { tags, all_tags, office_prefixes: prefixes, taxpayer_ids })
}

/// `WHERE …` for the directory, always inside `scope`.
fn push_audience(q: &mut QueryBuilder<Postgres>, a: &Audience, scope: &str) {
    q.push(" WHERE d.office_code LIKE ").push_bind(format!("{}%", escape_like(scope)));
    if !a.tags.is_empty() {
        q.push(if a.all_tags { " AND d.tags @> " } else { " AND d.tags && " }).push_bind(a.tags.clone());
    }
    if !a.office_prefixes.is_empty() {
        let likes: Vec<String> = a.office_prefixes.iter().map(|p| format!("{}%", escape_like(p))).collect();
        q.push(" AND d.office_code LIKE ANY(").push_bind(likes).push(")");
    }
    if !a.taxpayer_ids.is_empty() {
        q.push(" AND d.taxpayer_id = ANY(").push_bind(a.taxpayer_ids.clone()).push(")");
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushRow {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub link_url: String,
    pub category: String,
    pub tags: Vec<String>,
    pub tag_match: String,
    pub office_prefixes: Vec<String>,
    pub taxpayer_ids: Vec<String>,
    pub scope_prefix: String,
    pub scheduled_at: DateTime<Utc>,
    pub status: String,
    pub created_by_id: String,
    pub created_by_name: String,
    pub recipient_count: i32,
    pub failure_reason: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, title, body, link_url, category, tags, tag_match, office_prefixes, taxpayer_ids, scope_prefix,
    scheduled_at, status, created_by_id, created_by_name, recipient_count, failure_reason, created_at, sent_at";

impl PushRow {
    fn audience(&self) -> Audience {
        Audience {
            tags: self.tags.clone(),
            all_tags: self.tag_match == "all",
            office_prefixes: self.office_prefixes.clone(),
            taxpayer_ids: self.taxpayer_ids.clone(),
        }
    }

    pub fn to_proto(&self, read_count: i32) -> pb::Push {
        let status = match self.status.as_str() {
            "scheduled" => pb::PushStatus::Scheduled,
            "sending" => pb::PushStatus::Sending,
            "sent" => pb::PushStatus::Sent,
            "cancelled" => pb::PushStatus::Cancelled,
            "failed" => pb::PushStatus::Failed,
            _ => pb::PushStatus::Unspecified,
        };
        let pad = |p: &String| format!("{p}{}", "0".repeat(11usize.saturating_sub(p.len())));
        pb::Push {
            id: self.id.to_string(),
            title: self.title.clone(),
            body: self.body.clone(),
            link_url: self.link_url.clone(),
            category: if self.category == "todo" {
                pb::NotificationCategory::Todo as i32
            } else {
                pb::NotificationCategory::Notice as i32
            },
            audience: Some(pb::PushAudience {
                taxpayer_tags: self.tags.clone(),
                tag_match: if self.tag_match == "all" { pb::TagMatch::All as i32 } else { pb::TagMatch::Any as i32 },
                office_codes: self.office_prefixes.iter().map(pad).collect(),
                taxpayer_ids: self.taxpayer_ids.clone(),
            }),
            scheduled_at: Some(ts(self.scheduled_at)),
            status: status as i32,
            created_by: Some(common::Actor {
                role: common::ActorRole::Agent as i32,
                id: self.created_by_id.clone(),
                display_name: self.created_by_name.clone(),
            }),
            created_at: Some(ts(self.created_at)),
            sent_at: self.sent_at.map(ts),
            recipient_count: self.recipient_count,
            read_count,
            failure_reason: self.failure_reason.clone(),
        }
    }
}

/// A validated push.
pub struct NewPush {
    pub client_key: String,
    pub title: String,
    pub body: String,
    pub link_url: String,
    pub category: &'static str,
    pub audience: Audience,
    pub scope_prefix: String,
    pub scheduled_at: DateTime<Utc>,
    pub created_by_id: String,
    pub created_by_name: String,
}

#[derive(Clone)]
pub struct Pushes {
    pool: PgPool,
}

impl Pushes {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn create(&self, p: NewPush) -> Result<PushRow, ApiError> {
        let row: Option<PushRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO pushes (id, title, body, link_url, category, tags, tag_match, office_prefixes, taxpayer_ids,
                 scope_prefix, scheduled_at, status, created_by_id, created_by_name, client_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'scheduled', $12, $13, $14)
             ON CONFLICT (client_key) DO NOTHING RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&p.title)
        .bind(&p.body)
        .bind(&p.link_url)
        .bind(p.category)
        .bind(&p.audience.tags)
        .bind(if p.audience.all_tags { "all" } else { "any" })
        .bind(&p.audience.office_prefixes)
        .bind(&p.audience.taxpayer_ids)
        .bind(&p.scope_prefix)
        .bind(p.scheduled_at)
        .bind(&p.created_by_id)
        .bind(&p.created_by_name)
        .bind(&p.client_key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(r),
            None => {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM pushes WHERE client_key = $1")))
                    .bind(&p.client_key)
                    .fetch_one(&self.pool)
                    .await?)
            }
        }
    }

    /// A push of `scope` with its read count.
    pub async fn get(&self, id: Uuid, scope: &str) -> Result<Option<(PushRow, i32)>, ApiError> {
        let row: Option<PushRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM pushes WHERE id = $1 AND scope_prefix LIKE $2"
        )))
        .bind(id)
        .bind(format!("{}%", escape_like(scope)))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let read: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE push_id = $1 AND read_at IS NOT NULL")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok(Some((row, read as i32)))
    }

    pub async fn list(
        &self,
        scope: &str,
        status: Option<&'static str>,
        title: Option<String>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PushRow>, i64), ApiError> {
        let mut rows = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM pushes WHERE scope_prefix LIKE "));
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM pushes WHERE scope_prefix LIKE ");
        for q in [&mut rows, &mut count] {
            q.push_bind(format!("{}%", escape_like(scope)));
            if let Some(s) = status {
                q.push(" AND status = ").push_bind(s);
            }
            if let Some(t) = &title {
                q.push(" AND title ILIKE ").push_bind(format!("%{}%", escape_like(t)));
            }
        }
        rows.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        Ok((
            rows.build_query_as().fetch_all(&self.pool).await?,
            count.build_query_scalar().fetch_one(&self.pool).await?,
        ))
    }

    pub async fn cancel(&self, id: Uuid, scope: &str) -> Result<PushRow, ApiError> {
        let row: Option<PushRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE pushes SET status = 'cancelled' WHERE id = $1 AND scope_prefix LIKE $2 AND status = 'scheduled' RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(format!("{}%", escape_like(scope)))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(r),
            None => match self.get(id, scope).await? {
                Some(_) => Err(ApiError::refused("push is no longer scheduled", "该推送已发送或已取消，不能再取消。")),
                None => Err(ApiError::NotFound("push".into())),
            },
        }
    }

    /// How many directory taxpayers match, a sample, and explicit ids the directory lacks.
    pub async fn preview(
        &self,
        a: &Audience,
        scope: &str,
        sample: i64,
    ) -> Result<(i64, Vec<Profile>, Vec<String>), ApiError> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM taxpayer_directory d");
        push_audience(&mut count, a, scope);
        let matched: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT d.taxpayer_id, d.name, d.office_code, d.tags FROM taxpayer_directory d",
        );
        push_audience(&mut q, a, scope);
        q.push(" ORDER BY d.taxpayer_id LIMIT ").push_bind(sample);
        let rows: Vec<(String, String, String, Vec<String>)> = q.build_query_as().fetch_all(&self.pool).await?;
        let known: Vec<String> = if a.taxpayer_ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT taxpayer_id FROM taxpayer_directory WHERE taxpayer_id = ANY($1)")
                .bind(&a.taxpayer_ids)
                .fetch_all(&self.pool)
                .await?
        };
        let unknown = a.taxpayer_ids.iter().filter(|t| !known.contains(t)).cloned().collect();
        let sample = rows
            .into_iter()
            .map(|(tax_id, name, office_code, tags)| Profile { tax_id, name, office_code, tags })
            .collect();
        Ok((matched, sample, unknown))
    }

    /// Sends every push due at `now`; returns (pushes sent, notices created).
    pub async fn send_due(&self, now: DateTime<Utc>) -> Result<(usize, u64), ApiError> {
        let mut pushes = 0;
        let mut notices = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let row: Option<PushRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM pushes WHERE status = 'scheduled' AND scheduled_at <= $1
                 ORDER BY scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { break };
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO notifications (id, taxpayer_id, category, kind, title, body, link_url, source_ref, push_id)
                 SELECT gen_random_uuid(), d.taxpayer_id, ",
            );
            q.push_bind(row.category.clone())
                .push(", 'precision_push', ")
                .push_bind(row.title.clone())
                .push(", ")
                .push_bind(row.body.clone())
                .push(", ")
                .push_bind(row.link_url.clone())
                .push(", ")
                .push_bind(row.id.to_string())
                .push(", ")
                .push_bind(row.id)
                .push(" FROM taxpayer_directory d");
            push_audience(&mut q, &row.audience(), &row.scope_prefix);
            q.push(" ON CONFLICT DO NOTHING");
            let inserted = q.build().execute(&mut *tx).await?.rows_affected();
            let recipients: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE push_id = $1")
                .bind(row.id)
                .fetch_one(&mut *tx)
                .await?;
            let sent: PushRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE pushes SET status = 'sent', sent_at = $2, recipient_count = $3 WHERE id = $1 RETURNING {COLUMNS}"
            )))
            .bind(row.id)
            .bind(now)
            .bind(recipients as i32)
            .fetch_one(&mut *tx)
            .await?;
            // Wake inbox watchers once for the whole push.
            sqlx::query("SELECT pg_notify('zhengna_inbox', '*')").execute(&mut *tx).await?;
            publish(
                &mut tx,
                &row.id.to_string(),
                "zhengna.messaging.v1.PushSent",
                pb::messaging_event::Payload::PushSent(pb::PushSent { push: Some(sent.to_proto(0)) }),
            )
            .await?;
            tx.commit().await?;
            pushes += 1;
            notices += inserted;
        }
        Ok((pushes, notices))
    }
}

/// Sends due pushes until shutdown.
pub async fn run_sender(pushes: Pushes, cfg: PushConfig, shutdown: tokio_util::sync::CancellationToken) {
    let every = std::time::Duration::from_secs(cfg.poll_secs.max(1));
    loop {
        match pushes.send_due(Utc::now()).await {
            Ok((n, notices)) if n > 0 => {
                metrics::counter!("pushes_sent_total").increment(n as u64);
                metrics::counter!("push_notifications_total").increment(notices);
                tracing::info!(pushes = n, notices, "precision pushes sent");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "push sending failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
