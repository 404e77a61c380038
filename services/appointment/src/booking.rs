//! Booking: validation of a taxpayer's appointment request, storage with a human-readable
//! number, and the `Booked` event committed in the same transaction (outbox).

use chrono::{DateTime, Duration, Timelike, Utc};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::identity::Taxpayer;
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_platform::{ApiError, FieldViolation, time};
use zhengna_proto::appointment::v1 as pb;

pub const SLOT_MINUTES: i64 = 30;
pub const MAX_DAYS_AHEAD: i64 = 30;
pub const MAX_DESCRIPTION_CHARS: usize = 300;
pub const DEFAULT_SERVICE_TYPE: &str = "综合服务";

#[derive(Debug, Clone, PartialEq)]
pub struct ValidBooking {
    pub client_request_id: String,
    pub service_type: String,
    pub method: &'static str,
    pub unit_code: String,
    pub unit_name: String,
    pub business_category: String,
    pub slot_start: DateTime<Utc>,
    pub description: String,
    pub phone: String,
}

/// A mainland mobile number: 11 digits starting with 1.
fn is_phone(s: &str) -> bool {
    s.len() == 11 && s.starts_with('1') && s.chars().all(|c| c.is_ascii_digit())
}

/// Validates a booking request from `tp` at time `now`, reporting every bad field.
pub fn validate(r: &pb::BookAppointmentRequest, tp: &Taxpayer, now: DateTime<Utc>) -> Result<ValidBooking, ApiError> {
    let mut v = Vec::new();
    let client_request_id = r.client_request_id.trim().to_owned();
    if client_request_id.is_empty() || client_request_id.chars().count() > 64 {
        v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "提交失败，请刷新页面后重试。"));
    }
    let service_type = match r.service_type.trim() {
        "" => DEFAULT_SERVICE_TYPE.to_owned(),
        s if s.chars().count() > 50 => {
            v.push(FieldViolation::new(
                "service_type",
                "must be at most 50 characters",
                "预约服务类型有误，请重新选择。",
            ));
            s.to_owned()
        }
        s => s.to_owned(),
    };
    let method = match pb::InteractionMethod::try_from(r.method) {
        Ok(pb::InteractionMethod::Phone) => "phone",
        Ok(pb::InteractionMethod::Online) => "online",
        _ => {
            v.push(FieldViolation::new("method", "must be PHONE or ONLINE", "请选择预约互动方式（电话或线上互动）。"));
            "online"
        }
    };
    let unit_code = match r.unit_code.trim() {
        "" => tp.office_code.clone(),
        u if u == tp.office_code => u.to_owned(),
        u => {
            v.push(FieldViolation::new(
                "unit_code",
                "must be the taxpayer's in-charge tax office",
                "预约服务单位应为您的主管税务机关。",
            ));
            u.to_owned()
        }
    };
    let business_category = r.business_category.trim().to_owned();
    if business_category.is_empty() {
        v.push(FieldViolation::new("business_category", "is required", "请选择预约业务类别。"));
    } else if business_category.chars().count() > 50 {
        v.push(FieldViolation::new(
            "business_category",
            "must be at most 50 characters",
            "预约业务类别有误，请重新选择。",
        ));
    }
    let slot_start = match r
        .slot_start
        .as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
    {
        None => {
            v.push(FieldViolation::new("slot_start", "is required", "请选择预约服务时间。"));
            now
        }
        Some(t) => {
            let local = time::to_shanghai(t);
            if local.second() != 0
                || t.timestamp_subsec_nanos() != 0
                || !local.minute().is_multiple_of(SLOT_MINUTES as u32)
            {
                v.push(FieldViolation::new(
                    "slot_start",
                    "must start on the hour or half hour",
                    "预约服务时间须为整点或半点。",
                ));
            } else if t <= now {
                v.push(FieldViolation::new("slot_start", "must be in the future", "预约服务时间已过，请重新选择。"));
            } else if t > now + Duration::days(MAX_DAYS_AHEAD) {
                v.push(FieldViolation::new("slot_start", "must be within 30 days", "只能预约30天以内的服务时间。"));
            }
            t
        }
    };
    let description = r.description.trim().to_owned();
    if description.is_empty() {
        v.push(FieldViolation::new("description", "must not be empty", "请填写预约事项说明。"));
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
        v.push(FieldViolation::new("description", "must be at most 300 characters", "预约事项说明最多300个字。"));
    }
    let phone = match r.phone.trim() {
        "" => tp.phone.clone(),
        p => p.to_owned(),
    };
    if method == "phone" && phone.is_empty() {
        v.push(FieldViolation::new("phone", "is required for phone appointments", "电话互动需要填写手机号码。"));
    } else if !phone.is_empty() && !is_phone(&phone) {
        v.push(FieldViolation::new("phone", "must be an 11-digit mobile number", "请填写正确的手机号码。"));
    }
    if !r.attachment_ids.is_empty() {
        return Err(ApiError::Unimplemented("appointments (issue 5): attachments"));
    }
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok(ValidBooking {
        client_request_id,
        service_type,
        method,
        unit_code,
        unit_name: tp.office_name.clone(),
        business_category,
        slot_start,
        description,
        phone,
    })
}

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
}

