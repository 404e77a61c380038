//! Linking uploads to records of other services. Uploads live in the session service; when
//! an appointment, a leave message, a reply or a ticket references them, the owning service
//! calls `zhengna.session.v1.AttachmentLinkService` with the end user's forwarded identity,
//! which checks the files are that user's completed uploads and grants the record's
//! taxpayer and office read access. The owning service keeps a copy of the metadata.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use zhengna_proto::common::v1::AttachmentRef;
use zhengna_proto::session::v1 as session;
use zhengna_proto::session::v1::attachment_link_service_client::AttachmentLinkServiceClient;

use crate::identity::{Caller, IdentityKey};
use crate::{ApiError, StartupError};

/// Image extensions (发送图片 and 附件材料), ARCHITECTURE.md.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "tif", "pjp", "xbm", "jxl", "svgz", "jpg", "jpeg", "ico", "tiff", "gif", "svg", "jfif", "webp", "png", "bmp",
    "pjpeg", "avif",
];
/// File extensions (发送文件 and 附件材料).
pub const FILE_EXTENSIONS: &[&str] = &["txt", "xls", "xlsx", "doc", "docx", "pdf", "zip", "rar", "dbf"];
/// Largest attachment of an appointment, 留言, reply or ticket: "不超过 20M".
pub const MAX_ATTACHMENT_BYTES: i64 = 20 * 1024 * 1024;
/// Attachments per appointment, 留言, reply or ticket.
pub const MAX_PER_RECORD: usize = 5;

/// Every extension an attachment may have, for the forms' rules.
pub fn attachment_extensions() -> Vec<String> {
    IMAGE_EXTENSIONS.iter().chain(FILE_EXTENSIONS).map(|e| (*e).to_owned()).collect()
}

/// Where the session service is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionUpstream {
    /// Base URL of the session service, e.g. `http://127.0.0.1:7063`.
    pub url: String,
    pub timeout_ms: u64,
}

impl Default for SessionUpstream {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:7063".into(), timeout_ms: 5000 }
    }
}

/// Attachment metadata as other services store it (JSON), mirroring `AttachmentRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    pub id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub kind: i32,
}

impl From<AttachmentRef> for StoredAttachment {
    fn from(a: AttachmentRef) -> Self {
        Self { id: a.id, file_name: a.file_name, content_type: a.content_type, size_bytes: a.size_bytes, kind: a.kind }
    }
}

impl From<&StoredAttachment> for AttachmentRef {
    fn from(a: &StoredAttachment) -> Self {
        Self {
            id: a.id.clone(),
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone(),
            size_bytes: a.size_bytes,
            kind: a.kind,
        }
    }
}

#[derive(Clone)]
pub struct Linker {
    client: AttachmentLinkServiceClient<Channel>,
    key: IdentityKey,
    timeout: Duration,
}

/// What a record's attachments are for.
#[derive(Debug, Clone, Copy)]
pub enum LinkPurpose {
    Appointment,
    LeaveMessage,
}

impl Linker {
    pub fn new(cfg: &SessionUpstream, key: IdentityKey) -> Result<Self, StartupError> {
        let channel = crate::grpc::channel(&cfg.url, Duration::from_secs(3))
            .map_err(|e| StartupError::Config(format!("session.url: {e}")))?;
        Ok(Self {
            client: AttachmentLinkServiceClient::new(channel),
            key,
            timeout: Duration::from_millis(cfg.timeout_ms.max(100)),
        })
    }

    /// Links `ids` (the caller's uploads) to `reference`, readable by `taxpayer_id` and the
    /// staff of `office_code`. Errors name the request field `attachment_ids[i]`.
    pub async fn link(
        &self,
        caller: &Caller,
        ids: &[String],
        purpose: LinkPurpose,
        reference: &str,
        taxpayer_id: &str,
        office_code: &str,
    ) -> Result<Vec<StoredAttachment>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = session::LinkAttachmentsRequest {
            attachment_ids: ids.to_vec(),
            purpose: match purpose {
                LinkPurpose::Appointment => session::UploadPurpose::Appointment,
                LinkPurpose::LeaveMessage => session::UploadPurpose::LeaveMessage,
            } as i32,
            reference: reference.to_owned(),
            taxpayer_id: taxpayer_id.to_owned(),
            office_code: office_code.to_owned(),
        };
        let res = self
            .client
            .clone()
            .link_attachments(crate::grpc::outgoing(request, caller, &self.key, self.timeout))
            .await
            .map_err(ApiError::from_upstream)?;
        Ok(res.into_inner().attachments.into_iter().map(StoredAttachment::from).collect())
    }
}
