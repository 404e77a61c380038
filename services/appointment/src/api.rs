//! gRPC adapter for the appointment services: taxpayer (`AppointmentService`), agents
//! (`AppointmentDeskService`) and unit administration (`AppointmentAdminService`).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::attachments::{LinkPurpose, Linker, MAX_PER_RECORD};
use zhengna_platform::identity::{self, Agent, AgentRole, Caller};
use zhengna_platform::paging::Page;
use zhengna_platform::{ApiError, FieldViolation, time};
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::booking::{self, MAX_REASON_CHARS, confirm_from_pb, interaction_from_pb, ts};
use crate::catalog;
use crate::slots::{SLOT_MINUTES, SlotCapacity, SlotConfig};
use crate::state::{Action, Confirm, Origin};
use crate::store::{Actor, Appointments, Change, Filter, Scope, day_bounds};

const MAX_SUMMARY_CHARS: usize = 500;

fn parse_id(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID", "预约标识无效，请刷新后重试。"))
}

fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// Converts the proto filter; every filter may be used alone or combined.
fn filter(f: Option<&pb::AppointmentFilter>) -> Result<Filter, ApiError> {
    let Some(f) = f else { return Ok(Filter::default()) };
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut v = Vec::new();
    let description = non_empty(&f.description);
    if description.as_ref().is_some_and(|d| d.chars().count() > 100) {
        v.push(FieldViolation::new(
            "filter.description",
            "at most 100 characters",
            "预约事项说明查询条件最多100个字。",
        ));
    }
    let method = match pb::InteractionMethod::try_from(f.method) {
        Ok(pb::InteractionMethod::Unspecified) => None,
        Ok(pb::InteractionMethod::Phone) => Some("phone"),
        Ok(pb::InteractionMethod::Online) => Some("online"),
        Err(_) => {
            v.push(FieldViolation::new("filter.method", "unknown method", "互动方式查询条件有误。"));
            None
        }
    };
    let confirm = match pb::ConfirmStatus::try_from(f.confirm_status) {
        Ok(c) => confirm_from_pb(c),
        Err(_) => {
            v.push(FieldViolation::new("filter.confirm_status", "unknown status", "确认状态查询条件有误。"));
            None
        }
    };
    let interaction = match pb::InteractionStatus::try_from(f.interaction_status) {
        Ok(i) => interaction_from_pb(i),
        Err(_) => {
            v.push(FieldViolation::new("filter.interaction_status", "unknown status", "互动状态查询条件有误。"));
            None
        }
    };
    let origin = match pb::AppointmentOrigin::try_from(f.origin) {
        Ok(pb::AppointmentOrigin::Unspecified) => None,
        Ok(pb::AppointmentOrigin::Taxpayer) => Some(Origin::Taxpayer),
        Ok(pb::AppointmentOrigin::Bureau) => Some(Origin::Bureau),
        Err(_) => {
            v.push(FieldViolation::new("filter.origin", "unknown origin", "预约来源查询条件有误。"));
            None
        }
    };
    let range = f.slot_range.as_ref();
    let slot_from = timestamp(range.and_then(|r| r.start.as_ref()));
    let slot_to = timestamp(range.and_then(|r| r.end.as_ref()));
    if let (Some(a), Some(b)) = (slot_from, slot_to)
        && a > b
    {
        v.push(FieldViolation::new("filter.slot_range", "start is after end", "预约时间起不能晚于预约时间止。"));
    }
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok(Filter {
        number: non_empty(&f.number).map(|n| n.to_uppercase()),
        slot_from,
        slot_to,
        service_type: non_empty(&f.service_type),
        method,
        business_category: non_empty(&f.business_category),
        description,
        confirm,
        interaction,
        origin,
        taxpayer: None,
        agent_id: None,
    })
}

fn reason(field: &str, s: &str, required: bool) -> Result<String, ApiError> {
    let r = s.trim().to_owned();
    if required && r.is_empty() {
        return Err(ApiError::invalid(field, "is required", "请填写原因。"));
    }
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid(field, "must be at most 200 characters", "原因最多200个字。"));
    }
    Ok(r)
}

fn taxpayer_actor(caller: &Caller) -> Result<(Actor, Scope, String), ApiError> {
    let tp = caller.taxpayer()?;
    Ok((
        Actor::Taxpayer { id: tp.tax_id.clone(), name: tp.name.clone() },
        Scope::Taxpayer(tp.tax_id.clone()),
        tp.phone.clone(),
    ))
}

fn agent_actor(a: &Agent) -> Actor {
    Actor::Agent { id: a.agent_id.clone(), name: a.name.clone() }
}

