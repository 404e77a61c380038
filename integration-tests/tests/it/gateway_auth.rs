//! The gateway's refusals: no token, expired, forged, wrong issuer or algorithm, taxpayer →
//! staff API; and client-supplied identity metadata never reaches a service.

use zhengna_gateway::dev::Minter;
use zhengna_integration_tests::{Stack, authed};
use zhengna_platform::identity::{IDENTITY_HEADER, SIGNATURE_HEADER};
use zhengna_proto::appointment::v1 as appt;
use zhengna_proto::appointment::v1::appointment_desk_service_client::AppointmentDeskServiceClient;
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

fn start() -> pb::StartConversationRequest {
    pb::StartConversationRequest { channel: "etax".into() }
}

async fn start_with(stack: &Stack, token: Option<&str>) -> Result<pb::Conversation, tonic::Status> {
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    let req = match token {
        Some(t) => authed(start(), t),
        None => tonic::Request::new(start()),
    };
    client.start_conversation(req).await.map(|r| r.into_inner().conversation.expect("conversation"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked() {
    let stack = Stack::start().await;
    // No token at all.
    let err = start_with(&stack, None).await.expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("missing"), "{}", err.message());

    // Expired.
    let mut claims = stack.claims("taxpayer-jinan");
    claims.exp = chrono::Utc::now().timestamp() - 600;
    let expired = stack.minter.mint(&claims).expect("mint");
    let err = start_with(&stack, Some(&expired)).await.expect_err("expired");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{}", err.message());

    // Forged: same kid, signed by a key the IdP never published.
    let forger = Minter::generate("test-key-1").expect("key");
    let forged = forger.mint(&stack.claims("taxpayer-jinan")).expect("mint");
    assert_eq!(start_with(&stack, Some(&forged)).await.expect_err("forged").code(), tonic::Code::Unauthenticated);

    // Tampered payload of a real token.
    let real = stack.token("taxpayer-jinan");
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = parts.join(".");
    assert_eq!(start_with(&stack, Some(&tampered)).await.expect_err("tampered").code(), tonic::Code::Unauthenticated);

    // Wrong issuer and wrong audience.
    let mut claims = stack.claims("taxpayer-jinan");
    claims.iss = "https://evil.example".into();
    let t = stack.minter.mint(&claims).expect("mint");
    assert_eq!(start_with(&stack, Some(&t)).await.expect_err("issuer").code(), tonic::Code::Unauthenticated);
    let mut claims = stack.claims("taxpayer-jinan");
    claims.aud = Some("someone-else".into());
    let t = stack.minter.mint(&claims).expect("mint");
    assert_eq!(start_with(&stack, Some(&t)).await.expect_err("audience").code(), tonic::Code::Unauthenticated);

    // alg=none.
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::to_value(stack.claims("taxpayer-jinan")).expect("json"))
    );
    assert_eq!(start_with(&stack, Some(&none)).await.expect_err("alg none").code(), tonic::Code::Unauthenticated);

    // Garbage.
    assert_eq!(start_with(&stack, Some("not-a-jwt")).await.expect_err("garbage").code(), tonic::Code::Unauthenticated);

    // And the real token works.
    assert!(start_with(&stack, Some(&real)).await.is_ok());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn taxpayers_cannot_call_staff_services() {
    let stack = Stack::start().await;
    let mut desk = AppointmentDeskServiceClient::new(stack.gateway_channel().await);
    let err = desk
        .list_office_appointments(authed(
            appt::ListOfficeAppointmentsRequest::default(),
            &stack.token("taxpayer-jinan"),
        ))
        .await
        .expect_err("taxpayer refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // A staff token passes the gateway and reaches the unit's (empty) list.
    let list = desk
        .list_office_appointments(authed(appt::ListOfficeAppointmentsRequest::default(), &stack.token("agent-jinan")))
        .await
        .expect("staff may list")
        .into_inner();
    assert!(list.appointments.is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_identity_headers_are_ignored() {
    let stack = Stack::start().await;
    // Worst case: a correctly signed internal identity for someone else (as if the key
    // leaked). The gateway must drop it and use the token's identity.
    let impostor = zhengna_platform::Caller::Taxpayer(zhengna_platform::Taxpayer {
        tax_id: "91370202MA3DEMO02Y".into(),
        name: "青岛海岸示例科技有限公司".into(),
        office_code: "13702020000".into(),
        office_name: String::new(),
        tags: vec![],
        phone: String::new(),
    });
    let (id, sig) = stack.key.sign(&impostor, chrono::Utc::now().timestamp());
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);

    let mut req = authed(start(), &stack.token("taxpayer-jinan"));
    req.metadata_mut().insert(IDENTITY_HEADER, id.parse().expect("ascii"));
    req.metadata_mut().insert(SIGNATURE_HEADER, sig.parse().expect("ascii"));
    let conv = client.start_conversation(req).await.expect("start").into_inner().conversation.expect("c");
    assert_eq!(conv.taxpayer_id, "91370102MA3DEMO01X", "identity comes from the token, not the header");

    // Without a token the header alone gets nowhere.
    let mut req = tonic::Request::new(start());
    req.metadata_mut().insert(IDENTITY_HEADER, id.parse().expect("ascii"));
    req.metadata_mut().insert(SIGNATURE_HEADER, sig.parse().expect("ascii"));
    assert_eq!(client.start_conversation(req).await.expect_err("no token").code(), tonic::Code::Unauthenticated);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_caller_is_rate_limited_on_its_own() {
    let stack = Stack::start_with(|cfg| {
        cfg.rate_limit = zhengna_gateway::limits::RateLimitConfig { per_second: 0.5, burst: 3.0 }
    })
    .await;
    let flooding = stack.token("taxpayer-jinan");
    let calm = stack.token("taxpayer-qingdao");
    for _ in 0..3 {
        start_with(&stack, Some(&flooding)).await.expect("within the burst");
    }
    let err = start_with(&stack, Some(&flooding)).await.expect_err("over the limit");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    assert_eq!(err.get_error_details().localized_message().expect("text").message, "您的操作过于频繁，请稍后再试。");
    start_with(&stack, Some(&calm)).await.expect("another taxpayer is not affected");
    stack.stop().await;
}
