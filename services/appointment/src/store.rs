//! Appointment storage. Every change runs in one transaction that locks the appointment,
//! applies the state table, adjusts the slot count, records the history row and enqueues
//! the event (outbox), so none of them can exist without the others.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use zhengna_platform::db::filters;
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_platform::{ApiError, time};
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::booking::{AppointmentRow, COLUMNS, ValidRequest, confirm_str, interaction_str, origin_str, ts};
use crate::slots::{SLOT_MINUTES, SlotConfig};
use crate::state::{self, Action, Confirm, Interaction, Origin, State, Timing};

/// Who acts.
#[derive(Debug, Clone)]
pub enum Actor {
    Taxpayer { id: String, name: String },
    Agent { id: String, name: String },
    System,
}

impl Actor {
    fn role(&self) -> &'static str {
        match self {
            Actor::Taxpayer { .. } => "taxpayer",
            Actor::Agent { .. } => "agent",
            Actor::System => "system",
        }
    }

    fn id(&self) -> &str {
        match self {
            Actor::Taxpayer { id, .. } | Actor::Agent { id, .. } => id,
            Actor::System => "scheduler",
        }
    }

    fn name(&self) -> &str {
        match self {
            Actor::Taxpayer { name, .. } | Actor::Agent { name, .. } => name,
            Actor::System => "系统",
        }
    }

    fn to_proto(&self) -> common::Actor {
        let role = match self {
            Actor::Taxpayer { .. } => common::ActorRole::Taxpayer,
            Actor::Agent { .. } => common::ActorRole::Agent,
            Actor::System => common::ActorRole::System,
        };
        common::Actor { role: role as i32, id: self.id().to_owned(), display_name: self.name().to_owned() }
    }
}

/// Whose appointments a caller may touch.
#[derive(Debug, Clone)]
pub enum Scope {
    /// A taxpayer: their own only.
    Taxpayer(String),
    /// An agent: their unit's (and, when listing with subordinates, units under it).
    Unit(String),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub action: String,
    pub actor_role: String,
    pub actor_id: String,
    pub actor_name: String,
    pub confirm_status: String,
    pub interaction_status: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

impl HistoryRow {
    pub fn to_proto(&self) -> pb::AppointmentLogEntry {
        let action = match self.action.as_str() {
            "booked" => pb::AppointmentAction::Booked,
            "invited" => pb::AppointmentAction::Invited,
            "accepted" => pb::AppointmentAction::Accepted,
            "rejected" => pb::AppointmentAction::Rejected,
            "cancelled" => pb::AppointmentAction::Cancelled,
            "started" => pb::AppointmentAction::Started,
            "completed" => pb::AppointmentAction::Completed,
            "missed" => pb::AppointmentAction::Missed,
            "failed" => pb::AppointmentAction::Failed,
            _ => pb::AppointmentAction::Unspecified,
        };
        let role = match self.actor_role.as_str() {
            "taxpayer" => common::ActorRole::Taxpayer,
            "agent" => common::ActorRole::Agent,
            _ => common::ActorRole::System,
        };
        let row = AppointmentRow {
            confirm_status: self.confirm_status.clone(),
            interaction_status: self.interaction_status.clone(),
            ..placeholder_row()
        };
        let (c, i) = row
            .state()
            .map(|s| (crate::booking::confirm_to_pb(s.confirm), crate::booking::interaction_to_pb(s.interaction)))
            .unwrap_or((pb::ConfirmStatus::Unspecified, pb::InteractionStatus::Unspecified));
        pb::AppointmentLogEntry {
            at: Some(ts(self.at)),
            action: action as i32,
            actor: Some(common::Actor {
                role: role as i32,
                id: self.actor_id.clone(),
                display_name: self.actor_name.clone(),
            }),
            confirm_status: c as i32,
            interaction_status: i as i32,
            note: self.note.clone(),
        }
    }
}

fn placeholder_row() -> AppointmentRow {
    AppointmentRow {
        id: Uuid::nil(),
        number: String::new(),
        origin: String::new(),
        taxpayer_id: String::new(),
        taxpayer_name: String::new(),
        service_type: String::new(),
        method: String::new(),
        unit_code: String::new(),
        unit_name: String::new(),
        business_category: String::new(),
        slot_start: DateTime::<Utc>::UNIX_EPOCH,
        slot_end: DateTime::<Utc>::UNIX_EPOCH,
        description: String::new(),
        phone: String::new(),
        confirm_status: String::new(),
        interaction_status: String::new(),
        reason: String::new(),
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        agent_id: String::new(),
        agent_name: String::new(),
        result_summary: String::new(),
        conversation_id: String::new(),
        holds_slot: false,
        attachments: sqlx::types::Json(Vec::new()),
    }
}

/// What a list query filters on (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub number: Option<String>,
    pub slot_from: Option<DateTime<Utc>>,
    pub slot_to: Option<DateTime<Utc>>,
    pub service_type: Option<String>,
    pub method: Option<&'static str>,
    pub business_category: Option<String>,
    pub description: Option<String>,
    pub confirm: Option<Confirm>,
    pub interaction: Option<Interaction>,
    pub origin: Option<Origin>,
    /// Agents: 纳税人识别号 exact or 纳税人名称 fuzzy.
    pub taxpayer: Option<String>,
    pub agent_id: Option<String>,
}