pub struct AppointmentApi {
    store: Appointments,
    linker: Linker,
}

impl AppointmentApi {
    pub fn new(store: Appointments, linker: Linker) -> Self {
        Self { store, linker }
    }
}

/// Links the request's uploads to the appointment being made: readable by its taxpayer and
/// the staff of its unit. The reference is the request id, known before the number is.
async fn link_attachments(linker: &Linker, caller: &Caller, valid: &mut booking::ValidRequest) -> Result<(), ApiError> {
    let reference = format!("appointment-request:{}:{}", valid.taxpayer_id, valid.client_request_id);
    valid.attachments = linker
        .link(caller, &valid.attachment_ids, LinkPurpose::Appointment, &reference, &valid.taxpayer_id, &valid.unit_code)
        .await?;
    Ok(())
}

#[tonic::async_trait]
impl pb::appointment_service_server::AppointmentService for AppointmentApi {
    async fn book_appointment(
        &self,
        request: Request<pb::BookAppointmentRequest>,
    ) -> Result<Response<pb::BookAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let mut valid = booking::validate_booking(request.get_ref(), tp)?;
        let (actor, _, _) = taxpayer_actor(&caller)?;
        link_attachments(&self.linker, &caller, &mut valid).await?;
        let row = if request.get_ref().validate_only {
            self.store.check_slot(&valid.unit_code, valid.slot_start, Utc::now()).await?;
            self.store.preview(&valid, Origin::Taxpayer, Utc::now())
        } else {
            self.store.create(&valid, Origin::Taxpayer, &actor).await?
        };
        Ok(Response::new(pb::BookAppointmentResponse { appointment: Some(row.to_proto()) }))
    }

    async fn get_booking_options(
        &self,
        request: Request<pb::GetBookingOptionsRequest>,
    ) -> Result<Response<pb::GetBookingOptionsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        if !r.unit_code.trim().is_empty() && r.unit_code.trim() != tp.office_code {
            return Err(ApiError::invalid(
                "unit_code",
                "must be the in-charge tax office",
                "预约服务单位应为主管税务机关。",
            )
            .into());
        }
        let cfg = self.store.slot_config(&tp.office_code).await?;
        let today = time::shanghai_today();
        let date = |d: Option<&common::Date>| {
            d.and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month.max(0) as u32, d.day.max(0) as u32))
        };
        let from = date(r.dates.as_ref().and_then(|d| d.start.as_ref())).unwrap_or(today).max(today);
        let horizon = today + chrono::Duration::days(i64::from(cfg.booking_horizon_days));
        let to = date(r.dates.as_ref().and_then(|d| d.end.as_ref()))
            .unwrap_or(today + chrono::Duration::days(6))
            .min(horizon);
        let now = Utc::now();
        let (lo, hi) = day_bounds(from, to);
        let booked = self.store.booked_counts(&tp.office_code, lo, hi).await?;
        let slots = cfg
            .slots_between(from, to, now)
            .into_iter()
            .map(|(start, capacity)| {
                let taken = booked.iter().find(|(s, _)| *s == start).map(|(_, n)| *n).unwrap_or(0);
                pb::Slot {
                    start: Some(ts(start)),
                    end: Some(ts(start + chrono::Duration::minutes(SLOT_MINUTES))),
                    capacity,
                    remaining: (capacity - taken).max(0),
                }
            })
            .collect();
        let choice = |(code, name): &(&str, &str), default: bool| common::Choice {
            code: (*code).to_owned(),
            name: (*name).to_owned(),
            is_default: default,
            description: String::new(),
        };
        Ok(Response::new(pb::GetBookingOptionsResponse {
            service_types: catalog::SERVICE_TYPES
                .iter()
                .map(|c| choice(c, c.0 == catalog::DEFAULT_SERVICE_TYPE))
                .collect(),
            methods: vec![pb::InteractionMethod::Phone as i32, pb::InteractionMethod::Online as i32],
            units: vec![common::Choice {
                code: tp.office_code.clone(),
                name: tp.office_name.clone(),
                is_default: true,
                description: String::new(),
            }],
            business_categories: catalog::BUSINESS_CATEGORIES.iter().map(|c| choice(c, false)).collect(),
            slots,
            default_phone: tp.phone.clone(),
            attachment_rules: Some(pb::AttachmentRules {
                max_size_bytes: zhengna_platform::attachments::MAX_ATTACHMENT_BYTES,
                max_count: MAX_PER_RECORD as i32,
                allowed_extensions: zhengna_platform::attachments::attachment_extensions(),
            }),
        }))
    }

    async fn list_appointments(
        &self,
        request: Request<pb::ListAppointmentsRequest>,
    ) -> Result<Response<pb::ListAppointmentsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope, _) = taxpayer_actor(&caller)?;
        let r = request.get_ref();
        let f = filter(r.filter.as_ref())?;
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) = self.store.list(&scope, false, &f, page.offset, page.size).await?;
        Ok(Response::new(pb::ListAppointmentsResponse {
            page: Some(page.response(rows.len(), total)),
            appointments: rows.iter().map(|r| r.to_proto()).collect(),
        }))
    }

    async fn get_appointment(
        &self,
        request: Request<pb::GetAppointmentRequest>,
    ) -> Result<Response<pb::GetAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (_, scope, _) = taxpayer_actor(&caller)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (row, history) =
            self.store.get(id, &scope).await?.ok_or_else(|| ApiError::NotFound("appointment".into()))?;
        let state = row.state()?;
        let before_slot = Utc::now() < row.slot_start;
        let pending_invitation = row.origin() == Origin::Bureau && state.confirm == Confirm::Pending && before_slot;
        Ok(Response::new(pb::GetAppointmentResponse {
            can_cancel: state.confirm == Confirm::Booked && before_slot,
            can_accept: pending_invitation,
            can_reject: pending_invitation,
            history: history.iter().map(|h| h.to_proto()).collect(),
            appointment: Some(row.to_proto()),
        }))
    }

    async fn cancel_appointment(
        &self,
        request: Request<pb::CancelAppointmentRequest>,
    ) -> Result<Response<pb::CancelAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (actor, scope, _) = taxpayer_actor(&caller)?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let note = reason("reason", &r.reason, false)?;
        let row = self
            .store
            .transition(id, &scope, Action::Cancel, &actor, Change { note, ..Change::default() }, Utc::now())
            .await?;
        Ok(Response::new(pb::CancelAppointmentResponse { appointment: Some(row.to_proto()) }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (actor, scope, _) = taxpayer_actor(&caller)?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let phone = match r.phone.trim() {
            "" => None,
            p if booking::is_phone(p) => Some(p.to_owned()),
            _ => {
                return Err(ApiError::invalid("phone", "must be a mobile or landline", "请填写正确的联系电话。").into());
            }
        };
        let row = self
            .store
            .transition(id, &scope, Action::Accept, &actor, Change { phone, ..Change::default() }, Utc::now())
            .await?;
        Ok(Response::new(pb::AcceptInvitationResponse { appointment: Some(row.to_proto()) }))
    }

    async fn reject_invitation(
        &self,
        request: Request<pb::RejectInvitationRequest>,
    ) -> Result<Response<pb::RejectInvitationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let (actor, scope, _) = taxpayer_actor(&caller)?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let note = reason("reason", &r.reason, true)?;
        let row = self
            .store
            .transition(id, &scope, Action::Reject, &actor, Change { note, ..Change::default() }, Utc::now())
            .await?;
        Ok(Response::new(pb::RejectInvitationResponse { appointment: Some(row.to_proto()) }))
    }
}

