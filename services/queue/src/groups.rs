//! Skill groups (技能组) and business hours: storage, routing choice and the supervisors'
//! QueueAdminService. Supervisors and administrators manage their own office and the
//! offices below it.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::identity::{self, Agent, AgentRole};
use zhengna_platform::paging::Page;
use zhengna_platform::{ApiError, FieldViolation, offices};
use zhengna_proto::queue::v1 as pb;

use crate::hours;
use crate::store::ts;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub office_code: String,
    pub name: String,
    pub description: String,
    pub topic_prefixes: Vec<String>,
    pub is_default: bool,
    pub assignment_mode: String,
    pub max_waiting: i32,
    pub max_wait_minutes: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub members: Vec<String>,
}

const GROUP: &str = "id, office_code, name, description, topic_prefixes, is_default, assignment_mode, max_waiting,
    max_wait_minutes, created_at, updated_at,
    ARRAY(SELECT agent_id FROM skill_group_members m WHERE m.group_id = skill_groups.id ORDER BY agent_id) AS members";

impl GroupRow {
    pub fn to_proto(&self) -> pb::SkillGroup {
        pb::SkillGroup {
            id: self.id.to_string(),
            office_code: self.office_code.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            topic_prefixes: self.topic_prefixes.clone(),
            is_default: self.is_default,
            assignment_mode: if self.assignment_mode == "auto" {
                pb::AssignmentMode::Auto as i32
            } else {
                pb::AssignmentMode::Manual as i32
            },
            max_waiting: self.max_waiting,
            max_wait_minutes: self.max_wait_minutes,
            member_agent_ids: self.members.clone(),
            created_at: Some(ts(self.created_at)),
            updated_at: Some(ts(self.updated_at)),
        }
    }
}

/// The groups of one office.
pub async fn list_in(pool: &PgPool, office: &str) -> Result<Vec<GroupRow>, ApiError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP} FROM skill_groups WHERE office_code = $1 ORDER BY name"
    )))
    .bind(office)
    .fetch_all(pool)
    .await?)
}

/// The group for a topic: the longest matching topic prefix, else the default group, else
/// (no default) the office-wide line.
pub fn pick(groups: Vec<GroupRow>, topic: &str) -> Option<GroupRow> {
    let topic = topic.trim().to_uppercase();
    let best = groups
        .iter()
        .filter_map(|g| {
            g.topic_prefixes
                .iter()
                .filter(|p| !p.is_empty() && topic.starts_with(&p.to_uppercase()))
                .map(|p| p.len())
                .max()
                .map(|len| (len, g))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, g)| g.clone());
    best.or_else(|| groups.into_iter().find(|g| g.is_default))
}

/// The schedule that applies to an office: its own, or the nearest ancestor's (marked
/// inherited); `None` when no office up to the province has one (always open).
pub async fn schedule_for(pool: &PgPool, office: &str) -> Result<Option<pb::BusinessHoursSchedule>, ApiError> {
    let mut code = office.to_owned();
    loop {
        let row: Option<(Vec<u8>, DateTime<Utc>)> =
            sqlx::query_as("SELECT schedule, updated_at FROM business_hours WHERE office_code = $1")
                .bind(&code)
                .fetch_optional(pool)
                .await?;
        if let Some((bytes, updated)) = row {
            let mut s = pb::BusinessHoursSchedule::decode(bytes.as_slice())
                .map_err(|e| ApiError::Internal(format!("stored schedule of {code}: {e}")))?;
            s.inherited = code != office;
            s.office_code = office.to_owned();
            s.updated_at = Some(ts(updated));
            return Ok(Some(s));
        }
        match offices::parent(&code) {
            Some(p) => code = p,
            None => return Ok(None),
        }
    }
}

/// Business hours as the taxpayer sees them now.
pub async fn business_hours(pool: &PgPool, office: &str, now: DateTime<Utc>) -> Result<pb::BusinessHours, ApiError> {
    let office_ref = zhengna_proto::common::v1::OfficeRef { code: office.to_owned(), ..Default::default() };
    let Some(s) = schedule_for(pool, office).await? else {
        return Ok(pb::BusinessHours { office: Some(office_ref), open_now: true, ..Default::default() });
    };
    let (open, next) = hours::evaluate(&s, now);
    let today = hours::windows_on(&s, now.with_timezone(&hours::cst()).date_naive()).to_vec();
    Ok(pb::BusinessHours {
        office: Some(office_ref),
        open_now: open,
        today,
        next_open_at: next.map(ts),
        notice: if open { String::new() } else { hours::describe(&s) },
    })
}

