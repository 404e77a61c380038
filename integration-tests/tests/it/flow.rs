//! The first flow through the gateway (plain gRPC): a taxpayer asks a catalog question and
//! reads both messages back on Subscribe, resuming with after_seq. Also: the trace of a send
//! spans gateway → session → answer, and one taxpayer cannot reach another's conversation.

use std::time::Duration;

use tokio_stream::StreamExt;
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::answer::v1 as answer_pb;
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

pub const CATALOG_QUESTION: &str = "企业如何登录山东省电子税务局？";

pub fn text(t: &str) -> Option<pb::MessageContent> {
    Some(pb::MessageContent { body: Some(pb::message_content::Body::Text(pb::TextContent { text: t.into() })) })
}

/// Starts an `etax` conversation as the token's taxpayer.
pub async fn start(chat: &mut ConversationServiceClient<tonic::transport::Channel>, token: &str) -> pb::Conversation {
    chat.start_conversation(authed(pb::StartConversationRequest { channel: "etax".into() }, token))
        .await
        .expect("start")
        .into_inner()
        .conversation
        .expect("conversation")
}

/// Subscribes to a conversation from `after_seq`.
pub async fn subscribe(
    chat: &mut ConversationServiceClient<tonic::transport::Channel>,
    conversation_id: &str,
    after_seq: u64,
    token: &str,
) -> tonic::Streaming<pb::SubscribeResponse> {
    chat.subscribe(authed(pb::SubscribeRequest { conversation_id: conversation_id.into(), after_seq }, token))
        .await
        .expect("subscribe")
        .into_inner()
}