pub struct DeskApi {
    store: Appointments,
    linker: Linker,
}

impl DeskApi {
    pub fn new(store: Appointments, linker: Linker) -> Self {
        Self { store, linker }
    }
}

/// The unit an agent asks about: theirs unless they name it (it must still be theirs).
fn agent_unit(agent: &Agent, requested: &str) -> Result<String, ApiError> {
    match requested.trim() {
        "" => Ok(agent.office_code.clone()),
        u if u == agent.office_code => Ok(u.to_owned()),
        _ => Err(ApiError::PermissionDenied("agents reach only their own unit's appointments".into())),
    }
}

#[tonic::async_trait]
impl pb::appointment_desk_service_server::AppointmentDeskService for DeskApi {
    async fn list_office_appointments(
        &self,
        request: Request<pb::ListOfficeAppointmentsRequest>,
    ) -> Result<Response<pb::ListOfficeAppointmentsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let unit = agent_unit(agent, &r.unit_code)?;
        let mut f = filter(r.filter.as_ref())?;
        f.taxpayer = Some(r.taxpayer_query.trim().to_owned()).filter(|t| !t.is_empty());
        f.agent_id = Some(r.agent_id.trim().to_owned()).filter(|t| !t.is_empty());
        let page = Page::from_request(r.page.as_ref())?;
        let (rows, total) =
            self.store.list(&Scope::Unit(unit), r.include_subordinates, &f, page.offset, page.size).await?;
        Ok(Response::new(pb::ListOfficeAppointmentsResponse {
            page: Some(page.response(rows.len(), total)),
            appointments: rows.iter().map(|r| r.to_proto()).collect(),
        }))
    }

    async fn get_office_appointment(
        &self,
        request: Request<pb::GetOfficeAppointmentRequest>,
    ) -> Result<Response<pb::GetOfficeAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (row, history) = self
            .store
            .get(id, &Scope::Unit(agent.office_code.clone()))
            .await?
            .ok_or_else(|| ApiError::NotFound("appointment".into()))?;
        Ok(Response::new(pb::GetOfficeAppointmentResponse {
            appointment: Some(row.to_proto()),
            history: history.iter().map(|h| h.to_proto()).collect(),
        }))
    }

    async fn invite_taxpayer(
        &self,
        request: Request<pb::InviteTaxpayerRequest>,
    ) -> Result<Response<pb::InviteTaxpayerResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        // The agent's token carries no office name; the unit code identifies the unit.
        let mut valid = booking::validate_invitation(request.get_ref(), agent, &agent.office_code)?;
        link_attachments(&self.linker, &caller, &mut valid).await?;
        let row = if request.get_ref().validate_only {
            self.store.check_slot(&valid.unit_code, valid.slot_start, Utc::now()).await?;
            self.store.preview(&valid, Origin::Bureau, Utc::now())
        } else {
            self.store.create(&valid, Origin::Bureau, &agent_actor(agent)).await?
        };
        Ok(Response::new(pb::InviteTaxpayerResponse { appointment: Some(row.to_proto()) }))
    }

    async fn cancel_office_appointment(
        &self,
        request: Request<pb::CancelOfficeAppointmentRequest>,
    ) -> Result<Response<pb::CancelOfficeAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let note = reason("reason", &r.reason, true)?;
        let row = self
            .store
            .transition(
                id,
                &Scope::Unit(agent.office_code.clone()),
                Action::Cancel,
                &agent_actor(agent),
                Change { note, ..Change::default() },
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::CancelOfficeAppointmentResponse { appointment: Some(row.to_proto()) }))
    }

    async fn start_appointment_interaction(
        &self,
        request: Request<pb::StartAppointmentInteractionRequest>,
    ) -> Result<Response<pb::StartAppointmentInteractionResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row = self
            .store
            .transition(
                id,
                &Scope::Unit(agent.office_code.clone()),
                Action::Start,
                &agent_actor(agent),
                Change::default(),
                Utc::now(),
            )
            .await?;
        // Opening the conversation with the taxpayer arrives with human interaction (issue 4).
        Ok(Response::new(pb::StartAppointmentInteractionResponse {
            conversation_id: row.conversation_id.clone(),
            appointment: Some(row.to_proto()),
        }))
    }

    async fn complete_appointment(
        &self,
        request: Request<pb::CompleteAppointmentRequest>,
    ) -> Result<Response<pb::CompleteAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_id("id", &r.id)?;
        let summary = r.result_summary.trim().to_owned();
        if summary.chars().count() > MAX_SUMMARY_CHARS {
            return Err(
                ApiError::invalid("result_summary", "must be at most 500 characters", "办理结果最多500个字。").into()
            );
        }
        let row = self
            .store
            .transition(
                id,
                &Scope::Unit(agent.office_code.clone()),
                Action::Complete,
                &agent_actor(agent),
                Change { result_summary: Some(summary), ..Change::default() },
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::CompleteAppointmentResponse { appointment: Some(row.to_proto()) }))
    }
}

