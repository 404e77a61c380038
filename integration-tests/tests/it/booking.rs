//! Booking → `Booked` through the outbox → Kafka → messaging → 预约成功 in the inbox,
//! including with the broker down while booking.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, TimeZone};
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::appointment::v1 as appt;
use zhengna_proto::appointment::v1::appointment_service_client::AppointmentServiceClient;
use zhengna_proto::messaging::v1 as msg;
use zhengna_proto::messaging::v1::inbox_service_client::InboxServiceClient;

/// 10:00 in Shanghai on a weekday at least two days ahead (inside default service hours).
fn tomorrow_ten() -> prost_types::Timestamp {
    use chrono::Datelike;
    let sh = zhengna_platform::time::shanghai();
    let mut day = zhengna_platform::time::shanghai_today() + ChronoDuration::days(2);
    while matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
        day += ChronoDuration::days(1);
    }
    let t = sh.from_local_datetime(&day.and_hms_opt(10, 0, 0).expect("valid time")).single().expect("unambiguous");
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

pub fn booking(id: &str) -> appt::BookAppointmentRequest {
    appt::BookAppointmentRequest {
        client_request_id: id.into(),
        method: appt::InteractionMethod::Online as i32,
        business_category: "declaration".into(),
        slot_start: Some(tomorrow_ten()),
        description: "咨询小规模纳税人增值税减免申报".into(),
        ..Default::default()
    }
}

async fn notices(stack: &Stack, token: &str) -> Vec<msg::Notification> {
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), token))
        .await
        .expect("list")
        .into_inner()
        .notifications
}

