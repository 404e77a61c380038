//! gRPC adapter: validates requests, checks ownership, and maps to the store.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::identity::{self, Caller, IdentityKey};
use zhengna_platform::{ApiError, FieldViolation, grpc};
use zhengna_proto::answer::v1 as answer_pb;
use zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient;
use zhengna_proto::answer::v1::moderation_service_client::ModerationServiceClient;
use zhengna_proto::session::v1 as pb;

use crate::ConversationConfig;
use crate::hub::{Hub, KeyWatch};
use crate::store::{ConversationRow, NewMessage, Store};
use crate::uploads::rules::Purpose;
use crate::uploads::{NewUpload, Uploads};
use zhengna_platform::db::Waited;

/// Longest text a taxpayer may send in one message (the widget's 0/300 counter).
pub const MAX_TEXT_CHARS: usize = 300;
const MAX_CLIENT_ID: usize = 64;
const REPLAY_PAGE: i64 = 200;

/// The answer service (bot replies and moderation) and how long to wait for it.
pub struct Bot {
    pub client: AnswerServiceClient<Channel>,
    pub moderation: ModerationServiceClient<Channel>,
    pub timeout: Duration,
}

/// What moderation lets through.
enum Moderated {
    Deliver,
    Mask(String),
    Block(String),
}

#[derive(Clone)]
pub struct ConversationApi {
    store: Store,
    hub: Hub,
    answer: AnswerServiceClient<Channel>,
    moderation: ModerationServiceClient<Channel>,
    key: IdentityKey,
    answer_timeout: Duration,
    cfg: ConversationConfig,
    shutdown: CancellationToken,
    uploads: Uploads,
}

impl ConversationApi {
    fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.cfg.heartbeat_secs.max(1))
    }

    pub fn new(
        store: Store,
        hub: Hub,
        bot: Bot,
        key: IdentityKey,
        cfg: ConversationConfig,
        shutdown: CancellationToken,
        uploads: Uploads,
    ) -> Self {
        Self {
            store,
            hub,
            answer: bot.client,
            moderation: bot.moderation,
            key,
            answer_timeout: bot.timeout,
            cfg,
            shutdown,
            uploads,
        }
    }

    /// The moderation checkpoint for text a person will read (human chat, both ways). If the
    /// moderation service is unreachable the text is delivered: a conversation must not stop
    /// because a filter is down (the answer service logs what it checks).
    async fn moderate(
        &self,
        caller: &Caller,
        conversation: Uuid,
        text: &str,
        direction: answer_pb::ContentDirection,
    ) -> Moderated {
        let request = answer_pb::CheckContentRequest {
            text: text.to_owned(),
            direction: direction as i32,
            conversation_id: conversation.to_string(),
            sender_id: caller.subject(),
            ..Default::default()
        };
        match self
            .moderation
            .clone()
            .check_content(grpc::outgoing(request, caller, &self.key, self.answer_timeout))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                match answer_pb::ModerationVerdict::try_from(r.verdict) {
                    // A muted sender's message is held back like a blocked one; the notice
                    // says until when.
                    Ok(answer_pb::ModerationVerdict::Block | answer_pb::ModerationVerdict::Throttle) => {
                        Moderated::Block(r.notice)
                    }
                    Ok(answer_pb::ModerationVerdict::Mask) => Moderated::Mask(r.masked_text),
                    _ => Moderated::Deliver,
                }
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "moderation unavailable; delivering unchecked");
                Moderated::Deliver
            }
        }
    }

    /// The message content for a sent image or file: the caller's completed chat upload
    /// for this conversation, described by what the server stored (never by the client).
    async fn attachment_content(
        &self,
        caller: &Caller,
        pending: &PendingAttachment,
        conversation: &ConversationRow,
    ) -> Result<(pb::MessageContent, String), ApiError> {
        let row = self.uploads.for_message(caller, pending.field, &pending.id, pending.purpose, conversation).await?;
        let attachment = Some(row.attachment());
        Ok(match pending.purpose {
            Purpose::ChatImage => (
                pb::MessageContent {
                    body: Some(pb::message_content::Body::Image(pb::ImageContent { attachment, width: 0, height: 0 })),
                },
                "[图片]".to_owned(),
            ),
            _ => (
                pb::MessageContent { body: Some(pb::message_content::Body::File(pb::FileContent { attachment })) },
                format!("[文件] {}", row.file_name),
            ),
        })
    }

    /// Chat uploads go to a conversation the caller is in, while a person serves it.
    async fn check_chat_upload(&self, caller: &Caller, new: &NewUpload) -> Result<(), ApiError> {
        let Some(id) = new.conversation_id else { return Ok(()) };
        let conversation = match caller {
            Caller::Taxpayer(tp) => self.store.taxpayer_conversation(id, &tp.tax_id).await?,
            Caller::Agent(a) => self.store.agent_conversation(id, &a.agent_id).await?,
        }
        .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        if conversation.mode != "human" {
            return Err(ApiError::refused(
                "images and files need human mode",
                "图片和文件需在人工服务中发送，请先转人工。",
            ));
        }
        Ok(())
    }

    async fn create_upload_for(&self, caller: &Caller, new: NewUpload) -> Result<pb::CreateUploadResponse, ApiError> {
        self.check_chat_upload(caller, &new).await?;
        let office = match caller {
            Caller::Taxpayer(tp) => tp.office_code.clone(),
            Caller::Agent(a) => a.office_code.clone(),
        };
        let content_type = if new.declared_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            new.declared_type.clone()
        };
        let ticket = self.uploads.create(caller, &office, new).await?;
        Ok(pb::CreateUploadResponse {
            upload_id: ticket.upload_id.to_string(),
            upload_url: ticket.url,
            method: "PUT".into(),
            headers: [("Content-Type".to_owned(), content_type)].into_iter().collect(),
            expires_at: Some(crate::store::timestamp(ticket.expires_at)),
            max_size_bytes: ticket.max_size_bytes,
        })
    }

    async fn attachment_for(&self, caller: &Caller, id: &str) -> Result<pb::GetAttachmentResponse, ApiError> {
        let row = self.uploads.readable(caller, id).await?;
        let download = self.uploads.download(&row);
        Ok(pb::GetAttachmentResponse {
            attachment: Some(row.attachment()),
            download_url: download.url,
            url_expires_at: Some(crate::store::timestamp(download.expires_at)),
            inline_allowed: row.inline_allowed(),
        })
    }

    /// Asks the bot about the taxpayer message at `seq` and stores its reply (once).
    async fn reply_with_bot(
        &self,
        caller: &Caller,
        conversation: Uuid,
        seq: i64,
        request: answer_pb::AskRequest,
    ) -> Result<(), ApiError> {
        if self.store.has_reply(conversation, seq).await? {
            return Ok(());
        }
        let request = answer_pb::AskRequest { conversation_id: conversation.to_string(), ..request };
        let reply = match self.answer.clone().ask(grpc::outgoing(request, caller, &self.key, self.answer_timeout)).await
        {
            Ok(r) => r.into_inner(),
            Err(status) => {
                // The taxpayer is never left without a reply: fall back to a kind notice
                // offering the other channels.
                tracing::warn!(code = ?status.code(), message = status.message(), "answer service call failed");
                answer_pb::AskResponse {
                    decision: answer_pb::Decision::NoAnswer as i32,
                    text: "抱歉，智能应答暂时无法回复您的问题。您可以稍后再试，或点击“留言”“转人工”获得帮助。".into(),
                    offer_leave_message: true,
                    suggest_transfer: true,
                    ..Default::default()
                }
            }
        };
        let text = reply.text.clone();
        self.store
            .append(
                conversation,
                NewMessage {
                    client_msg_id: format!("bot-reply:{seq}"),
                    sender: "bot",
                    sender_name: self.cfg.bot_name.clone(),
                    reply_to: Some(seq),
                    text,
                    content: pb::MessageContent {
                        body: Some(pb::message_content::Body::BotReply(pb::BotReplyContent { reply: Some(reply) })),
                    },
                },
            )
            .await?;
        Ok(())
    }
}

