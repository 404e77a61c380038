//! Around the bot, through the gateway: the anti-harassment ladder end to end (warn → mute →
//! block, with its interception records, the supervisor's list and lift), and the KB
//! editors' Excel import (a bad row → a per-row report and nothing written) and export.

use sqlx::Connection as _;
use zhengna_answer::exchange::{self, FileItem};
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::answer::v1 as pb;
use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
use zhengna_proto::answer::v1::knowledge_admin_service_client::KnowledgeAdminServiceClient;
use zhengna_proto::answer::v1::moderation_admin_service_client::ModerationAdminServiceClient;

async fn ask(answers: &mut AnswerServiceClient<tonic::transport::Channel>, token: &str, q: &str) -> pb::AskResponse {
    answers
        .ask(authed(pb::AskRequest { question: q.into(), ..Default::default() }, token))
        .await
        .expect("ask")
        .into_inner()
}

/// A catalog question, asked politely.
const POLITE: &str = "个税综合所得年度汇算什么时候办？";

#[tokio::test(flavor = "multi_thread")]
async fn harassment_climbs_the_ladder_on_record_and_a_supervisor_lifts_it() {
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let mut answers = AnswerServiceClient::new(channel.clone());
    let mut admin = ModerationAdminServiceClient::new(channel.clone());
    let mut claims = stack.claims("taxpayer-jinan");
    claims.sub = "91370102LADDER0001".into();
    let token = stack.minter.mint(&claims).expect("mint");
    let supervisor = stack.token("supervisor-jinan");
    let sender = format!("taxpayer:{}", claims.sub);

    // The same question four times is a taxpayer retrying; the fifth is repetition: a warning,
    // and the question is still answered.
    for _ in 0..4 {
        let r = ask(&mut answers, &token, "企业如何登录山东省电子税务局？").await;
        assert_eq!(r.decision, pb::Decision::Answer as i32);
        assert!(!r.text.contains("温馨提示"), "{}", r.text);
    }
    let warned = ask(&mut answers, &token, "企业如何登录山东省电子税务局？").await;
    assert_eq!(warned.decision, pb::Decision::Answer as i32, "a warning still answers");
    assert!(warned.text.starts_with("温馨提示"), "{}", warned.text);
    assert!(warned.muted_until.is_none());

    // An insult is the second strike: muted, not answered.
    let muted = ask(&mut answers, &token, "你们这帮傻逼，退税到底怎么办").await;
    assert_eq!(muted.decision, pb::Decision::NoAnswer as i32);
    assert!(muted.text.contains("暂时禁言"), "{}", muted.text);
    let until = muted.muted_until.expect("muted until").seconds;
    let minutes = (until - chrono::Utc::now().timestamp()) as f64 / 60.0;
    assert!((8.0..=10.5).contains(&minutes), "muted for the configured 10 minutes, got {minutes}");
    // While muted, even a polite question is held back.
    let held = ask(&mut answers, &token, POLITE).await;
    assert_eq!((held.decision, held.muted_until.map(|t| t.seconds)), (pb::Decision::NoAnswer as i32, Some(until)));

    // The supervisor sees the records with their evidence and the sender's standing.
    let records = admin
        .list_interceptions(authed(
            pb::ListInterceptionsRequest { sender_id: sender.clone(), ..Default::default() },
            &supervisor,
        ))
        .await
        .expect("list")
        .into_inner()
        .interceptions;
    let signals: Vec<Vec<i32>> = records.iter().map(|r| r.harassment_signals.clone()).collect();
    assert_eq!(records.len(), 3, "warn, mute, held back: {records:?}");
    assert_eq!(signals[2], vec![pb::HarassmentSignal::Repetition as i32], "oldest last");
    assert_eq!(signals[1], vec![pb::HarassmentSignal::Abuse as i32]);
    assert_eq!(records[1].verdict, pb::ModerationVerdict::Throttle as i32);
    assert!(records[1].text.contains("傻逼"), "the evidence is kept unmasked for supervisors");
    assert_eq!(records[0].verdict, pb::ModerationVerdict::Throttle as i32);
    let standing = admin
        .list_restrictions(authed(pb::ListRestrictionsRequest { active_only: true, ..Default::default() }, &supervisor))
        .await
        .expect("restrictions")
        .into_inner()
        .restrictions;
    let mine = standing.iter().find(|r| r.sender_id == sender).expect("listed while muted");
    assert_eq!((mine.level, mine.strikes), (pb::RestrictionLevel::Muted as i32, 2));
    assert_eq!(mine.interception_id, records[1].id);

    // Only supervisors: an agent and a taxpayer are refused.
    for who in [stack.token("agent-jinan"), token.clone()] {
        let err = admin
            .list_restrictions(authed(pb::ListRestrictionsRequest::default(), &who))
            .await
            .expect_err("supervisors only");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }

    // The mute runs out (time moved on in the database); the next insult blocks for a day.
    let mut db = sqlx::PgConnection::connect(&stack.answer_db).await.expect("db");
    sqlx::query("UPDATE restrictions SET muted_until = now() - interval '1 second' WHERE sender_id = $1")
        .bind(&sender)
        .execute(&mut db)
        .await
        .expect("expire the mute");
    assert_eq!(ask(&mut answers, &token, POLITE).await.decision, pb::Decision::Answer as i32);
    let blocked = ask(&mut answers, &token, "什么垃圾系统，傻逼").await;
    let hours = (blocked.muted_until.expect("blocked").seconds - chrono::Utc::now().timestamp()) as f64 / 3600.0;
    assert!((23.5..=24.1).contains(&hours), "blocked for 24 hours, got {hours}");

    // Lifting needs a reason; then the taxpayer is answered again and strikes start over.
    let err = admin
        .lift_restriction(authed(
            pb::LiftRestrictionRequest { sender_id: sender.clone(), reason: " ".into() },
            &supervisor,
        ))
        .await
        .expect_err("reason required");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("reason"), "{}", err.message());
    let lifted = admin
        .lift_restriction(authed(
            pb::LiftRestrictionRequest {
                sender_id: sender.clone(), reason: "纳税人来电致歉，核实为误操作".into()
            },
            &supervisor,
        ))
        .await
        .expect("lift")
        .into_inner()
        .restriction
        .expect("restriction");
    assert_eq!(
        (lifted.level, lifted.strikes, lifted.lifted_by.as_str()),
        (pb::RestrictionLevel::Lifted as i32, 0, "A1002")
    );
    let again = ask(&mut answers, &token, POLITE).await;
    assert_eq!((again.decision, again.muted_until), (pb::Decision::Answer as i32, None));

    // Every strike left an event for the rest of the platform, in order.
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE key = $1 AND event_type LIKE '%Harassment%' ORDER BY id",
    )
    .bind(&sender)
    .fetch_all(&mut db)
    .await
    .expect("outbox");
    assert_eq!(events.len(), 3, "{events:?}");
    let stats = admin
        .get_interception_stats(authed(pb::GetInterceptionStatsRequest::default(), &supervisor))
        .await
        .expect("stats")
        .into_inner()
        .days;
    assert_eq!(stats.len(), 7);
    let today = stats.last().expect("today");
    assert!(today.throttled >= 2 && today.muted_senders >= 1, "{today:?}");
    stack.stop().await;
}

