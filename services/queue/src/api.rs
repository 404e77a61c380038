//! gRPC adapters: the taxpayer's QueueService and the agents' AgentDeskService.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::db::{ListenHub, Waited, wait_for};
use zhengna_platform::identity;
use zhengna_platform::paging::Page;
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::common::v1 as common;
use zhengna_proto::queue::v1 as pb;

use crate::groups;
use crate::store::{Enqueued, Queue, Standing, state_pb, trigger_str, ts};

fn parse_id(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID", "标识无效，请刷新后重试。"))
}

fn position(s: &Standing) -> pb::QueuePosition {
    let notice = match s.entry.state.as_str() {
        "waiting" => {
            format!("您前面还有{}人在排队，请耐心等待。排队期间智能助手将继续为您解答。", (s.position - 1).max(0))
        }
        "assigned" => format!("税务人员{}已接入，正在为您服务。", s.entry.agent_name),
        "cancelled" => "您已取消排队。".to_owned(),
        "expired" => "本次排队已结束，您可以留言或预约互动。".to_owned(),
        _ => String::new(),
    };
    pb::QueuePosition {
        entry_id: s.entry.id.to_string(),
        state: state_pb(&s.entry.state) as i32,
        position: s.position,
        waiting_count: s.waiting,
        estimated_wait: Some(prost_types::Duration { seconds: s.estimated_wait_secs, nanos: 0 }),
        agent: s.entry.agent_ref(),
        notice,
        at: Some(ts(chrono::Utc::now())),
    }
}

pub struct QueueApi {
    queue: Queue,
    hub: ListenHub,
    shutdown: CancellationToken,
}

impl QueueApi {
    pub fn new(queue: Queue, hub: ListenHub, shutdown: CancellationToken) -> Self {
        Self { queue, hub, shutdown }
    }
}

