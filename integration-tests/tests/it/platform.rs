//! Platform behaviour every service shares: health, reflection, identity checks at the
//! service boundary, UNIMPLEMENTED naming the issue, and metrics.

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::answer::v1 as answer;
use zhengna_proto::answer::v1::speech_service_client::SpeechServiceClient;
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("url").connect().await.expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_reports_serving_for_each_of_its_services() {
    let stack = Stack::start().await;
    let checks = [
        (stack.answer, "zhengna.answer.v1.AnswerService"),
        (stack.queue, "zhengna.queue.v1.QueueService"),
        (stack.session, "zhengna.session.v1.ConversationService"),
        (stack.appointment, "zhengna.appointment.v1.AppointmentService"),
        (stack.messaging, "zhengna.messaging.v1.InboxService"),
    ];
    for (addr, service) in checks {
        let mut health = HealthClient::new(channel(addr).await);
        for name in ["", service] {
            let status =
                health.check(HealthCheckRequest { service: name.into() }).await.expect("health").into_inner().status;
            assert_eq!(status, ServingStatus::Serving as i32, "{service} `{name}`");
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_refuse_calls_without_a_valid_internal_identity() {
    let stack = Stack::start().await;
    let mut direct = ConversationServiceClient::new(channel(stack.session).await);
    let err = direct.start_conversation(pb::StartConversationRequest::default()).await.expect_err("no identity");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // Signed with another key (not the cluster's).
    let (_, other_key) = zhengna_test_util::identity();
    let caller = zhengna_platform::Caller::Taxpayer(zhengna_platform::Taxpayer {
        tax_id: "x".into(),
        name: "x".into(),
        office_code: "x".into(),
        office_name: "x".into(),
        tags: vec![],
        phone: String::new(),
    });
    let mut req = tonic::Request::new(pb::StartConversationRequest::default());
    other_key.attach(&caller, req.metadata_mut());
    let err = direct.start_conversation(req).await.expect_err("bad signature");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn later_methods_say_unimplemented_and_name_their_issue() {
    let stack = Stack::start().await;
    let mut speech = SpeechServiceClient::new(stack.gateway_channel().await);
    let err = speech
        .synthesize_speech(authed(answer::SynthesizeSpeechRequest::default(), &stack.token("taxpayer-jinan")))
        .await
        .expect_err("not yet");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(err.message().contains("issue 3"), "{}", err.message());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_grpc_calls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::start().await;
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    client
        .start_conversation(authed(
            pb::StartConversationRequest { channel: "etax".into() },
            &stack.token("taxpayer-jinan"),
        ))
        .await
        .expect("start");
    let mut conn = tokio::net::TcpStream::connect(stack.session_metrics).await.expect("metrics endpoint");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").await.expect("write");
    let mut body = String::new();
    conn.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    let line = body
        .lines()
        .find(|l| l.starts_with("grpc_server_requests_total") && l.contains("StartConversation"))
        .unwrap_or_else(|| panic!("no StartConversation counter in:\n{body}"));
    assert!(line.ends_with(" 1") || line.contains("} 1"), "{line}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_serves_the_web_build_and_answers_cors_preflight() {
    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.gateway);
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("征纳互动"));
    // Client-side routes fall back to index.html.
    let deep = http.get(format!("{base}/personal/appointments")).send().await.expect("GET deep link");
    assert_eq!(deep.status(), 200);

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/zhengna.session.v1.ConversationService/SendMessage"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
            .send()
    };
    let allowed = preflight("http://localhost:8080").await.expect("preflight");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("http://localhost:8080")
    );
    let refused = preflight("https://evil.example").await.expect("preflight");
    assert!(refused.headers().get("access-control-allow-origin").is_none(), "unknown origins get no CORS grant");
    stack.stop().await;
}

#[test]
fn every_service_migration_carries_the_platform_outbox_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = zhengna_platform::outbox::SCHEMA_SQL;
    for svc in ["answer", "queue", "session", "appointment", "messaging"] {
        let sql =
            std::fs::read_to_string(root.join(format!("services/{svc}/migrations/0001_init.sql"))).expect("migration");
        assert!(
            sql.contains(schema.trim()),
            "{svc}'s first migration must contain crates/platform/src/outbox_schema.sql verbatim"
        );
    }
}
