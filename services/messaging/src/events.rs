//! Turns other domains' events into inbox notifications. Runs inside the consumer's
//! transaction, which also records the event id, so each event yields at most one notice.

use prost::Message as _;
use sqlx::{Postgres, Transaction};
use zhengna_platform::kafka::{Envelope, Handler, HandlerError};
use zhengna_platform::time;
use zhengna_proto::appointment::v1 as appt;

use crate::inbox::{self, NewNotification};

pub struct EventHandler;

fn slot_text(a: &appt::Appointment) -> String {
    a.slot_start
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| time::to_shanghai(t).format("%Y年%m月%d日 %H:%M").to_string())
        .unwrap_or_default()
}

fn method_text(a: &appt::Appointment) -> &'static str {
    match appt::InteractionMethod::try_from(a.method) {
        Ok(appt::InteractionMethod::Phone) => "电话",
        _ => "线上互动",
    }
}

/// The notice for an appointment event, if that event produces one.
pub fn appointment_notice(event: &appt::AppointmentEvent) -> Option<NewNotification> {
    use appt::appointment_event::Payload;
    match event.payload.as_ref()? {
        Payload::Booked(b) => {
            let a = b.appointment.as_ref()?;
            Some(NewNotification {
                taxpayer_id: a.taxpayer_id.clone(),
                category: "notice",
                kind: "appointment_booked",
                title: "预约成功".into(),
                body: format!(
                    "您已成功预约{}（{}），预约服务单位：{}，预约编号：{}。请您在预约时间保持联系方式畅通，如需变更可在“个人中心—我的预约”中取消后重新预约。",
                    slot_text(a),
                    method_text(a),
                    a.unit_name,
                    a.number
                ),
                link_url: format!("/personal/appointments/{}", a.id),
                source_ref: a.id.clone(),
            })
        }
        // Other appointment notices (失约, 邀请, 取消) arrive with the appointments issue.
        _ => None,
    }
}

impl Handler for EventHandler {
    async fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> Result<(), HandlerError> {
        if event.topic != zhengna_proto::topics::APPOINTMENT {
            return Ok(());
        }
        let decoded = appt::AppointmentEvent::decode(event.payload.as_slice())
            .map_err(|e| HandlerError::Permanent(format!("undecodable appointment event: {e}")))?;
        if let Some(notice) = appointment_notice(&decoded) {
            inbox::insert(tx, event.event_id, &notice).await?;
            tracing::info!(event_id = %event.event_id, kind = notice.kind, "notification created");
        }
        Ok(())
    }
}
