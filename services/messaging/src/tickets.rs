//! 工单: a time-limited piece of work for an office, usually from a 留言. Statuses 待处理
//! (open) / 处理中 (in progress, or suspended) / 已办结 (resolved, closed), plus the 已超期
//! flag. Past its deadline an unresolved ticket escalates to the parent office with a new
//! deadline; at the top it is only flagged. Resolving notifies the taxpayer (工单办理结果).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_platform::attachments::StoredAttachment;
use zhengna_proto::common::v1 as common;
use zhengna_proto::messaging::v1 as pb;

use crate::inbox::{self, NewNotification};
use zhengna_platform::db::filters;

use crate::leave::{LeaveRow, escape_like, next_number, publish, ts};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketConfig {
    /// 限时办结: hours to resolve, per 留言 type code.
    pub deadline_hours: HashMap<String, i64>,
    /// For types not listed and manual tickets.
    pub default_deadline_hours: i64,
    /// Time the parent office gets after an escalation.
    pub escalation_hours: i64,
    /// How often the overdue check runs.
    pub check_secs: u64,
}

impl Default for TicketConfig {
    fn default() -> Self {
        let deadline_hours =
            [("consult", 72), ("complaint", 120), ("suggestion", 240), ("praise", 240), ("other", 120)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        Self { deadline_hours, default_deadline_hours: 120, escalation_hours: 48, check_secs: 60 }
    }
}

impl TicketConfig {
    pub fn deadline(&self, type_code: &str) -> Duration {
        Duration::hours(self.deadline_hours.get(type_code).copied().unwrap_or(self.default_deadline_hours))
    }
}

pub use zhengna_platform::offices::parent as parent_office;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: Uuid,
    pub number: String,
    pub source: String,
    pub source_id: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub handling_office: String,
    pub original_office: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assignee_id: String,
    pub assignee_name: String,
    pub resolution: String,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
    pub escalation_level: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub attachments: sqlx::types::Json<Vec<StoredAttachment>>,
}

const COLUMNS: &str =
    "id, number, source, source_id, taxpayer_id, taxpayer_name, handling_office, original_office, title,
    description, status, priority, assignee_id, assignee_name, resolution, due_at, overdue, escalation_level,
    created_at, updated_at, closed_at, attachments";

pub fn status_to_pb(s: &str) -> pb::TicketStatus {
    match s {
        "open" => pb::TicketStatus::Open,
        "in_progress" => pb::TicketStatus::InProgress,
        "suspended" => pb::TicketStatus::Suspended,
        "resolved" => pb::TicketStatus::Resolved,
        "closed" => pb::TicketStatus::Closed,
        _ => pb::TicketStatus::Unspecified,
    }
}

pub fn status_from_pb(s: pb::TicketStatus) -> Option<&'static str> {
    Some(match s {
        pb::TicketStatus::Unspecified => return None,
        pb::TicketStatus::Open => "open",
        pb::TicketStatus::InProgress => "in_progress",
        pb::TicketStatus::Suspended => "suspended",
        pb::TicketStatus::Resolved => "resolved",
        pb::TicketStatus::Closed => "closed",
    })
}

pub fn priority_str(p: pb::TicketPriority) -> &'static str {
    match p {
        pb::TicketPriority::Low => "low",
        pb::TicketPriority::High => "high",
        pb::TicketPriority::Urgent => "urgent",
        pb::TicketPriority::Normal | pb::TicketPriority::Unspecified => "normal",
    }
}

fn priority_to_pb(p: &str) -> pb::TicketPriority {
    match p {
        "low" => pb::TicketPriority::Low,
        "high" => pb::TicketPriority::High,
        "urgent" => pb::TicketPriority::Urgent,
        _ => pb::TicketPriority::Normal,
    }
}

