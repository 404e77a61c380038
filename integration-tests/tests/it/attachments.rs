//! Uploads through the gateway: images and files both ways in a served conversation,
//! attachments of 留言, replies and appointments, and every refusal (extension, spoofed
//! content, size, someone else's conversation or attachment, tampered links, the internal
//! link service from outside).

use tonic::transport::Channel;
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::appointment::v1::appointment_service_client::AppointmentServiceClient;
use zhengna_proto::common::v1::{AttachmentKind, AttachmentRef};
use zhengna_proto::messaging::v1 as msg;
use zhengna_proto::messaging::v1::leave_message_desk_service_client::LeaveMessageDeskServiceClient;
use zhengna_proto::messaging::v1::leave_message_service_client::LeaveMessageServiceClient;
use zhengna_proto::queue::v1 as queue;
use zhengna_proto::queue::v1::agent_desk_service_client::AgentDeskServiceClient;
use zhengna_proto::queue::v1::queue_service_client::QueueServiceClient;
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::agent_conversation_service_client::AgentConversationServiceClient;
use zhengna_proto::session::v1::attachment_link_service_client::AttachmentLinkServiceClient;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

use crate::flow::read_messages;

const MB: i64 = 1024 * 1024;

fn png(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    b.resize(len, 7);
    b
}

fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n".to_vec();
    b.resize(len, b' ');
    b
}