const COLUMNS: &str = "id, number, origin, taxpayer_id, taxpayer_name, service_type, method, unit_code, unit_name,
    business_category, slot_start, slot_end, description, phone, confirm_status, interaction_status, reason, created_at";

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

impl AppointmentRow {
    pub fn to_proto(&self) -> pb::Appointment {
        let origin = match self.origin.as_str() {
            "taxpayer" => pb::AppointmentOrigin::Taxpayer,
            "bureau" => pb::AppointmentOrigin::Bureau,
            _ => pb::AppointmentOrigin::Unspecified,
        };
        let method = match self.method.as_str() {
            "phone" => pb::InteractionMethod::Phone,
            "online" => pb::InteractionMethod::Online,
            _ => pb::InteractionMethod::Unspecified,
        };
        let confirm = match self.confirm_status.as_str() {
            "pending" => pb::ConfirmStatus::Pending,
            "booked" => pb::ConfirmStatus::Booked,
            "interacted" => pb::ConfirmStatus::Interacted,
            "cancelled" => pb::ConfirmStatus::Cancelled,
            "missed" => pb::ConfirmStatus::Missed,
            "rejected" => pb::ConfirmStatus::Rejected,
            "failed" => pb::ConfirmStatus::Failed,
            _ => pb::ConfirmStatus::Unspecified,
        };
        let interaction = match self.interaction_status.as_str() {
            "waiting" => pb::InteractionStatus::Waiting,
            "in_progress" => pb::InteractionStatus::InProgress,
            "completed" => pb::InteractionStatus::Completed,
            "failed" => pb::InteractionStatus::Failed,
            _ => pb::InteractionStatus::Unspecified,
        };
        pb::Appointment {
            id: self.id.to_string(),
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
            ..Default::default()
        }
    }
}

#[derive(Clone)]
pub struct Bookings {
    pool: PgPool,
}