fn manager(agent: &Agent) -> Result<(), ApiError> {
    match agent.role {
        AgentRole::Supervisor | AgentRole::Admin => Ok(()),
        _ => Err(ApiError::PermissionDenied("supervisors and administrators only".into())),
    }
}

/// The office a manager acts on: `requested` (or their own when empty), which must lie in
/// their subtree.
fn managed_office(agent: &Agent, requested: &str) -> Result<String, ApiError> {
    let office = if requested.trim().is_empty() { agent.office_code.clone() } else { requested.trim().to_owned() };
    let Some(target) = offices::subtree_prefix(&office) else {
        return Err(ApiError::invalid("office_code", "an 11-digit office code", "税务机关代码有误。"));
    };
    let mine = offices::subtree_prefix(&agent.office_code).unwrap_or(&agent.office_code);
    if !target.starts_with(mine) {
        return Err(ApiError::PermissionDenied("office outside the caller's subtree".into()));
    }
    Ok(office)
}

fn validate_group(g: &pb::SkillGroup, prefix: &str, v: &mut Vec<FieldViolation>) {
    let name = g.name.trim();
    if name.is_empty() || name.chars().count() > 50 {
        v.push(FieldViolation::new(format!("{prefix}name"), "1 to 50 characters", "技能组名称须为1到50个字。"));
    }
    if g.description.chars().count() > 200 {
        v.push(FieldViolation::new(format!("{prefix}description"), "at most 200 characters", "描述最多200个字。"));
    }
    if g.topic_prefixes.len() > 50
        || g.topic_prefixes
            .iter()
            .any(|p| p.trim().is_empty() || p.len() > 10 || !p.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        v.push(FieldViolation::new(
            format!("{prefix}topic_prefixes"),
            "up to 50 alphanumeric prefixes of 1-10 characters",
            "业务分类前缀有误。",
        ));
    }
    if !(0..=10_000).contains(&g.max_waiting) {
        v.push(FieldViolation::new(format!("{prefix}max_waiting"), "0 to 10000", "最大排队人数须在0到10000之间。"));
    }
    if !(0..=24 * 60).contains(&g.max_wait_minutes) {
        v.push(FieldViolation::new(
            format!("{prefix}max_wait_minutes"),
            "0 to 1440",
            "最长等待时间须在0到1440分钟之间。",
        ));
    }
    if pb::AssignmentMode::try_from(g.assignment_mode).is_err() {
        v.push(FieldViolation::new(format!("{prefix}assignment_mode"), "unknown mode", "分配方式有误。"));
    }
}

fn mode_str(m: i32) -> &'static str {
    if m == pb::AssignmentMode::Auto as i32 { "auto" } else { "manual" }
}

fn conflict(e: sqlx::Error) -> ApiError {
    match ApiError::from(e) {
        ApiError::AlreadyExists(_) => ApiError::invalid(
            "skill_group.name",
            "an office has one group of a name and one default group",
            "同一单位下技能组名称不能重复，且只能有一个默认组。",
        ),
        other => other,
    }
}

pub struct AdminApi {
    pool: PgPool,
}

impl AdminApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn group(&self, agent: &Agent, id: &str) -> Result<GroupRow, ApiError> {
        let id =
            Uuid::parse_str(id.trim()).map_err(|_| ApiError::invalid("id", "must be a UUID", "技能组标识无效。"))?;
        let row: Option<GroupRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GROUP} FROM skill_groups WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let row = row.ok_or_else(|| ApiError::NotFound("skill group".into()))?;
        // Outside the caller's subtree reads as absent.
        managed_office(agent, &row.office_code).map_err(|_| ApiError::NotFound("skill group".into()))?;
        Ok(row)
    }
}

