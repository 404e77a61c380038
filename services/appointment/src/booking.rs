//! Request validation for bookings and invitations, and the stored row ⇄ proto mapping.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zhengna_platform::attachments::StoredAttachment;
use zhengna_platform::identity::{Agent, Taxpayer};
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::catalog;
use crate::state::{Confirm, Interaction, Origin, State};

pub const MAX_DESCRIPTION_CHARS: usize = 300;
pub const MAX_REASON_CHARS: usize = 200;

/// A mainland mobile (11 digits from 1) or a landline with its area code (0531-88888888,
/// 053188888888, optionally an extension after a second dash).
pub fn is_phone(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    if s.len() == 11 && s.starts_with('1') && digits(s) {
        return true;
    }
    let mut parts = s.split('-');
    let (first, second, ext) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() {
        return false;
    }
    let ext_ok = ext.is_none_or(|e| digits(e) && e.len() <= 6);
    match (first, second) {
        (Some(area), Some(local)) => {
            area.starts_with('0')
                && (3..=4).contains(&area.len())
                && digits(area)
                && (7..=8).contains(&local.len())
                && digits(local)
                && ext_ok
        }
        (Some(all), None) => all.starts_with('0') && (10..=12).contains(&all.len()) && digits(all),
        _ => false,
    }
}

/// A validated booking or invitation, before slot checks against the unit's hours.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    pub client_request_id: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub service_type: String,
    pub method: &'static str,
    pub unit_code: String,
    pub unit_name: String,
    pub business_category: String,
    pub slot_start: DateTime<Utc>,
    pub description: String,
    pub phone: String,
    /// Upload ids as submitted (checked by the session service when linked).
    pub attachment_ids: Vec<String>,
    /// The linked attachments' metadata, filled by the API once linked.
    pub attachments: Vec<StoredAttachment>,
}

struct Common<'a> {
    client_request_id: &'a str,
    service_type: &'a str,
    method: i32,
    unit_code: &'a str,
    business_category: &'a str,
    slot_start: Option<&'a prost_types::Timestamp>,
    description: &'a str,
    phone: &'a str,
    attachment_ids: &'a [String],
}

/// Bookings and invitations carry the same form fields under the same names.
macro_rules! common_from {
    ($request:ty) => {
        impl<'a> From<&'a $request> for Common<'a> {
            fn from(r: &'a $request) -> Self {
                Common {
                    client_request_id: &r.client_request_id,
                    service_type: &r.service_type,
                    method: r.method,
                    unit_code: &r.unit_code,
                    business_category: &r.business_category,
                    slot_start: r.slot_start.as_ref(),
                    description: &r.description,
                    phone: &r.phone,
                    attachment_ids: &r.attachment_ids,
                }
            }
        }
    };
}
common_from!(pb::BookAppointmentRequest);
common_from!(pb::InviteTaxpayerRequest);

/// The fields bookings and invitations share, checked.
struct Fields {
    client_request_id: String,
    service_type: String,
    method: &'static str,
    unit_code: String,
    business_category: String,
    slot_start: DateTime<Utc>,
    description: String,
    phone: String,
    attachment_ids: Vec<String>,
}

