//! Skill groups, business hours, abandonment and auto-assignment.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use zhengna_platform::{Agent, AgentRole, Caller};
use zhengna_proto::common::v1 as common;
use zhengna_proto::queue::v1 as pb;
use zhengna_proto::queue::v1::queue_admin_service_client::QueueAdminServiceClient;

use super::{CITY, DISTRICT, Svc, agent, conv, online, taxpayer};

fn supervisor(office: &str) -> Caller {
    Caller::Agent(Agent {
        agent_id: format!("S-{office}"),
        name: "班长".into(),
        office_code: office.into(),
        groups: vec![],
        role: AgentRole::Supervisor,
    })
}

fn admin(svc: &Svc) -> QueueAdminServiceClient<tonic::transport::Channel> {
    QueueAdminServiceClient::new(svc.channel.clone())
}

fn group(name: &str, prefixes: &[&str], default: bool, mode: pb::AssignmentMode) -> pb::SkillGroup {
    pb::SkillGroup {
        name: name.into(),
        topic_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        is_default: default,
        assignment_mode: mode as i32,
        ..Default::default()
    }
}

async fn create(svc: &Svc, who: &Caller, g: pb::SkillGroup) -> Result<pb::SkillGroup, tonic::Status> {
    admin(svc)
        .create_skill_group(
            svc.req(pb::CreateSkillGroupRequest { client_request_id: String::new(), skill_group: Some(g) }, who),
        )
        .await
        .map(|r| r.into_inner().skill_group.expect("group"))
}

async fn members(svc: &Svc, g: &pb::SkillGroup, ids: &[&str]) {
    admin(svc)
        .set_skill_group_members(svc.req(
            pb::SetSkillGroupMembersRequest {
                skill_group_id: g.id.clone(),
                agent_ids: ids.iter().map(|s| s.to_string()).collect(),
            },
            &supervisor(DISTRICT),
        ))
        .await
        .expect("members");
}

fn fields(err: &tonic::Status) -> Vec<String> {
    err.get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

async fn enqueue_topic(svc: &Svc, n: usize, topic: &str) -> pb::EnqueueForHumanResponse {
    svc.queue()
        .enqueue_for_human(svc.req(
            pb::EnqueueForHumanRequest {
                conversation_id: conv(n),
                trigger: pb::QueueTrigger::Button as i32,
                topic_hint: topic.into(),
                ..Default::default()
            },
            &taxpayer(n),
        ))
        .await
        .expect("enqueue")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_route_by_topic_and_only_members_claim_them() {
    let svc = Svc::start().await;
    let boss = supervisor(DISTRICT);
    // Refusals first: an agent may not manage groups, a supervisor only in their subtree,
    // and bad fields are named.
    let err = create(&svc, &agent(1, DISTRICT), group("发票业务组", &["FP"], false, pb::AssignmentMode::Manual)).await;
    assert_eq!(err.expect_err("agent").code(), Code::PermissionDenied);
    let mut elsewhere = group("发票业务组", &["FP"], false, pb::AssignmentMode::Manual);
    elsewhere.office_code = "13702020000".into();
    assert_eq!(create(&svc, &boss, elsewhere).await.expect_err("other district").code(), Code::PermissionDenied);
    let mut bad = group("", &["F P"], false, pb::AssignmentMode::Manual);
    bad.max_wait_minutes = -1;
    let err = create(&svc, &boss, bad).await.expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["skill_group.name", "skill_group.topic_prefixes", "skill_group.max_wait_minutes"]);

    let fp = create(&svc, &boss, group("发票业务组", &["fp"], false, pb::AssignmentMode::Manual)).await.expect("fp");
    assert_eq!(fp.topic_prefixes, ["FP"], "prefixes are stored upper-case");
    let general =
        create(&svc, &boss, group("综合咨询组", &[], true, pb::AssignmentMode::Manual)).await.expect("default");
    let err = create(&svc, &boss, group("另一个默认组", &[], true, pb::AssignmentMode::Manual)).await;
    assert_eq!(err.expect_err("one default per office").code(), Code::InvalidArgument);
    members(&svc, &fp, &["A001"]).await;
    members(&svc, &general, &["A002"]).await;
    online(&svc, &agent(1, DISTRICT), 3).await;
    online(&svc, &agent(2, DISTRICT), 3).await;

    let invoice = enqueue_topic(&svc, 1, "FP01").await.entry.expect("entry");
    assert_eq!(invoice.skill_group_id, fp.id);
    assert_eq!(invoice.skill_group_name, "发票业务组");
    let other = enqueue_topic(&svc, 2, "SB").await.entry.expect("entry");
    assert_eq!(other.skill_group_id, general.id, "no prefix matches: the default group");
    assert_eq!(other.position, 1, "positions count within the group");

    // A002 is not in the invoice group: the older invoice entry is not theirs to take.
    let claimed = svc
        .desk()
        .claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &agent(2, DISTRICT)))
        .await
        .expect("claim")
        .into_inner();
    assert_eq!(claimed.assignment.expect("a").entry.expect("e").id, other.id);
    let err = svc
        .desk()
        .claim_entry(svc.req(pb::ClaimEntryRequest { entry_id: invoice.id.clone() }, &agent(2, DISTRICT)))
        .await;
    assert_eq!(err.expect_err("not a member").code(), Code::FailedPrecondition);
    let claimed = svc
        .desk()
        .claim_next_entry(svc.req(pb::ClaimNextEntryRequest { skill_group_id: fp.id.clone() }, &agent(1, DISTRICT)))
        .await
        .expect("member claims")
        .into_inner();
    assert_eq!(claimed.assignment.expect("a").entry.expect("e").id, invoice.id);

    let listed = admin(&svc)
        .list_skill_groups(svc.req(pb::ListSkillGroupsRequest::default(), &boss))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = listed.skill_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["发票业务组", "综合咨询组"]);
    let agents = svc
        .desk()
        .list_agents(
            svc.req(pb::ListAgentsRequest { skill_group_id: fp.id.clone(), ..Default::default() }, &agent(2, DISTRICT)),
        )
        .await
        .expect("agents")
        .into_inner();
    let ids: Vec<_> = agents.agents.iter().map(|a| a.agent.as_ref().expect("ref").id.as_str()).collect();
    assert_eq!(ids, ["A001"]);
    assert_eq!(agents.agents[0].skill_group_ids, std::slice::from_ref(&fp.id));
    // A group with people in it cannot be deleted.
    let err = admin(&svc).delete_skill_group(svc.req(pb::DeleteSkillGroupRequest { id: fp.id.clone() }, &boss)).await;
    assert_eq!(err.expect_err("busy").code(), Code::FailedPrecondition);
    svc.stop().await;
}

