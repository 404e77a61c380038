//! Queue service tests: the real service against PostgreSQL and a tansu broker, over gRPC.

use std::time::Duration;

use futures::future::join_all;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use zhengna_platform::identity::IdentityKey;
use zhengna_platform::server::ServerConfig;
use zhengna_platform::{Agent, AgentRole, Caller, Taxpayer};
use zhengna_proto::queue::v1 as pb;
use zhengna_proto::queue::v1::agent_desk_service_client::AgentDeskServiceClient;
use zhengna_proto::queue::v1::queue_service_client::QueueServiceClient;
use zhengna_queue::{App, Config};
use zhengna_test_util::Broker;

mod groups;

const DISTRICT: &str = "13701020000";
const CITY: &str = "13701000000";

struct Svc {
    channel: Channel,
    key: IdentityKey,
    db: String,
    shutdown: CancellationToken,
    _broker: Broker,
}

impl Svc {
    async fn start() -> Self {
        let broker = Broker::start();
        let (identity, key) = zhengna_test_util::identity();
        let db = zhengna_test_util::fresh_db("queue");
        let name = db.url.expose().rsplit('/').next().unwrap_or_default().to_owned();
        let shutdown = CancellationToken::new();
        let cfg = Config {
            server: ServerConfig::with_port(0, 0),
            db,
            kafka: broker.kafka_config(),
            identity,
            assign_secs: 1,
            sweep_secs: 1,
            ..Config::default()
        };
        let app = App::build(cfg, shutdown.clone()).await.expect("queue starts");
        let channel =
            Channel::from_shared(format!("http://{}", app.addr())).expect("url").connect().await.expect("connect");
        tokio::spawn(app.run_until_stopped());
        Self { channel, key, db: name, shutdown, _broker: broker }
    }

    fn req<T>(&self, msg: T, who: &Caller) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        self.key.attach(who, r.metadata_mut());
        r
    }

    fn queue(&self) -> QueueServiceClient<Channel> {
        QueueServiceClient::new(self.channel.clone())
    }

    fn desk(&self) -> AgentDeskServiceClient<Channel> {
        AgentDeskServiceClient::new(self.channel.clone())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        zhengna_test_util::drop_databases(&[self.db]).await;
    }
}

fn taxpayer(n: usize) -> Caller {
    Caller::Taxpayer(Taxpayer {
        tax_id: format!("9137010200QUEUE{n:04}"),
        name: format!("排队企业{n}"),
        office_code: DISTRICT.into(),
        office_name: "历下区税务局".into(),
        tags: vec![],
        phone: String::new(),
    })
}

fn agent(n: usize, office: &str) -> Caller {
    Caller::Agent(Agent {
        agent_id: format!("A{n:03}"),
        name: format!("坐席{n}"),
        office_code: office.into(),
        groups: vec![],
        role: AgentRole::Agent,
    })
}

fn enqueue(conversation: &str) -> pb::EnqueueForHumanRequest {
    pb::EnqueueForHumanRequest {
        conversation_id: conversation.into(),
        trigger: pb::QueueTrigger::Button as i32,
        ..Default::default()
    }
}

fn conv(n: usize) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

async fn online(svc: &Svc, who: &Caller, capacity: i32) {
    svc.desk()
        .set_presence(svc.req(pb::SetPresenceRequest { presence: pb::AgentPresence::Online as i32, capacity }, who))
        .await
        .expect("online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_claims_never_exceed_twenty_places() {
    let svc = Svc::start().await;
    for a in 0..10 {
        online(&svc, &agent(a, DISTRICT), 2).await;
    }
    for t in 0..200 {
        svc.queue().enqueue_for_human(svc.req(enqueue(&conv(t)), &taxpayer(t))).await.expect("enqueue");
    }
    let claims = (0..200).map(|i| {
        let mut desk = svc.desk();
        let req = svc.req(pb::ClaimNextEntryRequest::default(), &agent(i % 10, DISTRICT));
        async move { desk.claim_next_entry(req).await }
    });
    let results = join_all(claims).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 20, "10 agents × capacity 2");
    let mut entries: Vec<_> =
        won.iter().map(|r| r.get_ref().assignment.as_ref().expect("a").entry.as_ref().expect("e").id.clone()).collect();
    entries.sort();
    entries.dedup();
    assert_eq!(entries.len(), 20, "no entry assigned twice");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), tonic::Code::FailedPrecondition, "{r:?}");
    }
    for a in 0..10 {
        let state =
            svc.desk().get_agent_state(svc.req(pb::GetAgentStateRequest {}, &agent(a, DISTRICT))).await.expect("state");
        let state = state.into_inner().state.expect("state");
        assert_eq!((state.active_count, state.capacity), (2, 2));
    }
    svc.stop().await;
}

