//! gRPC adapters for 留言 (taxpayer and desk) and 工单 (desk).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::attachments::{LinkPurpose, Linker, MAX_PER_RECORD};
use zhengna_platform::identity::{self, Agent};
use zhengna_platform::paging::Page;
use zhengna_platform::{ApiError, FieldViolation, time};
use zhengna_proto::common::v1 as common;
use zhengna_proto::messaging::v1 as pb;

use crate::leave::{self, LeaveMessages, Scope};
use crate::tickets::{self, NewTicket, Tickets, Who};

fn parse_id(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID", "标识无效，请刷新后重试。"))
}

/// Optional lower and upper instants.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Shanghai day bounds of a date range: `[start 00:00, end+1 00:00)`.
fn day_range(r: Option<&common::DateRange>, field: &str) -> Result<Bounds, ApiError> {
    let day = |d: Option<&common::Date>, sub: &str| -> Result<Option<NaiveDate>, ApiError> {
        match d {
            None => Ok(None),
            Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
            Some(d) => NaiveDate::from_ymd_opt(d.year, d.month.max(0) as u32, d.day.max(0) as u32)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(&format!("{field}.{sub}"), "invalid date", "日期有误。")),
        }
    };
    let start_of = |d: NaiveDate| {
        time::shanghai()
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
    };
    let from = day(r.and_then(|r| r.start.as_ref()), "start")?;
    let to = day(r.and_then(|r| r.end.as_ref()), "end")?;
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err(ApiError::invalid(field, "start is after end", "开始日期不能晚于结束日期。"));
    }
    Ok((from.and_then(start_of), to.and_then(|d| d.succ_opt()).and_then(start_of)))
}

fn leave_filter(f: Option<&pb::LeaveMessageFilter>) -> Result<leave::Filter, ApiError> {
    let Some(f) = f else { return Ok(leave::Filter::default()) };
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let (from, to) = day_range(f.dates.as_ref(), "filter.dates")?;
    let status = match pb::LeaveMessageStatus::try_from(f.status) {
        Ok(s) => leave::status_from_pb(s),
        Err(_) => return Err(ApiError::invalid("filter.status", "unknown status", "处理状态查询条件有误。")),
    };
    let content = non_empty(&f.content);
    if content.as_ref().is_some_and(|c| c.chars().count() > 100) {
        return Err(ApiError::invalid("filter.content", "at most 100 characters", "留言内容查询条件最多100个字。"));
    }
    Ok(leave::Filter {
        number: non_empty(&f.number).map(|n| n.to_uppercase()),
        from,
        to,
        type_code: non_empty(&f.type_code),
        status,
        content,
        taxpayer: None,
        assignee: None,
    })
}

fn who(a: &Agent) -> Who {
    Who { role: "agent", id: a.agent_id.clone(), name: a.name.clone() }
}

fn own_office(agent: &Agent, requested: &str) -> Result<String, ApiError> {
    match requested.trim() {
        "" => Ok(agent.office_code.clone()),
        o if o == agent.office_code => Ok(o.to_owned()),
        _ => Err(ApiError::PermissionDenied("agents reach only their own office".into())),
    }
}

pub struct LeaveApi {
    store: LeaveMessages,
    linker: Linker,
}

impl LeaveApi {
    pub fn new(store: LeaveMessages, linker: Linker) -> Self {
        Self { store, linker }
    }
}