pub struct AdminApi {
    store: Appointments,
}

impl AdminApi {
    pub fn new(store: Appointments) -> Self {
        Self { store }
    }
}

fn admin_unit(caller: &Caller, requested: &str) -> Result<String, ApiError> {
    let agent = caller.agent()?;
    if !matches!(agent.role, AgentRole::Supervisor | AgentRole::Admin) {
        return Err(ApiError::PermissionDenied("supervisors and admins configure slots".into()));
    }
    agent_unit(agent, requested)
}

fn time_of_day(t: NaiveTime) -> common::TimeOfDay {
    use chrono::Timelike;
    common::TimeOfDay { hours: t.hour() as i32, minutes: t.minute() as i32 }
}

fn slots_to_pb(slots: &[SlotCapacity]) -> Vec<pb::SlotCapacity> {
    slots.iter().map(|s| pb::SlotCapacity { start: Some(time_of_day(s.start)), capacity: s.capacity }).collect()
}

fn config_to_pb(unit: &str, cfg: &SlotConfig, updated_at: Option<DateTime<Utc>>) -> pb::SlotCapacityConfig {
    use chrono::Datelike;
    pb::SlotCapacityConfig {
        unit_code: unit.to_owned(),
        weekly: cfg
            .weekly
            .iter()
            .enumerate()
            .map(|(d, slots)| pb::WeekdaySlots { weekday: d as i32 + 1, slots: slots_to_pb(slots) })
            .collect(),
        exceptions: cfg
            .exceptions
            .iter()
            .map(|(date, slots)| pb::DateSlots {
                date: Some(common::Date { year: date.year(), month: date.month() as i32, day: date.day() as i32 }),
                slots: slots_to_pb(slots),
                note: String::new(),
            })
            .collect(),
        booking_horizon_days: cfg.booking_horizon_days,
        min_lead_minutes: cfg.min_lead_minutes,
        updated_at: updated_at.map(ts),
    }
}