fn text_content(text: &str) -> pb::MessageContent {
    pb::MessageContent { body: Some(pb::message_content::Body::Text(pb::TextContent { text: text.to_owned() })) }
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID", "会话标识无效，请刷新页面后重试。"))
}

struct ValidSend {
    conversation: Uuid,
    client_msg_id: String,
    /// Plain text for transcripts and the bot ("" for an emoji).
    text: String,
    /// What is stored: the text, or an emoji.
    content: pb::MessageContent,
    /// Whether the bot should answer (text only).
    is_text: bool,
    /// An image or file to resolve against the caller's uploads.
    attachment: Option<PendingAttachment>,
    /// A clarification option or listed question the taxpayer clicked: what to ask the bot.
    selection: Option<answer_pb::AskRequest>,
}

struct PendingAttachment {
    field: &'static str,
    id: String,
    purpose: Purpose,
}

/// An emoji code (`smile`, `thumbs_up`…) or one emoji character sequence.
fn valid_emoji(code: &str) -> bool {
    let named = !code.is_empty()
        && code.len() <= 32
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let glyph = !code.is_empty() && code.len() <= 32 && code.chars().all(|c| !c.is_ascii() && !c.is_control());
    named || glyph
}

fn validate_send(r: pb::SendMessageRequest) -> Result<ValidSend, ApiError> {
    let mut violations = Vec::new();
    let conversation = Uuid::parse_str(&r.conversation_id).ok();
    if conversation.is_none() {
        violations.push(FieldViolation::new("conversation_id", "must be a UUID", "会话标识无效，请刷新页面后重试。"));
    }
    let client_msg_id = r.client_msg_id.trim().to_owned();
    if client_msg_id.is_empty() || client_msg_id.chars().count() > MAX_CLIENT_ID {
        violations.push(FieldViolation::new("client_msg_id", "must be 1 to 64 characters", "消息发送失败，请重试。"));
    }
    let mut emoji = None;
    let mut attachment = None;
    let mut selection: Option<(answer_pb::AskRequest, pb::MessageContent)> = None;
    let id_ok = |s: &str| !s.trim().is_empty() && s.len() <= 100;
    let text = match r.content.and_then(|c| c.body) {
        Some(pb::message_content::Body::OptionSelection(o)) => {
            if !id_ok(&o.clarification_node_id) {
                violations.push(FieldViolation::new(
                    "content.option_selection.clarification_node_id",
                    "must be 1 to 100 characters",
                    "选项已失效，请重新提问。",
                ));
            }
            if !id_ok(&o.option_id) {
                violations.push(FieldViolation::new(
                    "content.option_selection.option_id",
                    "must be 1 to 100 characters",
                    "选项已失效，请重新提问。",
                ));
            }
            let label = o.label.trim().chars().take(MAX_TEXT_CHARS).collect::<String>();
            let ask = answer_pb::AskRequest {
                clarification_node_id: o.clarification_node_id.trim().to_owned(),
                selected_option_id: o.option_id.trim().to_owned(),
                source: answer_pb::QuestionSource::Clarification as i32,
                ..Default::default()
            };
            let stored = pb::OptionSelectionContent {
                clarification_node_id: ask.clarification_node_id.clone(),
                option_id: ask.selected_option_id.clone(),
                label: label.clone(),
            };
            selection =
                Some((ask, pb::MessageContent { body: Some(pb::message_content::Body::OptionSelection(stored)) }));
            label
        }
        Some(pb::message_content::Body::QuestionSelection(q)) => {
            if !id_ok(&q.item_id) {
                violations.push(FieldViolation::new(
                    "content.question_selection.item_id",
                    "must be 1 to 100 characters",
                    "该问题已失效，请重新提问。",
                ));
            }
            let question = q.question.trim().chars().take(MAX_TEXT_CHARS).collect::<String>();
            let source = match answer_pb::QuestionSource::try_from(q.source) {
                Ok(answer_pb::QuestionSource::Unspecified) | Err(_) => answer_pb::QuestionSource::Guess,
                Ok(s) => s,
            };
            let ask = answer_pb::AskRequest {
                question: question.clone(),
                item_id: q.item_id.trim().to_owned(),
                source: source as i32,
                ..Default::default()
            };
            let stored = pb::QuestionSelectionContent {
                item_id: ask.item_id.clone(),
                question: question.clone(),
                source: source as i32,
            };
            selection =
                Some((ask, pb::MessageContent { body: Some(pb::message_content::Body::QuestionSelection(stored)) }));
            question
        }
        Some(pb::message_content::Body::Image(i)) => {
            attachment = Some(PendingAttachment {
                field: "content.image.attachment.id",
                id: i.attachment.map(|a| a.id).unwrap_or_default(),
                purpose: Purpose::ChatImage,
            });
            String::new()
        }
        Some(pb::message_content::Body::File(f)) => {
            attachment = Some(PendingAttachment {
                field: "content.file.attachment.id",
                id: f.attachment.map(|a| a.id).unwrap_or_default(),
                purpose: Purpose::ChatFile,
            });
            String::new()
        }
        Some(pb::message_content::Body::Emoji(e)) => {
            if !valid_emoji(e.code.trim()) || e.alt.chars().count() > 16 {
                violations.push(FieldViolation::new("content.emoji.code", "not an emoji", "表情有误，请重新选择。"));
            }
            emoji = Some(pb::EmojiContent { code: e.code.trim().to_owned(), alt: e.alt.trim().to_owned() });
            String::new()
        }
        Some(pb::message_content::Body::Text(t)) => {
            let text = t.text.trim().to_owned();
            if text.is_empty() {
                violations.push(FieldViolation::new(
                    "content.text.text",
                    "must not be empty",
                    "请输入您要咨询的问题。",
                ));
            } else if text.chars().count() > MAX_TEXT_CHARS {
                violations.push(FieldViolation::new(
                    "content.text.text",
                    "must be at most 300 characters",
                    "消息最多300个字，请精简后再发送。",
                ));
            }
            text
        }
        Some(_) => {
            violations.push(FieldViolation::new(
                "content",
                "send text, an emoji, an image or a file",
                "该消息类型不支持发送。",
            ));
            String::new()
        }
        None => {
            violations.push(FieldViolation::new("content", "text content is required", "请输入您要咨询的问题。"));
            String::new()
        }
    };
    let (selection, selected_content) = match selection {
        Some((ask, content)) => (Some(ask), Some(content)),
        None => (None, None),
    };
    let (content, is_text) = match (emoji, selected_content) {
        (_, Some(c)) => (c, false),
        (Some(e), None) => (pb::MessageContent { body: Some(pb::message_content::Body::Emoji(e)) }, false),
        // Replaced by the stored attachment once resolved.
        (None, None) if attachment.is_some() => (pb::MessageContent::default(), false),
        (None, None) => (
            pb::MessageContent { body: Some(pb::message_content::Body::Text(pb::TextContent { text: text.clone() })) },
            true,
        ),
    };
    match (violations.is_empty(), conversation) {
        (true, Some(conversation)) => {
            Ok(ValidSend { conversation, client_msg_id, text, content, is_text, attachment, selection })
        }
        _ => Err(ApiError::InvalidArgument(violations)),
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;
type AgentStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeConversationResponse, Status>> + Send>>;

/// What a conversation stream carries (the taxpayer's and the agent's wrap it differently).
/// Items are moved straight into responses, so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Message(pb::Message),
    Heartbeat(pb::Heartbeat),
    Conversation(Box<pb::Conversation>),
    CaughtUp(u64),
}

impl From<Item> for pb::subscribe_response::Event {
    fn from(i: Item) -> Self {
        match i {
            Item::Message(m) => Self::Message(m),
            Item::Heartbeat(h) => Self::Heartbeat(h),
            Item::Conversation(c) => Self::ConversationUpdated(*c),
            Item::CaughtUp(last_seq) => Self::CaughtUp(pb::CaughtUp { last_seq }),
        }
    }
}

impl From<Item> for pb::subscribe_conversation_response::Event {
    fn from(i: Item) -> Self {
        match i {
            Item::Message(m) => Self::Message(m),
            Item::Heartbeat(h) => Self::Heartbeat(h),
            Item::Conversation(c) => Self::ConversationUpdated(*c),
            Item::CaughtUp(last_seq) => Self::CaughtUp(pb::CaughtUp { last_seq }),
        }
    }
}

/// Messages after `after_seq`: replayed from the database, then live. The caller subscribed
/// to `wakes` before calling, and reads go by `seq > last`, so the seam between replay and
/// live has neither a gap nor a duplicate.
/// With `updates`, the conversation itself is sent first and again whenever it changed
/// (mode, agent, transfer, rating, end), checked at each wake-up.
fn messages(
    store: Store,
    mut wakes: KeyWatch,
    conversation: Uuid,
    after_seq: i64,
    heartbeat: Duration,
    shutdown: CancellationToken,
    updates: bool,
) -> impl Stream<Item = Result<Item, Status>> + Send + 'static {
    async_stream::try_stream! {
        let mut last = after_seq;
        let mut seen: Option<pb::Conversation> = None;
        let mut caught_up = false;
        // The conversation is re-read at the start, after system notices (every mode,
        // agent, transfer and end change posts one) and on the idle safety net.
        let mut recheck = true;
        loop {
            let current = if updates && recheck { store.conversation(conversation).await.map_err(Status::from)? } else { None };
            recheck = false;
            if let Some(row) = current {
                let now = row.to_proto();
                if seen.as_ref() != Some(&now) {
                    seen = Some(now.clone());
                    yield Item::Conversation(Box::new(now));
                }
            }
            let batch = store.messages_after(conversation, last, REPLAY_PAGE).await.map_err(Status::from)?;
            let full = batch.len() as i64 == REPLAY_PAGE;
            for row in batch {
                last = row.seq;
                recheck |= row.sender == "system";
                yield Item::Message(row.to_proto());
            }
            if full {
                continue;
            }
            if recheck {
                // The change the notice announced is committed with it: show it now.
                continue;
            }
            if !caught_up {
                caught_up = true;
                yield Item::CaughtUp(u64::try_from(last).unwrap_or(0));
            }
            // Idle periods only send a heartbeat; every fourth one also re-reads, as a safety
            // net behind the wake-ups (a re-read per heartbeat made 20,000 idle streams cost
            // ~2,700 queries a second).
            let mut idle = 0u32;
            loop {
                match wakes.wait(heartbeat, &shutdown).await {
                    Waited::Done => return,
                    Waited::Woken => break,
                    Waited::Idle => {
                        yield Item::Heartbeat(pb::Heartbeat { at: Some(crate::store::timestamp(chrono::Utc::now())) });
                        idle += 1;
                        if idle.is_multiple_of(4) {
                            recheck = true;
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[tonic::async_trait]
impl pb::conversation_service_server::ConversationService for ConversationApi {
    async fn start_conversation(
        &self,
        request: Request<pb::StartConversationRequest>,
    ) -> Result<Response<pb::StartConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let channel = request.into_inner().channel;
        let channel = match channel.as_str() {
            "" | "etax" => "etax",
            "einvoice" => "einvoice",
            _ => {
                return Err(ApiError::invalid(
                    "channel",
                    "must be `etax` or `einvoice`",
                    "入口参数有误，请刷新页面后重试。",
                )
                .into());
            }
        };
        let (row, resumed) = self.store.start_or_resume(tp, channel).await?;
        if !resumed {
            tracing::info!(conversation = %row.id, "conversation started");
        }
        Ok(Response::new(pb::StartConversationResponse { conversation: Some(row.to_proto()), resumed }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?.clone();
        let mut input = validate_send(request.into_inner())?;
        let conversation = self
            .store
            .taxpayer_conversation(input.conversation, &tp.tax_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        if conversation.mode == "human" && input.selection.take().is_some() {
            // An agent reads it: a clicked question or option is plain text from here on,
            // and passes the moderation checkpoint like typed text.
            input.content = pb::MessageContent {
                body: Some(pb::message_content::Body::Text(pb::TextContent { text: input.text.clone() })),
            };
            input.is_text = !input.text.is_empty();
        }
        let (content, text) = match &input.attachment {
            Some(pending) => {
                if conversation.mode != "human" {
                    return Err(ApiError::refused(
                        "images and files need human mode",
                        "图片和文件需在人工服务中发送，请先转人工。",
                    )
                    .into());
                }
                self.attachment_content(&caller, pending, &conversation).await?
            }
            None => (input.content, input.text.clone()),
        };
        // What an agent will read passes the checkpoint (the bot checks its own questions).
        let (content, text, disposition) = if input.is_text && conversation.mode == "human" {
            match self.moderate(&caller, conversation.id, &text, answer_pb::ContentDirection::TaxpayerInput).await {
                Moderated::Deliver => (content, text, pb::SendDisposition::Delivered),
                Moderated::Mask(masked) => (text_content(&masked), masked, pb::SendDisposition::Masked),
                Moderated::Block(notice) => {
                    return Ok(Response::new(pb::SendMessageResponse {
                        message: None,
                        disposition: pb::SendDisposition::Blocked as i32,
                        notice,
                    }));
                }
            }
        } else {
            (content, text, pb::SendDisposition::Delivered)
        };
        let (stored, _fresh) = self
            .store
            .append(
                conversation.id,
                NewMessage {
                    client_msg_id: input.client_msg_id,
                    sender: "taxpayer",
                    sender_name: tp.name.clone(),
                    reply_to: None,
                    text,
                    content,
                },
            )
            .await?;
        // The bot answers while no agent has taken over (it keeps answering while queued).
        // A retried send whose first attempt stored the message but not the reply gets it now.
        if matches!(conversation.mode.as_str(), "bot" | "queued") {
            let ask = match input.selection {
                Some(selection) => Some(selection),
                None if input.is_text => Some(answer_pb::AskRequest {
                    question: input.text.clone(),
                    source: answer_pb::QuestionSource::Typed as i32,
                    ..Default::default()
                }),
                None => None,
            };
            if let Some(ask) = ask {
                self.reply_with_bot(&caller, conversation.id, stored.seq, ask).await?;
            }
        }
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(stored.to_proto()),
            disposition: disposition as i32,
            notice: String::new(),
        }))
    }

    async fn clear_screen(
        &self,
        request: Request<pb::ClearScreenRequest>,
    ) -> Result<Response<pb::ClearScreenResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let id = parse_uuid("conversation_id", &request.get_ref().conversation_id)?;
        let cleared =
            self.store.clear_screen(id, &tp.tax_id).await?.ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        Ok(Response::new(pb::ClearScreenResponse { cleared_through_seq: cleared as u64 }))
    }

    async fn list_history(
        &self,
        request: Request<pb::ListHistoryRequest>,
    ) -> Result<Response<pb::ListHistoryResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let id = parse_uuid("conversation_id", &r.conversation_id)?;
        self.store
            .taxpayer_conversation(id, &tp.tax_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        let size = zhengna_platform::paging::Page::from_request(r.page.as_ref())?.size;
        // The token is the seq to continue before; otherwise `before_seq` (0 = from the end).
        let before = match r.page.as_ref().map(|p| p.page_token.as_str()).unwrap_or("") {
            "" => i64::try_from(r.before_seq).unwrap_or(i64::MAX),
            t => t
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("page.page_token", "malformed", "分页参数有误，请刷新后重试。"))?,
        };
        let rows = self.store.history(id, before, size).await?;
        let next = match rows.first() {
            Some(first) if rows.len() as i64 == size && first.seq > 1 => first.seq.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListHistoryResponse {
            messages: rows.iter().map(|m| m.to_proto()).collect(),
            page: Some(zhengna_proto::common::v1::PageResponse { next_page_token: next, total_size: 0 }),
        }))
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let preferences = crate::preferences::get(self.store.pool(), &tp.tax_id).await?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: Some(preferences),
            quick_entries: crate::preferences::catalog(),
        }))
    }

    async fn update_preferences(
        &self,
        request: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let wanted = r.preferences.clone().unwrap_or_default();
        let paths: Vec<String> = r.update_mask.as_ref().map(|m| m.paths.clone()).unwrap_or_default();
        for (i, p) in paths.iter().enumerate() {
            if p != "quick_entry_ids" && p != "font_size" {
                return Err(ApiError::invalid(&format!("update_mask.paths[{i}]"), "unknown field", "参数有误。").into());
            }
        }
        let touches = |f: &str| paths.is_empty() || paths.iter().any(|p| p == f);
        let current = crate::preferences::get(self.store.pool(), &tp.tax_id).await?;
        let ids = if touches("quick_entry_ids") {
            crate::preferences::check_entries(&wanted.quick_entry_ids)?
        } else {
            current.quick_entry_ids.clone()
        };
        let font = if touches("font_size") {
            pb::FontSize::try_from(wanted.font_size)
                .ok()
                .and_then(crate::preferences::font_str)
                .ok_or_else(|| ApiError::invalid("preferences.font_size", "choose a size", "请选择字体大小。"))?
        } else {
            crate::preferences::font_of(&current)
        };
        let preferences = crate::preferences::set(self.store.pool(), &tp.tax_id, &ids, font).await?;
        Ok(Response::new(pb::UpdatePreferencesResponse {
            preferences: Some(preferences),
            quick_entries: crate::preferences::catalog(),
        }))
    }

    async fn list_quick_entries(
        &self,
        request: Request<pb::ListQuickEntriesRequest>,
    ) -> Result<Response<pb::ListQuickEntriesResponse>, Status> {
        identity::caller(&request)?;
        Ok(Response::new(pb::ListQuickEntriesResponse { quick_entries: crate::preferences::catalog() }))
    }

    async fn end_conversation(
        &self,
        request: Request<pb::EndConversationRequest>,
    ) -> Result<Response<pb::EndConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let id = parse_uuid("conversation_id", &request.get_ref().conversation_id)?;
        let row = crate::lifecycle::end(
            self.store.pool(),
            id,
            crate::lifecycle::Ender::Taxpayer { tax_id: &tp.tax_id, name: &tp.name },
        )
        .await?;
        Ok(Response::new(pb::EndConversationResponse { conversation: Some(row.to_proto()) }))
    }

    async fn rate_conversation(
        &self,
        request: Request<pb::RateConversationRequest>,
    ) -> Result<Response<pb::RateConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let id = parse_uuid("conversation_id", &r.conversation_id)?;
        let resolved = match pb::RatingResult::try_from(r.result) {
            Ok(pb::RatingResult::Resolved) => true,
            Ok(pb::RatingResult::Unresolved) => false,
            _ => {
                return Err(
                    ApiError::invalid("result", "choose resolved or unresolved", "请选择“已解决”或“未解决”。").into()
                );
            }
        };
        if r.comment.chars().count() > 200 {
            return Err(ApiError::invalid("comment", "at most 200 characters", "评价内容最多200个字。").into());
        }
        let row = crate::lifecycle::rate(self.store.pool(), id, &tp.tax_id, resolved, r.comment.trim()).await?;
        Ok(Response::new(pb::RateConversationResponse { conversation: Some(row.to_proto()) }))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.taxpayer()?;
        let new = crate::uploads::validate_new(request.get_ref())?;
        Ok(Response::new(self.create_upload_for(&caller, new).await?))
    }

    async fn complete_upload(
        &self,
        request: Request<pb::CompleteUploadRequest>,
    ) -> Result<Response<pb::CompleteUploadResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.taxpayer()?;
        let row = self.uploads.complete(&caller, &request.get_ref().upload_id).await?;
        Ok(Response::new(pb::CompleteUploadResponse { attachment: Some(row.attachment()) }))
    }

    async fn get_attachment(
        &self,
        request: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::GetAttachmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.taxpayer()?;
        Ok(Response::new(self.attachment_for(&caller, &request.get_ref().attachment_id).await?))
    }

    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<SubscribeStream>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?.clone();
        let r = request.into_inner();
        let conversation = parse_uuid("conversation_id", &r.conversation_id)?;
        let after_seq = i64::try_from(r.after_seq)
            .map_err(|_| ApiError::invalid("after_seq", "out of range", "参数有误，请刷新页面后重试。"))?;
        self.store
            .taxpayer_conversation(conversation, &tp.tax_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        let wakes = self.hub.watch(&conversation.to_string());
        let stream =
            messages(self.store.clone(), wakes, conversation, after_seq, self.heartbeat(), self.shutdown.clone(), true)
                .map(|item| item.map(|i| pb::SubscribeResponse { event: Some(i.into()) }));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Links uploads to records of other services (called by them, never through the gateway).
pub struct LinkApi {
    uploads: Uploads,
}

impl LinkApi {
    pub fn new(uploads: Uploads) -> Self {
        Self { uploads }
    }
}

#[tonic::async_trait]
impl pb::attachment_link_service_server::AttachmentLinkService for LinkApi {
    async fn link_attachments(
        &self,
        request: Request<pb::LinkAttachmentsRequest>,
    ) -> Result<Response<pb::LinkAttachmentsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.get_ref();
        let rows = self
            .uploads
            .link(&caller, &r.attachment_ids, r.purpose, &r.reference, &r.taxpayer_id, &r.office_code)
            .await?;
        Ok(Response::new(pb::LinkAttachmentsResponse { attachments: rows.iter().map(|r| r.attachment()).collect() }))
    }
}

