//! 留言 → reply → 留言回复; 留言 → 工单 → 办结 → 工单办理结果; overdue escalation; filters;
//! authorisation; redelivered events create one notice.

use std::time::Duration;

use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::messaging::v1 as msg;
use zhengna_proto::messaging::v1::inbox_service_client::InboxServiceClient;
use zhengna_proto::messaging::v1::leave_message_desk_service_client::LeaveMessageDeskServiceClient;
use zhengna_proto::messaging::v1::leave_message_service_client::LeaveMessageServiceClient;
use zhengna_proto::messaging::v1::ticket_desk_service_client::TicketDeskServiceClient;

fn leave(id: &str, kind: &str, text: &str) -> msg::SubmitLeaveMessageRequest {
    msg::SubmitLeaveMessageRequest {
        client_request_id: id.into(),
        type_code: kind.into(),
        content: text.into(),
        ..Default::default()
    }
}

async fn unread(stack: &Stack, token: &str) -> i32 {
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    inbox.get_unread_count(authed(msg::GetUnreadCountRequest {}, token)).await.expect("count").into_inner().total_unread
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_reaches_the_taxpayer_inbox() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let staff = stack.token("agent-jinan");
    let mut mine = LeaveMessageServiceClient::new(stack.gateway_channel().await);
    let mut desk = LeaveMessageDeskServiceClient::new(stack.gateway_channel().await);
    let submitted = mine
        .submit_leave_message(authed(leave("l1", "consult", "请问季度销售额30万以下免征增值税如何申报？"), &tp))
        .await
        .expect("submit")
        .into_inner()
        .leave_message
        .expect("leave message");
    assert!(submitted.number.starts_with("LY"), "{}", submitted.number);
    assert_eq!(submitted.org.as_ref().expect("org").code, "13701020000", "defaults to the 主管税务机关");
    assert_eq!(submitted.status, msg::LeaveMessageStatus::Pending as i32);
    assert_eq!(unread(&stack, &tp).await, 0);

    // The office sees it and replies.
    let listed = desk
        .list_office_leave_messages(authed(msg::ListOfficeLeaveMessagesRequest::default(), &staff))
        .await
        .expect("office list")
        .into_inner();
    assert_eq!(listed.leave_messages.len(), 1);
    let reply = msg::ReplyLeaveMessageRequest {
        client_request_id: "r1".into(),
        id: submitted.id.clone(),
        content: "您好，在电子税务局进行增值税及附加税费申报时填写免税销售额即可。".into(),
        ..Default::default()
    };
    desk.reply_leave_message(authed(reply.clone(), &staff)).await.expect("reply");
    desk.reply_leave_message(authed(reply, &staff)).await.expect("a retried reply is the same reply");

    assert_eq!(unread(&stack, &tp).await, 1, "留言回复 +1");
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let notices = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &tp))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(notices.notifications.len(), 1);
    let n = &notices.notifications[0];
    assert_eq!((n.title.as_str(), n.kind), ("留言回复", msg::NotificationKind::LeaveMessageReply as i32));
    assert!(n.body.contains(&submitted.number));
    inbox.get_notification(authed(msg::GetNotificationRequest { id: n.id.clone() }, &tp)).await.expect("open");
    assert_eq!(unread(&stack, &tp).await, 0, "opening it lowers the count");

    let detail = mine
        .get_leave_message(authed(msg::GetLeaveMessageRequest { id: submitted.id.clone() }, &tp))
        .await
        .expect("detail")
        .into_inner()
        .leave_message
        .expect("lm");
    assert_eq!(detail.replies.len(), 1);
    assert_eq!(detail.status, msg::LeaveMessageStatus::Replied as i32);

    // Nobody else reaches it, nor its notification.
    let other = stack.token("taxpayer-qingdao");
    let err = inbox
        .get_notification(authed(msg::GetNotificationRequest { id: n.id.clone() }, &other))
        .await
        .expect_err("not their notification");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = mine
        .get_leave_message(authed(msg::GetLeaveMessageRequest { id: submitted.id.clone() }, &other))
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let elsewhere = stack.token("agent-qingdao");
    let err = desk
        .get_office_leave_message(authed(msg::GetOfficeLeaveMessageRequest { id: submitted.id.clone() }, &elsewhere))
        .await
        .expect_err("other office");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = desk
        .list_office_leave_messages(authed(
            msg::ListOfficeLeaveMessagesRequest { org_code: "13701020000".into(), ..Default::default() },
            &elsewhere,
        ))
        .await
        .expect_err("other office list");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_is_resolved_and_escalates_when_overdue() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let staff = stack.token("agent-jinan");
    let mut mine = LeaveMessageServiceClient::new(stack.gateway_channel().await);
    let mut desk = LeaveMessageDeskServiceClient::new(stack.gateway_channel().await);
    let mut tickets = TicketDeskServiceClient::new(stack.gateway_channel().await);
    let mut ids = Vec::new();
    for (i, text) in ["发票领用一直审核不通过，请尽快处理", "申报系统报错，无法提交"].iter().enumerate()
    {
        let lm =
            mine.submit_leave_message(authed(leave(&format!("t{i}"), "complaint", text), &tp)).await.expect("submit");
        ids.push(lm.into_inner().leave_message.expect("lm").id);
    }
    let converted = desk
        .convert_to_ticket(authed(msg::ConvertToTicketRequest { id: ids[0].clone(), ..Default::default() }, &staff))
        .await
        .expect("convert")
        .into_inner();
    let ticket = converted.ticket.expect("ticket");
    assert!(ticket.number.starts_with("GD"));
    assert_eq!(converted.leave_message.expect("lm").status, msg::LeaveMessageStatus::Converted as i32);
    let due = ticket.due_at.expect("due").seconds - ticket.created_at.expect("created").seconds;
    assert_eq!(due, 120 * 3600, "complaints are due in 5 days");
    let again = desk
        .convert_to_ticket(authed(msg::ConvertToTicketRequest { id: ids[0].clone(), ..Default::default() }, &staff))
        .await
        .expect("convert again")
        .into_inner();
    assert_eq!(again.ticket.expect("t").id, ticket.id, "one 留言, one ticket");

    tickets
        .update_ticket_status(authed(
            msg::UpdateTicketStatusRequest {
                id: ticket.id.clone(),
                status: msg::TicketStatus::InProgress as i32,
                ..Default::default()
            },
            &staff,
        ))
        .await
        .expect("in progress");
    let resolved = tickets
        .resolve_ticket(authed(
            msg::ResolveTicketRequest {
                id: ticket.id.clone(),
                resolution: "已为您完成发票票种核定。".into(),
                skip_notification: false,
            },
            &staff,
        ))
        .await
        .expect("resolve")
        .into_inner()
        .ticket
        .expect("t");
    assert_eq!(resolved.status, msg::TicketStatus::Resolved as i32);
    let err = tickets
        .resolve_ticket(authed(
            msg::ResolveTicketRequest { id: ticket.id.clone(), resolution: "x".into(), skip_notification: false },
            &staff,
        ))
        .await
        .expect_err("twice");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let notices = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &tp))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(notices.notifications.len(), 1);
    assert_eq!(notices.notifications[0].title, "工单办理结果");
    assert!(notices.notifications[0].body.contains("已为您完成发票票种核定"));
    let lm = mine.get_leave_message(authed(msg::GetLeaveMessageRequest { id: ids[0].clone() }, &tp)).await.expect("lm");
    assert_eq!(lm.into_inner().leave_message.expect("lm").status, msg::LeaveMessageStatus::Closed as i32);

    // The second becomes a ticket that nobody resolves in time.
    let late = desk
        .convert_to_ticket(authed(msg::ConvertToTicketRequest { id: ids[1].clone(), ..Default::default() }, &staff))
        .await
        .expect("convert")
        .into_inner()
        .ticket
        .expect("t");
    let pool = sqlx::PgPool::connect(&stack.messaging_db).await.expect("db");
    let store =
        zhengna_messaging::tickets::Tickets::new(pool.clone(), zhengna_messaging::tickets::TicketConfig::default());
    let past_due = chrono::Utc::now() + chrono::Duration::hours(121);
    assert_eq!(store.escalate_overdue(chrono::Utc::now()).await.expect("check"), 0, "not yet due");
    assert_eq!(store.escalate_overdue(past_due).await.expect("escalate"), 1);
    assert_eq!(store.escalate_overdue(past_due).await.expect("again"), 0, "once per deadline");
    let (office, overdue, level): (String, bool, i32) =
        sqlx::query_as("SELECT handling_office, overdue, escalation_level FROM tickets WHERE id = $1::uuid")
            .bind(&late.id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!((office.as_str(), overdue, level), ("13701000000", true, 1), "to 济南市局, flagged 已超期");
    // The district no longer sees it as its own; the city does (after the new deadline, the province).
    let err =
        tickets.get_ticket(authed(msg::GetTicketRequest { id: late.id.clone() }, &stack.token("agent-qingdao"))).await;
    assert_eq!(err.expect_err("other city").code(), tonic::Code::NotFound);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'zhengna.messaging.v1.TicketEscalated'")
            .fetch_one(&pool)
            .await
            .expect("outbox");
    assert_eq!(events, 1);
    pool.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leave_message_filters_alone_and_combined() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let staff = stack.token("agent-jinan");
    let mut mine = LeaveMessageServiceClient::new(stack.gateway_channel().await);
    let mut desk = LeaveMessageDeskServiceClient::new(stack.gateway_channel().await);
    let mut numbers = Vec::new();
    for (id, kind, text) in [
        ("a", "consult", "数电发票怎么开具"),
        ("b", "complaint", "发票红冲太慢"),
        ("c", "suggestion", "建议优化申报页面"),
    ] {
        let lm = mine.submit_leave_message(authed(leave(id, kind, text), &tp)).await.expect("submit").into_inner();
        numbers.push(lm.leave_message.expect("lm"));
    }
    desk.reply_leave_message(authed(
        msg::ReplyLeaveMessageRequest {
            client_request_id: "r".into(),
            id: numbers[2].id.clone(),
            content: "感谢建议".into(),
            close: true,
            ..Default::default()
        },
        &staff,
    ))
    .await
    .expect("reply");
    let list = |f: msg::LeaveMessageFilter| {
        let mut c = mine.clone();
        let req = authed(msg::ListMyLeaveMessagesRequest { filter: Some(f), page: None }, &tp);
        async move {
            let mut n: Vec<String> = c
                .list_my_leave_messages(req)
                .await
                .expect("list")
                .into_inner()
                .leave_messages
                .into_iter()
                .map(|l| l.type_code)
                .collect();
            n.sort();
            n
        }
    };
    let f = msg::LeaveMessageFilter::default;
    assert_eq!(list(f()).await, ["complaint", "consult", "suggestion"]);
    assert_eq!(list(msg::LeaveMessageFilter { number: numbers[0].number.clone(), ..f() }).await, ["consult"]);
    assert!(
        list(msg::LeaveMessageFilter { number: numbers[0].number[..8].into(), ..f() }).await.is_empty(),
        "exact numbers"
    );
    assert_eq!(
        list(msg::LeaveMessageFilter { content: "发票".into(), ..f() }).await,
        ["complaint", "consult"],
        "fuzzy content"
    );
    assert_eq!(list(msg::LeaveMessageFilter { type_code: "suggestion".into(), ..f() }).await, ["suggestion"]);
    assert_eq!(
        list(msg::LeaveMessageFilter { status: msg::LeaveMessageStatus::Closed as i32, ..f() }).await,
        ["suggestion"]
    );
    let today = {
        use chrono::Datelike;
        let d = zhengna_platform::time::shanghai_today();
        zhengna_proto::common::v1::Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
    };
    let range = zhengna_proto::common::v1::DateRange { start: Some(today), end: Some(today) };
    assert_eq!(list(msg::LeaveMessageFilter { dates: Some(range), ..f() }).await.len(), 3);
    assert_eq!(
        list(msg::LeaveMessageFilter {
            content: "发票".into(),
            status: msg::LeaveMessageStatus::Pending as i32,
            type_code: "complaint".into(),
            ..f()
        })
        .await,
        ["complaint"]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_event_makes_one_notice() {
    use prost::Message as _;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use zhengna_proto::appointment::v1 as appt;
    let stack = Stack::start().await;
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.broker.bootstrap()).create().expect("producer");
    let appointment = appt::Appointment {
        id: "01a20b0f-092c-7046-85e8-9048515115bc".into(),
        number: "YY20261124000042".into(),
        taxpayer_id: "91370102MA3DEMO01X".into(),
        unit_name: "国家税务总局济南市历下区税务局".into(),
        ..Default::default()
    };
    let event = appt::AppointmentEvent {
        aggregate_id: appointment.id.clone(),
        occurred_at: None,
        payload: Some(appt::appointment_event::Payload::Booked(appt::Booked {
            appointment: Some(appointment.clone()),
        })),
    }
    .encode_to_vec();
    let event_id = uuid::Uuid::now_v7().to_string();
    for _ in 0..5 {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "event-id", value: Some(event_id.as_bytes()) })
            .insert(Header { key: "event-type", value: Some("zhengna.appointment.v1.Booked".as_bytes()) });
        producer
            .send(
                FutureRecord::to(zhengna_proto::topics::APPOINTMENT)
                    .key(&appointment.id)
                    .payload(&event)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    let tp = stack.token("taxpayer-jinan");
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let pool = sqlx::PgPool::connect(&stack.messaging_db).await.expect("db");
    // All five deliveries are consumed (the duplicates are recorded as skipped)…
    let consumed = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(&pool).await.ok()?;
        let list =
            inbox.clone().list_notifications(authed(msg::ListNotificationsRequest::default(), &tp)).await.ok()?;
        (n >= 1 && !list.into_inner().notifications.is_empty()).then_some(())
    })
    .await;
    assert!(consumed.is_some(), "the event is consumed");
    // …the other four arrive and are skipped as duplicates (the consumer's own count)…
    let duplicates = zhengna_test_util::eventually(Duration::from_secs(30), || async {
        let text = zhengna_platform::server::metrics_handle().render();
        text.lines()
            .find(|l| l.starts_with("consumer_duplicates_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v >= 4.0)
    })
    .await;
    assert_eq!(duplicates, Some(4.0), "four redeliveries skipped");
    // …and the inbox holds one notice.
    let list = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &tp))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.notifications.len(), 1, "five deliveries, one notice");
    pool.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_precision_push_reaches_its_segment_once() {
    use zhengna_proto::messaging::v1::push_admin_service_client::PushAdminServiceClient;
    let stack = Stack::start().await;
    let supervisor = stack.token("supervisor-jinan");
    let jinan = stack.token("taxpayer-jinan");
    let qingdao = stack.token("taxpayer-qingdao");
    // Both taxpayers are known to the directory from their own visits (login claims).
    assert_eq!(unread(&stack, &jinan).await, 0);
    assert_eq!(unread(&stack, &qingdao).await, 0);
    let mut admin = PushAdminServiceClient::new(stack.gateway_channel().await);
    let profiles = (0..3)
        .map(|i| msg::TaxpayerProfile {
            tax_id: format!("9137010200IMPORT{i:02}"),
            name: format!("导入企业{i}"),
            office_code: "13701020000".into(),
            tags: vec!["小规模纳税人".into(), if i == 0 { "高新技术企业" } else { "批发和零售业" }.into()],
        })
        .collect();
    admin.import_taxpayers(authed(msg::ImportTaxpayersRequest { profiles }, &supervisor)).await.expect("import");

    let audience = msg::PushAudience {
        taxpayer_tags: vec!["小规模纳税人".into()],
        tag_match: msg::TagMatch::Any as i32,
        ..Default::default()
    };
    let preview = admin
        .preview_audience(authed(
            msg::PreviewAudienceRequest { audience: Some(audience.clone()), sample_size: 10 },
            &supervisor,
        ))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.matched_count, 4, "jinan's own taxpayer and three imported; qingdao is outside the office");

    // Plain agents cannot push; nobody pushes outside their office.
    let err = admin
        .create_push(authed(
            msg::CreatePushRequest { client_request_id: "p0".into(), ..Default::default() },
            &stack.token("agent-jinan"),
        ))
        .await
        .expect_err("agent");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = admin
        .create_push(authed(
            msg::CreatePushRequest {
                client_request_id: "p1".into(),
                title: "x".into(),
                body: "x".into(),
                audience: Some(msg::PushAudience { office_codes: vec!["13702020000".into()], ..Default::default() }),
                ..Default::default()
            },
            &supervisor,
        ))
        .await
        .expect_err("other office");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("audience.office_codes[0]"), "{}", err.message());

    let created = admin
        .create_push(authed(
            msg::CreatePushRequest {
                client_request_id: "p2".into(),
                title: "小规模纳税人增值税优惠提醒".into(),
                body: "小规模纳税人月销售额10万元以下（季度30万元以下）免征增值税，请在申报时准确填写免税销售额。"
                    .into(),
                link_url: "/guides/small-scale-vat".into(),
                category: msg::NotificationCategory::Todo as i32,
                audience: Some(audience),
                scheduled_at: None,
            },
            &supervisor,
        ))
        .await
        .expect("create")
        .into_inner()
        .push
        .expect("push");
    assert_eq!(created.status, msg::PushStatus::Scheduled as i32);
    // Two senders at once (two replicas) still give one notice each.
    let pool = sqlx::PgPool::connect(&stack.messaging_db).await.expect("db");
    let (a, b) =
        (zhengna_messaging::push::Pushes::new(pool.clone()), zhengna_messaging::push::Pushes::new(pool.clone()));
    let now = chrono::Utc::now();
    let _ = tokio::join!(a.send_due(now), b.send_due(now));
    let sent = admin
        .get_push(authed(msg::GetPushRequest { id: created.id.clone() }, &supervisor))
        .await
        .expect("get")
        .into_inner();
    let sent = sent.push.expect("push");
    assert_eq!((sent.status, sent.recipient_count), (msg::PushStatus::Sent as i32, 4));
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let mine = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &jinan))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.notifications.len(), 1);
    assert_eq!(mine.notifications[0].kind, msg::NotificationKind::PrecisionPush as i32);
    assert_eq!(mine.notifications[0].category, msg::NotificationCategory::Todo as i32);
    let theirs = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &qingdao))
        .await
        .expect("list")
        .into_inner();
    assert!(theirs.notifications.is_empty(), "not in the segment");
    let err = admin
        .cancel_push(authed(msg::CancelPushRequest { id: created.id.clone() }, &supervisor))
        .await
        .expect_err("sent");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    pool.close().await;
    stack.stop().await;
}