type PositionStream = Pin<Box<dyn Stream<Item = Result<pb::WatchQueuePositionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::queue_service_server::QueueService for QueueApi {
    async fn enqueue_for_human(
        &self,
        request: Request<pb::EnqueueForHumanRequest>,
    ) -> Result<Response<pb::EnqueueForHumanResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let mut v = Vec::new();
        let conversation = Uuid::parse_str(r.conversation_id.trim()).ok();
        if conversation.is_none() {
            v.push(FieldViolation::new("conversation_id", "must be a UUID", "会话标识无效，请刷新页面后重试。"));
        }
        let trigger = match pb::QueueTrigger::try_from(r.trigger) {
            Ok(t) => trigger_str(t),
            Err(_) => {
                v.push(FieldViolation::new("trigger", "unknown trigger", "转人工参数有误。"));
                "button"
            }
        };
        if r.topic_hint.chars().count() > 50 {
            v.push(FieldViolation::new("topic_hint", "at most 50 characters", "参数有误。"));
        }
        if r.question_summary.chars().count() > 300 {
            v.push(FieldViolation::new("question_summary", "at most 300 characters", "问题摘要最多300个字。"));
        }
        let Some(conversation) = conversation.filter(|_| v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v).into());
        };
        let conversation = conversation.to_string();
        let respond = |entry: &crate::store::EntryRow, standing: &Standing, outcome: pb::EnqueueOutcome| {
            pb::EnqueueForHumanResponse {
                entry: Some(entry.to_proto(standing.position)),
                outcome: outcome as i32,
                notice: position(standing).notice,
                business_hours: None,
                offer_leave_message: true,
                offer_appointment: true,
            }
        };
        // An open entry is returned as it is, whatever the hours.
        if let Some(open) = self.queue.open_entry(&conversation, &tp.tax_id).await? {
            let standing = self
                .queue
                .standing(open.id, &tp.tax_id)
                .await?
                .ok_or_else(|| ApiError::Internal("entry vanished".into()))?;
            return Ok(Response::new(respond(&open, &standing, pb::EnqueueOutcome::AlreadyQueued)));
        }
        let route = self.queue.route(&tp.office_code, r.topic_hint.trim()).await?;
        let hours = groups::business_hours(self.queue.pool(), &route.office, chrono::Utc::now()).await?;
        if !hours.open_now {
            return Ok(Response::new(pb::EnqueueForHumanResponse {
                entry: None,
                outcome: pb::EnqueueOutcome::Closed as i32,
                notice: hours.notice.clone(),
                business_hours: Some(hours),
                offer_leave_message: true,
                offer_appointment: true,
            }));
        }
        let (entry, fresh) = match self
            .queue
            .enqueue(tp, &conversation, trigger, r.topic_hint.trim(), r.question_summary.trim(), &route)
            .await?
        {
            Enqueued::Entry(e, fresh) => (*e, fresh),
            Enqueued::Full(_) => {
                return Ok(Response::new(pb::EnqueueForHumanResponse {
                    entry: None,
                    outcome: pb::EnqueueOutcome::QueueFull as i32,
                    notice: "当前咨询人数较多，排队已满，请稍后再试，或留言、预约互动。".into(),
                    business_hours: None,
                    offer_leave_message: true,
                    offer_appointment: true,
                }));
            }
        };
        let standing = self
            .queue
            .standing(entry.id, &tp.tax_id)
            .await?
            .ok_or_else(|| ApiError::Internal("entry vanished".into()))?;
        let outcome = if fresh { pb::EnqueueOutcome::Queued } else { pb::EnqueueOutcome::AlreadyQueued };
        Ok(Response::new(respond(&entry, &standing, outcome)))
    }

    /// Position updates whenever the office's line moves, until the entry leaves the line;
    /// a heartbeat every 15 seconds otherwise.
    async fn watch_queue_position(
        &self,
        request: Request<pb::WatchQueuePositionRequest>,
    ) -> Result<Response<PositionStream>, Status> {
        let caller = identity::caller(&request)?;
        let tax_id = caller.taxpayer()?.tax_id.clone();
        let id = parse_id("entry_id", &request.get_ref().entry_id)?;
        let mut wakes = self.hub.subscribe();
        let first = self.queue.standing(id, &tax_id).await?.ok_or_else(|| ApiError::NotFound("queue entry".into()))?;
        let office = first.entry.office_code.clone();
        let queue = self.queue.clone();
        let shutdown = self.shutdown.clone();
        let stream = async_stream::try_stream! {
            let mut last = position(&first);
            yield pb::WatchQueuePositionResponse { update: Some(pb::watch_queue_position_response::Update::Position(last.clone())) };
            if first.entry.state != "waiting" {
                return;
            }
            loop {
                let recheck = match wait_for(&mut wakes, |o| o == office, Duration::from_secs(15), &shutdown).await {
                    Waited::Done => return,
                    Waited::Idle => false,
                    Waited::Woken => true,
                };
                if !recheck {
                    yield pb::WatchQueuePositionResponse { update: Some(pb::watch_queue_position_response::Update::Heartbeat(
                        common::Heartbeat { at: Some(ts(chrono::Utc::now())) },
                    )) };
                    continue;
                }
                let Some(now) = queue.standing(id, &tax_id).await? else { return };
                let update = position(&now);
                if (update.state, update.position, update.waiting_count) != (last.state, last.position, last.waiting_count) {
                    last = update.clone();
                    yield pb::WatchQueuePositionResponse { update: Some(pb::watch_queue_position_response::Update::Position(update)) };
                }
                if now.entry.state != "waiting" {
                    return;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_queue_entry(
        &self,
        request: Request<pb::CancelQueueEntryRequest>,
    ) -> Result<Response<pb::CancelQueueEntryResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let id = parse_id("entry_id", &request.get_ref().entry_id)?;
        let entry = self.queue.cancel(id, &tp.tax_id).await?;
        Ok(Response::new(pb::CancelQueueEntryResponse { entry: Some(entry.to_proto(0)) }))
    }

    async fn get_business_hours(
        &self,
        request: Request<pb::GetBusinessHoursRequest>,
    ) -> Result<Response<pb::GetBusinessHoursResponse>, Status> {
        let caller = identity::caller(&request)?;
        let requested = request.get_ref().office_code.trim();
        let office = if !requested.is_empty() {
            if zhengna_platform::offices::subtree_prefix(requested).is_none() {
                return Err(ApiError::invalid("office_code", "an 11-digit office code", "税务机关代码有误。").into());
            }
            requested.to_owned()
        } else if let Ok(tp) = caller.taxpayer() {
            // The office that would serve this taxpayer.
            self.queue.route(&tp.office_code, "").await?.office
        } else {
            caller.agent()?.office_code.clone()
        };
        let hours = groups::business_hours(self.queue.pool(), &office, chrono::Utc::now()).await?;
        Ok(Response::new(pb::GetBusinessHoursResponse { business_hours: Some(hours) }))
    }
}

pub struct DeskApi {
    queue: Queue,
    hub: ListenHub,
    shutdown: CancellationToken,
}

impl DeskApi {
    pub fn new(queue: Queue, hub: ListenHub, shutdown: CancellationToken) -> Self {
        Self { queue, hub, shutdown }
    }
}

type AssignmentStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAssignmentsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_desk_service_server::AgentDeskService for DeskApi {
    async fn set_presence(
        &self,
        request: Request<pb::SetPresenceRequest>,
    ) -> Result<Response<pb::SetPresenceResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let presence = match pb::AgentPresence::try_from(r.presence) {
            Ok(pb::AgentPresence::Online) => "online",
            Ok(pb::AgentPresence::Busy) => "busy",
            Ok(pb::AgentPresence::Away) => "away",
            Ok(pb::AgentPresence::Offline) => "offline",
            _ => return Err(ApiError::invalid("presence", "is required", "请选择在线状态。").into()),
        };
        let capacity = match r.capacity {
            0 => 5,
            c if (1..=50).contains(&c) => c,
            _ => return Err(ApiError::invalid("capacity", "must be 1 to 50", "最大接待数须在1到50之间。").into()),
        };
        let row = self.queue.set_presence(agent, presence, capacity).await?;
        Ok(Response::new(pb::SetPresenceResponse { state: Some(row.to_proto()) }))
    }

    async fn get_agent_state(
        &self,
        request: Request<pb::GetAgentStateRequest>,
    ) -> Result<Response<pb::GetAgentStateResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let row = self.queue.agent(&agent.agent_id).await?.ok_or_else(|| ApiError::NotFound("agent state".into()))?;
        Ok(Response::new(pb::GetAgentStateResponse { state: Some(row.to_proto()) }))
    }

    /// The agent console's feed: the agent's state and the office's line, then each change
    /// of the line (new stats) and each new assignment to this agent; heartbeat every 15 s.
    async fn watch_assignments(
        &self,
        request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<AssignmentStream>, Status> {
        use pb::watch_assignments_response::Update;
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?.clone();
        let mut wakes = self.hub.subscribe();
        let state = self
            .queue
            .agent(&agent.agent_id)
            .await?
            .ok_or_else(|| ApiError::refused("agent has no presence", "请先设置在线状态。"))?;
        let queue = self.queue.clone();
        let shutdown = self.shutdown.clone();
        let office = agent.office_code.clone();
        let stream = async_stream::try_stream! {
            let mut since = chrono::Utc::now();
            yield pb::WatchAssignmentsResponse { update: Some(Update::State(state.to_proto())) };
            let stats = queue.stats(&office).await?;
            yield pb::WatchAssignmentsResponse { update: Some(Update::Stats(pb::QueueStatsUpdate { groups: vec![stats] })) };
            loop {
                let recheck = match wait_for(&mut wakes, |o| o == office, Duration::from_secs(15), &shutdown).await {
                    Waited::Done => return,
                    Waited::Idle => false,
                    Waited::Woken => true,
                };
                if !recheck {
                    yield pb::WatchAssignmentsResponse { update: Some(Update::Heartbeat(common::Heartbeat { at: Some(ts(chrono::Utc::now())) })) };
                    continue;
                }
                for e in queue.assigned_since(&agent.agent_id, since).await? {
                    if let Some(at) = e.assigned_at {
                        since = since.max(at);
                    }
                    yield pb::WatchAssignmentsResponse { update: Some(Update::Assigned(pb::Assignment {
                        assigned_at: e.assigned_at.map(ts),
                        entry: Some(e.to_proto(0)),
                        via: pb::AssignmentVia::Claim as i32,
                        ..Default::default()
                    })) };
                }
                let stats = queue.stats(&office).await?;
                yield pb::WatchAssignmentsResponse { update: Some(Update::Stats(pb::QueueStatsUpdate { groups: vec![stats] })) };
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn claim_next_entry(
        &self,
        request: Request<pb::ClaimNextEntryRequest>,
    ) -> Result<Response<pb::ClaimNextEntryResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let group = request.get_ref().skill_group_id.trim();
        let group = if group.is_empty() || group == agent.office_code {
            None
        } else {
            Some(parse_id("skill_group_id", group)?)
        };
        let entry = self.queue.claim(&agent.agent_id, None, group).await?;
        Ok(Response::new(pb::ClaimNextEntryResponse {
            assignment: Some(pb::Assignment {
                assigned_at: entry.assigned_at.map(ts),
                entry: Some(entry.to_proto(0)),
                via: pb::AssignmentVia::Claim as i32,
                ..Default::default()
            }),
        }))
    }

    async fn claim_entry(
        &self,
        request: Request<pb::ClaimEntryRequest>,
    ) -> Result<Response<pb::ClaimEntryResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_id("entry_id", &request.get_ref().entry_id)?;
        let entry = self.queue.claim(&agent.agent_id, Some(id), None).await?;
        Ok(Response::new(pb::ClaimEntryResponse {
            assignment: Some(pb::Assignment {
                assigned_at: entry.assigned_at.map(ts),
                entry: Some(entry.to_proto(0)),
                via: pb::AssignmentVia::Claim as i32,
                ..Default::default()
            }),
        }))
    }

    async fn transfer_conversation(
        &self,
        request: Request<pb::TransferConversationRequest>,
    ) -> Result<Response<pb::TransferConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let conversation = parse_id("conversation_id", &r.conversation_id)?.to_string();
        if r.note.chars().count() > 200 {
            return Err(ApiError::invalid("note", "at most 200 characters", "转接说明最多200个字。").into());
        }
        let to_agent = match &r.target {
            Some(pb::transfer_conversation_request::Target::AgentId(a)) if !a.trim().is_empty() => {
                Some(a.trim().to_owned())
            }
            Some(pb::transfer_conversation_request::Target::SkillGroupId(g))
                if g.trim() == agent.office_code || g.trim().is_empty() =>
            {
                None
            }
            Some(pb::transfer_conversation_request::Target::SkillGroupId(_)) => {
                return Err(ApiError::PermissionDenied("transfers stay within the office".into()).into());
            }
            _ => {
                return Err(
                    ApiError::invalid("target", "choose an agent or the office line", "请选择转接对象。").into()
                );
            }
        };
        let entry = self.queue.transfer(&agent.agent_id, &conversation, to_agent.as_deref(), r.note.trim()).await?;
        Ok(Response::new(pb::TransferConversationResponse { entry: Some(entry.to_proto(0)) }))
    }

    async fn list_queue_entries(
        &self,
        request: Request<pb::ListQueueEntriesRequest>,
    ) -> Result<Response<pb::ListQueueEntriesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        if !r.office_code.trim().is_empty() && r.office_code.trim() != agent.office_code {
            return Err(ApiError::PermissionDenied("agents see their own office's line".into()).into());
        }
        let mut states = Vec::new();
        for (i, s) in r.states.iter().enumerate() {
            states.push(match pb::QueueEntryState::try_from(*s) {
                Ok(pb::QueueEntryState::Waiting) => "waiting",
                Ok(pb::QueueEntryState::Assigned) => "assigned",
                Ok(pb::QueueEntryState::Cancelled) => "cancelled",
                Ok(pb::QueueEntryState::Expired) => "expired",
                Ok(pb::QueueEntryState::Closed) => "closed",
                _ => return Err(ApiError::invalid(&format!("states[{i}]"), "unknown state", "排队状态有误。").into()),
            });
        }
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.queue.list(&agent.office_code, &states, page.size, page.offset).await?;
        let waiting_base = page.offset as i32;
        Ok(Response::new(pb::ListQueueEntriesResponse {
            page: Some(page.response(rows.len(), total)),
            entries: rows
                .iter()
                .enumerate()
                .map(|(i, e)| e.to_proto(if e.state == "waiting" { waiting_base + i as i32 + 1 } else { 0 }))
                .collect(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        if !r.office_code.trim().is_empty() && r.office_code.trim() != agent.office_code {
            return Err(ApiError::PermissionDenied("agents see their own office's agents".into()).into());
        }
        let group = match r.skill_group_id.trim() {
            "" => None,
            g if g == agent.office_code => None,
            g => Some(parse_id("skill_group_id", g)?),
        };
        let mut presences = Vec::new();
        for (i, p) in r.presences.iter().enumerate() {
            presences.push(match pb::AgentPresence::try_from(*p) {
                Ok(pb::AgentPresence::Online) => "online",
                Ok(pb::AgentPresence::Busy) => "busy",
                Ok(pb::AgentPresence::Away) => "away",
                Ok(pb::AgentPresence::Offline) => "offline",
                _ => return Err(ApiError::invalid(&format!("presences[{i}]"), "unknown presence", "状态有误。").into()),
            });
        }
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.queue.agents(&agent.office_code, group, &presences, page.size, page.offset).await?;
        Ok(Response::new(pb::ListAgentsResponse {
            page: Some(page.response(rows.len(), total)),
            agents: rows.iter().map(|a| a.to_proto()).collect(),
        }))
    }
}
