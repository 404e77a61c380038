//! Turns other domains' events into inbox notifications. Runs inside the consumer's
//! transaction, which also records the event id, so each event yields at most one notice.

use prost::Message as _;
use sqlx::{Postgres, Transaction};
use zhengna_platform::kafka::{Envelope, Handler, HandlerError};
use zhengna_platform::time;
use zhengna_proto::answer::v1 as answer;
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

fn notice(
    a: &appt::Appointment,
    category: &'static str,
    kind: &'static str,
    title: &str,
    body: String,
) -> NewNotification {
    NewNotification {
        taxpayer_id: a.taxpayer_id.clone(),
        category,
        kind,
        title: title.into(),
        body,
        link_url: format!("/personal/appointments/{}", a.id),
        source_ref: a.id.clone(),
    }
}

/// The notice for an appointment event, if that event produces one: 预约成功 (booked, or an
/// invitation accepted), 税局邀请 (a to-do), 预约提醒 (a to-do), 预约失约, 预约取消 (by the
/// bureau) and 预约失败. The taxpayer's own cancel, reject, start and completion need no notice.
pub fn appointment_notice(event: &appt::AppointmentEvent) -> Option<NewNotification> {
    use appt::appointment_event::Payload;
    let payload = event.payload.as_ref()?;
    match payload {
        Payload::Booked(appt::Booked { appointment: Some(a) })
        | Payload::Accepted(appt::Accepted { appointment: Some(a) }) => Some(notice(
            a,
            "notice",
            "appointment_booked",
            "预约成功",
            format!(
                "您已成功预约{}（{}），预约服务单位：{}，预约编号：{}。请您在预约时间保持联系方式畅通，如需变更可在“个人中心—我的预约”中取消后重新预约。",
                slot_text(a),
                method_text(a),
                a.unit_name,
                a.number
            ),
        )),
        Payload::Invited(appt::Invited { appointment: Some(a), .. }) => Some(notice(
            a,
            "todo",
            "appointment_invited",
            "税局邀请",
            format!(
                "{}邀请您于{}进行{}（{}），预约编号：{}。请在“个人中心—我的预约—税局邀请”中接受或拒绝。",
                a.unit_name,
                slot_text(a),
                if a.service_type_name.is_empty() { "预约服务" } else { &a.service_type_name },
                method_text(a),
                a.number
            ),
        )),
        Payload::Reminder(appt::Reminder { appointment: Some(a), minutes_before }) => Some(notice(
            a,
            "todo",
            "appointment_reminder",
            "预约提醒",
            format!(
                "您预约的{}（{}）将在约{}分钟后开始，预约编号：{}。请保持联系方式畅通。",
                slot_text(a),
                method_text(a),
                minutes_before,
                a.number
            ),
        )),
        Payload::Missed(appt::Missed { appointment: Some(a) }) => Some(notice(
            a,
            "notice",
            "appointment_missed",
            "预约失约",
            format!(
                "您预约的{}（预约编号：{}）已超过预约服务时间且未依约互动，已记为失约。如仍需办理，请重新预约。",
                slot_text(a),
                a.number
            ),
        )),
        Payload::Cancelled(appt::Cancelled { appointment: Some(a), reason, cancelled_by })
            if cancelled_by.as_ref().is_some_and(|c| c.role == zhengna_proto::common::v1::ActorRole::Agent as i32) =>
        {
            Some(notice(
                a,
                "notice",
                "appointment_cancelled",
                "预约取消",
                format!(
                    "很抱歉，您预约的{}（预约编号：{}）已由{}取消{}。如仍需办理，请重新预约。",
                    slot_text(a),
                    a.number,
                    a.unit_name,
                    if reason.is_empty() { String::new() } else { format!("，原因：{reason}") }
                ),
            ))
        }
        Payload::Failed(appt::Failed { appointment: Some(a), .. }) => Some(notice(
            a,
            "notice",
            "appointment_failed",
            "预约失败",
            format!(
                "税局邀请（预约编号：{}，{}）在预约服务时间前未被接受或拒绝，已记为预约失败。",
                a.number,
                slot_text(a)
            ),
        )),
        _ => None,
    }
}

/// 答案变更: an answer the taxpayer favourited was updated or withdrawn.
pub fn answer_notice(event: &answer::AnswerEvent) -> Option<NewNotification> {
    let answer::answer_event::Payload::FavouriteChanged(f) = event.payload.as_ref()? else { return None };
    if f.taxpayer_id.is_empty() || f.item_id.is_empty() {
        return None;
    }
    let body = if f.retired {
        format!("您收藏的问题“{}”的答案已停用，相关政策或办理方式可能已经调整，请以最新答案为准。", f.question)
    } else {
        format!("您收藏的问题“{}”的答案已更新，点击查看最新内容。", f.question)
    };
    Some(NewNotification {
        taxpayer_id: f.taxpayer_id.clone(),
        category: "notice",
        kind: "answer_changed",
        title: "答案变更".into(),
        body,
        link_url: format!("/personal/favourites?item={}", f.item_id),
        source_ref: f.item_id.clone(),
    })
}

impl Handler for EventHandler {
    async fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> Result<(), HandlerError> {
        let notice = if event.topic == zhengna_proto::topics::APPOINTMENT {
            let decoded = appt::AppointmentEvent::decode(event.payload.as_slice())
                .map_err(|e| HandlerError::Permanent(format!("undecodable appointment event: {e}")))?;
            appointment_notice(&decoded)
        } else if event.topic == zhengna_proto::topics::ANSWER {
            let decoded = answer::AnswerEvent::decode(event.payload.as_slice())
                .map_err(|e| HandlerError::Permanent(format!("undecodable answer event: {e}")))?;
            answer_notice(&decoded)
        } else {
            None
        };
        if let Some(notice) = notice {
            inbox::insert(tx, event.event_id, &notice).await?;
            tracing::info!(event_id = %event.event_id, kind = notice.kind, "notification created");
        }
        Ok(())
    }
}