/// The next update of a WatchInbox stream, skipping heartbeats.
async fn next(w: &mut tonic::Streaming<msg::WatchInboxResponse>) -> msg::watch_inbox_response::Update {
    use tokio_stream::StreamExt;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(15), w.next()).await.expect("update in time");
        match item.expect("open").expect("ok").update.expect("update") {
            msg::watch_inbox_response::Update::Heartbeat(_) => continue,
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_widget_watches_its_inbox_live() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let mut inbox = InboxServiceClient::new(stack.gateway_channel().await);
    let mut watch = inbox.watch_inbox(authed(msg::WatchInboxRequest {}, &tp)).await.expect("watch").into_inner();
    let first = next(&mut watch).await;
    assert!(matches!(first, msg::watch_inbox_response::Update::Unread(ref u) if u.total_unread == 0), "{first:?}");

    let mut mine = LeaveMessageServiceClient::new(stack.gateway_channel().await);
    let lm =
        mine.submit_leave_message(authed(leave("w1", "consult", "个税汇算什么时候开始？"), &tp)).await.expect("submit");
    let lm = lm.into_inner().leave_message.expect("lm");
    let mut desk = LeaveMessageDeskServiceClient::new(stack.gateway_channel().await);
    desk.reply_leave_message(authed(
        msg::ReplyLeaveMessageRequest {
            client_request_id: "r".into(),
            id: lm.id,
            content: "每年3月1日至6月30日。".into(),
            ..Default::default()
        },
        &stack.token("agent-jinan"),
    ))
    .await
    .expect("reply");

    let created = next(&mut watch).await;
    let msg::watch_inbox_response::Update::Created(n) = created else {
        panic!("expected the new notice, got {created:?}")
    };
    assert_eq!(n.title, "留言回复");
    let counts = next(&mut watch).await;
    assert!(matches!(counts, msg::watch_inbox_response::Update::Unread(ref u) if u.total_unread == 1), "{counts:?}");
    stack.stop().await;
}
