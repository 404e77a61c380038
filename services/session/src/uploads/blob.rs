//! The blob endpoint: `PUT /uploads/{id}?token=…` receives an announced upload and
//! `GET /files/{id}?exp=…&inline=…&sig=…` serves a stored attachment. The gateway forwards
//! both paths here, so browsers use the gateway's origin.
//!
//! Receiving is all-or-nothing and checked as it streams: the first bytes are sniffed
//! against the extension before anything is written, the body may not exceed the declared
//! size, and an upload interrupted half-way is aborted and may be sent again.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use object_store::WriteMultipart;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::rules::{self, Purpose};
use super::{UploadRow, Uploads, download_data, token_hash};

/// Bytes read and discarded after a refusal so HTTP/1.1 clients see the answer instead of a
/// reset connection.
const DRAIN_LIMIT: usize = 21 * 1024 * 1024;

pub async fn serve(
    uploads: Uploads,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/uploads/{id}", axum::routing::put(put_upload))
        .route("/files/{id}", axum::routing::get(get_file))
        .with_state(uploads);
    let handle = tokio::spawn(async move {
        if let Err(e) =
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
        {
            tracing::warn!(error = %e, "blob endpoint stopped");
        }
    });
    tracing::info!(%addr, "blob endpoint serving uploads and downloads");
    Ok((addr, handle))
}

#[derive(Deserialize)]
struct PutQuery {
    #[serde(default)]
    token: String,
}

/// A JSON answer the widget can show: `{"code": "...", "message": "<Chinese>"}`.
fn answer(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "code": code, "message": message }))).into_response()
}

/// What the uploader reads for each rejection reason.
pub fn rejection_message(reason: &str, row: &UploadRow) -> String {
    let purpose = Purpose::parse(&row.purpose).unwrap_or(Purpose::ChatFile);
    match reason {
        "content_mismatch" => format!("文件内容与扩展名“.{}”不符，无法上传。请确认文件格式后重试。", row.extension),
        "too_large" => purpose.size_message().to_owned(),
        "size_mismatch" => "文件大小与所选文件不一致，请重新选择文件上传。".to_owned(),
        "abandoned" => "上传已过期，请重新选择文件上传。".to_owned(),
        _ => "文件上传失败，请重新选择文件上传。".to_owned(),
    }
}

async fn drain(body: &mut futures::stream::BoxStream<'static, Result<bytes::Bytes, axum::Error>>, mut budget: usize) {
    while budget > 0 {
        match body.next().await {
            Some(Ok(chunk)) => budget = budget.saturating_sub(chunk.len()),
            _ => return,
        }
    }
}

async fn put_upload(
    State(up): State<Uploads>,
    Path(id): Path<String>,
    Query(q): Query<PutQuery>,
    body: Body,
) -> Response {
    let mut body = body.into_data_stream().boxed();
    let Ok(id) = Uuid::parse_str(&id) else {
        return answer(StatusCode::NOT_FOUND, "not_found", "上传地址无效，请重新选择文件上传。");
    };
    // Claim the upload: one PUT at a time, and only with the right token before expiry. A
    // receive that died half-way (replica crash) is reclaimable after ten minutes.
    let claimed: Option<UploadRow> = match sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE uploads SET state = 'receiving', receiving_at = now()
         WHERE id = $1 AND token_hash = $2 AND expires_at > now()
           AND (state = 'pending' OR (state = 'receiving' AND receiving_at < now() - interval '10 minutes'))
         RETURNING {}",
        super::UPLOAD_COLUMNS
    )))
    .bind(id)
    .bind(token_hash(&q.token))
    .fetch_optional(&up.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "claiming an upload failed");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "服务繁忙，请稍后重试。");
        }
    };
    let Some(row) = claimed else {
        drain(&mut body, DRAIN_LIMIT).await;
        let found: Result<Option<(String,)>, _> =
            sqlx::query_as("SELECT state FROM uploads WHERE id = $1 AND token_hash = $2")
                .bind(id)
                .bind(token_hash(&q.token))
                .fetch_optional(&up.pool)
                .await;
        return match found {
            Ok(Some((state,))) if state != "pending" => {
                answer(StatusCode::CONFLICT, "already_received", "该文件已上传或正在上传，请勿重复上传。")
            }
            Ok(Some(_)) => answer(StatusCode::GONE, "expired", "上传地址已过期，请重新选择文件上传。"),
            _ => answer(StatusCode::NOT_FOUND, "not_found", "上传地址无效，请重新选择文件上传。"),
        };
    };
    match receive(&up, &row, &mut body).await {
        Ok(()) => answer(StatusCode::OK, "stored", "上传成功。"),
        Err(Failure::Rejected { status, reason }) => {
            drain(&mut body, DRAIN_LIMIT).await;
            let _ = sqlx::query("UPDATE uploads SET state = 'rejected', rejection = $2 WHERE id = $1")
                .bind(id)
                .bind(reason)
                .execute(&up.pool)
                .await;
            metrics::counter!("zhengna_uploads_rejected_total", "reason" => reason).increment(1);
            tracing::info!(upload = %id, reason, "upload rejected");
            answer(status, reason, &rejection_message(reason, &row))
        }
        Err(Failure::Interrupted(e)) => {
            // Nothing was kept; the same URL may be used again.
            tracing::warn!(upload = %id, error = %e, "upload interrupted");
            let _ = sqlx::query("UPDATE uploads SET state = 'pending', receiving_at = NULL WHERE id = $1")
                .bind(id)
                .execute(&up.pool)
                .await;
            answer(StatusCode::BAD_REQUEST, "interrupted", "上传中断，请检查网络后重试。")
        }
    }
}