/// Extra changes an action carries.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub note: String,
    pub phone: Option<String>,
    pub result_summary: Option<String>,
}

fn slot_refused() -> ApiError {
    ApiError::refused("slot is full", "该时段已约满，请选择其他时间。")
}

#[derive(Clone)]
pub struct Appointments {
    pool: PgPool,
}

impl Appointments {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn slot_config(&self, unit: &str) -> Result<SlotConfig, ApiError> {
        let stored: Option<sqlx::types::Json<SlotConfig>> =
            sqlx::query_scalar("SELECT config FROM slot_configs WHERE unit_code = $1")
                .bind(unit)
                .fetch_optional(&self.pool)
                .await?;
        Ok(stored.map(|j| j.0).unwrap_or_default())
    }

    pub async fn save_slot_config(&self, unit: &str, cfg: &SlotConfig, by: &str) -> Result<DateTime<Utc>, ApiError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO slot_configs (unit_code, config, updated_by) VALUES ($1, $2, $3)
             ON CONFLICT (unit_code) DO UPDATE SET config = EXCLUDED.config, updated_by = EXCLUDED.updated_by, updated_at = now()
             RETURNING updated_at",
        )
        .bind(unit)
        .bind(sqlx::types::Json(cfg))
        .bind(by)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Places taken per slot start in `[from, to)` for a unit.
    pub async fn booked_counts(
        &self,
        unit: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i32)>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT slot_start, booked FROM slot_bookings WHERE unit_code = $1 AND slot_start >= $2 AND slot_start < $3",
        )
        .bind(unit)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn by_request_id(
        &self,
        taxpayer_id: &str,
        client_request_id: &str,
    ) -> Result<Option<AppointmentRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM appointments WHERE taxpayer_id = $1 AND client_request_id = $2"
        )))
        .bind(taxpayer_id)
        .bind(client_request_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Checks the slot against the unit's hours and capacity; returns the capacity.
    pub async fn check_slot(&self, unit: &str, slot: DateTime<Utc>, now: DateTime<Utc>) -> Result<i32, ApiError> {
        let cfg = self.slot_config(unit).await?;
        let capacity = cfg.capacity(slot, now).map_err(|e| {
            let (en, zh) = e.describe();
            ApiError::invalid("slot_start", en, zh)
        })?;
        let booked: Option<i32> =
            sqlx::query_scalar("SELECT booked FROM slot_bookings WHERE unit_code = $1 AND slot_start = $2")
                .bind(unit)
                .bind(slot)
                .fetch_optional(&self.pool)
                .await?;
        if booked.unwrap_or(0) >= capacity {
            return Err(slot_refused());
        }
        Ok(capacity)
    }

    /// The appointment a request would create, for the confirm step (nothing is stored).
    pub fn preview(&self, v: &ValidRequest, origin: Origin, now: DateTime<Utc>) -> AppointmentRow {
        let s = State::initial(origin);
        AppointmentRow {
            origin: origin_str(origin).into(),
            taxpayer_id: v.taxpayer_id.clone(),
            taxpayer_name: v.taxpayer_name.clone(),
            service_type: v.service_type.clone(),
            method: v.method.into(),
            unit_code: v.unit_code.clone(),
            unit_name: v.unit_name.clone(),
            business_category: v.business_category.clone(),
            slot_start: v.slot_start,
            slot_end: v.slot_start + Duration::minutes(SLOT_MINUTES),
            description: v.description.clone(),
            phone: v.phone.clone(),
            confirm_status: confirm_str(s.confirm).into(),
            interaction_status: interaction_str(s.interaction).into(),
            created_at: now,
            updated_at: now,
            attachments: sqlx::types::Json(v.attachments.clone()),
            ..placeholder_row()
        }
    }

    /// Creates a booking (taxpayer) or invitation (bureau), holding a place in the slot.
    /// A repeated client request id returns the earlier appointment.
    pub async fn create(&self, v: &ValidRequest, origin: Origin, actor: &Actor) -> Result<AppointmentRow, ApiError> {
        if let Some(existing) = self.by_request_id(&v.taxpayer_id, &v.client_request_id).await? {
            return Ok(existing);
        }
        let now = Utc::now();
        let capacity = self.check_slot(&v.unit_code, v.slot_start, now).await?;
        match self.insert(v, origin, actor, capacity).await {
            Err(ApiError::AlreadyExists(_)) => self
                .by_request_id(&v.taxpayer_id, &v.client_request_id)
                .await?
                .ok_or_else(|| ApiError::Internal("appointment vanished after conflict".into())),
            other => other,
        }
    }

    async fn insert(
        &self,
        v: &ValidRequest,
        origin: Origin,
        actor: &Actor,
        capacity: i32,
    ) -> Result<AppointmentRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        // Conditional upsert: the row lock serialises concurrent bookings of one slot, and
        // the WHERE refuses the one that would exceed capacity.
        let reserved: Option<i32> = sqlx::query_scalar(
            "INSERT INTO slot_bookings (unit_code, slot_start, booked) VALUES ($1, $2, 1)
             ON CONFLICT (unit_code, slot_start) DO UPDATE SET booked = slot_bookings.booked + 1
             WHERE slot_bookings.booked < $3
             RETURNING booked",
        )
        .bind(&v.unit_code)
        .bind(v.slot_start)
        .bind(capacity)
        .fetch_optional(&mut *tx)
        .await?;
        if reserved.is_none() {
            return Err(slot_refused());
        }
        let prefix = match origin {
            Origin::Taxpayer => "YY",
            Origin::Bureau => "YQ",
        };
        let number = zhengna_platform::db::next_number(&mut tx, prefix).await?;
        let s = State::initial(origin);
        let (agent_id, agent_name) = match actor {
            Actor::Agent { id, name } => (id.as_str(), name.as_str()),
            _ => ("", ""),
        };
        let row: AppointmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO appointments (id, number, origin, taxpayer_id, taxpayer_name, service_type, method, unit_code,
                 unit_name, business_category, slot_start, slot_end, description, phone, confirm_status,
                 interaction_status, client_request_id, agent_id, agent_name, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
             RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&number)
        .bind(origin_str(origin))
        .bind(&v.taxpayer_id)
        .bind(&v.taxpayer_name)
        .bind(&v.service_type)
        .bind(v.method)
        .bind(&v.unit_code)
        .bind(&v.unit_name)
        .bind(&v.business_category)
        .bind(v.slot_start)
        .bind(v.slot_start + Duration::minutes(SLOT_MINUTES))
        .bind(&v.description)
        .bind(&v.phone)
        .bind(confirm_str(s.confirm))
        .bind(interaction_str(s.interaction))
        .bind(&v.client_request_id)
        .bind(agent_id)
        .bind(agent_name)
        .bind(sqlx::types::Json(&v.attachments))
        .fetch_one(&mut *tx)
        .await?;
        let action = match origin {
            Origin::Taxpayer => "booked",
            Origin::Bureau => "invited",
        };
        record(&mut tx, &row, action, actor, "").await?;
        let payload = match origin {
            Origin::Taxpayer => {
                pb::appointment_event::Payload::Booked(pb::Booked { appointment: Some(row.to_proto()) })
            }
            Origin::Bureau => pb::appointment_event::Payload::Invited(pb::Invited {
                appointment: Some(row.to_proto()),
                agent: row.to_proto().agent,
            }),
        };
        publish(&mut tx, &row, payload).await?;
        tx.commit().await?;
        tracing::info!(appointment = %row.id, number = %row.number, action, "appointment created");
        Ok(row)
    }

    /// Applies `action` to an appointment within `scope`, at `now`.
    pub async fn transition(
        &self,
        id: Uuid,
        scope: &Scope,
        action: Action,
        actor: &Actor,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<AppointmentRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row = lock(&mut tx, id, Some(scope)).await?.ok_or_else(|| ApiError::NotFound("appointment".into()))?;
        let row = apply(&mut tx, row, action, actor, &change, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Detail with its history; another taxpayer's or unit's appointment is absent.
    pub async fn get(&self, id: Uuid, scope: &Scope) -> Result<Option<(AppointmentRow, Vec<HistoryRow>)>, ApiError> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM appointments WHERE id = "));
        q.push_bind(id);
        push_scope(&mut q, scope, false);
        let Some(row) = q.build_query_as::<AppointmentRow>().fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let history = sqlx::query_as(
            "SELECT action, actor_role, actor_id, actor_name, confirm_status, interaction_status, note, at
             FROM appointment_history WHERE appointment_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((row, history)))
    }

    /// A page of appointments (newest slot first) and the total count.
    pub async fn list(
        &self,
        scope: &Scope,
        subordinates: bool,
        f: &Filter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<AppointmentRow>, i64), ApiError> {
        let mut rows = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM appointments WHERE true"));
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM appointments WHERE true");
        for q in [&mut rows, &mut count] {
            push_scope(q, scope, subordinates);
            push_filter(q, f);
        }
        rows.push(" ORDER BY slot_start DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let page = rows.build_query_as().fetch_all(&self.pool).await?;
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        Ok((page, total))
    }

    /// The :15/:45 check: 失约 for accepted appointments whose slot ended without an
    /// interaction, 预约失败 for invitations still unanswered when their slot began. Safe to
    /// run late, twice, or on several replicas at once: each appointment changes once.
    pub async fn run_due_check(&self, now: DateTime<Utc>) -> Result<(usize, usize), ApiError> {
        let mut missed = 0;
        let mut failed = 0;
        for (action, sql) in [
            (
                Action::Miss,
                "SELECT id FROM appointments WHERE confirm_status = 'booked' AND slot_end <= $1 ORDER BY slot_start LIMIT 500",
            ),
            (
                Action::Fail,
                "SELECT id FROM appointments WHERE confirm_status = 'pending' AND slot_start <= $1 ORDER BY slot_start LIMIT 500",
            ),
        ] {
            loop {
                let ids: Vec<Uuid> = sqlx::query_scalar(sql).bind(now).fetch_all(&self.pool).await?;
                if ids.is_empty() {
                    break;
                }
                let mut changed = 0;
                for id in &ids {
                    let mut tx = self.pool.begin().await?;
                    // SKIP LOCKED: a row another replica is changing is its business; once it
                    // commits, the status no longer matches and the row is not picked again.
                    let Some(row) = lock_skip(&mut tx, *id).await? else { continue };
                    let note = match action {
                        Action::Miss => "超过预约服务时间未依约互动",
                        _ => "预约服务时间已到，纳税人未接受或拒绝",
                    };
                    match apply(
                        &mut tx,
                        row,
                        action,
                        &Actor::System,
                        &Change { note: note.into(), ..Change::default() },
                        now,
                    )
                    .await
                    {
                        Ok(_) => {
                            tx.commit().await?;
                            changed += 1;
                        }
                        // Changed meanwhile (started, cancelled…): nothing to do.
                        Err(ApiError::Refused { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match action {
                    Action::Miss => missed += changed,
                    _ => failed += changed,
                }
                if ids.len() < 500 || changed == 0 {
                    break;
                }
            }
        }
        Ok((missed, failed))
    }

    /// Sends one reminder per accepted appointment starting within `ahead`.
    pub async fn send_reminders(&self, now: DateTime<Utc>, ahead: Duration) -> Result<usize, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<AppointmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM appointments
             WHERE confirm_status = 'booked' AND reminded_at IS NULL AND slot_start > $1 AND slot_start <= $2
             ORDER BY slot_start LIMIT 500 FOR UPDATE SKIP LOCKED"
        )))
        .bind(now)
        .bind(now + ahead)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            sqlx::query("UPDATE appointments SET reminded_at = $2 WHERE id = $1")
                .bind(row.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let minutes = (row.slot_start - now).num_minutes().max(0) as i32;
            publish(
                &mut tx,
                row,
                pb::appointment_event::Payload::Reminder(pb::Reminder {
                    appointment: Some(row.to_proto()),
                    minutes_before: minutes,
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Number of history rows per action for an appointment (tests and audits).
    pub async fn history_count(&self, id: Uuid, action: &str) -> Result<i64, ApiError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM appointment_history WHERE appointment_id = $1 AND action = $2")
            .bind(id)
            .bind(action)
            .fetch_one(&self.pool)
            .await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn push_scope(q: &mut QueryBuilder<Postgres>, scope: &Scope, subordinates: bool) {
    match scope {
        Scope::Taxpayer(tax_id) => {
            q.push(" AND taxpayer_id = ").push_bind(tax_id.clone());
        }
        Scope::Unit(unit) => filters::office(q, "unit_code", unit, subordinates),
    }
}

fn push_filter(q: &mut QueryBuilder<Postgres>, f: &Filter) {
    if let Some(n) = &f.number {
        q.push(" AND number = ").push_bind(n.clone());
    }
    if let Some(t) = f.slot_from {
        q.push(" AND slot_start >= ").push_bind(t);
    }
    if let Some(t) = f.slot_to {
        q.push(" AND slot_start <= ").push_bind(t);
    }
    if let Some(s) = &f.service_type {
        q.push(" AND service_type = ").push_bind(s.clone());
    }
    if let Some(m) = f.method {
        q.push(" AND method = ").push_bind(m);
    }
    if let Some(c) = &f.business_category {
        q.push(" AND business_category = ").push_bind(c.clone());
    }
    if let Some(d) = &f.description {
        filters::contains(q, "description", d);
    }
    if let Some(c) = f.confirm {
        q.push(" AND confirm_status = ").push_bind(confirm_str(c));
    }
    if let Some(i) = f.interaction {
        q.push(" AND interaction_status = ").push_bind(interaction_str(i));
    }
    if let Some(o) = f.origin {
        q.push(" AND origin = ").push_bind(origin_str(o));
    }
    if let Some(t) = &f.taxpayer {
        filters::taxpayer(q, "taxpayer_id", "taxpayer_name", t);
    }
    if let Some(a) = &f.agent_id {
        q.push(" AND agent_id = ").push_bind(a.clone());
    }
}

async fn lock(conn: &mut PgConnection, id: Uuid, scope: Option<&Scope>) -> Result<Option<AppointmentRow>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM appointments WHERE id = "));
    q.push_bind(id);
    if let Some(s) = scope {
        push_scope(&mut q, s, false);
    }
    q.push(" FOR UPDATE");
    Ok(q.build_query_as().fetch_optional(conn).await?)
}

async fn lock_skip(conn: &mut PgConnection, id: Uuid) -> Result<Option<AppointmentRow>, ApiError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM appointments WHERE id = $1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

fn action_str(a: Action) -> &'static str {
    match a {
        Action::Accept => "accepted",
        Action::Reject => "rejected",
        Action::Cancel => "cancelled",
        Action::Start => "started",
        Action::Complete => "completed",
        Action::Miss => "missed",
        Action::Fail => "failed",
    }
}

/// Applies one action to a locked row: table, time rules, slot, history, event.
async fn apply(
    tx: &mut PgConnection,
    row: AppointmentRow,
    action: Action,
    actor: &Actor,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<AppointmentRow, ApiError> {
    let from = row.state()?;
    let to = state::next(row.origin(), from, action).ok_or_else(|| {
        let r = state::illegal(action, from);
        ApiError::refused(
            format!("{} from {}/{}", r.reason, row.confirm_status, row.interaction_status),
            r.user_message,
        )
    })?;
    state::guard(action, Timing { slot_start: row.slot_start, slot_end: row.slot_end, now })
        .map_err(|r| ApiError::refused(r.reason, r.user_message))?;
    let releases = row.holds_slot && matches!(to.confirm, Confirm::Cancelled | Confirm::Rejected | Confirm::Failed);
    let (agent_id, agent_name) = match (action, actor) {
        (Action::Start, Actor::Agent { id, name }) => (Some(id.clone()), Some(name.clone())),
        _ => (None, None),
    };
    let reason = match action {
        Action::Cancel | Action::Reject | Action::Fail => Some(change.note.clone()),
        _ => None,
    };
    let updated: AppointmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE appointments SET confirm_status = $2, interaction_status = $3, updated_at = $4,
             reason = coalesce($5, reason), agent_id = coalesce($6, agent_id), agent_name = coalesce($7, agent_name),
             result_summary = coalesce($8, result_summary), phone = coalesce($9, phone),
             holds_slot = holds_slot AND NOT $10
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(row.id)
    .bind(confirm_str(to.confirm))
    .bind(interaction_str(to.interaction))
    .bind(now)
    .bind(reason)
    .bind(agent_id)
    .bind(agent_name)
    .bind(change.result_summary.clone())
    .bind(change.phone.clone())
    .bind(releases)
    .fetch_one(&mut *tx)
    .await?;
    if releases {
        sqlx::query(
            "UPDATE slot_bookings SET booked = booked - 1 WHERE unit_code = $1 AND slot_start = $2 AND booked > 0",
        )
        .bind(&row.unit_code)
        .bind(row.slot_start)
        .execute(&mut *tx)
        .await?;
    }
    record(tx, &updated, action_str(action), actor, &change.note).await?;
    let appointment = Some(updated.to_proto());
    use pb::appointment_event::Payload;
    let payload = match action {
        Action::Accept => Payload::Accepted(pb::Accepted { appointment }),
        Action::Reject => Payload::Rejected(pb::Rejected { appointment, reason: change.note.clone() }),
        Action::Cancel => Payload::Cancelled(pb::Cancelled {
            appointment,
            reason: change.note.clone(),
            cancelled_by: Some(actor.to_proto()),
        }),
        Action::Start => Payload::Started(pb::Started {
            agent: updated.to_proto().agent,
            appointment,
            conversation_id: updated.conversation_id.clone(),
        }),
        Action::Complete => Payload::Completed(pb::Completed { agent: updated.to_proto().agent, appointment }),
        Action::Miss => Payload::Missed(pb::Missed { appointment }),
        Action::Fail => Payload::Failed(pb::Failed { appointment, reason: change.note.clone() }),
    };
    publish(tx, &updated, payload).await?;
    tracing::info!(appointment = %updated.id, action = action_str(action), actor = actor.role(), "appointment changed");
    Ok(updated)
}

async fn record(
    conn: &mut PgConnection,
    row: &AppointmentRow,
    action: &str,
    actor: &Actor,
    note: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO appointment_history (appointment_id, action, actor_role, actor_id, actor_name, confirm_status, interaction_status, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.id)
    .bind(action)
    .bind(actor.role())
    .bind(actor.id())
    .bind(actor.name())
    .bind(&row.confirm_status)
    .bind(&row.interaction_status)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

fn event_type(p: &pb::appointment_event::Payload) -> &'static str {
    use pb::appointment_event::Payload;
    match p {
        Payload::Booked(_) => "zhengna.appointment.v1.Booked",
        Payload::Cancelled(_) => "zhengna.appointment.v1.Cancelled",
        Payload::Invited(_) => "zhengna.appointment.v1.Invited",
        Payload::Accepted(_) => "zhengna.appointment.v1.Accepted",
        Payload::Rejected(_) => "zhengna.appointment.v1.Rejected",
        Payload::Started(_) => "zhengna.appointment.v1.Started",
        Payload::Completed(_) => "zhengna.appointment.v1.Completed",
        Payload::Missed(_) => "zhengna.appointment.v1.Missed",
        Payload::Failed(_) => "zhengna.appointment.v1.Failed",
        Payload::Reminder(_) => "zhengna.appointment.v1.Reminder",
    }
}

async fn publish(
    conn: &mut PgConnection,
    row: &AppointmentRow,
    payload: pb::appointment_event::Payload,
) -> Result<(), ApiError> {
    let event_type = event_type(&payload);
    let event = pb::AppointmentEvent {
        aggregate_id: row.id.to_string(),
        occurred_at: Some(ts(Utc::now())),
        payload: Some(payload),
    };
    let key = row.id.to_string();
    outbox::enqueue(
        conn,
        OutboxEvent {
            topic: zhengna_proto::topics::APPOINTMENT,
            key: &key,
            event_type,
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    Ok(())
}

/// Day bounds (Shanghai) as UTC instants: `[from 00:00, to+1 00:00)`.
pub fn day_bounds(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::TimeZone;
    let start = |d: NaiveDate| {
        time::shanghai()
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    };
    (start(from), start(to.succ_opt().unwrap_or(to)))
}