fn field(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn user_message(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().localized_message().map(|m| m.message.clone()).unwrap_or_default()
}

/// Who uploads: a taxpayer (CreateUpload) or an agent (CreateAgentUpload).
enum Uploader<'a> {
    Taxpayer(&'a str),
    Agent(&'a str),
}

#[derive(Debug)]
struct Upload {
    id: String,
    url: String,
}

async fn create(
    channel: &Channel,
    who: &Uploader<'_>,
    purpose: pb::UploadPurpose,
    name: &str,
    size: i64,
    conversation: &str,
) -> Result<Upload, tonic::Status> {
    let request_id = uuid::Uuid::new_v4().to_string();
    match who {
        Uploader::Taxpayer(token) => {
            let r = ConversationServiceClient::new(channel.clone())
                .create_upload(authed(
                    pb::CreateUploadRequest {
                        client_request_id: request_id,
                        purpose: purpose as i32,
                        file_name: name.into(),
                        content_type: String::new(),
                        size_bytes: size,
                        conversation_id: conversation.into(),
                    },
                    token,
                ))
                .await?
                .into_inner();
            assert_eq!(r.method, "PUT");
            Ok(Upload { id: r.upload_id, url: r.upload_url })
        }
        Uploader::Agent(token) => {
            let r = AgentConversationServiceClient::new(channel.clone())
                .create_agent_upload(authed(
                    pb::CreateAgentUploadRequest {
                        client_request_id: request_id,
                        purpose: purpose as i32,
                        file_name: name.into(),
                        content_type: String::new(),
                        size_bytes: size,
                        conversation_id: conversation.into(),
                    },
                    token,
                ))
                .await?
                .into_inner();
            Ok(Upload { id: r.upload_id, url: r.upload_url })
        }
    }
}

async fn put(stack: &Stack, url: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .put(format!("http://{}{url}", stack.gateway))
        .body(bytes)
        .send()
        .await
        .expect("PUT reaches the gateway");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn complete(channel: &Channel, who: &Uploader<'_>, id: &str) -> Result<AttachmentRef, tonic::Status> {
    let a = match who {
        Uploader::Taxpayer(token) => {
            ConversationServiceClient::new(channel.clone())
                .complete_upload(authed(pb::CompleteUploadRequest { upload_id: id.into() }, token))
                .await?
                .into_inner()
                .attachment
        }
        Uploader::Agent(token) => {
            AgentConversationServiceClient::new(channel.clone())
                .complete_agent_upload(authed(pb::CompleteAgentUploadRequest { upload_id: id.into() }, token))
                .await?
                .into_inner()
                .attachment
        }
    };
    Ok(a.expect("attachment"))
}

/// Create → PUT → complete, all of which must succeed.
async fn upload(
    stack: &Stack,
    channel: &Channel,
    who: &Uploader<'_>,
    purpose: pb::UploadPurpose,
    name: &str,
    bytes: Vec<u8>,
    conversation: &str,
) -> AttachmentRef {
    let u = create(channel, who, purpose, name, bytes.len() as i64, conversation).await.expect("create upload");
    let (status, body) = put(stack, &u.url, bytes).await;
    assert_eq!(status, 200, "{body}");
    complete(channel, who, &u.id).await.expect("complete upload")
}

/// Downloads through the gateway with a fresh link; returns the bytes and the disposition.
async fn download(
    stack: &Stack,
    channel: &Channel,
    who: &Uploader<'_>,
    id: &str,
) -> Result<(Vec<u8>, String), tonic::Status> {
    let url = match who {
        Uploader::Taxpayer(token) => {
            ConversationServiceClient::new(channel.clone())
                .get_attachment(authed(pb::GetAttachmentRequest { attachment_id: id.into() }, token))
                .await?
                .into_inner()
                .download_url
        }
        Uploader::Agent(token) => {
            AgentConversationServiceClient::new(channel.clone())
                .get_agent_attachment(authed(pb::GetAgentAttachmentRequest { attachment_id: id.into() }, token))
                .await?
                .into_inner()
                .download_url
        }
    };
    let res = reqwest::get(format!("http://{}{url}", stack.gateway)).await.expect("GET");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let disposition = res.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    Ok((res.bytes().await.expect("body").to_vec(), disposition))
}

/// A conversation of `tp` served by `staff` (human mode), with the taxpayer's stream.
pub(crate) async fn served_conversation(
    stack: &Stack,
    tp: &str,
    staff: &str,
) -> (pb::Conversation, tonic::Streaming<pb::SubscribeResponse>) {
    let mut chat = ConversationServiceClient::new(stack.gateway_channel().await);
    let conv = crate::flow::start(&mut chat, tp).await;
    let mut stream = crate::flow::subscribe(&mut chat, &conv.id, 0, tp).await;
    let mut desk = AgentDeskServiceClient::new(stack.gateway_channel().await);
    desk.set_presence(authed(
        queue::SetPresenceRequest { presence: queue::AgentPresence::Online as i32, capacity: 3 },
        staff,
    ))
    .await
    .expect("online");
    QueueServiceClient::new(stack.gateway_channel().await)
        .enqueue_for_human(authed(
            queue::EnqueueForHumanRequest {
                conversation_id: conv.id.clone(),
                trigger: queue::QueueTrigger::Button as i32,
                ..Default::default()
            },
            tp,
        ))
        .await
        .expect("enqueue");
    desk.claim_next_entry(authed(queue::ClaimNextEntryRequest::default(), staff)).await.expect("claim");
    // Queued, agent joined.
    read_messages(&mut stream, 2).await;
    (conv, stream)
}

fn attachment_of(m: &pb::Message) -> Option<(AttachmentRef, bool)> {
    match m.content.as_ref()?.body.as_ref()? {
        pb::message_content::Body::Image(i) => Some((i.attachment.clone()?, true)),
        pb::message_content::Body::File(f) => Some((f.attachment.clone()?, false)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_and_files_both_ways_and_every_refusal() {
    let stack = Stack::start().await;
    let tp_token = stack.token("taxpayer-jinan");
    let staff_token = stack.token("agent-jinan");
    let tp = Uploader::Taxpayer(&tp_token);
    let staff = Uploader::Agent(&staff_token);
    let channel = stack.gateway_channel().await;
    let mut chat = ConversationServiceClient::new(channel.clone());
    let mut agent_chat = AgentConversationServiceClient::new(channel.clone());

    // Before an agent serves the conversation, images are refused with a kind message.
    let bot_only = crate::flow::start(&mut chat, &tp_token).await;
    let err = create(&channel, &tp, pb::UploadPurpose::ChatImage, "a.png", 100, &bot_only.id)
        .await
        .expect_err("bot mode refuses uploads");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(user_message(&err).contains("人工"), "{}", user_message(&err));

    let (conv, mut stream) = served_conversation(&stack, &tp_token, &staff_token).await;

    // Taxpayer → agent: an image.
    let image_bytes = png(300_000);
    let image =
        upload(&stack, &channel, &tp, pb::UploadPurpose::ChatImage, "截图.png", image_bytes.clone(), &conv.id).await;
    assert_eq!((image.content_type.as_str(), image.size_bytes), ("image/png", 300_000));
    assert_eq!(image.kind, AttachmentKind::Image as i32);
    chat.send_message(authed(
        pb::SendMessageRequest {
            conversation_id: conv.id.clone(),
            client_msg_id: "img-1".into(),
            // Only the id counts: the server describes the file from what it stored.
            content: Some(pb::MessageContent {
                body: Some(pb::message_content::Body::Image(pb::ImageContent {
                    attachment: Some(AttachmentRef {
                        id: image.id.clone(),
                        file_name: "lies.exe".into(),
                        size_bytes: 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
            }),
        },
        &tp_token,
    ))
    .await
    .expect("send image");
    let sent = read_messages(&mut stream, 1).await;
    let (seen, is_image) = attachment_of(&sent[0]).expect("an image message");
    assert!(is_image);
    assert_eq!((seen.file_name.as_str(), seen.size_bytes), ("截图.png", 300_000));
    let (bytes, disposition) = download(&stack, &channel, &staff, &image.id).await.expect("agent downloads");
    assert_eq!(bytes, image_bytes);
    assert!(disposition.starts_with("inline"), "{disposition}");

    // Agent → taxpayer: a file.
    let file_bytes = pdf(1_234_567);
    let file =
        upload(&stack, &channel, &staff, pb::UploadPurpose::ChatFile, "办税指南.pdf", file_bytes.clone(), &conv.id)
            .await;
    agent_chat
        .send_agent_message(authed(
            pb::SendAgentMessageRequest {
                conversation_id: conv.id.clone(),
                client_msg_id: "file-1".into(),
                content: Some(pb::MessageContent {
                    body: Some(pb::message_content::Body::File(pb::FileContent {
                        attachment: Some(AttachmentRef { id: file.id.clone(), ..Default::default() }),
                    })),
                }),
            },
            &staff_token,
        ))
        .await
        .expect("agent sends a file");
    let got = read_messages(&mut stream, 1).await;
    let (seen, is_image) = attachment_of(&got[0]).expect("a file message");
    assert!(!is_image);
    assert_eq!(seen.content_type, "application/pdf");
    let (bytes, disposition) = download(&stack, &channel, &tp, &file.id).await.expect("taxpayer downloads");
    assert_eq!(bytes, file_bytes);
    assert!(disposition.starts_with("attachment"), "{disposition}");

    // Wrong extension, refused before any byte is sent.
    let err = create(&channel, &tp, pb::UploadPurpose::ChatFile, "setup.exe", 1000, &conv.id).await.expect_err("exe");
    assert_eq!((err.code(), field(&err)), (tonic::Code::InvalidArgument, vec!["file_name".to_owned()]));
    let err = create(&channel, &tp, pb::UploadPurpose::ChatImage, "表格.xlsx", 1000, &conv.id).await.expect_err("x");
    assert_eq!(field(&err), ["file_name"]);

    // 10 MB + 1 byte: refused by the announcement, and a body larger than announced is cut off.
    let err = create(&channel, &tp, pb::UploadPurpose::ChatImage, "big.png", 10 * MB + 1, &conv.id)
        .await
        .expect_err("too large");
    assert_eq!(field(&err), ["size_bytes"]);
    assert!(user_message(&err).contains("10MB"), "{}", user_message(&err));
    let err = create(&channel, &tp, pb::UploadPurpose::ChatImage, "big.png", 10 * MB, &conv.id)
        .await
        .expect_err("exactly 10 MB is not less than 10 MB");
    assert_eq!(field(&err), ["size_bytes"]);
    let liar = create(&channel, &tp, pb::UploadPurpose::ChatImage, "small.png", 1000, &conv.id).await.expect("create");
    let (status, body) = put(&stack, &liar.url, png(5000)).await;
    assert_eq!(status, 413, "{body}");
    let err = complete(&channel, &tp, &liar.id).await.expect_err("nothing stored");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // Spoofed content: an executable named .png, a PNG named .pdf.
    let mut exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    exe.resize(2048, 0);
    let spoof = create(&channel, &tp, pb::UploadPurpose::ChatImage, "发票.png", 2048, &conv.id).await.expect("create");
    let (status, body) = put(&stack, &spoof.url, exe).await;
    assert_eq!(status, 415, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("不符"), "{body}");
    let err = complete(&channel, &tp, &spoof.id).await.expect_err("rejected upload cannot complete");
    assert!(user_message(&err).contains("不符"), "{}", user_message(&err));
    let spoof = create(&channel, &tp, pb::UploadPurpose::ChatFile, "申报表.pdf", 4096, &conv.id).await.expect("create");
    assert_eq!(put(&stack, &spoof.url, png(4096)).await.0, 415);
    // The spoofed bytes were never stored.
    let stored = walk(&stack.uploads_dir.0);
    assert_eq!(stored, 2, "only the image and the PDF are stored");

    // A used or forged upload URL does nothing.
    let again = create(&channel, &tp, pb::UploadPurpose::ChatImage, "x.png", 100, &conv.id).await.expect("create");
    let forged = again.url.replace("token=", "token=00");
    assert_eq!(put(&stack, &forged, png(100)).await.0, 404);
    assert_eq!(put(&stack, &again.url, png(100)).await.0, 200);
    assert_eq!(put(&stack, &again.url, png(100)).await.0, 409);

    // Someone else's conversation or attachment.
    let other_token = stack.token("taxpayer-qingdao");
    let other = Uploader::Taxpayer(&other_token);
    let err = create(&channel, &other, pb::UploadPurpose::ChatImage, "a.png", 100, &conv.id).await.expect_err("x");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = download(&stack, &channel, &other, &image.id).await.expect_err("not theirs");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let other_staff_token = stack.token("agent-qingdao");
    let err = download(&stack, &channel, &Uploader::Agent(&other_staff_token), &file.id).await.expect_err("x");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = complete(&channel, &other, &again.id).await.expect_err("not their upload");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A download link cannot be altered or reused for another file.
    let link = chat
        .get_attachment(authed(pb::GetAttachmentRequest { attachment_id: image.id.clone() }, &tp_token))
        .await
        .expect("link")
        .into_inner();
    assert!(link.inline_allowed);
    let tampered = link.download_url.replace(&image.id, &file.id);
    let res = reqwest::get(format!("http://{}{tampered}", stack.gateway)).await.expect("GET");
    assert_eq!(res.status().as_u16(), 403);

    // The link service is for services only.
    let err = AttachmentLinkServiceClient::new(channel.clone())
        .link_attachments(authed(
            pb::LinkAttachmentsRequest {
                attachment_ids: vec![image.id.clone()],
                purpose: pb::UploadPurpose::LeaveMessage as i32,
                reference: "x".into(),
                taxpayer_id: "91370202MA3DEMO02Y".into(),
                office_code: "13702000000".into(),
            },
            &staff_token,
        ))
        .await
        .expect_err("internal");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    stack.stop().await;
}

/// Files under the storage directory.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        usize::from(!e.file_name().to_string_lossy().starts_with('.'))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn leave_messages_replies_and_appointments_carry_attachments() {
    let stack = Stack::start().await;
    let tp_token = stack.token("taxpayer-jinan");
    let staff_token = stack.token("agent-jinan");
    let tp = Uploader::Taxpayer(&tp_token);
    let staff = Uploader::Agent(&staff_token);
    let channel = stack.gateway_channel().await;

    // 留言 with a spreadsheet (uploaded first, 点击上传, then submitted).
    let mut xlsx = b"PK\x03\x04\x14\0\x06\0\x08\0".to_vec();
    xlsx.resize(50_000, 1);
    let sheet = upload(&stack, &channel, &tp, pb::UploadPurpose::LeaveMessage, "发票清单.xlsx", xlsx.clone(), "").await;
    let mut leave = LeaveMessageServiceClient::new(channel.clone());
    let submit = |id: &str, attachments: Vec<String>| msg::SubmitLeaveMessageRequest {
        client_request_id: id.into(),
        type_code: "consult".into(),
        content: "附件中的发票能否抵扣？".into(),
        attachment_ids: attachments,
        ..Default::default()
    };
    // A chat upload is not a 留言 attachment; the refusal names the entry.
    let chat_file = {
        let (conv, _s) = served_conversation(&stack, &tp_token, &staff_token).await;
        upload(&stack, &channel, &tp, pb::UploadPurpose::ChatFile, "a.pdf", pdf(1000), &conv.id).await
    };
    let err = leave
        .submit_leave_message(authed(submit("lm-bad", vec![sheet.id.clone(), chat_file.id.clone()]), &tp_token))
        .await
        .expect_err("wrong purpose");
    assert_eq!((err.code(), field(&err)), (tonic::Code::InvalidArgument, vec!["attachment_ids[1]".to_owned()]));
    let err = leave
        .submit_leave_message(authed(submit("lm-bad2", vec!["not-an-id".into()]), &tp_token))
        .await
        .expect_err("unknown id");
    assert_eq!(field(&err), ["attachment_ids[0]"]);
    let err = create(&channel, &tp, pb::UploadPurpose::LeaveMessage, "big.pdf", 20 * MB + 1, "").await.expect_err("x");
    assert_eq!(field(&err), ["size_bytes"]);
    assert!(create(&channel, &tp, pb::UploadPurpose::LeaveMessage, "ok.pdf", 20 * MB, "").await.is_ok());

    let submitted = leave
        .submit_leave_message(authed(submit("lm-1", vec![sheet.id.clone()]), &tp_token))
        .await
        .expect("submit with attachment")
        .into_inner()
        .leave_message
        .expect("leave message");
    assert_eq!(submitted.attachments.len(), 1);
    assert_eq!(submitted.attachments[0].file_name, "发票清单.xlsx");

    // Another taxpayer cannot attach it or read it; the office's agent can, another office's cannot.
    let other_token = stack.token("taxpayer-qingdao");
    let err = LeaveMessageServiceClient::new(channel.clone())
        .submit_leave_message(authed(submit("lm-steal", vec![sheet.id.clone()]), &other_token))
        .await
        .expect_err("not their upload");
    assert_eq!(field(&err), ["attachment_ids[0]"]);
    assert_eq!(
        download(&stack, &channel, &Uploader::Taxpayer(&other_token), &sheet.id).await.err().map(|e| e.code()),
        Some(tonic::Code::NotFound)
    );
    let (bytes, _) = download(&stack, &channel, &staff, &sheet.id).await.expect("office agent reads");
    assert_eq!(bytes, xlsx);
    let qingdao_staff = stack.token("agent-qingdao");
    assert!(download(&stack, &channel, &Uploader::Agent(&qingdao_staff), &sheet.id).await.is_err());

    // The agent's reply carries a file the taxpayer can read.
    let answer = upload(&stack, &channel, &staff, pb::UploadPurpose::LeaveMessage, "答复.pdf", pdf(3000), "").await;
    let replied = LeaveMessageDeskServiceClient::new(channel.clone())
        .reply_leave_message(authed(
            msg::ReplyLeaveMessageRequest {
                client_request_id: "r1".into(),
                id: submitted.id.clone(),
                content: "请参阅附件。".into(),
                attachment_ids: vec![answer.id.clone()],
                ..Default::default()
            },
            &staff_token,
        ))
        .await
        .expect("reply with attachment")
        .into_inner()
        .leave_message
        .expect("leave message");
    assert_eq!(replied.replies[0].attachments[0].id, answer.id);
    assert!(download(&stack, &channel, &tp, &answer.id).await.is_ok());
    assert!(download(&stack, &channel, &Uploader::Taxpayer(&other_token), &answer.id).await.is_err());

    // An appointment with 附件材料.
    let scan = upload(
        &stack,
        &channel,
        &tp,
        pb::UploadPurpose::Appointment,
        "营业执照.jpg",
        {
            let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
            j.resize(80_000, 3);
            j
        },
        "",
    )
    .await;
    let mut booking = crate::booking::booking("with-attachment");
    booking.attachment_ids = vec![scan.id.clone()];
    let booked = AppointmentServiceClient::new(channel.clone())
        .book_appointment(authed(booking, &tp_token))
        .await
        .expect("book with attachment")
        .into_inner()
        .appointment
        .expect("appointment");
    assert_eq!(booked.attachments.len(), 1);
    assert_eq!(booked.attachments[0].content_type, "image/jpeg");
    assert!(download(&stack, &channel, &staff, &scan.id).await.is_ok());
    let mut stolen = crate::booking::booking("stolen");
    stolen.attachment_ids = vec![scan.id.clone()];
    let err = AppointmentServiceClient::new(channel.clone())
        .book_appointment(authed(stolen, &other_token))
        .await
        .expect_err("not their upload");
    assert_eq!(field(&err), ["attachment_ids[0]"]);
    stack.stop().await;
}
