//! gRPC adapter for the messaging service.

use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_platform::identity;
use zhengna_proto::common::v1 as common;
use zhengna_proto::messaging::v1 as pb;

use crate::inbox::{Cursor, Inbox, ListQuery, NotificationRow};

const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;
const MAX_MARK_IDS: usize = 100;

pub struct InboxApi {
    inbox: Inbox,
    hub: zhengna_platform::db::ListenHub,
    shutdown: tokio_util::sync::CancellationToken,
}

type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchInboxResponse, Status>> + Send>>;

async fn counts(inbox: &Inbox, taxpayer_id: &str) -> Result<pb::WatchInboxResponse, Status> {
    let (todo, notice) = inbox.unread(taxpayer_id).await?;
    Ok(pb::WatchInboxResponse {
        update: Some(pb::watch_inbox_response::Update::Unread(pb::UnreadCounts {
            todo_unread: todo as i32,
            notice_unread: notice as i32,
            total_unread: (todo + notice) as i32,
        })),
    })
}

impl InboxApi {
    pub fn new(
        inbox: Inbox,
        hub: zhengna_platform::db::ListenHub,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self { inbox, hub, shutdown }
    }

    /// Keeps the push directory current from the caller's login claims (best effort).
    async fn remember(&self, tp: &zhengna_platform::Taxpayer) {
        if let Err(e) = crate::push::upsert_profiles(self.inbox.pool(), &[tp.into()]).await {
            tracing::warn!(error = %e, "could not update the taxpayer directory");
        }
    }
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn notification_to_proto(r: &NotificationRow) -> pb::Notification {
    let category = match r.category.as_str() {
        "todo" => pb::NotificationCategory::Todo,
        _ => pb::NotificationCategory::Notice,
    };
    let kind = match r.kind.as_str() {
        "precision_push" => pb::NotificationKind::PrecisionPush,
        "ticket_result" => pb::NotificationKind::TicketResult,
        "leave_message_reply" => pb::NotificationKind::LeaveMessageReply,
        "appointment_booked" => pb::NotificationKind::AppointmentBooked,
        "appointment_missed" => pb::NotificationKind::AppointmentMissed,
        "appointment_invited" => pb::NotificationKind::AppointmentInvited,
        "appointment_cancelled" => pb::NotificationKind::AppointmentCancelled,
        "appointment_reminder" => pb::NotificationKind::AppointmentReminder,
        "appointment_failed" => pb::NotificationKind::AppointmentFailed,
        "answer_changed" => pb::NotificationKind::AnswerChanged,
        _ => pb::NotificationKind::Unspecified,
    };
    pb::Notification {
        id: r.id.to_string(),
        category: category as i32,
        kind: kind as i32,
        title: r.title.clone(),
        body: r.body.clone(),
        link_url: r.link_url.clone(),
        read: r.read_at.is_some(),
        created_at: Some(ts(r.created_at)),
        source_ref: r.source_ref.clone(),
        read_at: r.read_at.map(ts),
    }
}

fn parse_id(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::invalid(field, "must be a UUID", "消息标识无效，请刷新后重试。"))
}