#[tonic::async_trait]
impl pb::leave_message_service_server::LeaveMessageService for LeaveApi {
    async fn get_leave_message_options(
        &self,
        request: Request<pb::GetLeaveMessageOptionsRequest>,
    ) -> Result<Response<pb::GetLeaveMessageOptionsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        Ok(Response::new(pb::GetLeaveMessageOptionsResponse {
            orgs: vec![common::Choice {
                code: tp.office_code.clone(),
                name: tp.office_name.clone(),
                is_default: true,
                description: String::new(),
            }],
            types: leave::TYPES
                .iter()
                .map(|(c, n)| common::Choice {
                    code: (*c).into(),
                    name: (*n).into(),
                    is_default: *c == "consult",
                    description: String::new(),
                })
                .collect(),
            max_content_length: leave::MAX_CONTENT_CHARS as i32,
            max_attachment_size_bytes: zhengna_platform::attachments::MAX_ATTACHMENT_BYTES,
            max_attachments: MAX_PER_RECORD as i32,
            default_phone: tp.phone.clone(),
        }))
    }

    async fn submit_leave_message(
        &self,
        request: Request<pb::SubmitLeaveMessageRequest>,
    ) -> Result<Response<pb::SubmitLeaveMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let mut m = leave::validate(request.get_ref(), &tp.office_code, &tp.office_name, &tp.phone)?;
        // Readable by the taxpayer and the chosen office's staff.
        m.attachments = self
            .linker
            .link(
                &caller,
                &m.attachment_ids,
                LinkPurpose::LeaveMessage,
                &format!("leave-message-request:{}:{}", tp.tax_id, m.client_request_id),
                &tp.tax_id,
                &m.org_code,
            )
            .await?;
        let row = self.store.submit(&tp.tax_id, &tp.name, &m).await?;
        Ok(Response::new(pb::SubmitLeaveMessageResponse { leave_message: Some(row.to_proto(&[], "")) }))
    }

    async fn list_my_leave_messages(
        &self,
        request: Request<pb::ListMyLeaveMessagesRequest>,
    ) -> Result<Response<pb::ListMyLeaveMessagesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let f = leave_filter(r.filter.as_ref())?;
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.store.list(&Scope::Taxpayer(tp.tax_id.clone()), &f, page.offset, page.size).await?;
        Ok(Response::new(pb::ListMyLeaveMessagesResponse {
            page: Some(page.response(rows.len(), total)),
            leave_messages: rows.iter().map(|r| r.to_proto(&[], "")).collect(),
        }))
    }

    async fn get_leave_message(
        &self,
        request: Request<pb::GetLeaveMessageRequest>,
    ) -> Result<Response<pb::GetLeaveMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (row, replies, ticket) = self
            .store
            .get(id, &Scope::Taxpayer(tp.tax_id.clone()))
            .await?
            .ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        Ok(Response::new(pb::GetLeaveMessageResponse { leave_message: Some(row.to_proto(&replies, &ticket)) }))
    }
}

pub struct LeaveDeskApi {
    store: LeaveMessages,
    tickets: Tickets,
    linker: Linker,
}

impl LeaveDeskApi {
    pub fn new(store: LeaveMessages, tickets: Tickets, linker: Linker) -> Self {
        Self { store, tickets, linker }
    }
}