/// Field checks shared by bookings and invitations; `own_office` is the only unit allowed.
/// Problems are pushed to `v`; the returned fields are meaningful only when `v` stays empty.
fn validate_common(c: Common<'_>, own_office: &str, default_phone: &str, v: &mut Vec<FieldViolation>) -> Fields {
    let client_request_id = c.client_request_id.trim().to_owned();
    if client_request_id.is_empty() || client_request_id.chars().count() > 64 {
        v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "提交失败，请刷新页面后重试。"));
    }
    let service_type = match c.service_type.trim() {
        "" => catalog::DEFAULT_SERVICE_TYPE.to_owned(),
        s if catalog::service_type_name(s).is_some() => s.to_owned(),
        s => {
            v.push(FieldViolation::new("service_type", "unknown service type", "预约服务类型有误，请重新选择。"));
            s.to_owned()
        }
    };
    let method = match pb::InteractionMethod::try_from(c.method) {
        Ok(pb::InteractionMethod::Phone) => "phone",
        Ok(pb::InteractionMethod::Online) => "online",
        _ => {
            v.push(FieldViolation::new("method", "must be PHONE or ONLINE", "请选择预约互动方式（电话或线上互动）。"));
            "online"
        }
    };
    let unit_code = match c.unit_code.trim() {
        "" => own_office.to_owned(),
        u if u == own_office => u.to_owned(),
        u => {
            v.push(FieldViolation::new(
                "unit_code",
                "must be the in-charge tax office",
                "预约服务单位应为主管税务机关。",
            ));
            u.to_owned()
        }
    };
    let business_category = c.business_category.trim().to_owned();
    if business_category.is_empty() {
        v.push(FieldViolation::new("business_category", "is required", "请选择预约业务类别。"));
    } else if catalog::business_category_name(&business_category).is_none() {
        v.push(FieldViolation::new("business_category", "unknown business category", "预约业务类别有误，请重新选择。"));
    }
    let slot_start = match c.slot_start.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
    {
        Some(t) => t,
        None => {
            v.push(FieldViolation::new("slot_start", "is required", "请选择预约服务时间。"));
            DateTime::<Utc>::UNIX_EPOCH
        }
    };
    let description = c.description.trim().to_owned();
    if description.is_empty() {
        v.push(FieldViolation::new("description", "must not be empty", "请填写预约事项说明。"));
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
        v.push(FieldViolation::new("description", "must be at most 300 characters", "预约事项说明最多300个字。"));
    }
    let phone = match c.phone.trim() {
        "" => default_phone.to_owned(),
        p => p.to_owned(),
    };
    if method == "phone" && phone.is_empty() {
        v.push(FieldViolation::new("phone", "is required for phone appointments", "电话互动需要填写联系电话。"));
    } else if !phone.is_empty() && !is_phone(&phone) {
        v.push(FieldViolation::new(
            "phone",
            "must be a mainland mobile or a landline with area code",
            "请填写正确的手机号码或带区号的固定电话。",
        ));
    }
    if c.attachment_ids.len() > zhengna_platform::attachments::MAX_PER_RECORD {
        v.push(FieldViolation::new("attachment_ids", "at most 5 attachments", "附件材料最多上传5份。"));
    }
    let attachment_ids: Vec<String> = c.attachment_ids.iter().map(|a| a.trim().to_owned()).collect();
    Fields {
        client_request_id,
        service_type,
        method,
        unit_code,
        business_category,
        slot_start,
        description,
        phone,
        attachment_ids,
    }
}

/// Validates a taxpayer's booking, reporting every bad field.
pub fn validate_booking(r: &pb::BookAppointmentRequest, tp: &Taxpayer) -> Result<ValidRequest, ApiError> {
    let mut v = Vec::new();
    let f = validate_common(Common::from(r), &tp.office_code, &tp.phone, &mut v);
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok(ValidRequest {
        client_request_id: f.client_request_id,
        taxpayer_id: tp.tax_id.clone(),
        taxpayer_name: tp.name.clone(),
        service_type: f.service_type,
        method: f.method,
        unit_code: f.unit_code,
        unit_name: tp.office_name.clone(),
        business_category: f.business_category,
        slot_start: f.slot_start,
        description: f.description,
        phone: f.phone,
        attachment_ids: f.attachment_ids,
        attachments: Vec::new(),
    })
}

fn is_tax_id(s: &str) -> bool {
    (15..=20).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// Validates an agent's invitation (税局邀请) for a taxpayer of the agent's office.
pub fn validate_invitation(
    r: &pb::InviteTaxpayerRequest,
    agent: &Agent,
    office_name: &str,
) -> Result<ValidRequest, ApiError> {
    let mut v = Vec::new();
    let taxpayer_id = r.taxpayer_id.trim().to_uppercase();
    if !is_tax_id(&taxpayer_id) {
        v.push(FieldViolation::new(
            "taxpayer_id",
            "must be a 15-20 character taxpayer identification number",
            "请填写正确的纳税人识别号。",
        ));
    }
    let f = validate_common(Common::from(r), &agent.office_code, "", &mut v);
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok(ValidRequest {
        // Namespaced so an agent's request ids never collide with the taxpayer's own.
        client_request_id: format!("invite:{}:{}", agent.agent_id, f.client_request_id),
        taxpayer_id,
        taxpayer_name: String::new(),
        service_type: f.service_type,
        method: f.method,
        unit_code: f.unit_code,
        unit_name: office_name.to_owned(),
        business_category: f.business_category,
        slot_start: f.slot_start,
        description: f.description,
        phone: f.phone,
        attachment_ids: f.attachment_ids,
        attachments: Vec::new(),
    })
}

/// A stored appointment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppointmentRow {
    pub id: Uuid,
    pub number: String,
    pub origin: String,
    pub taxpayer_id: String,
    pub taxpayer_name: String,
    pub service_type: String,
    pub method: String,
    pub unit_code: String,
    pub unit_name: String,
    pub business_category: String,
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    pub description: String,
    pub phone: String,
    pub confirm_status: String,
    pub interaction_status: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub agent_id: String,
    pub agent_name: String,
    pub result_summary: String,
    pub conversation_id: String,
    pub holds_slot: bool,
    pub attachments: sqlx::types::Json<Vec<StoredAttachment>>,
}