#[tokio::test(flavor = "multi_thread")]
async fn booking_puts_a_notice_in_the_inbox() {
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = AppointmentServiceClient::new(stack.gateway_channel().await);
    let booked = client
        .book_appointment(authed(booking("b-1"), &token))
        .await
        .expect("book")
        .into_inner()
        .appointment
        .expect("appointment");
    assert!(booked.number.starts_with("YY"), "{}", booked.number);
    assert_eq!(booked.confirm_status, appt::ConfirmStatus::Booked as i32);
    assert_eq!(booked.unit_code, "13701020000", "unit defaults to the 主管税务机关");
    // Idempotent: the same client request id returns the same booking.
    let again = client
        .book_appointment(authed(booking("b-1"), &token))
        .await
        .expect("rebook")
        .into_inner()
        .appointment
        .expect("a");
    assert_eq!(again.id, booked.id);

    let found = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        let n = notices(&stack, &token).await;
        (!n.is_empty()).then_some(n)
    })
    .await
    .expect("notice arrives");
    assert_eq!(found.len(), 1, "one booking, one notice: {found:?}");
    let notice = &found[0];
    assert_eq!(notice.title, "预约成功");
    assert_eq!(notice.kind, msg::NotificationKind::AppointmentBooked as i32);
    assert_eq!(notice.source_ref, booked.id);
    assert!(notice.body.contains(&booked.number));
    assert!(!notice.read);

    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let unread =
        inbox.get_unread_count(authed(msg::GetUnreadCountRequest {}, &token)).await.expect("count").into_inner();
    assert_eq!((unread.notice_unread, unread.total_unread), (1, 1));

    // Another taxpayer neither sees nor opens it.
    let other = stack.token("taxpayer-qingdao");
    assert!(notices(&stack, &other).await.is_empty());
    let err = inbox
        .get_notification(authed(msg::GetNotificationRequest { id: notice.id.clone() }, &other))
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Reading it lowers the unread count.
    let opened = inbox
        .get_notification(authed(msg::GetNotificationRequest { id: notice.id.clone() }, &token))
        .await
        .expect("open")
        .into_inner()
        .notification
        .expect("n");
    assert!(opened.read);
    let unread =
        inbox.get_unread_count(authed(msg::GetUnreadCountRequest {}, &token)).await.expect("count").into_inner();
    assert_eq!(unread.total_unread, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn booking_while_the_broker_is_down_is_delivered_exactly_once() {
    zhengna_test_util::span_capture(); // logs, for diagnosing a failure
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = AppointmentServiceClient::new(stack.gateway_channel().await);
    stack.broker.cut();
    // Booking does not depend on Kafka: the event waits in the outbox.
    let booked =
        client.book_appointment(authed(booking("down-1"), &token)).await.expect("book while broker down").into_inner();
    let booked = booked.appointment.expect("appointment");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(notices(&stack, &token).await.is_empty(), "nothing can be delivered while the broker is down");

    stack.broker.restore();
    let found = zhengna_test_util::eventually(Duration::from_secs(60), || async {
        let n = notices(&stack, &token).await;
        (!n.is_empty()).then_some(n)
    })
    .await
    .expect("notice arrives after the broker is back");
    assert_eq!(found[0].source_ref, booked.id);
    // Give redeliveries and relay retries time to show up, then count again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let found = notices(&stack, &token).await;
    assert_eq!(found.len(), 1, "exactly once: {found:?}");
    let pool = sqlx::PgPool::connect(&stack.messaging_db).await.expect("messaging db");
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(&pool).await.expect("count");
    assert_eq!(processed, 1, "one event consumed");
    pool.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_bookings_name_every_field() {
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = AppointmentServiceClient::new(stack.gateway_channel().await);
    let mut bad = booking("bad-1");
    bad.method = appt::InteractionMethod::Phone as i32;
    bad.phone = "12345".into();
    bad.description = String::new();
    let err = client.book_appointment(authed(bad, &token)).await.expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("phone") && err.message().contains("description"), "{}", err.message());
    // Staff cannot book as a taxpayer (refused at the gateway: taxpayer service policy is
    // for taxpayers only in the other direction, so the service itself refuses).
    let agent = stack.token("agent-jinan");
    let err = client.book_appointment(authed(booking("agent-1"), &agent)).await.expect_err("agent refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_booking_trace_continues_through_kafka() {
    zhengna_test_util::span_capture();
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = AppointmentServiceClient::new(stack.gateway_channel().await);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut req = authed(booking("traced-1"), &token);
    req.metadata_mut().insert("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01").parse().expect("ascii"));
    client.book_appointment(req).await.expect("book");
    let consumed = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        zhengna_test_util::finished_spans()
            .into_iter()
            .find(|s| s.name == "kafka.consume" && s.span_context.trace_id().to_string() == trace_id)
    })
    .await;
    assert!(consumed.is_some(), "the consumer's span joins the booking's trace via the traceparent header");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_becomes_a_todo_for_the_taxpayer() {
    use zhengna_proto::appointment::v1::appointment_desk_service_client::AppointmentDeskServiceClient;
    let stack = Stack::start().await;
    let taxpayer = stack.token("taxpayer-jinan");
    let mut desk = AppointmentDeskServiceClient::new(stack.gateway_channel().await);
    let invited = desk
        .invite_taxpayer(authed(
            appt::InviteTaxpayerRequest {
                client_request_id: "inv-1".into(),
                taxpayer_id: "91370102MA3DEMO01X".into(),
                method: appt::InteractionMethod::Online as i32,
                business_category: "invoice".into(),
                slot_start: Some(tomorrow_ten()),
                description: "请就发票异常情况进行线上说明".into(),
                ..Default::default()
            },
            &stack.token("agent-jinan"),
        ))
        .await
        .expect("invite")
        .into_inner()
        .appointment
        .expect("appointment");
    let found = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        let n = notices(&stack, &taxpayer).await;
        (!n.is_empty()).then_some(n)
    })
    .await
    .expect("notice arrives");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].title, "税局邀请");
    assert_eq!(found[0].category, msg::NotificationCategory::Todo as i32);
    assert_eq!(found[0].kind, msg::NotificationKind::AppointmentInvited as i32);
    assert!(found[0].body.contains(&invited.number), "{}", found[0].body);

    // Accepting it is 预约成功.
    let mut client = AppointmentServiceClient::new(stack.gateway_channel().await);
    client
        .accept_invitation(authed(
            appt::AcceptInvitationRequest { id: invited.id.clone(), phone: String::new() },
            &taxpayer,
        ))
        .await
        .expect("accept");
    let found = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        let n = notices(&stack, &taxpayer).await;
        (n.len() == 2).then_some(n)
    })
    .await
    .expect("second notice");
    assert_eq!(found[0].title, "预约成功");
    stack.stop().await;
}