/// Reads messages (skipping heartbeats) until `n` arrived.
pub async fn read_messages(stream: &mut tonic::Streaming<pb::SubscribeResponse>, n: usize) -> Vec<pb::Message> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(15), stream.next()).await.expect("message within 15s");
        let item = next.expect("stream open").expect("stream item ok");
        if let Some(pb::subscribe_response::Event::Message(m)) = item.event {
            out.push(m);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_question_is_answered_and_resumable() {
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = start(&mut client, &token).await;
    assert_eq!(conv.taxpayer_id, "91370102MA3DEMO01X");
    let sent = client
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "m-1".into(),
                content: text(CATALOG_QUESTION),
            },
            &token,
        ))
        .await
        .expect("send")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(sent.seq, 1);

    let mut stream = subscribe(&mut client, &conv.id, 0, &token).await;
    let msgs = read_messages(&mut stream, 2).await;
    assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(msgs[0].sender, pb::SenderRole::Taxpayer as i32);
    assert_eq!(msgs[1].sender, pb::SenderRole::Bot as i32);
    let Some(pb::message_content::Body::BotReply(reply)) = msgs[1].content.clone().and_then(|c| c.body) else {
        panic!("second message is not a bot reply: {:?}", msgs[1]);
    };
    let reply = reply.reply.expect("reply");
    assert_eq!(reply.decision, answer_pb::Decision::Answer as i32);
    assert_eq!(reply.answer.expect("answer").catalog_id, "DL-001");

    // A retried send (same client id) neither duplicates the message nor the reply.
    let again = client
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "m-1".into(),
                content: text(CATALOG_QUESTION),
            },
            &token,
        ))
        .await
        .expect("resend")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(again.seq, 1);

    // Live delivery on the open stream: an unknown question gets a kind no-answer.
    client
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "m-2".into(),
                content: text("今天天气怎么样"),
            },
            &token,
        ))
        .await
        .expect("send 2");
    let live = read_messages(&mut stream, 2).await;
    assert_eq!(live.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4], "no duplicate, no gap after the resend");
    let Some(pb::message_content::Body::BotReply(no_answer)) = live[1].content.clone().and_then(|c| c.body) else {
        panic!("expected bot reply");
    };
    let no_answer = no_answer.reply.expect("reply");
    assert_eq!(no_answer.decision, answer_pb::Decision::NoAnswer as i32);
    assert!(no_answer.offer_leave_message);
    assert!(no_answer.text.contains("留言"), "{}", no_answer.text);

    // Resume after seq 1: only what follows.
    let mut resumed = subscribe(&mut client, &conv.id, 1, &token).await;
    let msgs = read_messages(&mut resumed, 3).await;
    assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3, 4]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_taxpayer_cannot_reach_the_conversation() {
    let stack = Stack::start().await;
    let owner = stack.token("taxpayer-jinan");
    let other = stack.token("taxpayer-qingdao");
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = start(&mut client, &owner).await;
    let send = client
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "x".into(),
                content: text("你好"),
            },
            &other,
        ))
        .await
        .expect_err("other taxpayer cannot send");
    assert_eq!(send.code(), tonic::Code::NotFound);
    let sub = client
        .subscribe(authed(pb::SubscribeRequest { conversation_id: conv.id.clone(), after_seq: 0 }, &other))
        .await
        .expect_err("other taxpayer cannot subscribe");
    assert_eq!(sub.code(), tonic::Code::NotFound);
    // Staff tokens are not taxpayers: the session service refuses them too.
    let agent = stack.token("agent-jinan");
    let mut direct = ConversationServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", stack.session))
            .expect("url")
            .connect()
            .await
            .expect("connect"),
    );
    let mut req = tonic::Request::new(pb::SubscribeRequest { conversation_id: conv.id.clone(), after_seq: 0 });
    let agent_caller = zhengna_platform::Caller::Agent(zhengna_platform::Agent {
        agent_id: "A1001".into(),
        name: "王税官".into(),
        office_code: "13701020000".into(),
        groups: vec![],
        role: zhengna_platform::AgentRole::Agent,
    });
    stack.key.attach(&agent_caller, req.metadata_mut());
    assert_eq!(direct.subscribe(req).await.expect_err("agent refused").code(), tonic::Code::PermissionDenied);
    let _ = agent;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_invalid_argument_with_the_field() {
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = client
        .start_conversation(authed(pb::StartConversationRequest { channel: String::new() }, &token))
        .await
        .expect("start")
        .into_inner()
        .conversation
        .expect("conversation");
    let too_long = "税".repeat(301);
    for (content, field) in [(text(""), "content.text.text"), (text(&too_long), "content.text.text"), (None, "content")]
    {
        let err = client
            .send_message(authed(
                pb::SendMessageRequest { conversation_id: conv.id.clone(), client_msg_id: "b".into(), content },
                &token,
            ))
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(field), "{}", err.message());
    }
    let err = client
        .start_conversation(authed(pb::StartConversationRequest { channel: "<script>".into() }, &token))
        .await
        .expect_err("bad channel");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_gateway_session_and_answer() {
    zhengna_test_util::span_capture();
    let stack = Stack::start().await;
    let token = stack.token("taxpayer-jinan");
    let mut client = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = start(&mut client, &token).await;
    // The browser starts the trace; everything downstream must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = authed(
        pb::SendMessageRequest {
            conversation_id: conv.id,
            client_msg_id: "t-1".into(),
            content: text(CATALOG_QUESTION),
        },
        &token,
    );
    req.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("ascii"));
    client.send_message(req).await.expect("send");
    let spans = zhengna_test_util::eventually(Duration::from_secs(5), || async {
        let spans: Vec<_> = zhengna_test_util::finished_spans()
            .into_iter()
            .filter(|s| s.span_context.trace_id().to_string() == trace_id)
            .map(|s| s.name.to_string())
            .collect();
        let has = |p: &str| spans.iter().any(|n| n.starts_with(p));
        (has("gateway /zhengna.session.v1.ConversationService/SendMessage")
            && has("session /zhengna.session.v1.ConversationService/SendMessage")
            && has("answer /zhengna.answer.v1.AnswerService/Ask"))
        .then_some(spans)
    })
    .await;
    assert!(
        spans.is_some(),
        "spans of trace {trace_id}: {:?}",
        zhengna_test_util::finished_spans()
            .iter()
            .map(|s| (s.name.to_string(), s.span_context.trace_id().to_string()))
            .collect::<Vec<_>>()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drafted_similar_question_gets_the_drafted_answer() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    // A similar question from seed/kb/GS.jsonl (not the standard question).
    let reply = answers
        .ask(authed(
            answer_pb::AskRequest { question: "给爸妈养老个税每月能扣多少".into(), ..Default::default() },
            &stack.token("taxpayer-person"),
        ))
        .await
        .expect("ask")
        .into_inner();
    assert_eq!(reply.decision, answer_pb::Decision::Answer as i32);
    let answer = reply.answer.expect("answer");
    assert_eq!(answer.catalog_id, "GS-019");
    assert!(reply.text.contains("3000"), "the drafted summary: {}", reply.text);
    assert!(answer.blocks.len() >= 3, "drafted blocks");
    assert_eq!(answer.citations.len(), 3, "one citation per basis");
    assert!(!reply.suggestions.is_empty(), "猜你想问 from the related items");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_answers_paraphrases_offers_choices_and_knows_its_province() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    let token = stack.token("taxpayer-person");
    let ask = |q: &str| answer_pb::AskRequest { question: q.into(), ..Default::default() };
    // Written for this test: neither the standard question nor a drafted similar one, with
    // an abbreviation (个税) and a colloquial ending.
    let reply =
        answers.ask(authed(ask("爹妈都六十多了 我是独生子 赡养老人个税一个月扣多少钱呢"), &token)).await.expect("ask");
    let reply = reply.into_inner();
    assert_eq!(reply.decision, answer_pb::Decision::Answer as i32, "{reply:?}");
    let answer = reply.answer.expect("answer");
    assert_eq!(answer.catalog_id, "GS-019");
    assert!(!answer.citations.is_empty(), "with its policy basis");
    assert!(reply.confidence > 0.5 && reply.confidence <= 1.0);

    // A bare topic word without a clarification tree gets the close candidates as choices,
    // and choosing one answers it.
    let vague = answers.ask(authed(ask("电子税务局"), &token)).await.expect("ask").into_inner();
    assert!(
        vague.decision == answer_pb::Decision::Clarify as i32 || vague.decision == answer_pb::Decision::Suggest as i32,
        "{vague:?}"
    );
    let chosen = match vague.clarification {
        Some(c) => answer_pb::AskRequest {
            clarification_node_id: c.node_id,
            selected_option_id: c.options[0].id.clone(),
            ..Default::default()
        },
        None => answer_pb::AskRequest { item_id: vague.suggestions[0].item_id.clone(), ..Default::default() },
    };
    let picked = answers.ask(authed(chosen, &token)).await.expect("choose").into_inner();
    assert_eq!(picked.decision, answer_pb::Decision::Answer as i32);

    // Another province's bureau, and chit-chat, are not answered.
    for q in ["广东电子税务局怎么登录", "今天天气怎么样"] {
        let r = answers.ask(authed(ask(q), &token)).await.expect("ask").into_inner();
        assert_eq!(r.decision, answer_pb::Decision::NoAnswer as i32, "{q}: {r:?}");
        assert!(r.offer_leave_message);
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unresolved_rounds_and_transfer_requests_propose_a_human() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    let token = stack.token("taxpayer-jinan");
    let ask = |q: &str, conversation: &str| answer_pb::AskRequest {
        question: q.into(),
        conversation_id: conversation.into(),
        ..Default::default()
    };
    // Three vague questions in a row: choices each time, a human proposed on the third.
    let mut proposals = Vec::new();
    for _ in 0..3 {
        let r = answers.ask(authed(ask("发票", "conv-rounds"), &token)).await.expect("ask").into_inner();
        assert_ne!(r.decision, answer_pb::Decision::Answer as i32);
        proposals.push(r.suggest_transfer);
    }
    assert_eq!(proposals, [false, false, true]);
    // An answer resets the count; another conversation has its own.
    let r = answers.ask(authed(ask(CATALOG_QUESTION, "conv-rounds"), &token)).await.expect("ask").into_inner();
    assert_eq!(r.decision, answer_pb::Decision::Answer as i32);
    let r = answers.ask(authed(ask("发票", "conv-rounds"), &token)).await.expect("ask").into_inner();
    assert!(!r.suggest_transfer);
    let r = answers.ask(authed(ask("发票", "conv-other"), &token)).await.expect("ask").into_inner();
    assert!(!r.suggest_transfer);

    // Asking for a person is a transfer; asking about the human service is a question.
    let r = answers.ask(authed(ask("我要转人工", ""), &token)).await.expect("ask").into_inner();
    assert_eq!(r.decision, answer_pb::Decision::Transfer as i32);
    assert!(r.suggest_transfer);
    let r = answers.ask(authed(ask("人工客服几点上班", ""), &token)).await.expect("ask").into_inner();
    assert_ne!(r.decision, answer_pb::Decision::Transfer as i32);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feedback_once_with_reason_and_autocomplete_while_typing() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    let token = stack.token("taxpayer-jinan");
    let reply = answers
        .ask(authed(
            answer_pb::AskRequest {
                question: CATALOG_QUESTION.into(),
                conversation_id: "conv-fb".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("ask")
        .into_inner();
    assert!(!reply.reply_id.is_empty());
    let feedback = |verdict: answer_pb::FeedbackVerdict, reason: answer_pb::FeedbackReason, comment: &str| {
        answer_pb::SubmitFeedbackRequest {
            reply_id: reply.reply_id.clone(),
            verdict: verdict as i32,
            reason: reason as i32,
            comment: comment.into(),
            ..Default::default()
        }
    };
    use answer_pb::{FeedbackReason as R, FeedbackVerdict as V};
    // Another taxpayer cannot rate this reply; OTHER needs its text.
    let err = answers
        .submit_feedback(authed(feedback(V::Useless, R::Unspecified, ""), &stack.token("taxpayer-qingdao")))
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = answers.submit_feedback(authed(feedback(V::Useless, R::Other, ""), &token)).await.expect_err("x");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // 无用 → the reason form → the reason, once; nothing after that.
    let first = answers
        .submit_feedback(authed(feedback(V::Useless, R::Unspecified, ""), &token))
        .await
        .expect("useless")
        .into_inner();
    assert!(first.show_reason_form);
    let second = answers
        .submit_feedback(authed(feedback(V::Useless, R::Irrelevant, "问的是扫码登录"), &token))
        .await
        .expect("reason")
        .into_inner();
    assert!(!second.show_reason_form);
    assert_eq!(second.feedback.expect("feedback").reason, R::Irrelevant as i32);
    let err = answers.submit_feedback(authed(feedback(V::Useful, R::Unspecified, ""), &token)).await.expect_err("once");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // The 无用 with its reason lands in the editors' review list, with the question asked,
    // and each step went out as FeedbackGiven.
    let mut kb = zhengna_proto::answer::v1::knowledge_admin_service_client::KnowledgeAdminServiceClient::new(
        stack.gateway_channel().await,
    );
    let review = kb
        .list_feedback(authed(
            answer_pb::ListFeedbackRequest { reasons: vec![R::Irrelevant as i32], ..Default::default() },
            &stack.token("kb-editor"),
        ))
        .await
        .expect("review list")
        .into_inner()
        .reviews;
    assert_eq!(review.len(), 1, "{review:?}");
    assert_eq!(review[0].feedback.as_ref().map(|f| f.comment.as_str()), Some("问的是扫码登录"));
    assert!(!review[0].question.is_empty() && !review[0].catalog_id.is_empty(), "{review:?}");
    let err =
        kb.list_feedback(authed(answer_pb::ListFeedbackRequest::default(), &token)).await.expect_err("editors only");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.answer_db).await.expect("db");
    let given: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'zhengna.answer.v1.FeedbackGiven'")
            .fetch_one(&mut db)
            .await
            .expect("outbox");
    assert_eq!(given, 2, "the verdict and then its reason");

    // 智能联想: typed Chinese and initials, ≤ 10, with highlights.
    let typed = answers
        .suggest_questions(authed(answer_pb::SuggestQuestionsRequest { text: "电子税务局".into(), limit: 0 }, &token))
        .await
        .expect("suggest")
        .into_inner()
        .suggestions;
    assert!(!typed.is_empty() && typed.len() <= 10);
    assert!(typed[0].question.contains("电子税务局"));
    assert_eq!(typed[0].highlights.len(), 1);
    let initials = answers
        .suggest_questions(authed(answer_pb::SuggestQuestionsRequest { text: "dzswj".into(), limit: 5 }, &token))
        .await
        .expect("suggest")
        .into_inner()
        .suggestions;
    assert!(!initials.is_empty() && initials.len() <= 5);
    // Initials first, then fuzzy matches through the pinyin of KB terms.
    assert!(initials[..3].iter().all(|s| s.question.starts_with("电子税务局")), "{initials:?}");
    assert!(initials.iter().all(|s| s.question.contains("电子税务局")), "{initials:?}");
    let err = answers
        .suggest_questions(authed(answer_pb::SuggestQuestionsRequest { text: "x".into(), limit: 11 }, &token))
        .await
        .expect_err("limit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_level_clarification_is_walked_to_an_answer() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    let token = stack.token("taxpayer-jinan");
    let first = answers
        .ask(authed(answer_pb::AskRequest { question: "发票".into(), ..Default::default() }, &token))
        .await
        .expect("ask")
        .into_inner();
    assert_eq!(first.decision, answer_pb::Decision::Clarify as i32);
    let c = first.clarification.expect("clarification");
    assert_eq!((c.prompt.as_str(), c.round), ("请问您想咨询发票的哪方面问题？", 1));
    let pick = |node: &str, option: &str| answer_pb::AskRequest {
        clarification_node_id: node.into(),
        selected_option_id: option.into(),
        ..Default::default()
    };
    // 开具发票 → 开票时遇到的是哪类问题？ → 在哪开、怎么开 → FP-001.
    let open = c.options.iter().find(|o| o.label == "开具发票").expect("option");
    let second = answers.ask(authed(pick(&c.node_id, &open.id), &token)).await.expect("choose").into_inner();
    assert_eq!(second.decision, answer_pb::Decision::Clarify as i32);
    let c2 = second.clarification.expect("second level");
    assert_eq!(c2.round, 2);
    let how = c2.options.iter().find(|o| o.label == "在哪开、怎么开").expect("option");
    let answer = answers.ask(authed(pick(&c2.node_id, &how.id), &token)).await.expect("choose").into_inner();
    assert_eq!(answer.decision, answer_pb::Decision::Answer as i32);
    assert_eq!(answer.answer.expect("answer").catalog_id, "FP-001");
    // A made-up option is a clear error, not a guess.
    let err = answers.ask(authed(pick(&c2.node_id, "42"), &token)).await.expect_err("bad option");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agitated_taxpayer_is_soothed_and_insults_are_masked_on_record() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    use zhengna_proto::answer::v1::moderation_service_client::ModerationServiceClient;
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let mut answers = AnswerServiceClient::new(channel.clone());
    let token = stack.token("taxpayer-jinan");
    let r = answers
        .ask(authed(
            answer_pb::AskRequest {
                question: "什么破系统！！！我要投诉你们，个税汇算到底怎么退税".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("ask")
        .into_inner();
    assert_eq!(r.emotion, answer_pb::Emotion::Angry as i32);
    assert!(r.suggest_transfer);
    assert!(r.text.starts_with("非常理解您的心情"), "{}", r.text);
    // Tax words that sit on sensitive lists are ordinary questions here.
    let r = answers
        .ask(authed(answer_pb::AskRequest { question: "代开发票要交哪些税".into(), ..Default::default() }, &token))
        .await
        .expect("ask")
        .into_inner();
    assert_eq!(r.emotion, answer_pb::Emotion::Neutral as i32);
    assert_ne!(r.text, "您的消息中包含不适宜的内容，请修改后再发送。");

    // Staff check their own messages; an insult is blocked and recorded.
    let mut moderation = ModerationServiceClient::new(channel.clone());
    let staff = stack.token("agent-jinan");
    let c = moderation
        .check_content(authed(
            answer_pb::CheckContentRequest {
                text: "你是傻逼吗".into(),
                direction: answer_pb::ContentDirection::AgentOutput as i32,
                ..Default::default()
            },
            &staff,
        ))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(c.verdict, answer_pb::ModerationVerdict::Block as i32);
    assert!(!c.interception_id.is_empty());
    let c = moderation
        .check_content(authed(
            answer_pb::CheckContentRequest {
                text: "你们这帮傻逼".into(),
                direction: answer_pb::ContentDirection::TaxpayerInput as i32,
                ..Default::default()
            },
            &staff,
        ))
        .await
        .expect("check")
        .into_inner();
    assert_eq!((c.verdict, c.masked_text.as_str()), (answer_pb::ModerationVerdict::Mask as i32, "你们这帮＊＊"));
    // Taxpayers cannot call the moderation service through the gateway.
    let err = moderation
        .check_content(authed(
            answer_pb::CheckContentRequest { text: "x".into(), direction: 1, ..Default::default() },
            &token,
        ))
        .await
        .expect_err("staff only");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_hot_questions_and_hot_words_follow_what_is_asked() {
    use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
    use zhengna_proto::common::v1::PageRequest;
    let stack = Stack::start().await;
    let mut answers = AnswerServiceClient::new(stack.gateway_channel().await);
    let token = stack.token("taxpayer-jinan");
    // Ask one invoice question three times: its topic and the question rise to the top.
    let mut item = String::new();
    for _ in 0..3 {
        let r = answers
            .ask(authed(
                answer_pb::AskRequest {
                    question: "数电发票在电子税务局哪里开具？怎么操作？".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("ask")
            .into_inner();
        item = r.answer.expect("answered").item_id;
    }
    let packages = answers
        .list_packages(authed(answer_pb::ListPackagesRequest::default(), &token))
        .await
        .expect("packages")
        .into_inner()
        .packages;
    assert!(packages.len() >= 2, "{packages:?}");
    assert_eq!((packages[0].topic_id.as_str(), packages[0].rank, packages[0].ask_count), ("FP", 1, 3));
    let questions = answers
        .list_package_questions(authed(
            answer_pb::ListPackageQuestionsRequest { topic_id: "FP".into(), page: None },
            &token,
        ))
        .await
        .expect("package questions")
        .into_inner();
    assert_eq!((questions.questions[0].item_id.as_str(), questions.questions[0].ask_count), (item.as_str(), 3));
    let err = answers
        .list_package_questions(authed(
            answer_pb::ListPackageQuestionsRequest { topic_id: "DL".into(), page: None },
            &token,
        ))
        .await
        .expect_err("DL is not a package");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let hot = answers
        .get_hot_recommendations(authed(
            answer_pb::GetHotRecommendationsRequest { question_limit: 5, ..Default::default() },
            &token,
        ))
        .await
        .expect("hot")
        .into_inner();
    assert_eq!(hot.questions.len(), 5);
    assert_eq!(hot.questions[0].item_id, item);
    // 相关文件: the policy documents behind those questions, most asked first.
    assert!(!hot.files.is_empty() && hot.files.len() <= 5, "{:?}", hot.files);
    assert!(hot.files.iter().all(|f| f.url.starts_with("https://") && !f.title.is_empty()), "{:?}", hot.files);
    assert!(hot.files[0].summary.contains(&hot.questions[0].question), "{:?}", hot.files[0]);

    // The answer of a listed question, on its own.
    let got = answers
        .get_answer(authed(answer_pb::GetAnswerRequest { item_id: item.clone() }, &token))
        .await
        .expect("get answer")
        .into_inner();
    assert!(!got.superseded);
    assert_eq!(got.answer.expect("answer").item_id, item);
    let missing = answers
        .get_answer(authed(answer_pb::GetAnswerRequest { item_id: uuid::Uuid::new_v4().to_string() }, &token))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // 热词 come from what was asked (recomputed every second in tests).
    let mut from_asks = Vec::new();
    for _ in 0..50 {
        let words = answers
            .list_hot_words(authed(answer_pb::ListHotWordsRequest::default(), &token))
            .await
            .expect("hot words")
            .into_inner()
            .words;
        from_asks = words.into_iter().filter(|w| w.heat > 0.0).collect::<Vec<_>>();
        if !from_asks.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!from_asks.is_empty(), "hot words from the ask log");
    let asked: Vec<&str> = from_asks.iter().map(|w| w.word.as_str()).collect();
    assert!(asked.contains(&"数电发票") && asked.contains(&"开具"), "{from_asks:?}");

    // 热词 with 换一批: pages of distinct words.
    let page = |token: &str| answer_pb::ListHotWordsRequest {
        page: Some(PageRequest { page_size: 6, page_token: token.into() }),
    };
    let first = answers.list_hot_words(authed(page(""), &token)).await.expect("hot words").into_inner();
    assert_eq!(first.words.len(), 6);
    assert_eq!(first.words.iter().map(|w| w.rank).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    let next = first.page.expect("page").next_page_token;
    let second = answers.list_hot_words(authed(page(&next), &token)).await.expect("换一批").into_inner();
    assert!(second.words.iter().all(|w| !first.words.iter().any(|f| f.word == w.word)));
    stack.stop().await;
}