/// The serving agent's side of a conversation: text messages and the full transcript with
/// live updates. Only the agent the queue assigned reaches the conversation.
/// The taxpayer of a conversation as agents see it.
fn taxpayer_ref(row: &crate::store::ConversationRow, name: String) -> zhengna_proto::common::v1::TaxpayerRef {
    zhengna_proto::common::v1::TaxpayerRef {
        id: row.taxpayer_id.clone(),
        name,
        tax_id: row.taxpayer_id.clone(),
        office_code: row.office_code.clone(),
    }
}

pub struct AgentApi {
    inner: ConversationApi,
}

impl AgentApi {
    pub fn new(inner: ConversationApi) -> Self {
        Self { inner }
    }
}

#[tonic::async_trait]
impl pb::agent_conversation_service_server::AgentConversationService for AgentApi {
    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let id = parse_uuid("conversation_id", &request.get_ref().conversation_id)?;
        let row = self
            .inner
            .store
            .agent_conversation(id, &agent.agent_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        let name = self.inner.store.taxpayer_name(id).await?;
        let messages = self.inner.store.messages_after(id, 0, 5000).await?;
        Ok(Response::new(pb::GetConversationResponse {
            taxpayer: Some(taxpayer_ref(&row, name)),
            conversation: Some(row.to_proto()),
            messages: messages.iter().map(|m| m.to_proto()).collect(),
            open_media_sessions: Vec::new(),
        }))
    }

