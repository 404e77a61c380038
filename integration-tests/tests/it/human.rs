//! Transfer to a human through the gateway: the bot keeps answering while queued, an
//! agent's claim switches the conversation to human mode, the agent sees everything said
//! before, and text flows both ways while the bot stays quiet.

use std::time::Duration;

use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::queue::v1 as queue;
use zhengna_proto::queue::v1::agent_desk_service_client::AgentDeskServiceClient;
use zhengna_proto::queue::v1::queue_service_client::QueueServiceClient;
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::agent_conversation_service_client::AgentConversationServiceClient;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

use crate::flow::{CATALOG_QUESTION, read_messages, text};

fn notice_kind(m: &pb::Message) -> Option<i32> {
    match m.content.as_ref()?.body.as_ref()? {
        pb::message_content::Body::SystemNotice(n) => Some(n.kind),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_then_served_by_an_agent() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let staff = stack.token("agent-jinan");
    let mut chat = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = crate::flow::start(&mut chat, &tp).await;
    let mut stream = crate::flow::subscribe(&mut chat, &conv.id, 0, &tp).await;

    // 转人工: an agent of the office is online, so the line is the district's.
    let mut desk = AgentDeskServiceClient::new(stack.gateway_channel().await);
    desk.set_presence(authed(
        queue::SetPresenceRequest { presence: queue::AgentPresence::Online as i32, capacity: 3 },
        &staff,
    ))
    .await
    .expect("online");
    let mut line = QueueServiceClient::new(stack.gateway_channel().await);
    line.enqueue_for_human(authed(
        queue::EnqueueForHumanRequest {
            conversation_id: conv.id.clone(),
            trigger: queue::QueueTrigger::Button as i32,
            ..Default::default()
        },
        &tp,
    ))
    .await
    .expect("enqueue");
    let queued = read_messages(&mut stream, 1).await;
    assert_eq!(notice_kind(&queued[0]), Some(pb::SystemNoticeKind::Queued as i32), "{queued:?}");

    // While queued the bot still answers.
    chat.send_message(authed(
        pb::SendMessageRequest {
            conversation_id: conv.id.clone(),
            client_msg_id: "q1".into(),
            content: text(CATALOG_QUESTION),
        },
        &tp,
    ))
    .await
    .expect("send while queued");
    let answered = read_messages(&mut stream, 2).await;
    assert_eq!(answered[1].sender, pb::SenderRole::Bot as i32);

    // The agent calls the next taxpayer: the widget shows the agent joining.
    desk.claim_next_entry(authed(queue::ClaimNextEntryRequest::default(), &staff)).await.expect("claim");
    let joined = read_messages(&mut stream, 1).await;
    assert_eq!(notice_kind(&joined[0]), Some(pb::SystemNoticeKind::AgentJoined as i32));

    // The agent sees everything said before, from seq 1.
    let mut agent_chat = AgentConversationServiceClient::new(stack.gateway_channel().await);
    let mut agent_stream = agent_chat
        .subscribe_conversation(authed(
            pb::SubscribeConversationRequest { conversation_id: conv.id.clone(), after_seq: 0 },
            &staff,
        ))
        .await
        .expect("agent subscribe")
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let item = tokio::time::timeout(Duration::from_secs(15), tokio_stream::StreamExt::next(&mut agent_stream))
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        if let Some(pb::subscribe_conversation_response::Event::Message(m)) = item.event {
            seen.push(m);
        }
    }
    assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);

    // Text both ways; the bot stays quiet in human mode.
    agent_chat
        .send_agent_message(authed(
            pb::SendAgentMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "a1".into(),
                content: text("您好，请问还有什么可以帮您？"),
            },
            &staff,
        ))
        .await
        .expect("agent sends");
    let from_agent = read_messages(&mut stream, 1).await;
    assert_eq!((from_agent[0].sender, from_agent[0].sender_name.as_str()), (pb::SenderRole::Agent as i32, "王税官"));
    chat.send_message(authed(
        pb::SendMessageRequest {
            conversation_id: conv.id.clone(),
            client_msg_id: "t2".into(),
            content: text("我想问一下开票的事情"),
        },
        &tp,
    ))
    .await
    .expect("taxpayer sends");
    let next = read_messages(&mut stream, 1).await;
    assert_eq!(next[0].sender, pb::SenderRole::Taxpayer as i32);
    let quiet = tokio::time::timeout(Duration::from_millis(1500), read_messages(&mut stream, 1)).await;
    assert!(quiet.is_err(), "no bot reply while an agent serves");

    // The console's views: the agent's active conversations and the whole transcript; an
    // agent of another office reaches neither.
    let active = agent_chat
        .list_active_conversations(authed(pb::ListActiveConversationsRequest::default(), &staff))
        .await
        .expect("active")
        .into_inner();
    assert_eq!(active.conversations.len(), 1);
    let summary = &active.conversations[0];
    assert_eq!(summary.conversation.as_ref().map(|c| c.id.as_str()), Some(conv.id.as_str()));
    assert_eq!(summary.last_message.as_ref().map(|m| m.sender), Some(pb::SenderRole::Taxpayer as i32));
    let full = agent_chat
        .get_conversation(authed(pb::GetConversationRequest { conversation_id: conv.id.clone() }, &staff))
        .await
        .expect("transcript")
        .into_inner();
    let seqs: Vec<u64> = full.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "every message from seq 1");
    assert!(full.taxpayer.is_some_and(|t| !t.name.is_empty()));
    let other = stack.token("agent-qingdao");
    let err = agent_chat
        .get_conversation(authed(pb::GetConversationRequest { conversation_id: conv.id.clone() }, &other))
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let theirs = agent_chat
        .list_active_conversations(authed(pb::ListActiveConversationsRequest::default(), &other))
        .await
        .expect("own list")
        .into_inner();
    assert!(theirs.conversations.is_empty());
    let err = agent_chat
        .list_active_conversations(authed(
            pb::ListActiveConversationsRequest { agent_id: "A1001".into(), ..Default::default() },
            &other,
        ))
        .await
        .expect_err("agents cannot list colleagues");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // The agent ends the service: the taxpayer sees the end and a rating request, rates once,
    // and the agent's place is free again.
    agent_chat
        .close_conversation(authed(
            pb::CloseConversationRequest { conversation_id: conv.id.clone(), ..Default::default() },
            &staff,
        ))
        .await
        .expect("close");
    let closing = read_messages(&mut stream, 2).await;
    assert_eq!(notice_kind(&closing[0]), Some(pb::SystemNoticeKind::ConversationEnded as i32));
    assert!(matches!(
        closing[1].content.as_ref().and_then(|c| c.body.as_ref()),
        Some(pb::message_content::Body::RatingRequest(_))
    ));
    let err = chat
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "t3".into(),
                content: text("还在吗"),
            },
            &tp,
        ))
        .await
        .expect_err("ended");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let rate = |result: pb::RatingResult| pb::RateConversationRequest {
        conversation_id: conv.id.clone(),
        result: result as i32,
        comment: String::new(),
    };
    chat.rate_conversation(authed(rate(pb::RatingResult::Resolved), &tp)).await.expect("rate");
    let err = chat.rate_conversation(authed(rate(pb::RatingResult::Unresolved), &tp)).await.expect_err("twice");
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    let freed = zhengna_test_util::eventually(Duration::from_secs(20), || {
        let mut desk = desk.clone();
        let staff = staff.clone();
        async move {
            let state =
                desk.get_agent_state(authed(queue::GetAgentStateRequest {}, &staff)).await.ok()?.into_inner().state?;
            (state.active_count == 0).then_some(())
        }
    })
    .await;
    assert!(freed.is_some(), "the agent's place is released when the conversation ends");

    // Another agent cannot reach the conversation.
    let err = agent_chat
        .subscribe_conversation(authed(
            pb::SubscribeConversationRequest { conversation_id: conv.id.clone(), after_seq: 0 },
            &stack.token("supervisor-jinan"),
        ))
        .await
        .expect_err("not assigned");
    assert_eq!(err.code(), tonic::Code::NotFound);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn emoji_clear_screen_history_and_preferences() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let mut chat = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = crate::flow::start(&mut chat, &tp).await;
    let send = |id: &str, content: Option<pb::MessageContent>| pb::SendMessageRequest {
        conversation_id: conv.id.clone(),
        client_msg_id: id.into(),
        content,
    };
    for i in 0..3 {
        chat.send_message(authed(send(&format!("m{i}"), text(CATALOG_QUESTION)), &tp)).await.expect("send");
    }
    // An emoji is stored and delivered; the bot does not answer emoji.
    let emoji = Some(pb::MessageContent {
        body: Some(pb::message_content::Body::Emoji(pb::EmojiContent { code: "thumbs_up".into(), alt: "赞".into() })),
    });
    let stored =
        chat.send_message(authed(send("e1", emoji), &tp)).await.expect("emoji").into_inner().message.expect("m");
    assert_eq!(stored.seq, 7, "3 questions + 3 answers, then the emoji");
    let bad = Some(pb::MessageContent {
        body: Some(pb::message_content::Body::Emoji(pb::EmojiContent { code: "<script>".into(), alt: String::new() })),
    });
    let err = chat.send_message(authed(send("e2", bad), &tp)).await.expect_err("bad emoji");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // 清屏 hides the view up to seq 7; 加载更多 still pages back through everything.
    let cleared = chat
        .clear_screen(authed(pb::ClearScreenRequest { conversation_id: conv.id.clone() }, &tp))
        .await
        .expect("clear")
        .into_inner();
    assert_eq!(cleared.cleared_through_seq, 7);
    let page = |before: u64, token: String| pb::ListHistoryRequest {
        conversation_id: conv.id.clone(),
        before_seq: before,
        page: Some(zhengna_proto::common::v1::PageRequest { page_size: 4, page_token: token }),
    };
    let first = chat.list_history(authed(page(0, String::new()), &tp)).await.expect("history").into_inner();
    assert_eq!(first.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5, 6, 7]);
    let token = first.page.expect("page").next_page_token;
    assert_eq!(token, "4");
    let second = chat.list_history(authed(page(0, token), &tp)).await.expect("more").into_inner();
    assert_eq!(second.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(second.page.expect("page").next_page_token.is_empty());
    let other = stack.token("taxpayer-qingdao");
    let err = chat.list_history(authed(page(0, String::new()), &other)).await.expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // 快捷入口 and 字体大小.
    let prefs =
        chat.get_preferences(authed(pb::GetPreferencesRequest::default(), &tp)).await.expect("prefs").into_inner();
    assert_eq!(prefs.preferences.expect("p").quick_entry_ids, ["guide", "map", "calendar"]);
    assert!(prefs.quick_entries.len() >= 8);
    let update = pb::UpdatePreferencesRequest {
        preferences: Some(pb::Preferences {
            quick_entry_ids: vec!["calendar".into(), "invoice-check".into()],
            font_size: pb::FontSize::Large as i32,
            updated_at: None,
        }),
        update_mask: None,
        channel: String::new(),
    };
    let saved =
        chat.update_preferences(authed(update, &tp)).await.expect("update").into_inner().preferences.expect("p");
    assert_eq!(
        (saved.quick_entry_ids.clone(), saved.font_size),
        (vec!["calendar".to_owned(), "invoice-check".to_owned()], pb::FontSize::Large as i32)
    );
    let only_font = pb::UpdatePreferencesRequest {
        preferences: Some(pb::Preferences { font_size: pb::FontSize::Small as i32, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["font_size".into()] }),
        channel: String::new(),
    };
    let saved =
        chat.update_preferences(authed(only_font, &tp)).await.expect("font only").into_inner().preferences.expect("p");
    assert_eq!(saved.quick_entry_ids, ["calendar", "invoice-check"], "the mask keeps the entries");
    assert_eq!(saved.font_size, pb::FontSize::Small as i32);
    let dup = pb::UpdatePreferencesRequest {
        preferences: Some(pb::Preferences {
            quick_entry_ids: vec!["map".into(), "map".into()],
            font_size: pb::FontSize::Small as i32,
            updated_at: None,
        }),
        ..Default::default()
    };
    let err = chat.update_preferences(authed(dup, &tp)).await.expect_err("duplicate");
    assert!(err.message().contains("quick_entry_ids[1]"), "{}", err.message());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_to_a_colleague_and_back_to_the_line() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let first = stack.token("agent-jinan"); // A1001
    let second = stack.token("supervisor-jinan"); // A1002, same office
    let mut chat = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = crate::flow::start(&mut chat, &tp).await;
    let mut stream = crate::flow::subscribe(&mut chat, &conv.id, 0, &tp).await;
    let mut desk = AgentDeskServiceClient::new(stack.gateway_channel().await);
    for who in [&first, &second] {
        desk.set_presence(authed(
            queue::SetPresenceRequest { presence: queue::AgentPresence::Online as i32, capacity: 2 },
            who,
        ))
        .await
        .expect("online");
    }
    let mut line = QueueServiceClient::new(stack.gateway_channel().await);
    line.enqueue_for_human(authed(
        queue::EnqueueForHumanRequest {
            conversation_id: conv.id.clone(),
            trigger: queue::QueueTrigger::Intent as i32,
            ..Default::default()
        },
        &tp,
    ))
    .await
    .expect("enqueue");
    desk.claim_next_entry(authed(queue::ClaimNextEntryRequest::default(), &first)).await.expect("claim");
    let _ = read_messages(&mut stream, 2).await; // queued, agent joined

    // To a colleague.
    let to_colleague = queue::TransferConversationRequest {
        conversation_id: conv.id.clone(),
        target: Some(queue::transfer_conversation_request::Target::AgentId("A1002".into())),
        note: "涉及出口退税，请班长处理".into(),
    };
    desk.transfer_conversation(authed(to_colleague, &first)).await.expect("transfer to colleague");
    let joined = read_messages(&mut stream, 1).await;
    assert_eq!(notice_kind(&joined[0]), Some(pb::SystemNoticeKind::AgentJoined as i32));
    assert!(format!("{:?}", joined[0].content).contains("李班长"), "{joined:?}");
    let mut agent_chat = AgentConversationServiceClient::new(stack.gateway_channel().await);
    let send = |id: &str| pb::SendAgentMessageRequest {
        conversation_id: conv.id.clone(),
        client_msg_id: id.into(),
        content: text("您好"),
    };
    let err = agent_chat.send_agent_message(authed(send("x1"), &first)).await.expect_err("no longer serving");
    assert_eq!(err.code(), tonic::Code::NotFound);
    agent_chat.send_agent_message(authed(send("x2"), &second)).await.expect("the colleague serves");
    let _ = read_messages(&mut stream, 1).await;

    // Back to the office's line: 转接中, the taxpayer cannot end the conversation.
    let to_line = queue::TransferConversationRequest {
        conversation_id: conv.id.clone(),
        target: Some(queue::transfer_conversation_request::Target::SkillGroupId(String::new())),
        note: String::new(),
    };
    desk.transfer_conversation(authed(to_line, &second)).await.expect("transfer to the line");
    let transferring = read_messages(&mut stream, 1).await;
    assert_eq!(notice_kind(&transferring[0]), Some(pb::SystemNoticeKind::Transferring as i32));
    let err = chat
        .end_conversation(authed(pb::EndConversationRequest { conversation_id: conv.id.clone() }, &tp))
        .await
        .expect_err("during transfer");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(zhengna_platform_user_message(&err).contains("转接"), "{err:?}");

    desk.claim_next_entry(authed(queue::ClaimNextEntryRequest::default(), &first)).await.expect("claim again");
    let again = read_messages(&mut stream, 1).await;
    assert_eq!(notice_kind(&again[0]), Some(pb::SystemNoticeKind::AgentJoined as i32));
    chat.end_conversation(authed(pb::EndConversationRequest { conversation_id: conv.id.clone() }, &tp))
        .await
        .expect("end after the transfer");
    stack.stop().await;
}

