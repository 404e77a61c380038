//! Uploads and attachments (spec §3.4–3.5, §1.19–1.20).
//!
//! 1. `CreateUpload` checks name, extension, size and purpose before any byte is sent and
//!    hands out a capability URL (`PUT /uploads/{id}?token=…`, valid for a few minutes).
//! 2. The bytes arrive at the blob endpoint ([`blob`]), which sniffs the first bytes against
//!    the extension before storing anything and stops at the declared size.
//! 3. `CompleteUpload` turns the stored upload into an attachment (the 点击上传 step).
//! 4. The attachment is then sent in a chat message, or linked by the appointment or
//!    messaging service to their record ([`Uploads::link`]), which grants the record's
//!    taxpayer and office read access. Downloads go through short-lived signed URLs.

pub mod blob;
pub mod rules;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;
use zhengna_platform::config::Secret;
use zhengna_platform::identity::{Caller, IdentityKey};
use zhengna_platform::{ApiError, FieldViolation, StartupError};
use zhengna_proto::common::v1::{AttachmentKind, AttachmentRef};

use self::rules::Purpose;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// `local` (a directory) or `s3` (any S3-compatible store).
    pub backend: String,
    /// Directory for the `local` backend (created if missing).
    pub local_dir: PathBuf,
    pub s3: S3Config,
    /// The blob endpoint (PUT uploads, GET downloads); the gateway forwards `/uploads/` and
    /// `/files/` here.
    pub listen: std::net::SocketAddr,
    /// How long an upload URL stays valid.
    pub upload_ttl_secs: i64,
    /// How long a download URL stays valid.
    pub download_ttl_secs: i64,
    /// Uploads never completed are deleted after this many hours.
    pub abandoned_after_hours: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `https://obs.cn-east-3.example.com` for an S3-compatible store.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Allow a plain-HTTP endpoint (MinIO in a lab).
    pub allow_http: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            local_dir: PathBuf::from("var/uploads"),
            s3: S3Config::default(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7073)),
            upload_ttl_secs: 900,
            download_ttl_secs: 300,
            abandoned_after_hours: 24,
        }
    }
}

impl StorageConfig {
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, StartupError> {
        match self.backend.as_str() {
            "local" => {
                std::fs::create_dir_all(&self.local_dir)
                    .map_err(|e| StartupError::Config(format!("storage.local_dir: {e}")))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&self.local_dir)
                    .map_err(|e| StartupError::Config(format!("storage.local_dir: {e}")))?;
                Ok(Arc::new(fs))
            }
            "s3" => {
                let s3 = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&self.s3.bucket)
                    .with_endpoint(&self.s3.endpoint)
                    .with_region(&self.s3.region)
                    .with_access_key_id(&self.s3.access_key_id)
                    .with_secret_access_key(self.s3.secret_access_key.expose())
                    .with_allow_http(self.s3.allow_http)
                    .build()
                    .map_err(|e| StartupError::Config(format!("storage.s3: {e}")))?;
                Ok(Arc::new(s3))
            }
            other => Err(StartupError::Config(format!("storage.backend `{other}`: use `local` or `s3`"))),
        }
    }
}

const MAX_CLIENT_ID: usize = 64;
const MAX_FILE_NAME: usize = 255;
pub const MAX_LINKED: usize = 10;

/// An upload as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: Uuid,
    pub uploader: String,
    pub purpose: String,
    pub file_name: String,
    pub extension: String,
    pub size_bytes: i64,
    pub conversation_id: Option<Uuid>,
    pub state: String,
    pub content_type: Option<String>,
    pub kind: Option<String>,
    pub storage_key: Option<String>,
    pub rejection: Option<String>,
    pub expires_at: DateTime<Utc>,
}

const UPLOAD_COLUMNS: &str = "id, uploader, purpose, file_name, extension, size_bytes, conversation_id, state, \
                              content_type, kind, storage_key, rejection, expires_at";

impl UploadRow {
    pub fn attachment(&self) -> AttachmentRef {
        AttachmentRef {
            id: self.id.to_string(),
            file_name: self.file_name.clone(),
            content_type: self.content_type.clone().unwrap_or_default(),
            size_bytes: self.size_bytes,
            kind: match self.kind.as_deref() {
                Some("image") => AttachmentKind::Image as i32,
                _ => AttachmentKind::File as i32,
            },
        }
    }

    /// Raster images a browser can show; SVG and everything else is download-only.
    pub fn inline_allowed(&self) -> bool {
        matches!(
            self.content_type.as_deref(),
            Some("image/jpeg" | "image/png" | "image/gif" | "image/webp" | "image/bmp" | "image/avif" | "image/x-icon")
        )
    }
}