#[tonic::async_trait]
impl pb::queue_admin_service_server::QueueAdminService for AdminApi {
    async fn create_skill_group(
        &self,
        request: Request<pb::CreateSkillGroupRequest>,
    ) -> Result<Response<pb::CreateSkillGroupResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        manager(agent)?;
        let r = request.get_ref();
        let Some(g) = r.skill_group.as_ref() else {
            return Err(ApiError::invalid("skill_group", "is required", "请填写技能组信息。").into());
        };
        let office = managed_office(agent, &g.office_code)?;
        let mut v = Vec::new();
        validate_group(g, "skill_group.", &mut v);
        if r.client_request_id.len() > 100 {
            v.push(FieldViolation::new("client_request_id", "at most 100 characters", "请求标识过长。"));
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let request_id = Some(r.client_request_id.trim()).filter(|s| !s.is_empty());
        if let Some(rid) = request_id {
            let existing: Option<GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {GROUP} FROM skill_groups WHERE client_request_id = $1"
            )))
            .bind(rid)
            .fetch_optional(&self.pool)
            .await
            .map_err(ApiError::from)?;
            if let Some(row) = existing {
                return Ok(Response::new(pb::CreateSkillGroupResponse { skill_group: Some(row.to_proto()) }));
            }
        }
        let row: GroupRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO skill_groups (id, office_code, name, description, topic_prefixes, is_default, assignment_mode,
                 max_waiting, max_wait_minutes, client_request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {GROUP}"
        )))
        .bind(Uuid::now_v7())
        .bind(&office)
        .bind(g.name.trim())
        .bind(g.description.trim())
        .bind(g.topic_prefixes.iter().map(|p| p.trim().to_uppercase()).collect::<Vec<_>>())
        .bind(g.is_default)
        .bind(mode_str(g.assignment_mode))
        .bind(g.max_waiting)
        .bind(g.max_wait_minutes)
        .bind(request_id)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict)?;
        Ok(Response::new(pb::CreateSkillGroupResponse { skill_group: Some(row.to_proto()) }))
    }

    async fn update_skill_group(
        &self,
        request: Request<pb::UpdateSkillGroupRequest>,
    ) -> Result<Response<pb::UpdateSkillGroupResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        manager(agent)?;
        let r = request.get_ref();
        let Some(g) = r.skill_group.as_ref() else {
            return Err(ApiError::invalid("skill_group", "is required", "请填写技能组信息。").into());
        };
        let current = self.group(agent, &g.id).await?;
        let paths: Vec<&str> =
            r.update_mask.as_ref().map(|m| m.paths.iter().map(String::as_str).collect()).unwrap_or_default();
        if paths.is_empty() {
            return Err(ApiError::invalid("update_mask", "name the fields to update", "请选择要修改的内容。").into());
        }
        let mut next = current.to_proto();
        for (i, p) in paths.iter().enumerate() {
            match *p {
                "name" => next.name = g.name.clone(),
                "description" => next.description = g.description.clone(),
                "topic_prefixes" => next.topic_prefixes = g.topic_prefixes.clone(),
                "is_default" => next.is_default = g.is_default,
                "assignment_mode" => next.assignment_mode = g.assignment_mode,
                "max_waiting" => next.max_waiting = g.max_waiting,
                "max_wait_minutes" => next.max_wait_minutes = g.max_wait_minutes,
                _ => {
                    return Err(ApiError::invalid(
                        &format!("update_mask.paths[{i}]"),
                        "not an updatable field",
                        "该字段不能在此修改。",
                    )
                    .into());
                }
            }
        }
        let mut v = Vec::new();
        validate_group(&next, "skill_group.", &mut v);
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let row: GroupRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE skill_groups SET name = $2, description = $3, topic_prefixes = $4, is_default = $5,
                 assignment_mode = $6, max_waiting = $7, max_wait_minutes = $8, updated_at = now()
             WHERE id = $1 RETURNING {GROUP}"
        )))
        .bind(current.id)
        .bind(next.name.trim())
        .bind(next.description.trim())
        .bind(next.topic_prefixes.iter().map(|p| p.trim().to_uppercase()).collect::<Vec<_>>())
        .bind(next.is_default)
        .bind(mode_str(next.assignment_mode))
        .bind(next.max_waiting)
        .bind(next.max_wait_minutes)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict)?;
        Ok(Response::new(pb::UpdateSkillGroupResponse { skill_group: Some(row.to_proto()) }))
    }

    async fn delete_skill_group(
        &self,
        request: Request<pb::DeleteSkillGroupRequest>,
    ) -> Result<Response<pb::DeleteSkillGroupResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        manager(agent)?;
        let g = self.group(agent, &request.get_ref().id).await?;
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        sqlx::query("SELECT 1 FROM skill_groups WHERE id = $1 FOR UPDATE")
            .bind(g.id)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM queue_entries WHERE skill_group_id = $1 AND state IN ('waiting', 'assigned')",
        )
        .bind(g.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::from)?;
        if open > 0 {
            return Err(ApiError::refused(
                "entries wait in the group",
                "该技能组仍有排队或服务中的纳税人，暂不能删除。",
            )
            .into());
        }
        sqlx::query("DELETE FROM skill_groups WHERE id = $1")
            .bind(g.id)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::DeleteSkillGroupResponse {}))
    }

    async fn get_skill_group(
        &self,
        request: Request<pb::GetSkillGroupRequest>,
    ) -> Result<Response<pb::GetSkillGroupResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let g = self.group(agent, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetSkillGroupResponse { skill_group: Some(g.to_proto()) }))
    }

    async fn list_skill_groups(
        &self,
        request: Request<pb::ListSkillGroupsRequest>,
    ) -> Result<Response<pb::ListSkillGroupsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let office = managed_office(agent, &r.office_code)?;
        let page = Page::from_request(r.page.as_ref())?;
        let (filter, arg) = if r.include_subordinates {
            ("office_code LIKE $1 || '%'", offices::subtree_prefix(&office).unwrap_or(&office).to_owned())
        } else {
            ("office_code = $1", office.clone())
        };
        let rows: Vec<GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP} FROM skill_groups WHERE {filter} ORDER BY office_code, name LIMIT $2 OFFSET $3"
        )))
        .bind(&arg)
        .bind(page.size)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM skill_groups WHERE {filter}")))
                .bind(&arg)
                .fetch_one(&self.pool)
                .await
                .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSkillGroupsResponse {
            page: Some(page.response(rows.len(), total)),
            skill_groups: rows.iter().map(GroupRow::to_proto).collect(),
        }))
    }

    async fn set_skill_group_members(
        &self,
        request: Request<pb::SetSkillGroupMembersRequest>,
    ) -> Result<Response<pb::SetSkillGroupMembersResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        manager(agent)?;
        let r = request.get_ref();
        let g = self.group(agent, &r.skill_group_id).await.map_err(|e| match e {
            ApiError::InvalidArgument(_) => ApiError::invalid("skill_group_id", "must be a UUID", "技能组标识无效。"),
            other => other,
        })?;
        let mut ids: Vec<String> = r.agent_ids.iter().map(|s| s.trim().to_owned()).collect();
        if ids.len() > 500 {
            return Err(ApiError::invalid("agent_ids", "at most 500 agents", "成员最多500人。").into());
        }
        if let Some(i) = ids.iter().position(|s| s.is_empty() || s.len() > 64) {
            return Err(ApiError::invalid(&format!("agent_ids[{i}]"), "1 to 64 characters", "成员标识有误。").into());
        }
        ids.sort();
        ids.dedup();
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        sqlx::query("DELETE FROM skill_group_members WHERE group_id = $1")
            .bind(g.id)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        sqlx::query("INSERT INTO skill_group_members (group_id, agent_id) SELECT $1, unnest($2::text[])")
            .bind(g.id)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        sqlx::query("UPDATE skill_groups SET updated_at = now() WHERE id = $1")
            .bind(g.id)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;
        let g = self.group(agent, &g.id.to_string()).await?;
        Ok(Response::new(pb::SetSkillGroupMembersResponse { skill_group: Some(g.to_proto()) }))
    }

    async fn get_business_hours_schedule(
        &self,
        request: Request<pb::GetBusinessHoursScheduleRequest>,
    ) -> Result<Response<pb::GetBusinessHoursScheduleResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let office = managed_office(agent, &request.get_ref().office_code)?;
        let schedule = schedule_for(&self.pool, &office).await?.unwrap_or(pb::BusinessHoursSchedule {
            office_code: office,
            inherited: true,
            ..Default::default()
        });
        Ok(Response::new(pb::GetBusinessHoursScheduleResponse { schedule: Some(schedule) }))
    }

    async fn update_business_hours_schedule(
        &self,
        request: Request<pb::UpdateBusinessHoursScheduleRequest>,
    ) -> Result<Response<pb::UpdateBusinessHoursScheduleResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        manager(agent)?;
        let Some(s) = request.get_ref().schedule.clone() else {
            return Err(ApiError::invalid("schedule", "is required", "请填写服务时间。").into());
        };
        let office = managed_office(agent, &s.office_code)?;
        let v: Vec<FieldViolation> = hours::validate(&s)
            .into_iter()
            .map(|mut x| {
                x.field = format!("schedule.{}", x.field);
                x
            })
            .collect();
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let stored = pb::BusinessHoursSchedule { office_code: office.clone(), inherited: false, updated_at: None, ..s };
        sqlx::query(
            "INSERT INTO business_hours (office_code, schedule) VALUES ($1, $2)
             ON CONFLICT (office_code) DO UPDATE SET schedule = EXCLUDED.schedule, updated_at = now()",
        )
        .bind(&office)
        .bind(stored.encode_to_vec())
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;
        let schedule = schedule_for(&self.pool, &office).await?;
        Ok(Response::new(pb::UpdateBusinessHoursScheduleResponse { schedule }))
    }
}