#[tonic::async_trait]
impl pb::inbox_service_server::InboxService for InboxApi {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        let category = match pb::NotificationCategory::try_from(r.category) {
            Ok(pb::NotificationCategory::Unspecified) => None,
            Ok(pb::NotificationCategory::Todo) => Some("todo"),
            Ok(pb::NotificationCategory::Notice) => Some("notice"),
            Err(_) => return Err(ApiError::invalid("category", "unknown category", "消息类别有误。").into()),
        };
        let page = r.page.clone().unwrap_or_default();
        // Zero means the default; above the maximum is clamped (common.v1.PageRequest).
        let size = match page.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => {
                return Err(ApiError::invalid(
                    "page.page_size",
                    "must not be negative",
                    "分页参数有误，请刷新后重试。",
                )
                .into());
            }
            n => n.min(MAX_PAGE),
        };
        let after = match page.page_token.as_str() {
            "" => None,
            t => Some(
                Cursor::decode(t)
                    .ok_or_else(|| ApiError::invalid("page.page_token", "malformed", "分页参数有误，请刷新后重试。"))?,
            ),
        };
        let (rows, total) = self
            .inbox
            .list(ListQuery {
                taxpayer_id: &tp.tax_id,
                category,
                unread_only: r.unread_only,
                limit: i64::from(size) + 1,
                after,
            })
            .await?;
        let more = rows.len() > size as usize;
        let rows = &rows[..rows.len().min(size as usize)];
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => Cursor { created_at: last.created_at, id: last.id }.encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: rows.iter().map(notification_to_proto).collect(),
            page: Some(common::PageResponse { next_page_token, total_size: total as i32 }),
        }))
    }

    async fn get_unread_count(
        &self,
        request: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        let caller = identity::caller(&request)?;
        self.remember(caller.taxpayer()?).await;
        let (todo, notice) = self.inbox.unread(&caller.taxpayer()?.tax_id).await?;
        Ok(Response::new(pb::GetUnreadCountResponse {
            todo_unread: todo as i32,
            notice_unread: notice as i32,
            total_unread: (todo + notice) as i32,
        }))
    }

    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::GetNotificationResponse>, Status> {
        let caller = identity::caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row = self
            .inbox
            .open(&caller.taxpayer()?.tax_id, id)
            .await?
            .ok_or_else(|| ApiError::NotFound("notification".into()))?;
        Ok(Response::new(pb::GetNotificationResponse { notification: Some(notification_to_proto(&row)) }))
    }

    /// The widget's live feed: current unread counts, then each new notice followed by the
    /// new counts, with a heartbeat every 15 seconds. Starts after the newest existing notice.
    async fn watch_inbox(&self, request: Request<pb::WatchInboxRequest>) -> Result<Response<WatchStream>, Status> {
        use zhengna_platform::db::{Waited, wait_for};
        let caller = identity::caller(&request)?;
        let tax_id = caller.taxpayer()?.tax_id.clone();
        // Subscribe before reading the starting point: nothing slips in between.
        let mut wakes = self.hub.subscribe();
        let mut cursor = self.inbox.latest(&tax_id).await?;
        let inbox = self.inbox.clone();
        let shutdown = self.shutdown.clone();
        let stream = async_stream::try_stream! {
            yield counts(&inbox, &tax_id).await?;
            loop {
                match wait_for(&mut wakes, |who| who == tax_id || who == "*", std::time::Duration::from_secs(15), &shutdown).await {
                    Waited::Done => return,
                    Waited::Idle => {
                        yield pb::WatchInboxResponse { update: Some(pb::watch_inbox_response::Update::Heartbeat(
                            zhengna_proto::common::v1::Heartbeat { at: Some(ts(chrono::Utc::now())) },
                        )) };
                        continue;
                    }
                    Waited::Woken => {}
                }
                let fresh = inbox.newer_than(&tax_id, cursor, 100).await?;
                if fresh.is_empty() {
                    continue;
                }
                for n in &fresh {
                    cursor = Some(Cursor { created_at: n.created_at, id: n.id });
                    yield pb::WatchInboxResponse { update: Some(pb::watch_inbox_response::Update::Created(notification_to_proto(n))) };
                }
                yield counts(&inbox, &tax_id).await?;
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn mark_notifications_read(
        &self,
        request: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<Response<pb::MarkNotificationsReadResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.get_ref();
        // With all=true the ids are ignored.
        let ids = if r.all {
            None
        } else if r.ids.is_empty() {
            return Err(ApiError::invalid("ids", "give ids or all=true", "请选择要标记为已读的消息。").into());
        } else if r.ids.len() > MAX_MARK_IDS {
            return Err(ApiError::invalid("ids", "at most 100 ids", "一次最多标记100条消息。").into());
        } else {
            Some(
                r.ids
                    .iter()
                    .enumerate()
                    .map(|(i, s)| parse_id(&format!("ids[{i}]"), s))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let marked = self.inbox.mark_read(&caller.taxpayer()?.tax_id, ids.as_deref()).await?;
        Ok(Response::new(pb::MarkNotificationsReadResponse { marked: marked as i32 }))
    }
}