/// A validated CreateUpload.
pub struct NewUpload {
    pub client_request_id: String,
    pub purpose: Purpose,
    pub file_name: String,
    pub extension: String,
    pub declared_type: String,
    pub size_bytes: i64,
    pub conversation_id: Option<Uuid>,
}

/// A capability to PUT the bytes of one upload.
pub struct Ticket {
    pub upload_id: Uuid,
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub max_size_bytes: i64,
}

/// A signed download URL.
pub struct Download {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Validates the fields of a CreateUpload / CreateAgentUpload request.
pub fn validate_new(r: &zhengna_proto::session::v1::CreateUploadRequest) -> Result<NewUpload, ApiError> {
    let (client_request_id, purpose, file_name, content_type, size_bytes, conversation_id) =
        (&r.client_request_id, r.purpose, &r.file_name, &r.content_type, r.size_bytes, &r.conversation_id);
    let mut v = Vec::new();
    let client_request_id = client_request_id.trim().to_owned();
    if client_request_id.is_empty() || client_request_id.chars().count() > MAX_CLIENT_ID {
        v.push(FieldViolation::new("client_request_id", "must be 1 to 64 characters", "上传失败，请重试。"));
    }
    let purpose = Purpose::from_proto(purpose);
    if purpose.is_none() {
        v.push(FieldViolation::new("purpose", "choose a purpose", "上传失败，请刷新页面后重试。"));
    }
    let file_name = file_name.trim().to_owned();
    let extension = rules::extension(&file_name).unwrap_or_default();
    if file_name.is_empty()
        || file_name.chars().count() > MAX_FILE_NAME
        || file_name.chars().any(|c| c.is_control() || c == '/' || c == '\\')
    {
        v.push(FieldViolation::new(
            "file_name",
            "must be 1 to 255 characters without path separators",
            "文件名无效，请重命名后再上传（不超过255个字符）。",
        ));
    } else if let Some(p) = purpose
        && !p.allows(&extension)
    {
        v.push(FieldViolation::new("file_name", "extension not allowed for this purpose", p.type_message()));
    }
    if let Some(p) = purpose {
        if size_bytes <= 0 {
            v.push(FieldViolation::new("size_bytes", "must be positive", "文件内容为空，请选择其他文件。"));
        } else if size_bytes > p.max_bytes() {
            v.push(FieldViolation::new(
                "size_bytes",
                format!("must be at most {} bytes", p.max_bytes()),
                p.size_message(),
            ));
        }
    }
    if content_type.chars().count() > 127 {
        v.push(FieldViolation::new("content_type", "at most 127 characters", "上传失败，请重试。"));
    }
    let conversation_id = conversation_id.trim();
    let conversation = match (purpose, conversation_id) {
        (Some(p), "") if p.is_chat() => {
            v.push(FieldViolation::new(
                "conversation_id",
                "required for chat uploads",
                "会话标识无效，请刷新页面后重试。",
            ));
            None
        }
        (_, "") => None,
        (Some(p), id) if p.is_chat() => match Uuid::parse_str(id) {
            Ok(id) => Some(id),
            Err(_) => {
                v.push(FieldViolation::new("conversation_id", "must be a UUID", "会话标识无效，请刷新页面后重试。"));
                None
            }
        },
        (_, _) => {
            v.push(FieldViolation::new("conversation_id", "only for chat uploads", "上传参数有误，请刷新页面后重试。"));
            None
        }
    };
    match (v.is_empty(), purpose) {
        (true, Some(purpose)) => Ok(NewUpload {
            client_request_id,
            purpose,
            file_name,
            extension,
            declared_type: content_type.trim().to_owned(),
            size_bytes,
            conversation_id: conversation,
        }),
        _ => Err(ApiError::InvalidArgument(v)),
    }
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn download_data(id: Uuid, exp: i64, inline: bool) -> String {
    format!("file|{id}|{exp}|{}", u8::from(inline))
}

#[derive(Clone)]
pub struct Uploads {
    pool: PgPool,
    pub(crate) objects: Arc<dyn ObjectStore>,
    key: IdentityKey,
    cfg: StorageConfig,
}

impl Uploads {
    pub fn new(pool: PgPool, objects: Arc<dyn ObjectStore>, key: IdentityKey, cfg: StorageConfig) -> Self {
        Self { pool, objects, key, cfg }
    }

    /// Records the upload (or, for a retried request id, the same one with a fresh token).
    pub async fn create(&self, caller: &Caller, office: &str, new: NewUpload) -> Result<Ticket, ApiError> {
        let token = new_token();
        let expires_at = Utc::now() + chrono::Duration::seconds(self.cfg.upload_ttl_secs.max(60));
        let row: (Uuid, String, String, i64, String) = sqlx::query_as(
            "INSERT INTO uploads (id, uploader, uploader_office, client_request_id, purpose, file_name, extension,
                                  declared_type, size_bytes, conversation_id, token_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (uploader, client_request_id) DO UPDATE
                SET token_hash = CASE WHEN uploads.state = 'pending' THEN EXCLUDED.token_hash ELSE uploads.token_hash END,
                    expires_at = CASE WHEN uploads.state = 'pending' THEN EXCLUDED.expires_at ELSE uploads.expires_at END
             RETURNING id, purpose, file_name, size_bytes, state",
        )
        .bind(Uuid::now_v7())
        .bind(caller.subject())
        .bind(office)
        .bind(&new.client_request_id)
        .bind(new.purpose.as_str())
        .bind(&new.file_name)
        .bind(&new.extension)
        .bind(&new.declared_type)
        .bind(new.size_bytes)
        .bind(new.conversation_id)
        .bind(token_hash(&token))
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        let (id, purpose, file_name, size, state) = row;
        if purpose != new.purpose.as_str() || file_name != new.file_name || size != new.size_bytes {
            return Err(ApiError::invalid(
                "client_request_id",
                "already used for another file",
                "上传失败，请重新选择文件。",
            ));
        }
        if state != "pending" {
            return Err(ApiError::refused("upload already received", "该文件已上传，请勿重复上传。"));
        }
        Ok(Ticket {
            upload_id: id,
            url: format!("/uploads/{id}?token={token}"),
            expires_at,
            max_size_bytes: new.purpose.max_bytes(),
        })
    }

    async fn row(&self, id: Uuid) -> Result<Option<UploadRow>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The 点击上传 step: the stored upload becomes an attachment. Idempotent.
    pub async fn complete(&self, caller: &Caller, upload_id: &str) -> Result<UploadRow, ApiError> {
        let id = Uuid::parse_str(upload_id.trim())
            .map_err(|_| ApiError::invalid("upload_id", "must be a UUID", "上传标识无效，请重新上传。"))?;
        let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE uploads SET state = 'complete', completed_at = COALESCE(completed_at, now())
             WHERE id = $1 AND uploader = $2 AND state IN ('stored', 'complete')
             RETURNING {UPLOAD_COLUMNS}"
        )))
        .bind(id)
        .bind(caller.subject())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(row);
        }
        match self.row(id).await? {
            Some(r) if r.uploader == caller.subject() => match r.state.as_str() {
                "rejected" => Err(ApiError::refused(
                    format!("upload rejected: {}", r.rejection.as_deref().unwrap_or("")),
                    blob::rejection_message(r.rejection.as_deref().unwrap_or(""), &r),
                )),
                _ => Err(ApiError::refused("bytes not received yet", "文件尚未上传完成，请重新上传。")),
            },
            _ => Err(ApiError::NotFound("upload".into())),
        }
    }

    /// A completed attachment the caller may read, or NotFound (never telling which).
    pub async fn readable(&self, caller: &Caller, attachment_id: &str) -> Result<UploadRow, ApiError> {
        let id = Uuid::parse_str(attachment_id.trim())
            .map_err(|_| ApiError::invalid("attachment_id", "must be a UUID", "附件标识无效。"))?;
        let row: Option<UploadRow> = match caller {
            Caller::Taxpayer(tp) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads u
                     WHERE u.id = $1 AND u.state = 'complete'
                       AND (u.uploader = $2
                            OR EXISTS (SELECT 1 FROM attachment_grants g
                                       WHERE g.attachment_id = u.id AND g.taxpayer_id = $3))"
                )))
                .bind(id)
                .bind(caller.subject())
                .bind(&tp.tax_id)
                .fetch_optional(&self.pool)
                .await?
            }
            Caller::Agent(agent) => {
                let prefix = zhengna_platform::offices::subtree_prefix(&agent.office_code).unwrap_or("\u{0}");
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads u
                     WHERE u.id = $1 AND u.state = 'complete'
                       AND (u.uploader = $2
                            OR EXISTS (SELECT 1 FROM attachment_grants g
                                       WHERE g.attachment_id = u.id
                                         AND (starts_with(g.office_code, $3)
                                              OR g.reference IN (SELECT 'conversation:' || c.id FROM conversations c
                                                                 WHERE c.agent_id = $4))))"
                )))
                .bind(id)
                .bind(caller.subject())
                .bind(prefix)
                .bind(&agent.agent_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.ok_or_else(|| ApiError::NotFound("attachment".into()))
    }

    pub fn download(&self, row: &UploadRow) -> Download {
        let expires_at = Utc::now() + chrono::Duration::seconds(self.cfg.download_ttl_secs.max(30));
        let exp = expires_at.timestamp();
        let inline = row.inline_allowed();
        let sig = self.key.tag(download_data(row.id, exp, inline).as_bytes());
        Download { url: format!("/files/{}?exp={exp}&inline={}&sig={sig}", row.id, u8::from(inline)), expires_at }
    }

    /// The caller's completed chat upload for `conversation`, to send as a message. Grants
    /// the conversation's taxpayer and office read access.
    pub async fn for_message(
        &self,
        caller: &Caller,
        field: &str,
        attachment_id: &str,
        purpose: Purpose,
        conversation: &crate::store::ConversationRow,
    ) -> Result<UploadRow, ApiError> {
        let missing = || {
            ApiError::invalid(
                field,
                "no completed upload of the caller for this conversation",
                "文件未上传成功，请重新选择文件。",
            )
        };
        let id = Uuid::parse_str(attachment_id.trim()).map_err(|_| missing())?;
        let row = self.row(id).await?.ok_or_else(missing)?;
        if row.uploader != caller.subject()
            || row.state != "complete"
            || row.purpose != purpose.as_str()
            || row.conversation_id != Some(conversation.id)
        {
            return Err(missing());
        }
        self.grant(
            id,
            &format!("conversation:{}", conversation.id),
            &conversation.taxpayer_id,
            &conversation.office_code,
        )
        .await?;
        Ok(row)
    }

    async fn grant(&self, id: Uuid, reference: &str, taxpayer_id: &str, office_code: &str) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO attachment_grants (attachment_id, reference, taxpayer_id, office_code)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(reference)
        .bind(taxpayer_id)
        .bind(office_code)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Links the caller's completed uploads to another service's record.
    pub async fn link(
        &self,
        caller: &Caller,
        ids: &[String],
        purpose: i32,
        reference: &str,
        taxpayer_id: &str,
        office_code: &str,
    ) -> Result<Vec<UploadRow>, ApiError> {
        let mut v = Vec::new();
        let purpose = Purpose::from_proto(purpose).filter(|p| !p.is_chat());
        if purpose.is_none() {
            v.push(FieldViolation::new("purpose", "appointment or leave message", "附件参数有误。"));
        }
        if ids.len() > MAX_LINKED {
            v.push(FieldViolation::new("attachment_ids", "at most 10", "附件最多10个。"));
        }
        let reference = reference.trim();
        if reference.is_empty() || reference.chars().count() > 128 {
            v.push(FieldViolation::new("reference", "1 to 128 characters", "附件参数有误。"));
        }
        if taxpayer_id.trim().is_empty() {
            v.push(FieldViolation::new("taxpayer_id", "required", "附件参数有误。"));
        }
        if zhengna_platform::offices::subtree_prefix(office_code).is_none() {
            v.push(FieldViolation::new("office_code", "an 11-digit office code", "附件参数有误。"));
        }
        let mut rows = Vec::with_capacity(ids.len());
        for (i, raw) in ids.iter().enumerate() {
            let field = format!("attachment_ids[{i}]");
            let row = match Uuid::parse_str(raw.trim()) {
                Ok(id) => self.row(id).await?,
                Err(_) => None,
            };
            match row {
                Some(r)
                    if r.uploader == caller.subject()
                        && r.state == "complete"
                        && Some(r.purpose.as_str()) == purpose.map(Purpose::as_str) =>
                {
                    if rows.iter().any(|x: &UploadRow| x.id == r.id) {
                        v.push(FieldViolation::new(&field, "listed twice", "同一附件不能重复添加。"));
                    }
                    rows.push(r);
                }
                _ => v.push(FieldViolation::new(
                    &field,
                    "no completed upload of the caller with this purpose",
                    "附件未上传成功，请点击“点击上传”完成上传后再提交。",
                )),
            }
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v));
        }
        for r in &rows {
            self.grant(r.id, reference, taxpayer_id.trim(), office_code).await?;
        }
        Ok(rows)
    }

    /// Deletes the bytes of uploads that were never completed, and forgets expired
    /// announcements. Safe on several replicas (each row is claimed by one).
    pub async fn sweep(&self) -> Result<u64, ApiError> {
        let hours = self.cfg.abandoned_after_hours.max(1);
        let stale: Vec<(Uuid, Option<String>)> = sqlx::query_as(
            "UPDATE uploads SET state = 'rejected', rejection = 'abandoned', storage_key = NULL
             WHERE id IN (SELECT id FROM uploads
                          WHERE state IN ('pending', 'receiving', 'stored')
                            AND created_at < now() - make_interval(hours => $1::int)
                          FOR UPDATE SKIP LOCKED LIMIT 500)
             RETURNING id, storage_key",
        )
        .bind(hours as i32)
        .fetch_all(&self.pool)
        .await?;
        for (id, key) in &stale {
            if let Some(key) = key
                && let Err(e) = self.objects.delete(&ObjectPath::from(key.as_str())).await
            {
                tracing::warn!(upload = %id, error = %e, "could not delete an abandoned upload");
            }
        }
        Ok(stale.len() as u64)
    }
}