pub const COLUMNS: &str = "id, number, origin, taxpayer_id, taxpayer_name, service_type, method, unit_code, unit_name,
    business_category, slot_start, slot_end, description, phone, confirm_status, interaction_status, reason,
    created_at, updated_at, agent_id, agent_name, result_summary, conversation_id, holds_slot, attachments";

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn origin_str(o: Origin) -> &'static str {
    match o {
        Origin::Taxpayer => "taxpayer",
        Origin::Bureau => "bureau",
    }
}

pub fn confirm_str(c: Confirm) -> &'static str {
    match c {
        Confirm::Pending => "pending",
        Confirm::Booked => "booked",
        Confirm::Interacted => "interacted",
        Confirm::Cancelled => "cancelled",
        Confirm::Missed => "missed",
        Confirm::Rejected => "rejected",
        Confirm::Failed => "failed",
    }
}

pub fn interaction_str(i: Interaction) -> &'static str {
    match i {
        Interaction::Waiting => "waiting",
        Interaction::InProgress => "in_progress",
        Interaction::Completed => "completed",
        Interaction::Failed => "failed",
    }
}

fn parse_confirm(s: &str) -> Option<Confirm> {
    [
        Confirm::Pending,
        Confirm::Booked,
        Confirm::Interacted,
        Confirm::Cancelled,
        Confirm::Missed,
        Confirm::Rejected,
        Confirm::Failed,
    ]
    .into_iter()
    .find(|c| confirm_str(*c) == s)
}

fn parse_interaction(s: &str) -> Option<Interaction> {
    [Interaction::Waiting, Interaction::InProgress, Interaction::Completed, Interaction::Failed]
        .into_iter()
        .find(|i| interaction_str(*i) == s)
}

pub fn confirm_to_pb(c: Confirm) -> pb::ConfirmStatus {
    match c {
        Confirm::Pending => pb::ConfirmStatus::Pending,
        Confirm::Booked => pb::ConfirmStatus::Booked,
        Confirm::Interacted => pb::ConfirmStatus::Interacted,
        Confirm::Cancelled => pb::ConfirmStatus::Cancelled,
        Confirm::Missed => pb::ConfirmStatus::Missed,
        Confirm::Rejected => pb::ConfirmStatus::Rejected,
        Confirm::Failed => pb::ConfirmStatus::Failed,
    }
}

pub fn confirm_from_pb(c: pb::ConfirmStatus) -> Option<Confirm> {
    Some(match c {
        pb::ConfirmStatus::Unspecified => return None,
        pb::ConfirmStatus::Pending => Confirm::Pending,
        pb::ConfirmStatus::Booked => Confirm::Booked,
        pb::ConfirmStatus::Interacted => Confirm::Interacted,
        pb::ConfirmStatus::Cancelled => Confirm::Cancelled,
        pb::ConfirmStatus::Missed => Confirm::Missed,
        pb::ConfirmStatus::Rejected => Confirm::Rejected,
        pb::ConfirmStatus::Failed => Confirm::Failed,
    })
}

pub fn interaction_to_pb(i: Interaction) -> pb::InteractionStatus {
    match i {
        Interaction::Waiting => pb::InteractionStatus::Waiting,
        Interaction::InProgress => pb::InteractionStatus::InProgress,
        Interaction::Completed => pb::InteractionStatus::Completed,
        Interaction::Failed => pb::InteractionStatus::Failed,
    }
}

pub fn interaction_from_pb(i: pb::InteractionStatus) -> Option<Interaction> {
    Some(match i {
        pb::InteractionStatus::Unspecified => return None,
        pb::InteractionStatus::Waiting => Interaction::Waiting,
        pb::InteractionStatus::InProgress => Interaction::InProgress,
        pb::InteractionStatus::Completed => Interaction::Completed,
        pb::InteractionStatus::Failed => Interaction::Failed,
    })
}

impl AppointmentRow {
    pub fn origin(&self) -> Origin {
        if self.origin == "bureau" { Origin::Bureau } else { Origin::Taxpayer }
    }

    /// The stored state; a row the database constrains cannot hold anything else.
    pub fn state(&self) -> Result<State, ApiError> {
        match (parse_confirm(&self.confirm_status), parse_interaction(&self.interaction_status)) {
            (Some(c), Some(i)) => Ok(State::new(c, i)),
            _ => Err(ApiError::Internal(format!("appointment {} has an unknown status", self.id))),
        }
    }