enum Failure {
    Rejected { status: StatusCode, reason: &'static str },
    Interrupted(String),
}

async fn receive(
    up: &Uploads,
    row: &UploadRow,
    body: &mut futures::stream::BoxStream<'static, Result<bytes::Bytes, axum::Error>>,
) -> Result<(), Failure> {
    let declared = usize::try_from(row.size_bytes).unwrap_or(0);
    // Sniff before storing anything.
    let mut head = Vec::with_capacity(rules::SNIFF_LEN.min(declared));
    let mut ended = false;
    while head.len() < rules::SNIFF_LEN {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(Failure::Interrupted(e.to_string())),
            None => {
                ended = true;
                break;
            }
        }
        if head.len() > declared {
            return Err(Failure::Rejected { status: StatusCode::PAYLOAD_TOO_LARGE, reason: "too_large" });
        }
    }
    let sniff_len = head.len().min(rules::SNIFF_LEN);
    let Some(content_type) = rules::sniff(&row.extension, &head[..sniff_len]) else {
        return Err(Failure::Rejected { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, reason: "content_mismatch" });
    };
    let kind = if rules::kind_of(&row.extension) == zhengna_proto::common::v1::AttachmentKind::Image {
        "image"
    } else {
        "file"
    };
    let key = format!("attachments/{}/{}", row.id.simple().to_string().get(..2).unwrap_or("00"), row.id);
    let path = ObjectPath::from(key.as_str());
    let upload = up.objects.put_multipart(&path).await.map_err(|e| Failure::Interrupted(e.to_string()))?;
    let mut writer = WriteMultipart::new(upload);
    let mut total = head.len();
    writer.write(&head);
    if !ended {
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len();
                    if total > declared {
                        let _ = writer.abort().await;
                        return Err(Failure::Rejected { status: StatusCode::PAYLOAD_TOO_LARGE, reason: "too_large" });
                    }
                    if let Err(e) = writer.wait_for_capacity(4).await {
                        return Err(Failure::Interrupted(e.to_string()));
                    }
                    writer.write(&chunk);
                }
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(Failure::Interrupted(e.to_string()));
                }
                None => break,
            }
        }
    }
    if total != declared {
        let _ = writer.abort().await;
        return Err(Failure::Rejected { status: StatusCode::BAD_REQUEST, reason: "size_mismatch" });
    }
    writer.finish().await.map_err(|e| Failure::Interrupted(e.to_string()))?;
    sqlx::query(
        "UPDATE uploads SET state = 'stored', stored_at = now(), content_type = $2, kind = $3, storage_key = $4
         WHERE id = $1",
    )
    .bind(row.id)
    .bind(content_type)
    .bind(kind)
    .bind(&key)
    .execute(&up.pool)
    .await
    .map_err(|e| Failure::Interrupted(e.to_string()))?;
    metrics::counter!("zhengna_uploads_stored_total").increment(1);
    metrics::counter!("zhengna_upload_bytes_total").increment(total as u64);
    Ok(())
}

#[derive(Deserialize)]
struct GetQuery {
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    inline: u8,
    #[serde(default)]
    sig: String,
}

/// `filename*` per RFC 5987 so Chinese names survive, with an ASCII fallback.
fn disposition(inline: bool, name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let ext = rules::extension(name).unwrap_or_else(|| "bin".into());
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"attachment.{ext}\"; filename*=UTF-8''{encoded}")
}

async fn get_file(State(up): State<Uploads>, Path(id): Path<String>, Query(q): Query<GetQuery>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return answer(StatusCode::NOT_FOUND, "not_found", "文件不存在。");
    };
    let inline = q.inline == 1;
    if q.exp < chrono::Utc::now().timestamp() || !up.key.verify_tag(download_data(id, q.exp, inline).as_bytes(), &q.sig)
    {
        return answer(StatusCode::FORBIDDEN, "expired", "下载链接已失效，请返回重新打开。");
    }
    let row = match up.row(id).await {
        Ok(Some(r)) if r.state == "complete" => r,
        Ok(_) => return answer(StatusCode::NOT_FOUND, "not_found", "文件不存在。"),
        Err(_) => return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "服务繁忙，请稍后重试。"),
    };
    let Some(key) = row.storage_key.clone() else {
        return answer(StatusCode::NOT_FOUND, "not_found", "文件不存在。");
    };
    let object = match up.objects.get(&ObjectPath::from(key.as_str())).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(attachment = %id, error = %e, "stored attachment unreadable");
            return answer(StatusCode::NOT_FOUND, "not_found", "文件不存在。");
        }
    };
    let inline = inline && row.inline_allowed();
    let content_type = if inline { row.content_type.clone().unwrap_or_default() } else { String::new() };
    let content_type = if content_type.is_empty() { "application/octet-stream".to_owned() } else { content_type };
    let mut res = Body::from_stream(object.into_stream()).into_response();
    let headers = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(headers, header::CONTENT_LENGTH, row.size_bytes.to_string());
    set(headers, header::CONTENT_DISPOSITION, disposition(inline, &row.file_name));
    set(headers, header::CACHE_CONTROL, "private, max-age=300".into());
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(headers, header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".into());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_keeps_chinese_names_and_never_trusts_them() {
        let d = disposition(false, "发票清单 \"x\".xlsx");
        assert!(d.starts_with("attachment; filename=\"attachment.xlsx\"; filename*=UTF-8''"));
        assert!(!d[d.find("filename*").unwrap_or(0)..].contains('"'));
        assert!(disposition(true, "a.png").starts_with("inline;"));
    }
}