fn config_from_pb(c: &pb::SlotCapacityConfig) -> Result<SlotConfig, ApiError> {
    let mut v = Vec::new();
    let slots = |list: &[pb::SlotCapacity], field: &str, v: &mut Vec<FieldViolation>| -> Vec<SlotCapacity> {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let t = s
                    .start
                    .as_ref()
                    .and_then(|t| NaiveTime::from_hms_opt(t.hours.max(0) as u32, t.minutes.max(0) as u32, 0));
                if t.is_none() {
                    v.push(FieldViolation::new(
                        format!("{field}[{i}].start"),
                        "invalid time of day",
                        "时段开始时间有误。",
                    ));
                }
                t.map(|start| SlotCapacity { start, capacity: s.capacity })
            })
            .collect()
    };
    let mut weekly: [Vec<SlotCapacity>; 7] = Default::default();
    for (i, w) in c.weekly.iter().enumerate() {
        match common::Weekday::try_from(w.weekday) {
            Ok(d) if d != common::Weekday::Unspecified => {
                weekly[(d as i32 - 1) as usize] = slots(&w.slots, &format!("config.weekly[{i}].slots"), &mut v);
            }
            _ => {
                v.push(FieldViolation::new(format!("config.weekly[{i}].weekday"), "unknown weekday", "星期设置有误。"))
            }
        }
    }
    let mut exceptions = Vec::new();
    for (i, e) in c.exceptions.iter().enumerate() {
        let date =
            e.date.as_ref().and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month.max(0) as u32, d.day.max(0) as u32));
        match date {
            Some(d) => exceptions.push((d, slots(&e.slots, &format!("config.exceptions[{i}].slots"), &mut v))),
            None => {
                v.push(FieldViolation::new(format!("config.exceptions[{i}].date"), "invalid date", "例外日期有误。"))
            }
        }
    }
    let cfg = SlotConfig {
        weekly,
        exceptions,
        booking_horizon_days: c.booking_horizon_days,
        min_lead_minutes: c.min_lead_minutes,
    };
    for (field, en, zh) in cfg.problems() {
        v.push(FieldViolation::new(format!("config.{field}"), en, zh));
    }
    if v.is_empty() { Ok(cfg) } else { Err(ApiError::InvalidArgument(v)) }
}

#[tonic::async_trait]
impl pb::appointment_admin_service_server::AppointmentAdminService for AdminApi {
    async fn get_slot_capacity(
        &self,
        request: Request<pb::GetSlotCapacityRequest>,
    ) -> Result<Response<pb::GetSlotCapacityResponse>, Status> {
        let caller = identity::caller(&request)?;
        let unit = admin_unit(&caller, &request.get_ref().unit_code)?;
        let cfg = self.store.slot_config(&unit).await?;
        Ok(Response::new(pb::GetSlotCapacityResponse { config: Some(config_to_pb(&unit, &cfg, None)) }))
    }

    async fn update_slot_capacity(
        &self,
        request: Request<pb::UpdateSlotCapacityRequest>,
    ) -> Result<Response<pb::UpdateSlotCapacityResponse>, Status> {
        let caller = identity::caller(&request)?;
        let Some(config) = request.get_ref().config.as_ref() else {
            return Err(ApiError::invalid("config", "is required", "请填写预约时段设置。").into());
        };
        let unit = admin_unit(&caller, &config.unit_code)?;
        let cfg = config_from_pb(config)?;
        let by = caller.subject();
        let updated = self.store.save_slot_config(&unit, &cfg, &by).await?;
        Ok(Response::new(pb::UpdateSlotCapacityResponse { config: Some(config_to_pb(&unit, &cfg, Some(updated))) }))
    }
}
