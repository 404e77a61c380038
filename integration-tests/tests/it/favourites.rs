//! 我的收藏 and 答案变更: a taxpayer favourites an answer; a KB editor stages an edit and
//! publishes it; the taxpayer gets one 答案变更 notice and the bot answers with the new
//! version. Also the refusals: taxpayers cannot edit the KB, favourites are per taxpayer.

use std::time::Duration;

use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::answer::v1 as answer_pb;
use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
use zhengna_proto::answer::v1::knowledge_admin_service_client::KnowledgeAdminServiceClient;
use zhengna_proto::messaging::v1 as msg;
use zhengna_proto::messaging::v1::inbox_service_client::InboxServiceClient;

#[tokio::test(flavor = "multi_thread")]
async fn a_favourited_answer_that_changes_sends_one_notice() {
    let stack = Stack::start().await;
    let channel = stack.gateway_channel().await;
    let tp = stack.token("taxpayer-person");
    let other = stack.token("taxpayer-jinan");
    let editor = stack.token("kb-editor");
    let mut answers = AnswerServiceClient::new(channel.clone());

    let reply = answers
        .ask(authed(answer_pb::AskRequest { question: "给爸妈养老个税每月能扣多少".into(), ..Default::default() }, &tp))
        .await
        .expect("ask")
        .into_inner();
    let item_id = reply.answer.expect("answered").item_id;
    let fav = answers
        .add_favourite(authed(answer_pb::AddFavouriteRequest { item_id: item_id.clone(), ..Default::default() }, &tp))
        .await
        .expect("favourite")
        .into_inner()
        .favourite
        .expect("favourite");
    assert!(fav.available);
    // Twice is still one favourite; another taxpayer's list stays empty.
    answers
        .add_favourite(authed(answer_pb::AddFavouriteRequest { item_id: item_id.clone(), ..Default::default() }, &tp))
        .await
        .expect("again");
    let mine = answers
        .list_favourites(authed(answer_pb::ListFavouritesRequest::default(), &tp))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.favourites.len(), 1);
    let theirs = answers
        .list_favourites(authed(answer_pb::ListFavouritesRequest::default(), &other))
        .await
        .expect("list")
        .into_inner();
    assert!(theirs.favourites.is_empty());
    let checked = answers
        .check_favourites(authed(answer_pb::CheckFavouritesRequest { item_ids: vec![item_id.clone()] }, &tp))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(checked.favourite_item_ids, std::slice::from_ref(&item_id));

    // Taxpayers and ordinary agents cannot edit the KB.
    let mut admin = KnowledgeAdminServiceClient::new(channel.clone());
    let edit = |token: &str| {
        authed(
            answer_pb::UpdateItemRequest {
                item: Some(answer_pb::KnowledgeItem {
                    id: item_id.clone(),
                    // A phrase no item uses yet, so only the re-indexed engine can match it.
                    similar_questions: vec!["孝亲蓝莓计划怎么享受".into(), "赡养老人扣除标准是多少".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["similar_questions".into()] }),
                expected_version: 1,
            },
            token,
        )
    };
    assert_eq!(admin.update_item(edit(&tp)).await.expect_err("taxpayer").code(), tonic::Code::PermissionDenied);
    let agent = stack.token("agent-jinan");
    assert_eq!(admin.update_item(edit(&agent)).await.expect_err("agent").code(), tonic::Code::PermissionDenied);
    let bad = authed(
        answer_pb::UpdateItemRequest {
            item: Some(answer_pb::KnowledgeItem { id: item_id.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["standard_question".into()] }),
            expected_version: 1,
        },
        &editor,
    );
    let err = admin.update_item(bad).await.expect_err("empty question");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let before = answers
        .ask(authed(answer_pb::AskRequest { question: "孝亲蓝莓计划怎么享受".into(), ..Default::default() }, &tp))
        .await
        .expect("ask")
        .into_inner();
    assert!(before.answer.is_none_or(|a| a.item_id != item_id), "not matched before publishing");

    // Stage, then publish: version 2, one notice for the taxpayer who favourited it.
    let staged = admin.update_item(edit(&editor)).await.expect("stage").into_inner().item.expect("item");
    assert_eq!(staged.version, 1, "staged edits do not change the published version");
    let published = admin
        .publish_item(authed(answer_pb::PublishItemRequest { id: item_id.clone(), expected_version: 1 }, &editor))
        .await
        .expect("publish")
        .into_inner()
        .item
        .expect("item");
    assert_eq!(published.version, 2);
    // Publishing again with nothing staged tells no one; a stale version is refused.
    admin
        .publish_item(authed(answer_pb::PublishItemRequest { id: item_id.clone(), expected_version: 2 }, &editor))
        .await
        .expect("idempotent");
    let stale = admin
        .publish_item(authed(answer_pb::PublishItemRequest { id: item_id.clone(), expected_version: 1 }, &editor))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);

    let mut inbox = InboxServiceClient::new(channel.clone());
    let mut changed = Vec::new();
    for _ in 0..100 {
        let list = inbox
            .list_notifications(authed(msg::ListNotificationsRequest::default(), &tp))
            .await
            .expect("inbox")
            .into_inner()
            .notifications;
        changed = list.into_iter().filter(|n| n.kind == msg::NotificationKind::AnswerChanged as i32).collect();
        if !changed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(changed.len(), 1, "one 答案变更 notice");
    assert_eq!(changed[0].title, "答案变更");
    let others = inbox
        .list_notifications(authed(msg::ListNotificationsRequest::default(), &other))
        .await
        .expect("inbox")
        .into_inner()
        .notifications;
    assert!(others.iter().all(|n| n.kind != msg::NotificationKind::AnswerChanged as i32));

    // The re-indexed engine (every 3 s) knows the new similar question. A few tries, spaced
    // out: the same question over and over is what the harassment ladder stops.
    let mut answered = None;
    for _ in 0..4 {
        let r = answers
            .ask(authed(answer_pb::AskRequest { question: "孝亲蓝莓计划怎么享受".into(), ..Default::default() }, &tp))
            .await
            .expect("ask")
            .into_inner();
        if let Some(a) = r.answer.filter(|a| a.item_id == item_id) {
            answered = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(answered.is_some(), "answered from the new version");

    // Editors browse the KB: by catalog prefix, by text (standard or similar question),
    // by catalog id; taxpayers cannot.
    let list = |filter: answer_pb::ItemFilter| {
        authed(answer_pb::ListItemsRequest { filter: Some(filter), page: None }, &editor)
    };
    let fp = admin
        .list_items(list(answer_pb::ItemFilter { topic_id: "FP".into(), ..Default::default() }))
        .await
        .expect("by prefix")
        .into_inner();
    assert!(fp.items.iter().all(|i| i.catalog_id.starts_with("FP-")) && !fp.items.is_empty());
    assert!(fp.page.expect("page").total_size >= fp.items.len() as i32);
    let found = admin
        .list_items(list(answer_pb::ItemFilter { query: "孝亲蓝莓".into(), ..Default::default() }))
        .await
        .expect("by text")
        .into_inner();
    assert_eq!(found.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [item_id.as_str()]);
    assert_eq!(found.items[0].version, 2);
    let one = admin
        .list_items(list(answer_pb::ItemFilter { catalog_id: "GS-019".into(), ..Default::default() }))
        .await
        .expect("by catalog id")
        .into_inner();
    assert_eq!(one.items.len(), 1);
    let err = admin.list_items(authed(answer_pb::ListItemsRequest::default(), &tp)).await.expect_err("taxpayer");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // Removing is per taxpayer.
    let removed = answers
        .remove_favourite(authed(answer_pb::RemoveFavouriteRequest { item_id: item_id.clone() }, &other))
        .await
        .expect("remove")
        .into_inner();
    assert!(!removed.removed);
    assert!(
        answers
            .remove_favourite(authed(answer_pb::RemoveFavouriteRequest { item_id }, &tp))
            .await
            .expect("remove")
            .into_inner()
            .removed
    );
    stack.stop().await;
}