impl Bookings {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn by_request_id(&self, tax_id: &str, client_request_id: &str) -> Result<Option<AppointmentRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM appointments WHERE taxpayer_id = $1 AND client_request_id = $2"
        )))
        .bind(tax_id)
        .bind(client_request_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Books, or returns the earlier booking made with the same client request id.
    pub async fn book(&self, tp: &Taxpayer, b: ValidBooking) -> Result<AppointmentRow, ApiError> {
        if let Some(existing) = self.by_request_id(&tp.tax_id, &b.client_request_id).await? {
            return Ok(existing);
        }
        match self.insert(tp, &b).await {
            Err(ApiError::AlreadyExists(_)) => self
                .by_request_id(&tp.tax_id, &b.client_request_id)
                .await?
                .ok_or_else(|| ApiError::Internal("booking vanished after conflict".into())),
            other => other,
        }
    }

    async fn insert(&self, tp: &Taxpayer, b: &ValidBooking) -> Result<AppointmentRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let today = time::shanghai_today();
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO number_counters (prefix, day, last) VALUES ('YY', $1, 1)
             ON CONFLICT (prefix, day) DO UPDATE SET last = number_counters.last + 1 RETURNING last",
        )
        .bind(today)
        .fetch_one(&mut *tx)
        .await?;
        let number = format!("YY{}{seq:06}", today.format("%Y%m%d"));
        let row: AppointmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO appointments (id, number, origin, taxpayer_id, taxpayer_name, service_type, method, unit_code,
                 unit_name, business_category, slot_start, slot_end, description, phone, confirm_status,
                 interaction_status, client_request_id)
             VALUES ($1, $2, 'taxpayer', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'booked', 'waiting', $14)
             RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&number)
        .bind(&tp.tax_id)
        .bind(&tp.name)
        .bind(&b.service_type)
        .bind(b.method)
        .bind(&b.unit_code)
        .bind(&b.unit_name)
        .bind(&b.business_category)
        .bind(b.slot_start)
        .bind(b.slot_start + Duration::minutes(SLOT_MINUTES))
        .bind(&b.description)
        .bind(&b.phone)
        .bind(&b.client_request_id)
        .fetch_one(&mut *tx)
        .await?;
        let event = pb::AppointmentEvent {
            aggregate_id: row.id.to_string(),
            occurred_at: Some(ts(Utc::now())),
            payload: Some(pb::appointment_event::Payload::Booked(pb::Booked { appointment: Some(row.to_proto()) })),
        };
        let key = row.id.to_string();
        outbox::enqueue(
            &mut tx,
            OutboxEvent {
                topic: zhengna_proto::topics::APPOINTMENT,
                key: &key,
                event_type: "zhengna.appointment.v1.Booked",
                payload: event.encode_to_vec(),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(appointment = %row.id, number = %row.number, "appointment booked");
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 1, 7, 0).single().expect("valid")
    }

    fn req(slot: DateTime<Utc>) -> pb::BookAppointmentRequest {
        pb::BookAppointmentRequest {
            client_request_id: "r1".into(),
            method: pb::InteractionMethod::Phone as i32,
            slot_start: Some(prost_types::Timestamp { seconds: slot.timestamp(), nanos: 0 }),
            description: "咨询小规模纳税人减免政策".into(),
            business_category: "税费申报".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_filled_from_the_taxpayer() {
        let slot = Utc.with_ymd_and_hms(2026, 11, 25, 2, 30, 0).single().expect("valid");
        let b = validate(&req(slot), &tp(), now()).expect("valid booking");
        assert_eq!(b.service_type, DEFAULT_SERVICE_TYPE);
        assert_eq!(b.unit_code, "13701020000");
        assert_eq!(b.phone, "13800000000");
    }

    #[test]
    fn slot_rules() {
        let fields = |slot| match validate(&req(slot), &tp(), now()) {
            Err(ApiError::InvalidArgument(v)) => v.into_iter().map(|f| f.field).collect::<Vec<_>>(),
            other => panic!("expected invalid, got {other:?}"),
        };
        let off_grid = Utc.with_ymd_and_hms(2026, 11, 25, 2, 15, 0).single().expect("valid");
        assert_eq!(fields(off_grid), ["slot_start"]);
        let past = Utc.with_ymd_and_hms(2026, 11, 24, 0, 30, 0).single().expect("valid");
        assert_eq!(fields(past), ["slot_start"]);
        let far = now() + Duration::days(40);
        let far = far.with_minute(0).and_then(|t| t.with_second(0)).expect("valid");
        assert_eq!(fields(far), ["slot_start"]);
    }

    #[test]
    fn phone_method_needs_a_valid_phone() {
        let slot = Utc.with_ymd_and_hms(2026, 11, 25, 2, 30, 0).single().expect("valid");
        let mut t = tp();
        t.phone.clear();
        let Err(ApiError::InvalidArgument(v)) = validate(&req(slot), &t, now()) else { panic!("expected invalid") };
        assert_eq!(v[0].field, "phone");
        let mut r = req(slot);
        r.phone = "12345".into();
        let Err(ApiError::InvalidArgument(v)) = validate(&r, &tp(), now()) else { panic!("expected invalid") };
        assert_eq!(v[0].field, "phone");
    }

    #[test]
    fn other_offices_and_missing_fields_are_refused() {
        let r = pb::BookAppointmentRequest { unit_code: "13702000000".into(), ..Default::default() };
        let Err(ApiError::InvalidArgument(v)) = validate(&r, &tp(), now()) else { panic!("expected invalid") };
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["client_request_id", "method", "unit_code", "business_category", "slot_start", "description"]
        );
    }
}