    async fn list_active_conversations(
        &self,
        request: Request<pb::ListActiveConversationsRequest>,
    ) -> Result<Response<pb::ListActiveConversationsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let whose = r.agent_id.trim();
        let whose = if whose.is_empty() || whose == agent.agent_id {
            agent.agent_id.clone()
        } else {
            // Supervisors look at their office's agents; the agent's office is checked by
            // the conversations' serving office.
            if !matches!(agent.role, zhengna_platform::AgentRole::Supervisor | zhengna_platform::AgentRole::Admin) {
                return Err(
                    ApiError::PermissionDenied("only supervisors list other agents' conversations".into()).into()
                );
            }
            whose.to_owned()
        };
        let page = zhengna_platform::paging::Page::from_request(r.page.as_ref())?;
        // A supervisor sees colleagues' conversations served in their office subtree.
        let prefix = (whose != agent.agent_id).then(|| {
            zhengna_platform::offices::subtree_prefix(&agent.office_code).unwrap_or(&agent.office_code).to_owned()
        });
        let (rows, total) = self.inner.store.serving(&whose, prefix.as_deref(), page.size, page.offset).await?;
        let mut conversations = Vec::with_capacity(rows.len());
        for (row, name) in rows {
            let last = self.inner.store.last_message(row.id).await?;
            conversations.push(pb::ConversationSummary {
                taxpayer: Some(taxpayer_ref(&row, name)),
                conversation: Some(row.to_proto()),
                last_message: last.map(|m| m.to_proto()),
                assigned_at: None,
            });
        }
        Ok(Response::new(pb::ListActiveConversationsResponse {
            page: Some(page.response(conversations.len(), total)),
            conversations,
        }))
    }

    async fn send_agent_message(
        &self,
        request: Request<pb::SendAgentMessageRequest>,
    ) -> Result<Response<pb::SendAgentMessageResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?.clone();
        let r = request.into_inner();
        if matches!(
            r.content.as_ref().and_then(|c| c.body.as_ref()),
            Some(pb::message_content::Body::OptionSelection(_) | pb::message_content::Body::QuestionSelection(_))
        ) {
            return Err(ApiError::invalid(
                "content",
                "agents send text, emoji, images or files",
                "不支持发送该类型的消息。",
            )
            .into());
        }
        let input = validate_send(pb::SendMessageRequest {
            conversation_id: r.conversation_id,
            client_msg_id: r.client_msg_id,
            content: r.content,
        })?;
        let conversation = self
            .inner
            .store
            .agent_conversation(input.conversation, &agent.agent_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        if conversation.mode != "human" {
            return Err(ApiError::refused("conversation is not in human mode", "该会话当前不在人工服务中。").into());
        }
        let (content, text) = match &input.attachment {
            Some(pending) => self.inner.attachment_content(&caller, pending, &conversation).await?,
            None => (input.content, input.text.clone()),
        };
        let (content, text, disposition) = if input.is_text {
            match self.inner.moderate(&caller, conversation.id, &text, answer_pb::ContentDirection::AgentOutput).await {
                Moderated::Deliver => (content, text, pb::SendDisposition::Delivered),
                Moderated::Mask(masked) => (text_content(&masked), masked, pb::SendDisposition::Masked),
                Moderated::Block(_) => {
                    return Ok(Response::new(pb::SendAgentMessageResponse {
                        message: None,
                        disposition: pb::SendDisposition::Blocked as i32,
                        notice: "消息中包含不适宜的用语，未发送，请修改后再发。".into(),
                    }));
                }
            }
        } else {
            (content, text, pb::SendDisposition::Delivered)
        };
        let (stored, _) = self
            .inner
            .store
            .append(
                conversation.id,
                NewMessage {
                    client_msg_id: input.client_msg_id,
                    sender: "agent",
                    sender_name: agent.name.clone(),
                    reply_to: None,
                    text,
                    content,
                },
            )
            .await?;
        Ok(Response::new(pb::SendAgentMessageResponse {
            message: Some(stored.to_proto()),
            disposition: disposition as i32,
            notice: String::new(),
        }))
    }

    async fn create_agent_upload(
        &self,
        request: Request<pb::CreateAgentUploadRequest>,
    ) -> Result<Response<pb::CreateAgentUploadResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.agent()?;
        // The agent's request carries the same fields as the taxpayer's.
        let r = request.into_inner();
        let new = crate::uploads::validate_new(&pb::CreateUploadRequest {
            client_request_id: r.client_request_id,
            purpose: r.purpose,
            file_name: r.file_name,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            conversation_id: r.conversation_id,
        })?;
        let t = self.inner.create_upload_for(&caller, new).await?;
        Ok(Response::new(pb::CreateAgentUploadResponse {
            upload_id: t.upload_id,
            upload_url: t.upload_url,
            method: t.method,
            headers: t.headers,
            expires_at: t.expires_at,
            max_size_bytes: t.max_size_bytes,
        }))
    }

    async fn complete_agent_upload(
        &self,
        request: Request<pb::CompleteAgentUploadRequest>,
    ) -> Result<Response<pb::CompleteAgentUploadResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.agent()?;
        let row = self.inner.uploads.complete(&caller, &request.get_ref().upload_id).await?;
        Ok(Response::new(pb::CompleteAgentUploadResponse { attachment: Some(row.attachment()) }))
    }

    async fn get_agent_attachment(
        &self,
        request: Request<pb::GetAgentAttachmentRequest>,
    ) -> Result<Response<pb::GetAgentAttachmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        caller.agent()?;
        let a = self.inner.attachment_for(&caller, &request.get_ref().attachment_id).await?;
        Ok(Response::new(pb::GetAgentAttachmentResponse {
            attachment: a.attachment,
            download_url: a.download_url,
            url_expires_at: a.url_expires_at,
            inline_allowed: a.inline_allowed,
        }))
    }

    async fn close_conversation(
        &self,
        request: Request<pb::CloseConversationRequest>,
    ) -> Result<Response<pb::CloseConversationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?;
        let r = request.get_ref();
        let id = parse_uuid("conversation_id", &r.conversation_id)?;
        if r.summary.chars().count() > 500 {
            return Err(ApiError::invalid("summary", "at most 500 characters", "服务小结最多500个字。").into());
        }
        let row = crate::lifecycle::end(
            self.inner.store.pool(),
            id,
            crate::lifecycle::Ender::Agent {
                agent_id: &agent.agent_id,
                name: &agent.name,
                request_rating: !r.skip_rating,
                summary: r.summary.trim(),
            },
        )
        .await?;
        Ok(Response::new(pb::CloseConversationResponse { conversation: Some(row.to_proto()) }))
    }

    async fn subscribe_conversation(
        &self,
        request: Request<pb::SubscribeConversationRequest>,
    ) -> Result<Response<AgentStream>, Status> {
        let caller = identity::caller(&request)?;
        let agent = caller.agent()?.clone();
        let r = request.into_inner();
        let conversation = parse_uuid("conversation_id", &r.conversation_id)?;
        let after_seq = i64::try_from(r.after_seq)
            .map_err(|_| ApiError::invalid("after_seq", "out of range", "参数有误，请刷新页面后重试。"))?;
        let wakes = self.inner.hub.watch(&conversation.to_string());
        self.inner
            .store
            .agent_conversation(conversation, &agent.agent_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
        // While this stream is open the agent counts as connected (refreshed every 20 s,
        // cleared when the stream goes away).
        let alive = self.inner.shutdown.child_token();
        // Connected from the moment the stream is handed out (then refreshed below).
        self.inner.store.agent_seen(conversation, &agent.agent_id, true).await?;
        {
            let store = self.inner.store.clone();
            let alive = alive.clone();
            let agent_id = agent.agent_id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = alive.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(20)) => {}
                    }
                    if let Err(e) = store.agent_seen(conversation, &agent_id, true).await {
                        tracing::warn!(error = %e, "recording the agent's connection");
                    }
                }
                let _ = store.agent_seen(conversation, &agent_id, false).await;
            });
        }
        let guard = alive.drop_guard();
        let stream = messages(
            self.inner.store.clone(),
            wakes,
            conversation,
            after_seq,
            self.inner.heartbeat(),
            self.inner.shutdown.clone(),
            true,
        )
        .map(move |item| {
            let _alive = &guard;
            item.map(|i| pb::SubscribeConversationResponse { event: Some(i.into()) })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(text: &str) -> pb::SendMessageRequest {
        pb::SendMessageRequest {
            conversation_id: Uuid::nil().to_string(),
            client_msg_id: "c1".into(),
            content: Some(pb::MessageContent {
                body: Some(pb::message_content::Body::Text(pb::TextContent { text: text.into() })),
            }),
        }
    }

    #[test]
    fn text_limits() {
        assert!(validate_send(send("你好")).is_ok());
        assert!(validate_send(send(&"税".repeat(300))).is_ok());
        let Err(ApiError::InvalidArgument(v)) = validate_send(send(&"税".repeat(301))) else {
            panic!("expected invalid")
        };
        assert_eq!(v[0].field, "content.text.text");
        let Err(ApiError::InvalidArgument(v)) = validate_send(send("   ")) else { panic!("expected invalid") };
        assert_eq!(v[0].field, "content.text.text");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let r = pb::SendMessageRequest { conversation_id: "nope".into(), client_msg_id: String::new(), content: None };
        let Err(ApiError::InvalidArgument(v)) = validate_send(r) else { panic!("expected invalid") };
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["conversation_id", "client_msg_id", "content"]);
    }
}