#[tonic::async_trait]
impl pb::leave_message_desk_service_server::LeaveMessageDeskService for LeaveDeskApi {
    async fn list_office_leave_messages(
        &self,
        request: Request<pb::ListOfficeLeaveMessagesRequest>,
    ) -> Result<Response<pb::ListOfficeLeaveMessagesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let office = own_office(agent, &r.org_code)?;
        let mut f = leave_filter(r.filter.as_ref())?;
        f.taxpayer = Some(r.taxpayer_query.trim().to_owned()).filter(|t| !t.is_empty());
        f.assignee = r.assigned_to_me.then(|| agent.agent_id.clone());
        let page = Page::from_request(r.page.as_ref())?;
        let scope = Scope::Office { code: office, subordinates: r.include_subordinates };
        let (rows, total) = self.store.list(&scope, &f, page.offset, page.size).await?;
        Ok(Response::new(pb::ListOfficeLeaveMessagesResponse {
            page: Some(page.response(rows.len(), total)),
            leave_messages: rows.iter().map(|r| r.to_proto(&[], "")).collect(),
        }))
    }

    async fn get_office_leave_message(
        &self,
        request: Request<pb::GetOfficeLeaveMessageRequest>,
    ) -> Result<Response<pb::GetOfficeLeaveMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let scope = Scope::Office { code: agent.office_code.clone(), subordinates: false };
        let (row, replies, ticket) =
            self.store.get(id, &scope).await?.ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        Ok(Response::new(pb::GetOfficeLeaveMessageResponse { leave_message: Some(row.to_proto(&replies, &ticket)) }))
    }

    async fn assign_leave_message(
        &self,
        request: Request<pb::AssignLeaveMessageRequest>,
    ) -> Result<Response<pb::AssignLeaveMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        // Assigning to someone else's id is allowed within the office; empty means oneself.
        let (aid, aname) = match r.agent_id.trim() {
            "" => (agent.agent_id.clone(), agent.name.clone()),
            other => (other.to_owned(), String::new()),
        };
        let row = self.store.assign(id, &agent.office_code, &aid, &aname).await?;
        Ok(Response::new(pb::AssignLeaveMessageResponse { leave_message: Some(row.to_proto(&[], "")) }))
    }

    async fn reply_leave_message(
        &self,
        request: Request<pb::ReplyLeaveMessageRequest>,
    ) -> Result<Response<pb::ReplyLeaveMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let mut v = Vec::new();
        let client_request_id = r.client_request_id.trim();
        if client_request_id.is_empty() || client_request_id.chars().count() > 64 {
            v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "提交失败，请刷新后重试。"));
        }
        let content = r.content.trim();
        if content.is_empty() {
            v.push(FieldViolation::new("content", "must not be empty", "请输入回复内容。"));
        } else if content.chars().count() > leave::MAX_REPLY_CHARS {
            v.push(FieldViolation::new("content", "must be at most 1000 characters", "回复内容最多1000个字。"));
        }
        if r.attachment_ids.len() > MAX_PER_RECORD {
            v.push(FieldViolation::new("attachment_ids", "at most 5 attachments", "附件最多上传5份。"));
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let scope = Scope::Office { code: agent.office_code.clone(), subordinates: false };
        let (leave_row, _, _) =
            self.store.get(id, &scope).await?.ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        let attachments = self
            .linker
            .link(
                &caller,
                &r.attachment_ids,
                LinkPurpose::LeaveMessage,
                &format!("leave-reply:{id}:{client_request_id}"),
                &leave_row.taxpayer_id,
                &leave_row.org_code,
            )
            .await?;
        self.store
            .reply(
                id,
                &agent.office_code,
                &agent.agent_id,
                &agent.name,
                client_request_id,
                content,
                &attachments,
                r.close,
            )
            .await?;
        let (row, replies, ticket) =
            self.store.get(id, &scope).await?.ok_or_else(|| ApiError::NotFound("leave message".into()))?;
        Ok(Response::new(pb::ReplyLeaveMessageResponse { leave_message: Some(row.to_proto(&replies, &ticket)) }))
    }

    async fn convert_to_ticket(
        &self,
        request: Request<pb::ConvertToTicketRequest>,
    ) -> Result<Response<pb::ConvertToTicketResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        own_office(agent, &r.handling_office_code)?;
        if r.title.chars().count() > 100 {
            return Err(ApiError::invalid("title", "must be at most 100 characters", "工单标题最多100个字。").into());
        }
        let priority =
            tickets::priority_str(pb::TicketPriority::try_from(r.priority).unwrap_or(pb::TicketPriority::Normal));
        let (ticket, leave) = self.tickets.convert(id, &agent.office_code, &r.title, priority, &who(agent)).await?;
        Ok(Response::new(pb::ConvertToTicketResponse {
            leave_message: Some(leave.to_proto(&[], &ticket.number)),
            ticket: Some(ticket.to_proto()),
        }))
    }
}

pub struct TicketDeskApi {
    tickets: Tickets,
    linker: Linker,
}

impl TicketDeskApi {
    pub fn new(tickets: Tickets, linker: Linker) -> Self {
        Self { tickets, linker }
    }
}

