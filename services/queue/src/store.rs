//! Queue storage: entries, agents and the claim that never exceeds an agent's capacity.
//!
//! A claim locks the agent's row first, checks presence and capacity, then takes the oldest
//! waiting entry with `FOR UPDATE SKIP LOCKED`; both rows change in one transaction with
//! the `EntryAssigned` event. Concurrent claims by one agent serialise on its row; claims by
//! different agents never take the same entry.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use zhengna_platform::identity::{Agent, Taxpayer};
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_platform::{ApiError, offices};
use zhengna_proto::common::v1 as common;
use zhengna_proto::queue::v1 as pb;

/// Channel on which queue changes wake position watchers (payload: office code).
pub const CHANNEL: &str = "zhengna_queue";

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub conversation_id: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub office_code: String,
    pub trigger: String,
    pub state: String,
    pub topic_hint: String,
    pub question_summary: String,
    pub channel: String,
    pub agent_id: String,
    pub agent_name: String,
    pub enqueued_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub skill_group_id: Option<Uuid>,
    pub skill_group_name: String,
    pub transfer_count: i32,
}

const ENTRY: &str = "id, conversation_id, taxpayer_id, taxpayer_name, office_code, trigger, state, topic_hint,
    question_summary, channel, agent_id, agent_name, enqueued_at, assigned_at, closed_at, skill_group_id,
    skill_group_name, transfer_count";

/// Whether agent `$AGENT` may serve entry `e`: the office-wide line, a group it belongs to, or
/// a group without members (served by the whole office).
fn eligible(agent_param: &str) -> String {
    format!(
        "(e.skill_group_id IS NULL
          OR EXISTS (SELECT 1 FROM skill_group_members m WHERE m.group_id = e.skill_group_id AND m.agent_id = {agent_param})
          OR NOT EXISTS (SELECT 1 FROM skill_group_members m WHERE m.group_id = e.skill_group_id))"
    )
}

/// The line an entry waits in: its group, or the office-wide line (keyed by office code).
pub fn line_id(group: Option<Uuid>, office: &str) -> String {
    group.map(|g| g.to_string()).unwrap_or_else(|| office.to_owned())
}

/// Where a new request goes: the serving office and, if the office has groups, the group.
#[derive(Debug, Clone)]
pub struct Route {
    pub office: String,
    pub group: Option<crate::groups::GroupRow>,
}

/// What an enqueue did.
pub enum Enqueued {
    /// The entry, and whether it is new.
    Entry(Box<EntryRow>, bool),
    /// The group's line is at `max_waiting`.
    Full(String),
}

pub fn trigger_str(t: pb::QueueTrigger) -> &'static str {
    match t {
        pb::QueueTrigger::Intent => "intent",
        pb::QueueTrigger::NoAnswer => "no_answer",
        pb::QueueTrigger::UnresolvedRounds => "unresolved_rounds",
        pb::QueueTrigger::UselessFeedback => "useless_feedback",
        pb::QueueTrigger::Emotion => "emotion",
        pb::QueueTrigger::Button | pb::QueueTrigger::Unspecified => "button",
    }
}

fn trigger_pb(s: &str) -> pb::QueueTrigger {
    match s {
        "intent" => pb::QueueTrigger::Intent,
        "no_answer" => pb::QueueTrigger::NoAnswer,
        "unresolved_rounds" => pb::QueueTrigger::UnresolvedRounds,
        "useless_feedback" => pb::QueueTrigger::UselessFeedback,
        "emotion" => pb::QueueTrigger::Emotion,
        _ => pb::QueueTrigger::Button,
    }
}

pub fn state_pb(s: &str) -> pb::QueueEntryState {
    match s {
        "waiting" => pb::QueueEntryState::Waiting,
        "assigned" => pb::QueueEntryState::Assigned,
        "cancelled" => pb::QueueEntryState::Cancelled,
        "expired" => pb::QueueEntryState::Expired,
        "closed" => pb::QueueEntryState::Closed,
        _ => pb::QueueEntryState::Unspecified,
    }
}

impl EntryRow {
    pub fn agent_ref(&self) -> Option<common::AgentRef> {
        (!self.agent_id.is_empty()).then(|| common::AgentRef {
            id: self.agent_id.clone(),
            display_name: self.agent_name.clone(),
            office_code: self.office_code.clone(),
            ..Default::default()
        })
    }