    pub fn to_proto(&self) -> pb::Appointment {
        let (confirm, interaction) = match self.state() {
            Ok(s) => (confirm_to_pb(s.confirm), interaction_to_pb(s.interaction)),
            Err(_) => (pb::ConfirmStatus::Unspecified, pb::InteractionStatus::Unspecified),
        };
        let origin = match self.origin() {
            Origin::Taxpayer => pb::AppointmentOrigin::Taxpayer,
            Origin::Bureau => pb::AppointmentOrigin::Bureau,
        };
        let method = match self.method.as_str() {
            "phone" => pb::InteractionMethod::Phone,
            "online" => pb::InteractionMethod::Online,
            _ => pb::InteractionMethod::Unspecified,
        };
        pb::Appointment {
            id: if self.id.is_nil() { String::new() } else { self.id.to_string() },
            number: self.number.clone(),
            origin: origin as i32,
            taxpayer_id: self.taxpayer_id.clone(),
            taxpayer_name: self.taxpayer_name.clone(),
            service_type: self.service_type.clone(),
            method: method as i32,
            unit_code: self.unit_code.clone(),
            unit_name: self.unit_name.clone(),
            business_category: self.business_category.clone(),
            slot_start: Some(ts(self.slot_start)),
            slot_end: Some(ts(self.slot_end)),
            description: self.description.clone(),
            phone: self.phone.clone(),
            confirm_status: confirm as i32,
            interaction_status: interaction as i32,
            created_at: Some(ts(self.created_at)),
            reason: self.reason.clone(),
            attachments: self.attachments.0.iter().map(Into::into).collect(),
            updated_at: Some(ts(self.updated_at)),
            agent: (!self.agent_id.is_empty()).then(|| common::AgentRef {
                id: self.agent_id.clone(),
                display_name: self.agent_name.clone(),
                office_code: self.unit_code.clone(),
                ..Default::default()
            }),
            conversation_id: self.conversation_id.clone(),
            service_type_name: catalog::service_type_name(&self.service_type).unwrap_or_default().to_owned(),
            business_category_name: catalog::business_category_name(&self.business_category)
                .unwrap_or_default()
                .to_owned(),
            taxpayer_tax_id: self.taxpayer_id.clone(),
            result_summary: self.result_summary.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> Taxpayer {
        Taxpayer {
            tax_id: "91370100MA3C000001".into(),
            name: "济南示例商贸有限公司".into(),
            office_code: "13701020000".into(),
            office_name: "国家税务总局济南市历下区税务局".into(),
            tags: vec![],
            phone: "13800000000".into(),
        }
    }

    fn req() -> pb::BookAppointmentRequest {
        pb::BookAppointmentRequest {
            client_request_id: "r1".into(),
            method: pb::InteractionMethod::Phone as i32,
            slot_start: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
            description: "咨询小规模纳税人减免政策".into(),
            business_category: "declaration".into(),
            ..Default::default()
        }
    }

    fn fields(r: Result<ValidRequest, ApiError>) -> Vec<String> {
        match r {
            Err(ApiError::InvalidArgument(v)) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_filled_from_the_taxpayer() {
        let b = validate_booking(&req(), &tp()).expect("valid");
        assert_eq!(b.service_type, "general");
        assert_eq!(b.unit_code, "13701020000");
        assert_eq!(b.phone, "13800000000");
    }

    #[test]
    fn phones() {
        for ok in ["13800000000", "0531-88888888", "053188888888", "0531-8888888-123", "010-12345678"] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in ["12345", "23800000000", "0531-888", "531-88888888", "1380000000a", "0531-88888888-1234567", ""] {
            assert!(!is_phone(bad), "{bad}");
        }
        let mut t = tp();
        t.phone.clear();
        assert_eq!(fields(validate_booking(&req(), &t)), ["phone"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = pb::BookAppointmentRequest {
            unit_code: "13702000000".into(),
            service_type: "nope".into(),
            business_category: "nope".into(),
            attachment_ids: (0..6).map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            fields(validate_booking(&r, &tp())),
            [
                "client_request_id",
                "service_type",
                "method",
                "unit_code",
                "business_category",
                "slot_start",
                "description",
                "attachment_ids"
            ]
        );
    }

    #[test]
    fn invitations_need_a_taxpayer_and_stay_in_the_office() {
        let agent = Agent {
            agent_id: "A1".into(),
            name: "王".into(),
            office_code: "13701020000".into(),
            groups: vec![],
            role: zhengna_platform::AgentRole::Agent,
        };
        let r = pb::InviteTaxpayerRequest {
            client_request_id: "i1".into(),
            taxpayer_id: "x".into(),
            method: pb::InteractionMethod::Online as i32,
            business_category: "invoice".into(),
            slot_start: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
            description: "请来核对发票".into(),
            unit_code: "13799999999".into(),
            ..Default::default()
        };
        assert_eq!(fields(validate_invitation(&r, &agent, "历下")), ["taxpayer_id", "unit_code"]);
        let ok = pb::InviteTaxpayerRequest { taxpayer_id: "91370102ma3demo01x".into(), unit_code: String::new(), ..r };
        let v = validate_invitation(&ok, &agent, "历下").expect("valid");
        assert_eq!(v.taxpayer_id, "91370102MA3DEMO01X");
        assert_eq!(v.client_request_id, "invite:A1:i1");
    }
}