#[tonic::async_trait]
impl pb::ticket_desk_service_server::TicketDeskService for TicketDeskApi {
    async fn create_ticket(
        &self,
        request: Request<pb::CreateTicketRequest>,
    ) -> Result<Response<pb::CreateTicketResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let mut v = Vec::new();
        let office = own_office(agent, &r.handling_office_code)?;
        if r.client_request_id.trim().is_empty() {
            v.push(FieldViolation::new("client_request_id", "is required", "提交失败，请刷新后重试。"));
        }
        let title = r.title.trim();
        if title.is_empty() || title.chars().count() > 100 {
            v.push(FieldViolation::new("title", "must be 1 to 100 characters", "请填写工单标题（最多100个字）。"));
        }
        if r.description.chars().count() > 2000 {
            v.push(FieldViolation::new("description", "must be at most 2000 characters", "工单描述最多2000个字。"));
        }
        if r.attachment_ids.len() > MAX_PER_RECORD {
            v.push(FieldViolation::new("attachment_ids", "at most 5 attachments", "附件最多上传5份。"));
        }
        let due_at = match r.due_at.as_ref().and_then(|t| DateTime::from_timestamp(t.seconds, 0)) {
            Some(t) if t <= Utc::now() => {
                v.push(FieldViolation::new("due_at", "must be in the future", "办结期限须晚于当前时间。"));
                t
            }
            Some(t) => t,
            None => Utc::now() + chrono::Duration::hours(self.tickets.config().default_deadline_hours),
        };
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let source = match pb::TicketSource::try_from(r.source) {
            Ok(pb::TicketSource::Conversation) => "conversation",
            _ => "manual",
        };
        let taxpayer_id = r.taxpayer_id.trim().to_uppercase();
        let attachments = self
            .linker
            .link(
                &caller,
                &r.attachment_ids,
                LinkPurpose::LeaveMessage,
                &format!("ticket-request:{}:{}", agent.agent_id, r.client_request_id.trim()),
                if taxpayer_id.is_empty() { "-" } else { &taxpayer_id },
                &office,
            )
            .await?;
        let row = self
            .tickets
            .create(
                NewTicket {
                    client_key: format!("manual:{}:{}", agent.agent_id, r.client_request_id.trim()),
                    source,
                    source_id: r.source_id.trim().to_owned(),
                    taxpayer_id,
                    taxpayer_name: String::new(),
                    office,
                    title: title.to_owned(),
                    description: r.description.trim().to_owned(),
                    priority: tickets::priority_str(
                        pb::TicketPriority::try_from(r.priority).unwrap_or(pb::TicketPriority::Normal),
                    ),
                    due_at,
                    attachments,
                },
                &who(agent),
            )
            .await?;
        Ok(Response::new(pb::CreateTicketResponse { ticket: Some(row.to_proto()) }))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let office = own_office(agent, &r.handling_office_code)?;
        let (from, to) = day_range(r.created.as_ref(), "created")?;
        let mut statuses = Vec::new();
        for (i, s) in r.statuses.iter().enumerate() {
            match pb::TicketStatus::try_from(*s).ok().and_then(tickets::status_from_pb) {
                Some(s) => statuses.push(s),
                None => {
                    return Err(ApiError::invalid(
                        &format!("statuses[{i}]"),
                        "unknown status",
                        "工单状态查询条件有误。",
                    )
                    .into());
                }
            }
        }
        let source = match pb::TicketSource::try_from(r.source) {
            Ok(pb::TicketSource::LeaveMessage) => Some("leave_message"),
            Ok(pb::TicketSource::Conversation) => Some("conversation"),
            Ok(pb::TicketSource::Manual) => Some("manual"),
            _ => None,
        };
        let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let f = tickets::Filter {
            number: non_empty(&r.number).map(|n| n.to_uppercase()),
            statuses,
            source,
            assignee: non_empty(&r.assignee_id),
            from,
            to,
            query: non_empty(&r.query),
            taxpayer: non_empty(&r.taxpayer_query),
        };
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.tickets.list(&office, r.include_subordinates, &f, page.offset, page.size).await?;
        Ok(Response::new(pb::ListTicketsResponse {
            page: Some(page.response(rows.len(), total)),
            tickets: rows.iter().map(|t| t.to_proto()).collect(),
        }))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::GetTicketResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (row, history) =
            self.tickets.get(id, &agent.office_code).await?.ok_or_else(|| ApiError::NotFound("ticket".into()))?;
        Ok(Response::new(pb::GetTicketResponse {
            ticket: Some(row.to_proto()),
            history: history.iter().map(|h| h.to_proto()).collect(),
        }))
    }

    async fn update_ticket_status(
        &self,
        request: Request<pb::UpdateTicketStatusRequest>,
    ) -> Result<Response<pb::UpdateTicketStatusResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let to = match pb::TicketStatus::try_from(r.status).ok().and_then(tickets::status_from_pb) {
            Some(s @ ("open" | "in_progress" | "suspended")) => s,
            Some(_) => {
                return Err(ApiError::invalid("status", "use ResolveTicket to resolve", "办结请使用“办结”。").into());
            }
            None => return Err(ApiError::invalid("status", "is required", "请选择工单状态。").into()),
        };
        let assignee = match r.assignee_id.trim() {
            "" => None,
            a if a == agent.agent_id => Some((a.to_owned(), agent.name.clone())),
            a => Some((a.to_owned(), String::new())),
        };
        let row = self.tickets.update_status(id, &agent.office_code, to, assignee, r.note.trim(), &who(agent)).await?;
        Ok(Response::new(pb::UpdateTicketStatusResponse { ticket: Some(row.to_proto()) }))
    }

    async fn resolve_ticket(
        &self,
        request: Request<pb::ResolveTicketRequest>,
    ) -> Result<Response<pb::ResolveTicketResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let resolution = r.resolution.trim();
        if resolution.is_empty() || resolution.chars().count() > 1000 {
            return Err(ApiError::invalid(
                "resolution",
                "must be 1 to 1000 characters",
                "请填写办理结果（最多1000个字）。",
            )
            .into());
        }
        let row = self.tickets.resolve(id, &agent.office_code, resolution, !r.skip_notification, &who(agent)).await?;
        Ok(Response::new(pb::ResolveTicketResponse { ticket: Some(row.to_proto()) }))
    }
}