fn zhengna_platform_user_message(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().localized_message().map(|m| m.message.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn human_chat_passes_the_moderation_checkpoint_both_ways() {
    let stack = Stack::start().await;
    let tp = stack.token("taxpayer-jinan");
    let staff = stack.token("agent-jinan");
    let (conv, mut stream) = crate::attachments::served_conversation(&stack, &tp, &staff).await;
    let mut chat = ConversationServiceClient::new(stack.gateway_channel().await);
    let mut agent_chat = AgentConversationServiceClient::new(stack.gateway_channel().await);

    // An insult from the taxpayer reaches the agent masked.
    let sent = chat
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "m1".into(),
                content: text("你们这帮傻逼，退税到底什么时候到"),
            },
            &tp,
        ))
        .await
        .expect("send")
        .into_inner();
    assert_eq!(sent.disposition, pb::SendDisposition::Masked as i32);
    let delivered = read_messages(&mut stream, 1).await;
    let body = match delivered[0].content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::message_content::Body::Text(t)) => t.text.clone(),
        other => panic!("text expected: {other:?}"),
    };
    assert_eq!(body, "你们这帮＊＊，退税到底什么时候到");

    // Tax words are not filtered; an agent's insult is refused and never delivered.
    let ok = chat
        .send_message(authed(
            pb::SendMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "m2".into(),
                content: text("我是来问代开发票和逃税处罚的"),
            },
            &tp,
        ))
        .await
        .expect("send")
        .into_inner();
    assert_eq!(ok.disposition, pb::SendDisposition::Delivered as i32);
    let blocked = agent_chat
        .send_agent_message(authed(
            pb::SendAgentMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "a1".into(),
                content: text("你是傻逼吗"),
            },
            &staff,
        ))
        .await
        .expect("send")
        .into_inner();
    assert_eq!(blocked.disposition, pb::SendDisposition::Blocked as i32);
    assert!(blocked.message.is_none() && !blocked.notice.is_empty());
    agent_chat
        .send_agent_message(authed(
            pb::SendAgentMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "a2".into(),
                content: text("您好，退税一般在审核通过后到账。"),
            },
            &staff,
        ))
        .await
        .expect("send");
    // The taxpayer sees the second taxpayer message and the agent's polite reply, nothing else.
    let next = read_messages(&mut stream, 2).await;
    assert_eq!(
        next.iter().map(|m| m.sender).collect::<Vec<_>>(),
        [pb::SenderRole::Taxpayer as i32, pb::SenderRole::Agent as i32]
    );
    stack.stop().await;
}