fn closed_now_schedule(office: &str) -> pb::BusinessHoursSchedule {
    use chrono::Timelike;
    let hour = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("cst")).hour() as i32;
    let start = (hour + 2) % 24;
    let window = common::TimeWindow {
        start: Some(common::TimeOfDay { hours: start, minutes: 0 }),
        end: Some(common::TimeOfDay { hours: start + 1, minutes: 0 }),
    };
    pb::BusinessHoursSchedule {
        office_code: office.into(),
        weekly: (1..=7).map(|d| pb::WeekdayHours { weekday: d, windows: vec![window] }).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_business_hours_nothing_is_queued_and_waiting_entries_end() {
    let svc = Svc::start().await;
    online(&svc, &agent(7, CITY), 2).await;
    // Someone queues while the city is open (no schedule anywhere: always open).
    let early = enqueue_topic(&svc, 1, "").await;
    assert_eq!(early.outcome, pb::EnqueueOutcome::Queued as i32);

    let mut bad = closed_now_schedule(CITY);
    bad.weekly[0].windows[0].end = Some(common::TimeOfDay { hours: 0, minutes: 0 });
    let err = admin(&svc)
        .update_business_hours_schedule(
            svc.req(pb::UpdateBusinessHoursScheduleRequest { schedule: Some(bad) }, &supervisor(CITY)),
        )
        .await
        .expect_err("end before start");
    assert_eq!(fields(&err), ["schedule.weekly[0].windows[0]"]);
    let err = admin(&svc)
        .update_business_hours_schedule(svc.req(
            pb::UpdateBusinessHoursScheduleRequest { schedule: Some(closed_now_schedule(CITY)) },
            &supervisor(DISTRICT),
        ))
        .await;
    assert_eq!(err.expect_err("the city is above the district").code(), Code::PermissionDenied);
    admin(&svc)
        .update_business_hours_schedule(svc.req(
            pb::UpdateBusinessHoursScheduleRequest { schedule: Some(closed_now_schedule(CITY)) },
            &supervisor(CITY),
        ))
        .await
        .expect("schedule");

    let hours = svc
        .queue()
        .get_business_hours(svc.req(pb::GetBusinessHoursRequest::default(), &taxpayer(2)))
        .await
        .expect("hours")
        .into_inner()
        .business_hours
        .expect("bh");
    assert!(!hours.open_now);
    assert!(hours.next_open_at.is_some());
    assert!(hours.notice.contains("人工服务时间"), "{}", hours.notice);

    let r = enqueue_topic(&svc, 2, "").await;
    assert_eq!(r.outcome, pb::EnqueueOutcome::Closed as i32);
    assert!(r.entry.is_none());
    assert!(r.offer_leave_message && r.offer_appointment);
    assert!(r.business_hours.is_some_and(|b| !b.open_now));

    // The early entry is ended by the closing sweep.
    let id = early.entry.expect("entry").id;
    let mut state = 0;
    for _ in 0..50 {
        let mut watch = svc
            .queue()
            .watch_queue_position(svc.req(pb::WatchQueuePositionRequest { entry_id: id.clone() }, &taxpayer(1)))
            .await
            .expect("watch")
            .into_inner();
        if let Some(Ok(pb::WatchQueuePositionResponse {
            update: Some(pb::watch_queue_position_response::Update::Position(p)),
        })) = tokio_stream::StreamExt::next(&mut watch).await
        {
            state = p.state;
        }
        if state == pb::QueueEntryState::Expired as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, pb::QueueEntryState::Expired as i32);
    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", svc.db)).await.expect("db");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'zhengna.queue.v1.EntryExpired'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(events, 1);
    pool.close().await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_group_refuses_and_an_overdue_entry_is_abandoned() {
    let svc = Svc::start().await;
    let mut g = group("发票业务组", &["FP"], true, pb::AssignmentMode::Manual);
    g.max_waiting = 1;
    g.max_wait_minutes = 1;
    create(&svc, &supervisor(DISTRICT), g).await.expect("group");
    let first = enqueue_topic(&svc, 1, "FP").await;
    assert_eq!(first.outcome, pb::EnqueueOutcome::Queued as i32);
    let second = enqueue_topic(&svc, 2, "FP").await;
    assert_eq!(second.outcome, pb::EnqueueOutcome::QueueFull as i32);
    assert!(second.entry.is_none() && second.offer_leave_message);
    // Nobody claims it: once it has waited past the group's limit it is dropped.
    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", svc.db)).await.expect("db");
    sqlx::query("UPDATE queue_entries SET enqueued_at = now() - interval '2 minutes'")
        .execute(&pool)
        .await
        .expect("age");
    let mut state = String::new();
    for _ in 0..50 {
        state = sqlx::query_scalar("SELECT state FROM queue_entries").fetch_one(&pool).await.expect("state");
        if state == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "expired");
    let reason: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'zhengna.queue.v1.EntryExpired'")
            .fetch_one(&pool)
            .await
            .expect("event");
    let event = <pb::QueueEvent as prost::Message>::decode(reason.as_slice()).expect("decode");
    match event.payload {
        Some(pb::queue_event::Payload::EntryExpired(e)) => assert_eq!(e.reason, "max_wait"),
        other => panic!("unexpected {other:?}"),
    }
    // The line has room again.
    assert_eq!(enqueue_topic(&svc, 2, "FP").await.outcome, pb::EnqueueOutcome::Queued as i32);
    pool.close().await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_assignment_serves_the_longest_idle_agent_within_capacity() {
    let svc = Svc::start().await;
    let g =
        create(&svc, &supervisor(DISTRICT), group("自动分配组", &[], true, pb::AssignmentMode::Auto)).await.expect("g");
    members(&svc, &g, &["A001", "A002"]).await;
    online(&svc, &agent(1, DISTRICT), 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    online(&svc, &agent(2, DISTRICT), 1).await;
    // An online non-member gets nothing from this group.
    online(&svc, &agent(3, DISTRICT), 5).await;
    for n in 1..=3 {
        enqueue_topic(&svc, n, "").await;
    }
    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", svc.db)).await.expect("db");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for _ in 0..50 {
        rows = sqlx::query_as("SELECT conversation_id, state, agent_id FROM queue_entries ORDER BY enqueued_at")
            .fetch_all(&pool)
            .await
            .expect("rows");
        if rows.iter().filter(|r| r.1 == "assigned").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary: Vec<(&str, &str)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_str())).collect();
    assert_eq!(
        summary,
        [("assigned", "A001"), ("assigned", "A002"), ("waiting", "")],
        "the agent idle longest first, one each (capacity 1), the third waits"
    );
    let over: i64 = sqlx::query_scalar("SELECT count(*) FROM agents WHERE active_count > capacity")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(over, 0);
    let via: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'zhengna.queue.v1.EntryAssigned' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("event");
    match <pb::QueueEvent as prost::Message>::decode(via.as_slice()).expect("decode").payload {
        Some(pb::queue_event::Payload::EntryAssigned(e)) => assert_eq!(e.via, pb::AssignmentVia::Auto as i32),
        other => panic!("unexpected {other:?}"),
    }
    pool.close().await;
    svc.stop().await;
}