    pub fn to_proto(&self, position: i32) -> pb::QueueEntry {
        pb::QueueEntry {
            id: self.id.to_string(),
            conversation_id: self.conversation_id.clone(),
            taxpayer: Some(common::TaxpayerRef {
                id: self.taxpayer_id.clone(),
                name: self.taxpayer_name.clone(),
                tax_id: self.taxpayer_id.clone(),
                office_code: self.office_code.clone(),
            }),
            office: Some(common::OfficeRef { code: self.office_code.clone(), ..Default::default() }),
            skill_group_id: line_id(self.skill_group_id, &self.office_code),
            skill_group_name: self.skill_group_name.clone(),
            trigger: trigger_pb(&self.trigger) as i32,
            state: state_pb(&self.state) as i32,
            position,
            enqueued_at: Some(ts(self.enqueued_at)),
            assigned_at: self.assigned_at.map(ts),
            closed_at: self.closed_at.map(ts),
            agent: self.agent_ref(),
            topic_hint: self.topic_hint.clone(),
            question_summary: self.question_summary.clone(),
            transfer_count: self.transfer_count,
            channel: self.channel.clone(),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub agent_id: String,
    pub name: String,
    pub office_code: String,
    pub presence: String,
    pub capacity: i32,
    pub active_count: i32,
    pub presence_since: DateTime<Utc>,
    pub groups: Vec<String>,
}

const AGENT: &str = "agent_id, name, office_code, presence, capacity, active_count, presence_since,
    ARRAY(SELECT m.group_id::text FROM skill_group_members m WHERE m.agent_id = agents.agent_id ORDER BY 1) AS groups";

pub fn presence_pb(s: &str) -> pb::AgentPresence {
    match s {
        "online" => pb::AgentPresence::Online,
        "busy" => pb::AgentPresence::Busy,
        "away" => pb::AgentPresence::Away,
        _ => pb::AgentPresence::Offline,
    }
}

impl AgentRow {
    pub fn to_proto(&self) -> pb::AgentState {
        pb::AgentState {
            agent: Some(common::AgentRef {
                id: self.agent_id.clone(),
                display_name: self.name.clone(),
                office_code: self.office_code.clone(),
                ..Default::default()
            }),
            presence: presence_pb(&self.presence) as i32,
            capacity: self.capacity,
            active_count: self.active_count,
            skill_group_ids: if self.groups.is_empty() { vec![self.office_code.clone()] } else { self.groups.clone() },
            presence_since: Some(ts(self.presence_since)),
        }
    }
}

/// Where a taxpayer is in line.
#[derive(Debug, Clone)]
pub struct Standing {
    pub entry: EntryRow,
    /// 1-based while waiting, 0 otherwise.
    pub position: i32,
    pub waiting: i32,
    pub estimated_wait_secs: i64,
}

async fn publish(
    conn: &mut PgConnection,
    entry: &EntryRow,
    event_type: &str,
    payload: pb::queue_event::Payload,
) -> Result<(), ApiError> {
    let event = pb::QueueEvent {
        aggregate_id: entry.conversation_id.clone(),
        occurred_at: Some(ts(Utc::now())),
        payload: Some(payload),
    };
    outbox::enqueue(
        conn,
        OutboxEvent {
            topic: zhengna_proto::topics::QUEUE,
            key: &entry.conversation_id,
            event_type,
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&entry.office_code).execute(conn).await?;
    Ok(())
}

fn refused(reason: &str, user: &str) -> ApiError {
    ApiError::refused(reason, user)
}

#[derive(Clone)]
pub struct Queue {
    pool: PgPool,
}

impl Queue {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The office that serves a taxpayer of `office`: itself if it has skill groups or
    /// agents, else the nearest ancestor that has; the taxpayer's own office when none has
    /// any yet. Within that office the group whose longest topic prefix matches `topic`
    /// wins, then the office's default group; an office without groups has one line.
    pub async fn route(&self, office: &str, topic: &str) -> Result<Route, ApiError> {
        let mut code = office.to_owned();
        loop {
            let groups = crate::groups::list_in(&self.pool, &code).await?;
            let staffed = !groups.is_empty()
                || sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM agents WHERE office_code = $1)")
                    .bind(&code)
                    .fetch_one(&self.pool)
                    .await?;
            if staffed {
                return Ok(Route { office: code, group: crate::groups::pick(groups, topic) });
            }
            match offices::parent(&code) {
                Some(p) => code = p,
                None => return Ok(Route { office: office.to_owned(), group: None }),
            }
        }
    }

    /// Puts a conversation in line (or returns its open entry, and whether it is new).
    pub async fn enqueue(
        &self,
        tp: &Taxpayer,
        conversation_id: &str,
        trigger: &'static str,
        topic_hint: &str,
        question_summary: &str,
        route: &Route,
    ) -> Result<Enqueued, ApiError> {
        let open = |pool: PgPool, conv: String| async move {
            sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY} FROM queue_entries WHERE conversation_id = $1 AND state IN ('waiting', 'assigned')"
            )))
            .bind(conv)
            .fetch_optional(&pool)
            .await
        };
        if let Some(existing) = open(self.pool.clone(), conversation_id.to_owned()).await? {
            if existing.taxpayer_id != tp.tax_id {
                return Err(ApiError::NotFound("conversation".into()));
            }
            return Ok(Enqueued::Entry(Box::new(existing), false));
        }
        let office = route.office.clone();
        let group = route.group.as_ref();
        let mut tx = self.pool.begin().await?;
        if let Some(g) = group {
            // Serialise enqueues of one group so max_waiting holds under concurrency.
            sqlx::query("SELECT 1 FROM skill_groups WHERE id = $1 FOR UPDATE").bind(g.id).execute(&mut *tx).await?;
            if g.max_waiting > 0 {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM queue_entries WHERE skill_group_id = $1 AND state = 'waiting'",
                )
                .bind(g.id)
                .fetch_one(&mut *tx)
                .await?;
                if waiting >= i64::from(g.max_waiting) {
                    return Ok(Enqueued::Full(g.name.clone()));
                }
            }
        }
        let inserted: Result<EntryRow, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO queue_entries (id, conversation_id, taxpayer_id, taxpayer_name, office_code, trigger, state,
                 topic_hint, question_summary, skill_group_id, skill_group_name)
             VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $8, $9, $10) RETURNING {ENTRY}"
        )))
        .bind(Uuid::now_v7())
        .bind(conversation_id)
        .bind(&tp.tax_id)
        .bind(&tp.name)
        .bind(&office)
        .bind(trigger)
        .bind(topic_hint)
        .bind(question_summary)
        .bind(group.map(|g| g.id))
        .bind(group.map(|g| g.name.clone()).unwrap_or_default())
        .fetch_one(&mut *tx)
        .await;
        let entry = match inserted.map_err(ApiError::from) {
            Ok(e) => e,
            // A concurrent enqueue of the same conversation won.
            Err(ApiError::AlreadyExists(_)) => {
                drop(tx);
                let existing = open(self.pool.clone(), conversation_id.to_owned())
                    .await?
                    .ok_or_else(|| ApiError::Internal("queue entry vanished after conflict".into()))?;
                return Ok(Enqueued::Entry(Box::new(existing), false));
            }
            Err(e) => return Err(e),
        };
        publish(
            &mut tx,
            &entry,
            "zhengna.queue.v1.EntryEnqueued",
            pb::queue_event::Payload::EntryEnqueued(pb::EntryEnqueued { entry: Some(entry.to_proto(0)) }),
        )
        .await?;
        tx.commit().await?;
        Ok(Enqueued::Entry(Box::new(entry), true))
    }

    /// A taxpayer's own entry.
    pub async fn entry_of(&self, id: Uuid, tax_id: &str) -> Result<Option<EntryRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE id = $1 AND taxpayer_id = $2"
        )))
        .bind(id)
        .bind(tax_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Position, waiting count and an estimate from the office's recent waits.
    pub async fn standing(&self, id: Uuid, tax_id: &str) -> Result<Option<Standing>, ApiError> {
        let Some(entry) = self.entry_of(id, tax_id).await? else { return Ok(None) };
        let (ahead, waiting): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE (enqueued_at, id) < ($2, $3)), count(*)
             FROM queue_entries WHERE office_code = $1 AND skill_group_id IS NOT DISTINCT FROM $4 AND state = 'waiting'",
        )
        .bind(&entry.office_code)
        .bind(entry.enqueued_at)
        .bind(entry.id)
        .bind(entry.skill_group_id)
        .fetch_one(&self.pool)
        .await?;
        let position = if entry.state == "waiting" { ahead as i32 + 1 } else { 0 };
        // Mean wait of the last 20 served, spread over the agents online now.
        let (avg, online): (Option<f64>, i64) = sqlx::query_as(
            "SELECT (SELECT avg(extract(epoch FROM assigned_at - enqueued_at))::float8 FROM (
                        SELECT assigned_at, enqueued_at FROM queue_entries
                        WHERE office_code = $1 AND assigned_at IS NOT NULL ORDER BY assigned_at DESC LIMIT 20) r),
                    (SELECT count(*) FROM agents WHERE office_code = $1 AND presence = 'online')",
        )
        .bind(&entry.office_code)
        .fetch_one(&self.pool)
        .await?;
        let per_place = avg.unwrap_or(60.0).max(10.0);
        let estimated = (per_place * f64::from(position.max(0))) / online.max(1) as f64;
        Ok(Some(Standing { entry, position, waiting: waiting as i32, estimated_wait_secs: estimated.round() as i64 }))
    }

    /// 取消排队: only while waiting.
    pub async fn cancel(&self, id: Uuid, tax_id: &str) -> Result<EntryRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE id = $1 AND taxpayer_id = $2 FOR UPDATE"
        )))
        .bind(id)
        .bind(tax_id)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| ApiError::NotFound("queue entry".into()))?;
        if row.state != "waiting" {
            return Err(refused("entry is not waiting", "税务人员已接入，无法取消排队。"));
        }
        let cancelled: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE queue_entries SET state = 'cancelled', closed_at = now() WHERE id = $1 RETURNING {ENTRY}"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        publish(
            &mut tx,
            &cancelled,
            "zhengna.queue.v1.EntryCancelled",
            pb::queue_event::Payload::EntryCancelled(pb::EntryCancelled {
                entry: Some(cancelled.to_proto(0)),
                cancelled_by: Some(common::Actor {
                    role: common::ActorRole::Taxpayer as i32,
                    id: cancelled.taxpayer_id.clone(),
                    display_name: cancelled.taxpayer_name.clone(),
                }),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Sets an agent's presence and capacity (creating the agent on first use), with an
    /// `AgentPresenceChanged` event when either changed, and wakes the office's line (an
    /// agent coming online may take auto-assigned entries).
    pub async fn set_presence(&self, a: &Agent, presence: &'static str, capacity: i32) -> Result<AgentRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(String, i32)> =
            sqlx::query_as("SELECT presence, capacity FROM agents WHERE agent_id = $1 FOR UPDATE")
                .bind(&a.agent_id)
                .fetch_optional(&mut *tx)
                .await?;
        let row: AgentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO agents (agent_id, name, office_code, presence, capacity) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (agent_id) DO UPDATE SET name = EXCLUDED.name, office_code = EXCLUDED.office_code,
                 capacity = EXCLUDED.capacity,
                 presence_since = CASE WHEN agents.presence = EXCLUDED.presence THEN agents.presence_since ELSE now() END,
                 presence = EXCLUDED.presence
             RETURNING {AGENT}"
        )))
        .bind(&a.agent_id)
        .bind(&a.name)
        .bind(&a.office_code)
        .bind(presence)
        .bind(capacity)
        .fetch_one(&mut *tx)
        .await?;
        if before.as_ref().is_none_or(|(p, c)| p != presence || *c != capacity) {
            let event = pb::QueueEvent {
                aggregate_id: a.agent_id.clone(),
                occurred_at: Some(ts(Utc::now())),
                payload: Some(pb::queue_event::Payload::AgentPresenceChanged(pb::AgentPresenceChanged {
                    state: Some(row.to_proto()),
                    previous: before.as_ref().map(|(p, _)| presence_pb(p)).unwrap_or(pb::AgentPresence::Offline) as i32,
                })),
            };
            outbox::enqueue(
                &mut tx,
                OutboxEvent {
                    topic: zhengna_proto::topics::QUEUE,
                    key: &a.agent_id,
                    event_type: "zhengna.queue.v1.AgentPresenceChanged",
                    payload: event.encode_to_vec(),
                },
            )
            .await?;
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&a.office_code).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// The conversation's open entry, if any (only the owner's).
    pub async fn open_entry(&self, conversation_id: &str, tax_id: &str) -> Result<Option<EntryRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE conversation_id = $1 AND taxpayer_id = $2
               AND state IN ('waiting', 'assigned')"
        )))
        .bind(conversation_id)
        .bind(tax_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Agents of an office (optionally one group's members, some presences), by name.
    pub async fn agents(
        &self,
        office: &str,
        group: Option<Uuid>,
        presences: &[&'static str],
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AgentRow>, i64), ApiError> {
        let presences: Vec<String> = if presences.is_empty() {
            vec!["online".into(), "busy".into(), "away".into()]
        } else {
            presences.iter().map(|p| p.to_string()).collect()
        };
        let filter = "office_code = $1 AND presence = ANY($2)
            AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM skill_group_members m WHERE m.group_id = $3 AND m.agent_id = agents.agent_id))";
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT} FROM agents WHERE {filter} ORDER BY name, agent_id LIMIT $4 OFFSET $5"
        )))
        .bind(office)
        .bind(&presences)
        .bind(group)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM agents WHERE {filter}")))
            .bind(office)
            .bind(&presences)
            .bind(group)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, total))
    }

    pub async fn agent(&self, agent_id: &str) -> Result<Option<AgentRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT} FROM agents WHERE agent_id = $1")))
            .bind(agent_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// 呼叫: assigns the oldest waiting entry of the agent's office (or `entry`) to the agent,
    /// if the agent is online and below capacity.
    pub async fn claim(&self, agent_id: &str, entry: Option<Uuid>, group: Option<Uuid>) -> Result<EntryRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let agent: Option<AgentRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT} FROM agents WHERE agent_id = $1 FOR UPDATE")))
                .bind(agent_id)
                .fetch_optional(&mut *tx)
                .await?;
        let agent = agent.ok_or_else(|| refused("agent has no presence", "请先将状态设置为在线。"))?;
        if agent.presence != "online" {
            return Err(refused("agent is not online", "请先将状态设置为在线。"));
        }
        if agent.active_count >= agent.capacity {
            return Err(refused("agent is at capacity", "您的接待数已达上限，请先结束部分会话。"));
        }
        let eligible = eligible("$3");
        let picked: Option<EntryRow> = match entry {
            Some(id) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ENTRY} FROM queue_entries e WHERE id = $1 AND office_code = $2 AND state = 'waiting'
                       AND {eligible} FOR UPDATE SKIP LOCKED"
                )))
                .bind(id)
                .bind(&agent.office_code)
                .bind(agent_id)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ENTRY} FROM queue_entries e WHERE office_code = $1 AND state = 'waiting' AND {eligible}
                       AND ($2::uuid IS NULL OR skill_group_id = $2)
                     ORDER BY enqueued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                )))
                .bind(&agent.office_code)
                .bind(group)
                .bind(agent_id)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let picked = picked.ok_or_else(|| match entry {
            Some(_) => refused("entry is not waiting", "该排队已被其他税务人员接入或已取消。"),
            None => refused("nobody is waiting", "当前没有排队的纳税人。"),
        })?;
        let assigned = assign_in(&mut tx, &picked, &agent, pb::AssignmentVia::Claim).await?;
        tx.commit().await?;
        Ok(assigned)
    }

    /// Auto-assignment: hands waiting entries of AUTO groups to the longest-idle online
    /// member with a free place. Never waits on a lock (both rows are taken with SKIP
    /// LOCKED), so it cannot deadlock with claims; returns how many it assigned.
    pub async fn auto_assign(&self, max: usize) -> Result<usize, ApiError> {
        let mut done = 0;
        let mut skip: Vec<Uuid> = Vec::new();
        while done < max {
            let mut tx = self.pool.begin().await?;
            let entry: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY} FROM queue_entries e
                 WHERE state = 'waiting' AND NOT (id = ANY($1))
                   AND skill_group_id IN (SELECT id FROM skill_groups WHERE assignment_mode = 'auto')
                 ORDER BY enqueued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            )))
            .bind(&skip)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(entry) = entry else { break };
            let agent: Option<AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {AGENT} FROM agents
                 WHERE office_code = $1 AND presence = 'online' AND active_count < capacity
                   AND (EXISTS (SELECT 1 FROM skill_group_members m WHERE m.group_id = $2 AND m.agent_id = agents.agent_id)
                        OR NOT EXISTS (SELECT 1 FROM skill_group_members m WHERE m.group_id = $2))
                 ORDER BY last_assigned NULLS FIRST, presence_since, agent_id LIMIT 1 FOR UPDATE SKIP LOCKED"
            )))
            .bind(&entry.office_code)
            .bind(entry.skill_group_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(agent) = agent else {
                // Nobody free for this group now; later entries of other groups may still go.
                skip.push(entry.id);
                continue;
            };
            assign_in(&mut tx, &entry, &agent, pb::AssignmentVia::Auto).await?;
            tx.commit().await?;
            done += 1;
        }
        Ok(done)
    }

    /// Abandonment: waiting entries past their group's maximum wait (or `default_minutes`
    /// for the office-wide line; 0 = no limit), or whose office's business hours have
    /// closed, leave the line as EXPIRED with an `EntryExpired` event each.
    pub async fn expire_overdue(&self, default_minutes: i32, closed_offices: &[String]) -> Result<usize, ApiError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE queue_entries SET state = 'expired', closed_at = now()
             WHERE id IN (
                 SELECT e.id FROM queue_entries e LEFT JOIN skill_groups g ON g.id = e.skill_group_id
                 WHERE e.state = 'waiting' AND (
                     e.office_code = ANY($2)
                     OR (g.id IS NOT NULL AND g.max_wait_minutes > 0
                         AND e.enqueued_at < now() - make_interval(mins => g.max_wait_minutes))
                     OR (g.id IS NULL AND $1 > 0 AND e.enqueued_at < now() - make_interval(mins => $1)))
                 ORDER BY e.enqueued_at LIMIT 500 FOR UPDATE OF e SKIP LOCKED)
             RETURNING {ENTRY}"
        )))
        .bind(default_minutes)
        .bind(closed_offices)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let reason = if closed_offices.contains(&row.office_code) { "business_hours_closed" } else { "max_wait" };
            publish(
                &mut tx,
                row,
                "zhengna.queue.v1.EntryExpired",
                pb::queue_event::Payload::EntryExpired(pb::EntryExpired {
                    entry: Some(row.to_proto(0)),
                    reason: reason.to_owned(),
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Offices with waiting entries (for the closing-time sweep).
    pub async fn offices_waiting(&self) -> Result<Vec<String>, ApiError> {
        Ok(sqlx::query_scalar("SELECT DISTINCT office_code FROM queue_entries WHERE state = 'waiting'")
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Assigns `entry` to `agent` (both rows locked by the caller's transaction), raising the
/// agent's count and recording the `EntryAssigned` event.
async fn assign_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    entry: &EntryRow,
    agent: &AgentRow,
    via: pb::AssignmentVia,
) -> Result<EntryRow, ApiError> {
    let picked = entry;
    sqlx::query("UPDATE agents SET active_count = active_count + 1, last_assigned = now() WHERE agent_id = $1")
        .bind(&agent.agent_id)
        .execute(&mut **tx)
        .await?;
    let assigned: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE queue_entries SET state = 'assigned', agent_id = $2, agent_name = $3, assigned_at = now()
             WHERE id = $1 RETURNING {ENTRY}"
    )))
    .bind(picked.id)
    .bind(&agent.agent_id)
    .bind(&agent.name)
    .fetch_one(&mut **tx)
    .await?;
    publish(
        tx,
        &assigned,
        "zhengna.queue.v1.EntryAssigned",
        pb::queue_event::Payload::EntryAssigned(pb::EntryAssigned {
            entry: Some(assigned.to_proto(0)),
            via: via as i32,
        }),
    )
    .await?;
    Ok(assigned)
}

impl Queue {
    pub async fn list(
        &self,
        office: &str,
        states: &[&'static str],
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<EntryRow>, i64), ApiError> {
        let states: Vec<String> =
            if states.is_empty() { vec!["waiting".into()] } else { states.iter().map(|s| s.to_string()).collect() };
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE office_code = $1 AND state = ANY($2)
             ORDER BY enqueued_at, id LIMIT $3 OFFSET $4"
        )))
        .bind(office)
        .bind(&states)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM queue_entries WHERE office_code = $1 AND state = ANY($2)")
                .bind(office)
                .bind(&states)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows, total))
    }

    /// 转接: the serving agent hands the conversation to another agent of the office (who
    /// must be online with a free place) or back to the office's line (keeping its original
    /// place). Both agents' counts and the entry change in one transaction.
    pub async fn transfer(
        &self,
        from_agent: &str,
        conversation_id: &str,
        to_agent: Option<&str>,
        note: &str,
    ) -> Result<EntryRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let entry: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE conversation_id = $1 AND state = 'assigned' AND agent_id = $2 FOR UPDATE"
        )))
        .bind(conversation_id)
        .bind(from_agent)
        .fetch_optional(&mut *tx)
        .await?;
        let entry = entry.ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        // Lock both agents in id order so two crossing transfers cannot deadlock.
        let mut ids = vec![from_agent.to_owned()];
        if let Some(t) = to_agent {
            if t == from_agent {
                return Err(ApiError::invalid("agent_id", "cannot transfer to oneself", "不能转接给自己。"));
            }
            ids.push(t.to_owned());
        }
        ids.sort();
        let locked: Vec<AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT} FROM agents WHERE agent_id = ANY($1) ORDER BY agent_id FOR UPDATE"
        )))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let (event_to_agent, updated) = match to_agent {
            Some(target) => {
                let t = locked.iter().find(|a| a.agent_id == target);
                let t = match t {
                    Some(t) if t.office_code == entry.office_code => t,
                    _ => {
                        return Err(ApiError::refused(
                            "target agent not in this office",
                            "只能转接给本单位的税务人员。",
                        ));
                    }
                };
                if t.presence != "online" || t.active_count >= t.capacity {
                    return Err(refused("target agent unavailable", "对方当前不在线或接待已满，请选择其他税务人员。"));
                }
                sqlx::query(
                    "UPDATE agents SET active_count = active_count + 1, last_assigned = now() WHERE agent_id = $1",
                )
                .bind(target)
                .execute(&mut *tx)
                .await?;
                let updated: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE queue_entries SET agent_id = $2, agent_name = $3, assigned_at = now(),
                         transfer_count = transfer_count + 1 WHERE id = $1 RETURNING {ENTRY}"
                )))
                .bind(entry.id)
                .bind(&t.agent_id)
                .bind(&t.name)
                .fetch_one(&mut *tx)
                .await?;
                (target.to_owned(), updated)
            }
            None => {
                let updated: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE queue_entries SET state = 'waiting', agent_id = '', agent_name = '', assigned_at = NULL,
                         transfer_count = transfer_count + 1 WHERE id = $1 RETURNING {ENTRY}"
                )))
                .bind(entry.id)
                .fetch_one(&mut *tx)
                .await?;
                (String::new(), updated)
            }
        };
        sqlx::query("UPDATE agents SET active_count = greatest(active_count - 1, 0) WHERE agent_id = $1")
            .bind(from_agent)
            .execute(&mut *tx)
            .await?;
        publish(
            &mut tx,
            &updated,
            "zhengna.queue.v1.EntryTransferred",
            pb::queue_event::Payload::EntryTransferred(pb::EntryTransferred {
                entry: Some(updated.to_proto(0)),
                from_agent: entry.agent_ref(),
                to_agent_id: event_to_agent,
                to_skill_group_id: if to_agent.is_none() {
                    line_id(updated.skill_group_id, &updated.office_code)
                } else {
                    String::new()
                },
                note: note.to_owned(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Waiting count, longest wait and online agents of an office's line.
    pub async fn stats(&self, office: &str) -> Result<pb::SkillGroupQueueStats, ApiError> {
        let (waiting, longest, online): (i64, Option<f64>, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM queue_entries WHERE office_code = $1 AND state = 'waiting'),
                    (SELECT extract(epoch FROM now() - min(enqueued_at))::float8 FROM queue_entries WHERE office_code = $1 AND state = 'waiting'),
                    (SELECT count(*) FROM agents WHERE office_code = $1 AND presence = 'online')",
        )
        .bind(office)
        .fetch_one(&self.pool)
        .await?;
        Ok(pb::SkillGroupQueueStats {
            skill_group_id: office.to_owned(),
            skill_group_name: String::new(),
            waiting_count: waiting as i32,
            longest_wait: longest.map(|s| prost_types::Duration { seconds: s as i64, nanos: 0 }),
            online_agents: online as i32,
        })
    }

    /// Entries assigned to an agent after `since` (oldest first).
    pub async fn assigned_since(&self, agent_id: &str, since: DateTime<Utc>) -> Result<Vec<EntryRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM queue_entries WHERE agent_id = $1 AND assigned_at > $2 ORDER BY assigned_at, id"
        )))
        .bind(agent_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