pub struct PushApi {
    pushes: crate::push::Pushes,
}

impl PushApi {
    pub fn new(pushes: crate::push::Pushes) -> Self {
        Self { pushes }
    }
}

/// Supervisors and admins push, within their office subtree.
fn push_scope(caller: &zhengna_platform::Caller) -> Result<(Agent, String), ApiError> {
    let agent = caller.agent()?;
    if !matches!(agent.role, zhengna_platform::AgentRole::Supervisor | zhengna_platform::AgentRole::Admin) {
        return Err(ApiError::PermissionDenied("supervisors and admins send precision pushes".into()));
    }
    let scope = zhengna_platform::offices::subtree_prefix(&agent.office_code)
        .ok_or_else(|| ApiError::PermissionDenied("agent office code is malformed".into()))?
        .to_owned();
    Ok((agent.clone(), scope))
}

#[tonic::async_trait]
impl pb::push_admin_service_server::PushAdminService for PushApi {
    async fn create_push(
        &self,
        request: Request<pb::CreatePushRequest>,
    ) -> Result<Response<pb::CreatePushResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (agent, scope) = push_scope(&caller)?;
        let r = request.get_ref();
        let mut v = Vec::new();
        if r.client_request_id.trim().is_empty() || r.client_request_id.chars().count() > 64 {
            v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "提交失败，请刷新后重试。"));
        }
        let title = r.title.trim();
        if title.is_empty() || title.chars().count() > 50 {
            v.push(FieldViolation::new("title", "must be 1 to 50 characters", "请填写推送标题（最多50个字）。"));
        }
        let body = r.body.trim();
        if body.is_empty() || body.chars().count() > 1000 {
            v.push(FieldViolation::new("body", "must be 1 to 1000 characters", "请填写推送内容（最多1000个字）。"));
        }
        let link = r.link_url.trim();
        if !(link.is_empty()
            || (link.len() <= 500
                && (link.starts_with("https://") || link.starts_with("http://") || link.starts_with('/'))))
        {
            v.push(FieldViolation::new("link_url", "must be an http(s) URL or a site path", "链接地址有误。"));
        }
        let now = Utc::now();
        let scheduled_at = match r.scheduled_at.as_ref().and_then(|t| DateTime::from_timestamp(t.seconds, 0)) {
            None => now,
            Some(t) if t < now - chrono::Duration::minutes(1) => {
                v.push(FieldViolation::new("scheduled_at", "is in the past", "推送时间不能早于当前时间。"));
                t
            }
            Some(t) if t > now + chrono::Duration::days(90) => {
                v.push(FieldViolation::new("scheduled_at", "must be within 90 days", "推送时间须在90天以内。"));
                t
            }
            Some(t) => t,
        };
        let audience = match crate::push::audience(r.audience.as_ref(), &scope, "audience") {
            Ok(a) => Some(a),
            Err(ApiError::InvalidArgument(more)) => {
                v.extend(more);
                None
            }
            Err(e) => return Err(e.into()),
        };
        let (Some(audience), true) = (audience, v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v).into());
        };
        let category = if pb::NotificationCategory::try_from(r.category) == Ok(pb::NotificationCategory::Todo) {
            "todo"
        } else {
            "notice"
        };
        let row = self
            .pushes
            .create(crate::push::NewPush {
                client_key: format!("{}:{}", agent.agent_id, r.client_request_id.trim()),
                title: title.to_owned(),
                body: body.to_owned(),
                link_url: link.to_owned(),
                category,
                audience,
                scope_prefix: scope,
                scheduled_at,
                created_by_id: agent.agent_id.clone(),
                created_by_name: agent.name.clone(),
            })
            .await?;
        Ok(Response::new(pb::CreatePushResponse { push: Some(row.to_proto(0)) }))
    }

    async fn list_pushes(
        &self,
        request: Request<pb::ListPushesRequest>,
    ) -> Result<Response<pb::ListPushesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope) = push_scope(&caller)?;
        let r = request.get_ref();
        let status = match pb::PushStatus::try_from(r.status) {
            Ok(pb::PushStatus::Scheduled) => Some("scheduled"),
            Ok(pb::PushStatus::Sending) => Some("sending"),
            Ok(pb::PushStatus::Sent) => Some("sent"),
            Ok(pb::PushStatus::Cancelled) => Some("cancelled"),
            Ok(pb::PushStatus::Failed) => Some("failed"),
            _ => None,
        };
        let title = Some(r.title.trim().to_owned()).filter(|t| !t.is_empty());
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.pushes.list(&scope, status, title, page.offset, page.size).await?;
        Ok(Response::new(pb::ListPushesResponse {
            page: Some(page.response(rows.len(), total)),
            pushes: rows.iter().map(|p| p.to_proto(0)).collect(),
        }))
    }

    async fn get_push(&self, request: Request<pb::GetPushRequest>) -> Result<Response<pb::GetPushResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope) = push_scope(&caller)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (row, read) = self.pushes.get(id, &scope).await?.ok_or_else(|| ApiError::NotFound("push".into()))?;
        Ok(Response::new(pb::GetPushResponse { push: Some(row.to_proto(read)) }))
    }

    async fn cancel_push(
        &self,
        request: Request<pb::CancelPushRequest>,
    ) -> Result<Response<pb::CancelPushResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope) = push_scope(&caller)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row = self.pushes.cancel(id, &scope).await?;
        Ok(Response::new(pb::CancelPushResponse { push: Some(row.to_proto(0)) }))
    }

    async fn preview_audience(
        &self,
        request: Request<pb::PreviewAudienceRequest>,
    ) -> Result<Response<pb::PreviewAudienceResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope) = push_scope(&caller)?;
        let r = request.get_ref();
        let a = crate::push::audience(r.audience.as_ref(), &scope, "audience")?;
        let sample = i64::from(r.sample_size.clamp(0, 50));
        let (matched, sample, unknown) = self.pushes.preview(&a, &scope, sample).await?;
        Ok(Response::new(pb::PreviewAudienceResponse {
            matched_count: matched as i32,
            sample: sample
                .into_iter()
                .map(|p| common::TaxpayerRef {
                    id: p.tax_id.clone(),
                    name: p.name,
                    tax_id: p.tax_id,
                    office_code: p.office_code,
                })
                .collect(),
            unknown_taxpayer_ids: unknown,
        }))
    }

    async fn import_taxpayers(
        &self,
        request: Request<pb::ImportTaxpayersRequest>,
    ) -> Result<Response<pb::ImportTaxpayersResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope) = push_scope(&caller)?;
        let r = request.get_ref();
        if r.profiles.len() > 10_000 {
            return Err(ApiError::invalid("profiles", "at most 10000 a call", "一次最多导入10000户。").into());
        }
        let mut v = Vec::new();
        let mut profiles = Vec::with_capacity(r.profiles.len());
        for (i, p) in r.profiles.iter().enumerate() {
            let tax_id = p.tax_id.trim().to_uppercase();
            if !(15..=20).contains(&tax_id.len()) || !tax_id.chars().all(|c| c.is_ascii_alphanumeric()) {
                v.push(FieldViolation::new(format!("profiles[{i}].tax_id"), "not a taxpayer id", "纳税人识别号有误。"));
            }
            if !zhengna_platform::offices::subtree_prefix(&p.office_code)
                .is_some_and(|_| p.office_code.starts_with(&scope))
            {
                v.push(FieldViolation::new(
                    format!("profiles[{i}].office_code"),
                    "outside your office",
                    "只能导入本单位及下级单位的纳税人。",
                ));
            }
            profiles.push(crate::push::Profile {
                tax_id,
                name: p.name.trim().to_owned(),
                office_code: p.office_code.clone(),
                tags: p.tags.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
            });
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        crate::push::upsert_profiles(self.pushes.pool(), &profiles).await?;
        Ok(Response::new(pb::ImportTaxpayersResponse { imported: profiles.len() as i32 }))
    }
}