impl TicketRow {
    pub fn to_proto(&self) -> pb::Ticket {
        let source = match self.source.as_str() {
            "leave_message" => pb::TicketSource::LeaveMessage,
            "conversation" => pb::TicketSource::Conversation,
            _ => pb::TicketSource::Manual,
        };
        pb::Ticket {
            id: self.id.to_string(),
            number: self.number.clone(),
            source: source as i32,
            source_id: self.source_id.clone(),
            taxpayer: (!self.taxpayer_id.is_empty()).then(|| common::TaxpayerRef {
                id: self.taxpayer_id.clone(),
                name: self.taxpayer_name.clone(),
                tax_id: self.taxpayer_id.clone(),
                office_code: self.original_office.clone(),
            }),
            handling_office: Some(common::OfficeRef { code: self.handling_office.clone(), ..Default::default() }),
            title: self.title.clone(),
            description: self.description.clone(),
            status: status_to_pb(&self.status) as i32,
            priority: priority_to_pb(&self.priority) as i32,
            assignee: (!self.assignee_id.is_empty()).then(|| common::AgentRef {
                id: self.assignee_id.clone(),
                display_name: self.assignee_name.clone(),
                ..Default::default()
            }),
            resolution: self.resolution.clone(),
            attachments: self.attachments.0.iter().map(Into::into).collect(),
            created_at: Some(ts(self.created_at)),
            updated_at: Some(ts(self.updated_at)),
            closed_at: self.closed_at.map(ts),
            due_at: Some(ts(self.due_at)),
            overdue: self.overdue,
            escalation_level: self.escalation_level,
            original_office: Some(common::OfficeRef { code: self.original_office.clone(), ..Default::default() }),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub actor_role: String,
    pub actor_id: String,
    pub actor_name: String,
    pub from_status: String,
    pub to_status: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

impl HistoryRow {
    pub fn to_proto(&self) -> pb::TicketLogEntry {
        let role = match self.actor_role.as_str() {
            "agent" => common::ActorRole::Agent,
            "taxpayer" => common::ActorRole::Taxpayer,
            _ => common::ActorRole::System,
        };
        pb::TicketLogEntry {
            at: Some(ts(self.at)),
            actor: Some(common::Actor {
                role: role as i32,
                id: self.actor_id.clone(),
                display_name: self.actor_name.clone(),
            }),
            from_status: status_to_pb(&self.from_status) as i32,
            to_status: status_to_pb(&self.to_status) as i32,
            note: self.note.clone(),
        }
    }
}

/// An agent (or the system) acting on a ticket.
#[derive(Debug, Clone)]
pub struct Who {
    pub role: &'static str,
    pub id: String,
    pub name: String,
}

impl Who {
    pub fn system() -> Self {
        Self { role: "system", id: "scheduler".into(), name: "系统".into() }
    }
}

async fn log(conn: &mut PgConnection, id: Uuid, who: &Who, from: &str, to: &str, note: &str) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO ticket_history (ticket_id, actor_role, actor_id, actor_name, from_status, to_status, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(who.role)
    .bind(&who.id)
    .bind(&who.name)
    .bind(from)
    .bind(to)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct NewTicket {
    pub client_key: String,
    pub source: &'static str,
    pub source_id: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub office: String,
    pub title: String,
    pub description: String,
    pub priority: &'static str,
    pub due_at: DateTime<Utc>,
    pub attachments: Vec<StoredAttachment>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub number: Option<String>,
    pub statuses: Vec<&'static str>,
    pub source: Option<&'static str>,
    pub assignee: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub query: Option<String>,
    pub taxpayer: Option<String>,
}

#[derive(Clone)]
pub struct Tickets {
    pool: PgPool,
    cfg: TicketConfig,
}

impl Tickets {
    pub fn new(pool: PgPool, cfg: TicketConfig) -> Self {
        Self { pool, cfg }
    }

    pub fn config(&self) -> &TicketConfig {
        &self.cfg
    }

    async fn by_key(&self, key: &str) -> Result<Option<TicketRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tickets WHERE client_key = $1")))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn insert(conn: &mut PgConnection, t: &NewTicket, who: &Who) -> Result<TicketRow, ApiError> {
        let number = next_number(conn, "GD").await?;
        let row: TicketRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tickets (id, number, source, source_id, taxpayer_id, taxpayer_name, handling_office, original_office,
                 title, description, status, priority, due_at, client_key, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, 'open', $10, $11, $12, $13) RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&number)
        .bind(t.source)
        .bind(&t.source_id)
        .bind(&t.taxpayer_id)
        .bind(&t.taxpayer_name)
        .bind(&t.office)
        .bind(&t.title)
        .bind(&t.description)
        .bind(t.priority)
        .bind(t.due_at)
        .bind(&t.client_key)
        .bind(sqlx::types::Json(&t.attachments))
        .fetch_one(&mut *conn)
        .await?;
        log(conn, row.id, who, "", "open", "创建工单").await?;
        publish(
            conn,
            &row.id.to_string(),
            "zhengna.messaging.v1.TicketCreated",
            pb::messaging_event::Payload::TicketCreated(pb::TicketCreated { ticket: Some(row.to_proto()) }),
        )
        .await?;
        Ok(row)
    }

    /// Turns a 留言 of `office` into a ticket with the type's deadline. A 留言 becomes at most
    /// one ticket: converting again returns the existing one.
    pub async fn convert(
        &self,
        leave_id: Uuid,
        office: &str,
        title: &str,
        priority: &'static str,
        who: &Who,
    ) -> Result<(TicketRow, LeaveRow), ApiError> {
        let key = format!("leave:{leave_id}");
        let mut tx = self.pool.begin().await?;
        let leave: Option<LeaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM leave_messages WHERE id = $1 AND org_code = $2 FOR UPDATE",
            crate::leave::COLUMNS
        )))
        .bind(leave_id)
        .bind(office)
        .fetch_optional(&mut *tx)
        .await?;
        let leave = leave.ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        if leave.ticket_id.is_some() {
            drop(tx);
            let ticket = self.by_key(&key).await?.ok_or_else(|| ApiError::Internal("ticket missing".into()))?;
            return Ok((ticket, leave));
        }
        if leave.status == "closed" {
            return Err(ApiError::refused("leave message is closed", "该留言已办结，不能转为工单。"));
        }
        let title = match title.trim() {
            "" => leave.content.chars().take(30).collect(),
            t => t.to_owned(),
        };
        let ticket = Self::insert(
            &mut tx,
            &NewTicket {
                client_key: key,
                source: "leave_message",
                source_id: leave.id.to_string(),
                taxpayer_id: leave.taxpayer_id.clone(),
                taxpayer_name: leave.taxpayer_name.clone(),
                office: office.to_owned(),
                title,
                description: leave.content.clone(),
                priority,
                due_at: Utc::now() + self.cfg.deadline(&leave.type_code),
                attachments: leave.attachments.0.clone(),
            },
            who,
        )
        .await?;
        let leave: LeaveRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE leave_messages SET status = 'converted', ticket_id = $2, updated_at = now() WHERE id = $1
             RETURNING {}",
            crate::leave::COLUMNS
        )))
        .bind(leave_id)
        .bind(ticket.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((ticket, leave))
    }

    /// A manual ticket (no 留言), idempotent on the client request id.
    pub async fn create(&self, t: NewTicket, who: &Who) -> Result<TicketRow, ApiError> {
        if let Some(existing) = self.by_key(&t.client_key).await? {
            return Ok(existing);
        }
        let mut tx = self.pool.begin().await?;
        let row = Self::insert(&mut tx, &t, who).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn get(&self, id: Uuid, office: &str) -> Result<Option<(TicketRow, Vec<HistoryRow>)>, ApiError> {
        let row: Option<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tickets WHERE id = $1 AND (handling_office = $2 OR original_office = $2)"
        )))
        .bind(id)
        .bind(office)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let history = sqlx::query_as(
            "SELECT actor_role, actor_id, actor_name, from_status, to_status, note, at FROM ticket_history
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((row, history)))
    }

    pub async fn list(
        &self,
        office: &str,
        subordinates: bool,
        f: &Filter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TicketRow>, i64), ApiError> {
        let mut rows = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM tickets WHERE true"));
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM tickets WHERE true");
        for q in [&mut rows, &mut count] {
            filters::office(q, "handling_office", office, subordinates);
            if let Some(n) = &f.number {
                q.push(" AND number = ").push_bind(n.clone());
            }
            if !f.statuses.is_empty() {
                q.push(" AND status = ANY(")
                    .push_bind(f.statuses.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .push(")");
            }
            if let Some(s) = f.source {
                q.push(" AND source = ").push_bind(s);
            }
            if let Some(a) = &f.assignee {
                q.push(" AND assignee_id = ").push_bind(a.clone());
            }
            if let Some(t) = f.from {
                q.push(" AND created_at >= ").push_bind(t);
            }
            if let Some(t) = f.to {
                q.push(" AND created_at < ").push_bind(t);
            }
            if let Some(text) = &f.query {
                let like = format!("%{}%", escape_like(text));
                q.push(" AND (title ILIKE ")
                    .push_bind(like.clone())
                    .push(" OR description ILIKE ")
                    .push_bind(like)
                    .push(")");
            }
            if let Some(t) = &f.taxpayer {
                filters::taxpayer(q, "taxpayer_id", "taxpayer_name", t);
            }
        }
        rows.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let page = rows.build_query_as().fetch_all(&self.pool).await?;
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        Ok((page, total))
    }

    async fn lock(conn: &mut PgConnection, id: Uuid, office: &str) -> Result<TicketRow, ApiError> {
        let row: Option<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tickets WHERE id = $1 AND handling_office = $2 FOR UPDATE"
        )))
        .bind(id)
        .bind(office)
        .fetch_optional(conn)
        .await?;
        row.ok_or_else(|| ApiError::NotFound("ticket".into()))
    }

    /// Moves an open ticket between 待处理 / 处理中 / 挂起 and (re)assigns it.
    pub async fn update_status(
        &self,
        id: Uuid,
        office: &str,
        to: &'static str,
        assignee: Option<(String, String)>,
        note: &str,
        who: &Who,
    ) -> Result<TicketRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, id, office).await?;
        let allowed = matches!(
            (row.status.as_str(), to),
            ("open", "in_progress")
                | ("in_progress", "suspended")
                | ("suspended", "in_progress")
                | ("in_progress", "in_progress")
                | ("open", "open")
        );
        if !allowed {
            return Err(ApiError::refused(
                format!("ticket cannot go from {} to {to}", row.status),
                "当前工单状态下不能进行此操作；办结请使用“办结”。",
            ));
        }
        let (aid, aname) = assignee.unwrap_or((row.assignee_id.clone(), row.assignee_name.clone()));
        let updated: TicketRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE tickets SET status = $2, assignee_id = $3, assignee_name = $4, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(to)
        .bind(aid)
        .bind(aname)
        .fetch_one(&mut *tx)
        .await?;
        log(&mut tx, id, who, &row.status, to, note).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// 已办结: records the result, closes the 留言 and (unless told not to) notifies the
    /// taxpayer with 工单办理结果, all in one transaction.
    pub async fn resolve(
        &self,
        id: Uuid,
        office: &str,
        resolution: &str,
        notify: bool,
        who: &Who,
    ) -> Result<TicketRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, id, office).await?;
        if matches!(row.status.as_str(), "resolved" | "closed") {
            return Err(ApiError::refused("ticket already resolved", "该工单已办结。"));
        }
        let updated: TicketRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE tickets SET status = 'resolved', resolution = $2, closed_at = now(), updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(resolution)
        .fetch_one(&mut *tx)
        .await?;
        log(&mut tx, id, who, &row.status, "resolved", resolution).await?;
        if row.source == "leave_message"
            && let Ok(leave_id) = Uuid::parse_str(&row.source_id)
        {
            sqlx::query("UPDATE leave_messages SET status = 'closed', updated_at = now() WHERE id = $1")
                .bind(leave_id)
                .execute(&mut *tx)
                .await?;
        }
        let notify = notify && !row.taxpayer_id.is_empty();
        if notify {
            inbox::insert(
                &mut tx,
                row.id,
                &NewNotification {
                    taxpayer_id: row.taxpayer_id.clone(),
                    category: "notice",
                    kind: "ticket_result",
                    title: "工单办理结果".into(),
                    body: format!("您的工单（编号：{}）已办结。办理结果：{resolution}", row.number),
                    link_url: if row.source == "leave_message" {
                        format!("/personal/leave-messages/{}", row.source_id)
                    } else {
                        String::new()
                    },
                    source_ref: row.id.to_string(),
                },
            )
            .await?;
        }
        publish(
            &mut tx,
            &row.id.to_string(),
            "zhengna.messaging.v1.TicketResolved",
            pb::messaging_event::Payload::TicketResolved(pb::TicketResolved {
                ticket: Some(updated.to_proto()),
                notify_taxpayer: notify,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Escalates every unresolved ticket whose deadline passed by `now`: to the parent office
    /// with a new deadline, or (at the top) flagged 已超期 once. Idempotent per deadline.
    pub async fn escalate_overdue(&self, now: DateTime<Utc>) -> Result<usize, ApiError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tickets
             WHERE status IN ('open', 'in_progress', 'suspended') AND due_at <= $1
             ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED"
        )))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut changed = 0;
        for t in due {
            let parent = parent_office(&t.handling_office);
            if parent.is_none() && t.overdue {
                continue; // already flagged at the top
            }
            let to_office = parent.clone().unwrap_or_else(|| t.handling_office.clone());
            let new_due = if parent.is_some() { now + Duration::hours(self.cfg.escalation_hours) } else { t.due_at };
            let updated: TicketRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE tickets SET overdue = true, handling_office = $2, due_at = $3,
                     escalation_level = escalation_level + $4, updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            )))
            .bind(t.id)
            .bind(&to_office)
            .bind(new_due)
            .bind(i32::from(parent.is_some()))
            .fetch_one(&mut *tx)
            .await?;
            let note = match &parent {
                Some(p) => format!("已超期，自动升级至上级机关 {p}"),
                None => "已超期".to_owned(),
            };
            log(&mut tx, t.id, &Who::system(), &t.status, &t.status, &note).await?;
            publish(
                &mut tx,
                &t.id.to_string(),
                "zhengna.messaging.v1.TicketEscalated",
                pb::messaging_event::Payload::TicketEscalated(pb::TicketEscalated {
                    ticket: Some(updated.to_proto()),
                    from_office_code: t.handling_office.clone(),
                    to_office_code: to_office,
                }),
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Runs the overdue check until shutdown.
pub async fn run_escalation(tickets: Tickets, shutdown: tokio_util::sync::CancellationToken) {
    let every = std::time::Duration::from_secs(tickets.cfg.check_secs.max(1));
    loop {
        match tickets.escalate_overdue(Utc::now()).await {
            Ok(n) if n > 0 => {
                metrics::counter!("tickets_escalated_total").increment(n as u64);
                tracing::info!(escalated = n, "overdue tickets escalated");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ticket escalation failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