/// The next position update (skipping heartbeats).
async fn next(watch: &mut tonic::Streaming<pb::WatchQueuePositionResponse>) -> pb::QueuePosition {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        if let pb::watch_queue_position_response::Update::Position(p) = item.update.expect("update") {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_taxpayer_watches_the_line_move() {
    let svc = Svc::start().await;
    online(&svc, &agent(1, DISTRICT), 3).await;
    let mut ids = Vec::new();
    for t in 0..3 {
        let r = svc
            .queue()
            .enqueue_for_human(svc.req(enqueue(&conv(t)), &taxpayer(t)))
            .await
            .expect("enqueue")
            .into_inner();
        assert_eq!(r.outcome, pb::EnqueueOutcome::Queued as i32);
        let e = r.entry.expect("entry");
        assert_eq!(e.position, t as i32 + 1);
        ids.push(e.id);
    }
    let again =
        svc.queue().enqueue_for_human(svc.req(enqueue(&conv(2)), &taxpayer(2))).await.expect("again").into_inner();
    assert_eq!(again.outcome, pb::EnqueueOutcome::AlreadyQueued as i32);

    let mut watch = svc
        .queue()
        .watch_queue_position(svc.req(pb::WatchQueuePositionRequest { entry_id: ids[2].clone() }, &taxpayer(2)))
        .await
        .expect("watch")
        .into_inner();
    let p = next(&mut watch).await;
    assert_eq!((p.position, p.waiting_count), (3, 3));
    assert!(p.notice.contains("前面还有2人"), "{}", p.notice);

    svc.desk()
        .claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &agent(1, DISTRICT)))
        .await
        .expect("claim");
    assert_eq!(next(&mut watch).await.position, 2);
    svc.queue()
        .cancel_queue_entry(svc.req(pb::CancelQueueEntryRequest { entry_id: ids[1].clone() }, &taxpayer(1)))
        .await
        .expect("cancel");
    assert_eq!(next(&mut watch).await.position, 1);
    svc.desk()
        .claim_entry(svc.req(pb::ClaimEntryRequest { entry_id: ids[2].clone() }, &agent(1, DISTRICT)))
        .await
        .expect("claim mine");
    let p = next(&mut watch).await;
    assert_eq!(p.state, pb::QueueEntryState::Assigned as i32);
    assert_eq!(p.agent.expect("agent").display_name, "坐席1");

    // Refusals: cancel after assignment, someone else's entry, a claimed entry claimed again.
    let err = svc
        .queue()
        .cancel_queue_entry(svc.req(pb::CancelQueueEntryRequest { entry_id: ids[2].clone() }, &taxpayer(2)))
        .await;
    assert_eq!(err.expect_err("assigned").code(), tonic::Code::FailedPrecondition);
    let err = svc
        .queue()
        .cancel_queue_entry(svc.req(pb::CancelQueueEntryRequest { entry_id: ids[0].clone() }, &taxpayer(9)))
        .await;
    assert_eq!(err.expect_err("not theirs").code(), tonic::Code::NotFound);
    let err =
        svc.desk().claim_entry(svc.req(pb::ClaimEntryRequest { entry_id: ids[2].clone() }, &agent(1, DISTRICT))).await;
    assert_eq!(err.expect_err("taken").code(), tonic::Code::FailedPrecondition);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unstaffed_office_routes_up_and_bad_input_is_named() {
    let svc = Svc::start().await;
    online(&svc, &agent(7, CITY), 2).await;
    let r =
        svc.queue().enqueue_for_human(svc.req(enqueue(&conv(1)), &taxpayer(1))).await.expect("enqueue").into_inner();
    assert_eq!(r.entry.expect("e").office.expect("office").code, CITY, "the district has no agents: the city serves");
    // A district agent elsewhere cannot see or take the city's line.
    let err =
        svc.desk().claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &agent(8, "13702020000"))).await;
    assert_eq!(err.expect_err("no presence").code(), tonic::Code::FailedPrecondition);
    svc.desk()
        .claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &agent(7, CITY)))
        .await
        .expect("city claims");

    let err = svc
        .queue()
        .enqueue_for_human(svc.req(
            pb::EnqueueForHumanRequest { conversation_id: "x".into(), trigger: 99, ..Default::default() },
            &taxpayer(1),
        ))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt;
    let fields: Vec<_> =
        err.get_error_details().bad_request().expect("br").field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["conversation_id", "trigger"]);
    let err = svc
        .desk()
        .set_presence(svc.req(pb::SetPresenceRequest { presence: 0, capacity: 0 }, &agent(1, DISTRICT)))
        .await;
    assert_eq!(err.expect_err("presence required").code(), tonic::Code::InvalidArgument);
    // Taxpayers cannot use the desk.
    let err = svc.desk().claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &taxpayer(1))).await;
    assert_eq!(err.expect_err("taxpayer").code(), tonic::Code::PermissionDenied);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_console_feed_shows_the_line_and_assignments() {
    use pb::watch_assignments_response::Update;
    let svc = Svc::start().await;
    let me = agent(3, DISTRICT);
    let err =
        svc.desk().watch_assignments(svc.req(pb::WatchAssignmentsRequest {}, &me)).await.expect_err("no presence yet");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    online(&svc, &me, 2).await;
    let mut feed =
        svc.desk().watch_assignments(svc.req(pb::WatchAssignmentsRequest {}, &me)).await.expect("watch").into_inner();
    let mut next = async || loop {
        let item = tokio::time::timeout(Duration::from_secs(15), feed.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        match item.update.expect("update") {
            Update::Heartbeat(_) => continue,
            other => return other,
        }
    };
    assert!(matches!(next().await, Update::State(s) if s.capacity == 2));
    assert!(
        matches!(next().await, Update::Stats(s) if s.groups[0].waiting_count == 0 && s.groups[0].online_agents == 1)
    );
    svc.queue().enqueue_for_human(svc.req(enqueue(&conv(1)), &taxpayer(1))).await.expect("enqueue");
    assert!(matches!(next().await, Update::Stats(s) if s.groups[0].waiting_count == 1));
    svc.desk().claim_next_entry(svc.req(pb::ClaimNextEntryRequest::default(), &me)).await.expect("claim");
    let assigned = next().await;
    let Update::Assigned(a) = assigned else { panic!("expected the assignment, got {assigned:?}") };
    assert_eq!(a.entry.expect("entry").conversation_id, conv(1));
    assert!(matches!(next().await, Update::Stats(s) if s.groups[0].waiting_count == 0));
    svc.stop().await;
}
