//! Invitations, the state machines through the API, authorisation and validation.

use chrono::Duration;
use zhengna_appointment::state::Action;
use zhengna_appointment::store::{Actor, Change, Scope};
use zhengna_platform::AgentRole;
use zhengna_proto::appointment::v1 as pb;

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_is_accepted_started_and_completed() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(9, 30);
    let tp = taxpayer(1);
    let staff = agent(OFFICE, AgentRole::Agent);
    let mut desk = svc.desk_client().await;
    let mut client = svc.taxpayer_client().await;
    let invited =
        desk.invite_taxpayer(svc.req(invitation("inv-1", &tp, slot), &staff)).await.expect("invite").into_inner();
    let invited = invited.appointment.expect("appointment");
    assert!(invited.number.starts_with("YQ"), "{}", invited.number);
    assert_eq!(invited.origin, pb::AppointmentOrigin::Bureau as i32);
    assert_eq!(invited.confirm_status, pb::ConfirmStatus::Pending as i32);
    assert_eq!(invited.interaction_status, pb::InteractionStatus::Waiting as i32);

    // 税局邀请 tab.
    let tab = pb::AppointmentFilter { origin: pb::AppointmentOrigin::Bureau as i32, ..Default::default() };
    let listed = client
        .list_appointments(svc.req(pb::ListAppointmentsRequest { filter: Some(tab), page: None }, &tp))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.appointments.len(), 1);
    let detail = client
        .get_appointment(svc.req(pb::GetAppointmentRequest { id: invited.id.clone() }, &tp))
        .await
        .expect("get")
        .into_inner();
    assert!(detail.can_accept && detail.can_reject && !detail.can_cancel);

    // Cancelling a pending invitation is not in the table: the taxpayer rejects instead.
    let err = client
        .cancel_appointment(
            svc.req(pb::CancelAppointmentRequest { id: invited.id.clone(), reason: String::new() }, &tp),
        )
        .await
        .expect_err("illegal");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(user_message(&err).contains("拒绝预约"), "{}", user_message(&err));

    let accepted = client
        .accept_invitation(
            svc.req(pb::AcceptInvitationRequest { id: invited.id.clone(), phone: "13912345678".into() }, &tp),
        )
        .await
        .expect("accept")
        .into_inner()
        .appointment
        .expect("a");
    assert_eq!(accepted.confirm_status, pb::ConfirmStatus::Booked as i32);
    assert_eq!(accepted.phone, "13912345678");
    // Accepting twice is refused.
    let err = client
        .accept_invitation(svc.req(pb::AcceptInvitationRequest { id: invited.id.clone(), phone: String::new() }, &tp))
        .await
        .expect_err("twice");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // Starting days ahead of the slot is refused with a clear message.
    let err = desk
        .start_appointment_interaction(
            svc.req(pb::StartAppointmentInteractionRequest { id: invited.id.clone() }, &staff),
        )
        .await
        .expect_err("too early");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(user_message(&err).contains("未到预约服务时间"), "{}", user_message(&err));

    // At the slot (the store takes the clock as an argument) the agent starts and completes.
    let store = svc.replica_store().await;
    let id = invited.id.parse().expect("uuid");
    let actor = Actor::Agent { id: "A-1".into(), name: "王税官".into() };
    let scope = Scope::Unit(OFFICE.into());
    let started = store
        .transition(id, &scope, Action::Start, &actor, Change::default(), slot + Duration::minutes(2))
        .await
        .expect("start");
    assert_eq!((started.confirm_status.as_str(), started.interaction_status.as_str()), ("interacted", "in_progress"));
    assert_eq!(
        store.run_due_check(slot + Duration::minutes(60)).await.expect("check"),
        (0, 0),
        "started ones are not missed"
    );
    let done = store
        .transition(
            id,
            &scope,
            Action::Complete,
            &actor,
            Change { result_summary: Some("已辅导完成发票核对".into()), ..Change::default() },
            slot + Duration::minutes(20),
        )
        .await
        .expect("complete");
    assert_eq!(done.interaction_status, "completed");

    let detail = desk
        .get_office_appointment(svc.req(pb::GetOfficeAppointmentRequest { id: invited.id.clone() }, &staff))
        .await
        .expect("detail")
        .into_inner();
    let actions: Vec<_> = detail.history.iter().map(|h| h.action).collect();
    use pb::AppointmentAction as A;
    assert_eq!(actions, [A::Invited as i32, A::Accepted as i32, A::Started as i32, A::Completed as i32]);
    assert_eq!(detail.appointment.expect("a").result_summary, "已辅导完成发票核对");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejecting_needs_a_reason_and_frees_the_place() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(15, 0);
    let tp = taxpayer(2);
    let mut desk = svc.desk_client().await;
    let mut client = svc.taxpayer_client().await;
    let id = desk
        .invite_taxpayer(svc.req(invitation("inv-2", &tp, slot), &agent(OFFICE, AgentRole::Agent)))
        .await
        .expect("invite")
        .into_inner()
        .appointment
        .expect("a")
        .id;
    let err = client
        .reject_invitation(svc.req(pb::RejectInvitationRequest { id: id.clone(), reason: "  ".into() }, &tp))
        .await
        .expect_err("reason required");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(field_of(&err), ["reason"]);
    let rejected = client
        .reject_invitation(
            svc.req(pb::RejectInvitationRequest { id: id.clone(), reason: "当天外出无法参加".into() }, &tp),
        )
        .await
        .expect("reject")
        .into_inner()
        .appointment
        .expect("a");
    assert_eq!(rejected.confirm_status, pb::ConfirmStatus::Rejected as i32);
    assert_eq!(rejected.interaction_status, pb::InteractionStatus::Failed as i32);
    assert_eq!(rejected.reason, "当天外出无法参加");
    let store = svc.replica_store().await;
    let booked: i32 =
        sqlx::query_scalar("SELECT booked FROM slot_bookings").fetch_one(store.pool()).await.expect("count");
    assert_eq!(booked, 0, "the place is free again");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_reaches_anyone_elses_appointments() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(10, 30);
    let owner = taxpayer(3);
    let other = taxpayer(4);
    let mut client = svc.taxpayer_client().await;
    let mut desk = svc.desk_client().await;
    let mine = client
        .book_appointment(svc.req(booking("own", slot), &owner))
        .await
        .expect("book")
        .into_inner()
        .appointment
        .expect("a");
    let invite = desk
        .invite_taxpayer(svc.req(invitation("inv-3", &owner, slot), &agent(OFFICE, AgentRole::Agent)))
        .await
        .expect("invite")
        .into_inner()
        .appointment
        .expect("a");

    let not_found = tonic::Code::NotFound;
    assert_eq!(
        client
            .get_appointment(svc.req(pb::GetAppointmentRequest { id: mine.id.clone() }, &other))
            .await
            .expect_err("get")
            .code(),
        not_found
    );
    assert_eq!(
        client
            .cancel_appointment(
                svc.req(pb::CancelAppointmentRequest { id: mine.id.clone(), reason: String::new() }, &other)
            )
            .await
            .expect_err("cancel")
            .code(),
        not_found
    );
    assert_eq!(
        client
            .accept_invitation(
                svc.req(pb::AcceptInvitationRequest { id: invite.id.clone(), phone: String::new() }, &other)
            )
            .await
            .expect_err("accept")
            .code(),
        not_found
    );
    let listed = client
        .list_appointments(svc.req(pb::ListAppointmentsRequest::default(), &other))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.appointments.is_empty());

    // Agents of another unit: absent, and their own unit only.
    let elsewhere = agent("13702020000", AgentRole::Supervisor);
    assert_eq!(
        desk.get_office_appointment(svc.req(pb::GetOfficeAppointmentRequest { id: mine.id.clone() }, &elsewhere))
            .await
            .expect_err("other unit")
            .code(),
        not_found
    );
    let err = desk
        .list_office_appointments(
            svc.req(pb::ListOfficeAppointmentsRequest { unit_code: OFFICE.into(), ..Default::default() }, &elsewhere),
        )
        .await
        .expect_err("other unit list");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Taxpayers cannot use the desk; plain agents cannot configure slots.
    assert_eq!(
        desk.list_office_appointments(svc.req(pb::ListOfficeAppointmentsRequest::default(), &owner))
            .await
            .expect_err("taxpayer")
            .code(),
        tonic::Code::PermissionDenied
    );
    let mut admin = svc.admin_client().await;
    assert_eq!(
        admin
            .get_slot_capacity(svc.req(pb::GetSlotCapacityRequest::default(), &agent(OFFICE, AgentRole::Agent)))
            .await
            .expect_err("not a supervisor")
            .code(),
        tonic::Code::PermissionDenied
    );
    // A taxpayer cannot accept their own booking as if it were an invitation.
    let err = client
        .accept_invitation(svc.req(pb::AcceptInvitationRequest { id: mine.id.clone(), phone: String::new() }, &owner))
        .await
        .expect_err("not an invitation");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_names_the_fields_and_the_confirm_step_books_nothing() {
    let svc = Svc::start().await;
    let tp = taxpayer(5);
    let mut client = svc.taxpayer_client().await;
    let err = client
        .book_appointment(svc.req(
            pb::BookAppointmentRequest {
                phone: "12".into(),
                method: pb::InteractionMethod::Phone as i32,
                ..Default::default()
            },
            &tp,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(field_of(&err), ["client_request_id", "business_category", "slot_start", "description", "phone"]);

    // A Saturday is outside the default service hours.
    let mut saturday = next_weekday_at(10, 0);
    while chrono::Datelike::weekday(&zhengna_platform::time::to_shanghai(saturday)) != chrono::Weekday::Sat {
        saturday += Duration::days(1);
    }
    let err = client.book_appointment(svc.req(booking("sat", saturday), &tp)).await.expect_err("closed");
    assert_eq!(field_of(&err), ["slot_start"]);
    assert!(user_message(&err).contains("服务时间"), "{}", user_message(&err));

    // The confirm step returns the appointment as it would be, and books nothing.
    let slot = next_weekday_at(11, 0);
    let preview = client
        .book_appointment(svc.req(pb::BookAppointmentRequest { validate_only: true, ..booking("p", slot) }, &tp))
        .await
        .expect("preview")
        .into_inner()
        .appointment
        .expect("a");
    assert!(preview.id.is_empty() && preview.number.is_empty());
    assert_eq!(preview.service_type_name, "综合服务");
    assert_eq!(preview.business_category_name, "申报纳税");
    let listed = client
        .list_appointments(svc.req(pb::ListAppointmentsRequest::default(), &tp))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.appointments.is_empty());

    // Bad slot configuration is reported per field.
    let mut admin = svc.admin_client().await;
    let err = admin
        .update_slot_capacity(svc.req(
            pb::UpdateSlotCapacityRequest {
                config: Some(pb::SlotCapacityConfig {
                    weekly: vec![pb::WeekdaySlots {
                        weekday: 1,
                        slots: vec![pb::SlotCapacity {
                            start: Some(zhengna_proto::common::v1::TimeOfDay { hours: 9, minutes: 10 }),
                            capacity: -1,
                        }],
                    }],
                    booking_horizon_days: 0,
                    min_lead_minutes: 0,
                    ..Default::default()
                }),
            },
            &agent(OFFICE, AgentRole::Supervisor),
        ))
        .await
        .expect_err("bad config");
    assert_eq!(
        field_of(&err),
        ["config.weekly[0].slots[0].start", "config.weekly[0].slots[0].capacity", "config.booking_horizon_days"]
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_reminder_thirty_minutes_before() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(16, 0);
    let mut client = svc.taxpayer_client().await;
    let a = client.book_appointment(svc.req(booking("r", slot), &taxpayer(9))).await.expect("book").into_inner();
    let id = a.appointment.expect("a").id;
    let store = svc.replica_store().await;
    let ahead = Duration::minutes(30);
    assert_eq!(store.send_reminders(slot - Duration::minutes(45), ahead).await.expect("early"), 0, "not yet");
    assert_eq!(store.send_reminders(slot - Duration::minutes(29), ahead).await.expect("due"), 1);
    assert_eq!(store.send_reminders(slot - Duration::minutes(20), ahead).await.expect("again"), 0, "only once");
    let events: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'zhengna.appointment.v1.Reminder'")
            .fetch_all(store.pool())
            .await
            .expect("outbox");
    assert_eq!(events.len(), 1);
    let event = <pb::AppointmentEvent as prost::Message>::decode(events[0].as_slice()).expect("decode");
    let Some(pb::appointment_event::Payload::Reminder(r)) = event.payload else { panic!("not a reminder") };
    assert_eq!((r.appointment.expect("a").id, r.minutes_before), (id, 29));
    svc.stop().await;
}