fn header() -> Vec<String> {
    exchange::COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect()
}

fn new_item(id: &str, question: &str) -> FileItem {
    FileItem {
        catalog_id: id.into(),
        topic: "数电发票开具与管理".into(),
        standard_question: question.into(),
        similar_questions: vec!["数电票冲红以后还能再开吗".into(), "红冲完了重新开票".into()],
        keywords: vec!["重新开具".into()],
        summary: "红冲后可以按正确信息重新开具蓝字发票。".into(),
        blocks: vec![exchange::Block {
            kind: "steps".into(),
            items: vec!["先完成红冲。".into(), "再在【蓝字发票开具】中按正确信息开票。".into()],
            ..Default::default()
        }],
        citations: vec![exchange::Cite {
            article_id: None, text: "《中华人民共和国发票管理办法》".into()
        }],
        related: vec!["FP-005".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excel_import_with_a_bad_row_reports_it_and_writes_nothing() {
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let mut kb = KnowledgeAdminServiceClient::new(channel.clone());
    let mut answers = AnswerServiceClient::new(channel.clone());
    let editor = stack.token("kb-editor");

    // The editor starts from an export of one item, edits it, and adds two new ones; the
    // third new row is wrong in two places.
    let export = kb
        .export_items(authed(
            pb::ExportItemsRequest {
                format: pb::ItemFileFormat::Xlsx as i32,
                filter: Some(pb::ItemFilter { catalog_id: "FP-001".into(), ..Default::default() }),
            },
            &editor,
        ))
        .await
        .expect("export")
        .into_inner();
    assert_eq!(export.item_count, 1);
    assert!(export.file_name.ends_with(".xlsx"));
    let rows = exchange::parse_xlsx(&export.content).expect("our own export reads back");
    let mut fp001 = rows[0].1.clone().expect("row");
    assert_eq!(fp001.catalog_id, "FP-001");
    assert!(fp001.similar_questions.len() >= 4 && !fp001.citations.is_empty());
    fp001.keywords.push("开票操作入口位置".into());
    let good = new_item("FP-901", "数电发票红冲后怎么重新开具？");
    let bad = FileItem { catalog_id: "FP901x".into(), related: vec!["FP-999".into()], ..new_item("", "发票重开") };
    let file = exchange::write_xlsx(&[
        header(),
        exchange::xlsx_row(&fp001),
        exchange::xlsx_row(&good),
        exchange::xlsx_row(&bad),
    ])
    .expect("xlsx");
    let import = |content: Vec<u8>, dry_run: bool| pb::ImportItemsRequest {
        format: pb::ItemFileFormat::Xlsx as i32,
        content,
        publish: true,
        dry_run,
        ..Default::default()
    };
    let report = kb.import_items(authed(import(file, false), &editor)).await.expect("import").into_inner();
    let errors: Vec<(i32, &str)> = report.errors.iter().map(|e| (e.row, e.field.as_str())).collect();
    assert_eq!(errors, [(4, "catalog_id"), (4, "related[0]")], "{:?}", report.errors);
    assert!(report.errors.iter().all(|e| !e.message.is_empty() && !e.message.is_ascii()), "Chinese messages");
    assert_eq!((report.created, report.updated, report.skipped), (0, 0, 0));
    // Nothing half-imported: neither the good new row nor the edit of FP-001.
    let listed = |id: &str| pb::ListItemsRequest {
        filter: Some(pb::ItemFilter { catalog_id: id.into(), ..Default::default() }),
        ..Default::default()
    };
    assert!(kb.list_items(authed(listed("FP-901"), &editor)).await.expect("list").into_inner().items.is_empty());
    let stored = kb.list_items(authed(listed("FP-001"), &editor)).await.expect("list").into_inner().items;
    assert!(!stored[0].keywords.contains(&"开票操作入口位置".to_owned()));

    // Fixed, tried dry first (changes nothing), then imported and published.
    let fixed = FileItem { catalog_id: "FP-902".into(), related: vec!["FP-901".into()], ..bad };
    let file = exchange::write_xlsx(&[
        header(),
        exchange::xlsx_row(&fp001),
        exchange::xlsx_row(&good),
        exchange::xlsx_row(&fixed),
    ])
    .expect("xlsx");
    let dry = kb.import_items(authed(import(file.clone(), true), &editor)).await.expect("dry run").into_inner();
    assert_eq!((dry.created, dry.updated, dry.errors.len()), (2, 1, 0));
    assert!(kb.list_items(authed(listed("FP-901"), &editor)).await.expect("list").into_inner().items.is_empty());
    let done = kb.import_items(authed(import(file.clone(), false), &editor)).await.expect("import").into_inner();
    assert_eq!((done.created, done.updated, done.skipped, done.errors.len()), (2, 1, 0, 0));
    let again = kb.import_items(authed(import(file, false), &editor)).await.expect("import").into_inner();
    assert_eq!((again.created, again.updated, again.skipped), (0, 0, 3), "unchanged rows are skipped");

    // The new item answers taxpayers once the index refreshes (every 3 s). A few tries,
    // spaced out: asking the same thing over and over is what the harassment ladder stops.
    let taxpayer = stack.token("taxpayer-jinan");
    let mut answered = None;
    for _ in 0..4 {
        let r = ask(&mut answers, &taxpayer, "数电发票红冲后怎么重新开具？").await;
        if let Some(a) = r.answer.filter(|a| a.catalog_id == "FP-901") {
            answered = Some(a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let answer = answered.expect("the imported item is answered");
    assert_eq!(answer.citations[0].text, "《中华人民共和国发票管理办法》");

    // JSONL export round-trips what was imported; a taxpayer may not export.
    let jsonl = kb
        .export_items(authed(
            pb::ExportItemsRequest {
                format: pb::ItemFileFormat::Jsonl as i32,
                filter: Some(pb::ItemFilter { catalog_id: "FP-901".into(), ..Default::default() }),
            },
            &editor,
        ))
        .await
        .expect("export")
        .into_inner();
    let back: FileItem = serde_json::from_slice(jsonl.content.trim_ascii_end()).expect("one JSON line");
    assert_eq!((back.standard_question.as_str(), back.status.as_str()), (good.standard_question.as_str(), "published"));
    assert_eq!(back.blocks, good.blocks);
    let err = kb
        .export_items(authed(pb::ExportItemsRequest { format: 1, ..Default::default() }, &taxpayer))
        .await
        .expect_err("editors only");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_and_clarification_trees_are_edited_and_used_by_the_bot() {
    use pb::clarification_node_option::Target;
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let mut kb = KnowledgeAdminServiceClient::new(channel.clone());
    let mut answers = AnswerServiceClient::new(channel.clone());
    let editor = stack.token("kb-editor");
    let taxpayer = stack.token("taxpayer-jinan");

    // The seeded topics, with their published items counted.
    let topics =
        kb.list_topics(authed(pb::ListTopicsRequest::default(), &editor)).await.expect("topics").into_inner().topics;
    assert_eq!(topics.len(), 15);
    let fp = topics.iter().find(|t| t.id == "FP").expect("FP");
    assert!(fp.is_package && fp.published_item_count >= 30, "{fp:?}");

    // Bad topics are refused field by field; a new package topic is offered to taxpayers.
    let topic = |prefix: &str, name: &str| pb::CreateTopicRequest {
        topic: Some(pb::Topic { prefix: prefix.into(), name: name.into(), is_package: true, ..Default::default() }),
    };
    let err = kb.create_topic(authed(topic("fp", " "), &editor)).await.expect_err("bad topic");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("topic.prefix") && err.message().contains("topic.name"), "{}", err.message());
    let err = kb.create_topic(authed(topic("ZX", "数电发票开具与管理"), &editor)).await.expect_err("name taken");
    assert!(err.message().contains("topic.name"), "{}", err.message());
    kb.create_topic(authed(topic("ZX", "专项附加扣除专题"), &editor)).await.expect("create topic");
    let mut offered = false;
    for _ in 0..20 {
        let packages = answers
            .list_packages(authed(pb::ListPackagesRequest::default(), &taxpayer))
            .await
            .expect("packages")
            .into_inner()
            .packages;
        if packages.iter().any(|p| p.topic_id == "ZX" && p.name == "专项附加扣除专题") {
            offered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(offered, "the new package is offered after the refresh");
    let err =
        kb.delete_topic(authed(pb::DeleteTopicRequest { id: "FP".into() }, &editor)).await.expect_err("has items");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    kb.delete_topic(authed(pb::DeleteTopicRequest { id: "ZX".into() }, &editor)).await.expect("delete empty topic");

    // A clarification tree: a trigger another tree has, or an option to a missing item, is refused.
    let leaf = |label: &str, item: &str| pb::ClarificationNodeOption {
        label: label.into(),
        target: Some(Target::ItemId(item.into())),
        ..Default::default()
    };
    let tree = |trigger: &str, first_item: &str| pb::ClarificationTree {
        triggers: vec![trigger.into()],
        enabled: true,
        root: Some(pb::ClarificationNode {
            prompt: "您想了解红冲的哪一步？".into(),
            options: vec![
                leaf("发起红字确认单", first_item),
                pb::ClarificationNodeOption {
                    label: "购买方已经勾选了".into(),
                    target: Some(Target::Node(pb::ClarificationNode {
                        prompt: "购买方是否已用于抵扣？".into(),
                        options: vec![leaf("已勾选", "FP-006"), leaf("未勾选", "FP-006")],
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let create = |t: pb::ClarificationTree| pb::CreateClarificationTreeRequest { tree: Some(t) };
    let err = kb.create_clarification_tree(authed(create(tree("发票", "FP-005")), &editor)).await.expect_err("taken");
    assert!(err.message().contains("tree.triggers[0]"), "{}", err.message());
    let err = kb.create_clarification_tree(authed(create(tree("冲红", "FP-999")), &editor)).await.expect_err("no item");
    assert!(err.message().contains("tree.root.options[0].item_id"), "{}", err.message());
    let created = kb
        .create_clarification_tree(authed(create(tree("冲红", "FP-005")), &editor))
        .await
        .expect("create tree")
        .into_inner()
        .tree
        .expect("tree");
    assert_eq!(created.version, 1);

    // The bot asks back with it (after the refresh) and walks two levels to an answer.
    let mut first = None;
    for _ in 0..4 {
        let r = ask(&mut answers, &taxpayer, "冲红").await;
        if r.clarification.as_ref().is_some_and(|c| c.prompt == "您想了解红冲的哪一步？") {
            first = r.clarification;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let first = first.expect("the new tree is used");
    let choose = |node: &str, option: &str| pb::AskRequest {
        clarification_node_id: node.into(),
        selected_option_id: option.into(),
        ..Default::default()
    };
    let second = answers
        .ask(authed(choose(&first.node_id, &first.options[1].id), &taxpayer))
        .await
        .expect("option")
        .into_inner()
        .clarification
        .expect("a second question");
    assert_eq!(second.prompt, "购买方是否已用于抵扣？");
    let answer = answers
        .ask(authed(choose(&second.node_id, &second.options[0].id), &taxpayer))
        .await
        .expect("leaf")
        .into_inner()
        .answer
        .expect("answered");
    assert_eq!(answer.catalog_id, "FP-006");

    // Editing needs the version it started from; editors only.
    let stale = pb::UpdateClarificationTreeRequest { tree: Some(created.clone()), expected_version: 7 };
    let err = kb.update_clarification_tree(authed(stale, &editor)).await.expect_err("stale");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let disabled = kb
        .update_clarification_tree(authed(
            pb::UpdateClarificationTreeRequest {
                tree: Some(pb::ClarificationTree { enabled: false, ..created.clone() }),
                expected_version: 1,
            },
            &editor,
        ))
        .await
        .expect("update")
        .into_inner()
        .tree
        .expect("tree");
    assert_eq!((disabled.version, disabled.enabled), (2, false));
    let listed = kb
        .list_clarification_trees(authed(
            pb::ListClarificationTreesRequest { query: "冲红".into(), ..Default::default() },
            &editor,
        ))
        .await
        .expect("list")
        .into_inner()
        .trees;
    assert_eq!(listed.len(), 1);
    let err = kb.list_topics(authed(pb::ListTopicsRequest::default(), &taxpayer)).await.expect_err("editors only");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn supervisors_change_the_sensitive_word_lists() {
    use zhengna_proto::answer::v1::moderation_service_client::ModerationServiceClient;
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let mut admin = ModerationAdminServiceClient::new(channel.clone());
    let mut moderation = ModerationServiceClient::new(channel.clone());
    let supervisor = stack.token("supervisor-jinan");
    let staff = stack.token("agent-jinan");
    let check = |text: &str, direction: pb::ContentDirection| pb::CheckContentRequest {
        text: text.into(),
        direction: direction as i32,
        sender_id: "taxpayer:91370102LEXICON01".into(),
        ..Default::default()
    };

    // Field by field refusals; only supervisors.
    let err = admin
        .add_sensitive_words(authed(
            pb::AddSensitiveWordsRequest { words: vec![pb::SensitiveWord { word: " ".into(), ..Default::default() }] },
            &supervisor,
        ))
        .await
        .expect_err("bad word");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    for field in ["words[0].word", "words[0].category", "words[0].action"] {
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let word = pb::SensitiveWord {
        word: "退税黑中介".into(),
        category: pb::SensitiveCategory::Advertising as i32,
        action: pb::SensitiveAction::Block as i32,
        directions: vec![pb::ContentDirection::TaxpayerInput as i32],
        ..Default::default()
    };
    let err = admin
        .add_sensitive_words(authed(pb::AddSensitiveWordsRequest { words: vec![word.clone()] }, &staff))
        .await
        .expect_err("supervisors only");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let added = admin
        .add_sensitive_words(authed(pb::AddSensitiveWordsRequest { words: vec![word] }, &supervisor))
        .await
        .expect("add")
        .into_inner();
    assert_eq!((added.added, added.updated), (1, 0));

    // Taken up by the checkpoint within seconds, for the directions it names only.
    let mut verdict = 0;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let c = moderation
            .check_content(authed(check("能帮我找个退税黑中介吗", pb::ContentDirection::TaxpayerInput), &staff))
            .await
            .expect("check")
            .into_inner();
        verdict = c.verdict;
        if verdict == pb::ModerationVerdict::Block as i32 {
            break;
        }
    }
    assert_eq!(verdict, pb::ModerationVerdict::Block as i32, "the new word blocks taxpayer input");
    let bot = moderation
        .check_content(authed(check("请勿相信退税黑中介", pb::ContentDirection::BotOutput), &staff))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(bot.verdict, pb::ModerationVerdict::Allow as i32, "not a word for bot output");
    let listed = admin
        .list_sensitive_words(authed(
            pb::ListSensitiveWordsRequest { query: "黑中介".into(), ..Default::default() },
            &supervisor,
        ))
        .await
        .expect("list")
        .into_inner()
        .words;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].action, listed[0].directions.len()), (pb::SensitiveAction::Block as i32, 1));
    assert!(listed[0].updated_at.is_some());

    // A shipped word removed stops being masked; unknown words are ignored.
    let removed = admin
        .remove_sensitive_words(authed(
            pb::RemoveSensitiveWordsRequest { words: vec!["傻逼".into(), "从未有过的词".into()] },
            &supervisor,
        ))
        .await
        .expect("remove")
        .into_inner();
    assert_eq!(removed.removed, 1);
    let mut masked = true;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let c = moderation
            .check_content(authed(check("系统太傻逼了", pb::ContentDirection::AgentOutput), &staff))
            .await
            .expect("check")
            .into_inner();
        masked = c.verdict != pb::ModerationVerdict::Allow as i32;
        if !masked {
            break;
        }
    }
    assert!(!masked, "the removed word no longer stops a message");
    stack.stop().await;
}
