//! KB editing (知识库维护) for KB editors: read an item, stage edits, publish them as a new
//! version, retire an item. Publishing or retiring tells every taxpayer who favourited the
//! item (FavouriteChanged, through the outbox), so their 我的收藏 never silently goes stale.
//! The answering engine picks changes up on its next refresh (see `lib.rs`).

use chrono::{NaiveDate, TimeZone};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zhengna_platform::identity::{self, AgentRole, Caller};
use zhengna_platform::outbox::{self, OutboxEvent};
use zhengna_platform::{ApiError, FieldViolation};
use zhengna_proto::answer::v1 as pb;

/// Edits staged by UpdateItem.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pending {
    question: Option<String>,
    similar: Option<Vec<String>>,
    keywords: Option<Vec<String>>,
    audience: Option<Vec<String>>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    catalog_id: Option<String>,
    topic: String,
    question: String,
    similar_questions: Vec<String>,
    keywords: Vec<String>,
    audience: Vec<String>,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
    status: String,
    version: i32,
    pending: Option<sqlx::types::Json<Pending>>,
    superseded_by: String,
}

const COLUMNS: &str = "id, catalog_id, topic, question, similar_questions, keywords, audience, valid_from, valid_to,
    status, version, pending, superseded_by";

fn date_ts(d: Option<NaiveDate>) -> Option<prost_types::Timestamp> {
    let d = d?;
    let t = zhengna_platform::time::shanghai().from_local_datetime(&d.and_hms_opt(0, 0, 0)?).single()?;
    Some(prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 })
}

impl Row {
    /// The item as it will read once published: staged edits over the current fields.
    fn to_proto(&self) -> pb::KnowledgeItem {
        let p = self.pending.as_ref().map(|p| p.0.clone()).unwrap_or_default();
        let status = match self.status.as_str() {
            "draft" => pb::KnowledgeItemStatus::Draft,
            "retired" => pb::KnowledgeItemStatus::Retired,
            _ => pb::KnowledgeItemStatus::Published,
        };
        pb::KnowledgeItem {
            id: self.id.to_string(),
            catalog_id: self.catalog_id.clone().unwrap_or_default(),
            standard_question: p.question.unwrap_or_else(|| self.question.clone()),
            similar_questions: p.similar.unwrap_or_else(|| self.similar_questions.clone()),
            keywords: p.keywords.unwrap_or_else(|| self.keywords.clone()),
            topic_id: self.topic.clone(),
            audience_tags: p.audience.unwrap_or_else(|| self.audience.clone()),
            valid_from: date_ts(self.valid_from),
            valid_to: date_ts(self.valid_to),
            status: status as i32,
            version: self.version,
            ..Default::default()
        }
    }
}

fn editor(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Agent(a) if matches!(a.role, AgentRole::KbEditor | AgentRole::Admin) => Ok(()),
        _ => Err(ApiError::PermissionDenied("KB editors only".into())),
    }
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID", "知识条目标识无效。"))
}

/// Checks a list of short texts; returns it trimmed, without blanks or repeats.
fn texts(
    v: &mut Vec<FieldViolation>,
    field: &str,
    items: &[String],
    max_items: usize,
    max_chars: usize,
    what: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > max_chars {
            v.push(FieldViolation::new(
                format!("{field}[{i}]"),
                format!("must be 1 to {max_chars} characters"),
                format!("{what}不能为空，且不超过{max_chars}个字。"),
            ));
        } else if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if items.len() > max_items {
        v.push(FieldViolation::new(field, format!("at most {max_items}"), format!("{what}最多{max_items}个。")));
    }
    out
}

fn version_conflict(expected: i32, current: i32) -> Result<(), ApiError> {
    if expected != 0 && expected != current {
        return Err(ApiError::refused(
            format!("expected version {expected}, item is at {current}"),
            "该知识条目已被他人修改，请刷新后再编辑。",
        ));
    }
    Ok(())
}

async fn locked(conn: &mut PgConnection, id: Uuid) -> Result<Row, ApiError> {
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM kb_items WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.ok_or_else(|| ApiError::NotFound("knowledge item".into()))
}

fn event(payload: pb::answer_event::Payload, aggregate: &str) -> Vec<u8> {
    pb::AnswerEvent {
        aggregate_id: aggregate.to_owned(),
        occurred_at: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        payload: Some(payload),
    }
    .encode_to_vec()
}

/// One FavouriteChanged per taxpayer who favourited the item.
/// Announces a published item (ItemPublished) and tells whoever favourited it.
async fn announce(conn: &mut PgConnection, row: &Row) -> Result<(pb::KnowledgeItem, usize), ApiError> {
    let item = row.to_proto();
    outbox::enqueue(
        &mut *conn,
        OutboxEvent {
            topic: zhengna_proto::topics::ANSWER,
            key: &item.id,
            event_type: "zhengna.answer.v1.ItemPublished",
            payload: event(
                pb::answer_event::Payload::ItemPublished(pb::ItemPublished { item: Some(item.clone()) }),
                &item.id,
            ),
        },
    )
    .await?;
    let told = tell_favourites(conn, row, false).await?;
    Ok((item, told))
}

/// [`announce`] for an item written elsewhere (imports).
pub(crate) async fn announce_published(conn: &mut PgConnection, id: Uuid) -> Result<(), ApiError> {
    let row = locked(conn, id).await?;
    announce(conn, &row).await?;
    Ok(())
}

async fn tell_favourites(conn: &mut PgConnection, row: &Row, retired: bool) -> Result<usize, ApiError> {
    let taxpayers: Vec<String> =
        sqlx::query_scalar("SELECT taxpayer_id FROM favourites WHERE item_id = $1 ORDER BY id")
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
    for t in &taxpayers {
        let payload = event(
            pb::answer_event::Payload::FavouriteChanged(pb::FavouriteChanged {
                taxpayer_id: t.clone(),
                item_id: row.id.to_string(),
                catalog_id: row.catalog_id.clone().unwrap_or_default(),
                question: row.question.clone(),
                version: row.version,
                retired,
                superseded_by: row.superseded_by.clone(),
            }),
            t,
        );
        outbox::enqueue(
            conn,
            OutboxEvent {
                topic: zhengna_proto::topics::ANSWER,
                key: t,
                event_type: "zhengna.answer.v1.FavouriteChanged",
                payload,
            },
        )
        .await?;
    }
    Ok(taxpayers.len())
}

/// Items matching a filter, by catalog id, one page or all, with the total count.
async fn select_items(
    pool: &PgPool,
    f: &pb::ItemFilter,
    page: Option<zhengna_platform::paging::Page>,
) -> Result<(Vec<Row>, i64), ApiError> {
    if f.query.chars().count() > 100 {
        return Err(ApiError::invalid("filter.query", "at most 100 characters", "搜索内容过长。"));
    }
    let mut statuses = Vec::new();
    for (i, s) in f.statuses.iter().enumerate() {
        statuses.push(match pb::KnowledgeItemStatus::try_from(*s) {
            Ok(pb::KnowledgeItemStatus::Draft) => "draft",
            Ok(pb::KnowledgeItemStatus::Published) => "published",
            Ok(pb::KnowledgeItemStatus::Retired) => "retired",
            _ => return Err(ApiError::invalid(&format!("filter.statuses[{i}]"), "unknown status", "状态有误。")),
        });
    }
    let valid_at = f
        .valid_at
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| zhengna_platform::time::to_shanghai(t).date_naive());
    // topic_id is a topic name or a catalog prefix (FP, GS…).
    let topic = f.topic_id.trim();
    let prefix = (topic.len() == 2 && topic.chars().all(|c| c.is_ascii_uppercase())).then(|| format!("{topic}-%"));
    let filter = "($1 = '' OR question ILIKE $1 OR EXISTS (SELECT 1 FROM unnest(similar_questions) s WHERE s ILIKE $1))
          AND (cardinality($2::text[]) = 0 OR status = ANY($2))
          AND ($3 = '' OR topic = $3 OR catalog_id LIKE $4)
          AND ($5 = '' OR catalog_id = $5)
          AND ($6 = '' OR $6 = ANY(audience))
          AND ($7::date IS NULL OR ((valid_from IS NULL OR valid_from <= $7) AND (valid_to IS NULL OR valid_to >= $7)))";
    let query = if f.query.trim().is_empty() {
        String::new()
    } else {
        format!("%{}%", zhengna_platform::db::escape_like(f.query.trim()))
    };
    let statuses: Vec<String> = statuses.into_iter().map(str::to_owned).collect();
    let (offset, limit) = page.map_or((0, i64::MAX), |p| (p.offset, p.size));
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM kb_items WHERE {filter} ORDER BY catalog_id, id OFFSET $8 LIMIT $9"
    )))
    .bind(&query)
    .bind(&statuses)
    .bind(topic)
    .bind(prefix.as_deref().unwrap_or(""))
    .bind(f.catalog_id.trim())
    .bind(f.audience_tag.trim())
    .bind(valid_at)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM kb_items WHERE {filter}")))
        .bind(&query)
        .bind(&statuses)
        .bind(topic)
        .bind(prefix.as_deref().unwrap_or(""))
        .bind(f.catalog_id.trim())
        .bind(f.audience_tag.trim())
        .bind(valid_at)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub struct AdminApi {
    pool: PgPool,
    feedback: crate::feedback::FeedbackStore,
}

impl AdminApi {
    pub fn new(pool: PgPool) -> Self {
        Self { feedback: crate::feedback::FeedbackStore::new(pool.clone()), pool }
    }
}

#[tonic::async_trait]
impl pb::knowledge_admin_service_server::KnowledgeAdminService for AdminApi {
    async fn get_item(&self, request: Request<pb::GetItemRequest>) -> Result<Response<pb::GetItemResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row: Option<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM kb_items WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| ApiError::NotFound("knowledge item".into()))?;
        Ok(Response::new(pb::GetItemResponse { item: Some(row.to_proto()) }))
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let f = r.filter.clone().unwrap_or_default();
        let page = zhengna_platform::paging::Page::from_request(r.page.as_ref())?;
        let (rows, total) = select_items(&self.pool, &f, Some(page)).await?;
        Ok(Response::new(pb::ListItemsResponse {
            page: Some(page.response(rows.len(), total)),
            items: rows.iter().map(Row::to_proto).collect(),
        }))
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let topic = crate::catalog::create_topic(&self.pool, request.into_inner().topic.unwrap_or_default()).await?;
        Ok(Response::new(pb::CreateTopicResponse { topic: Some(topic) }))
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::UpdateTopicResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let topic = crate::catalog::update_topic(&self.pool, r.topic.unwrap_or_default(), &paths).await?;
        Ok(Response::new(pb::UpdateTopicResponse { topic: Some(topic) }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        crate::catalog::delete_topic(&self.pool, &request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let topics = crate::catalog::list_topics(&self.pool, request.get_ref().packages_only).await?;
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn create_clarification_tree(
        &self,
        request: Request<pb::CreateClarificationTreeRequest>,
    ) -> Result<Response<pb::CreateClarificationTreeResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let tree = crate::catalog::create_tree(&self.pool, request.into_inner().tree.unwrap_or_default()).await?;
        Ok(Response::new(pb::CreateClarificationTreeResponse { tree: Some(tree) }))
    }

    async fn update_clarification_tree(
        &self,
        request: Request<pb::UpdateClarificationTreeRequest>,
    ) -> Result<Response<pb::UpdateClarificationTreeResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let tree = crate::catalog::update_tree(&self.pool, r.tree.unwrap_or_default(), r.expected_version).await?;
        Ok(Response::new(pb::UpdateClarificationTreeResponse { tree: Some(tree) }))
    }

    async fn delete_clarification_tree(
        &self,
        request: Request<pb::DeleteClarificationTreeRequest>,
    ) -> Result<Response<pb::DeleteClarificationTreeResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        crate::catalog::delete_tree(&self.pool, &request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteClarificationTreeResponse {}))
    }

    async fn get_clarification_tree(
        &self,
        request: Request<pb::GetClarificationTreeRequest>,
    ) -> Result<Response<pb::GetClarificationTreeResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let tree = crate::catalog::get_tree(&self.pool, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetClarificationTreeResponse { tree: Some(tree) }))
    }

    async fn list_clarification_trees(
        &self,
        request: Request<pb::ListClarificationTreesRequest>,
    ) -> Result<Response<pb::ListClarificationTreesResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let page = zhengna_platform::paging::Page::from_request(r.page.as_ref())?;
        let (trees, total) = crate::catalog::list_trees(&self.pool, &r.query, &page).await?;
        Ok(Response::new(pb::ListClarificationTreesResponse { page: Some(page.response(trees.len(), total)), trees }))
    }

    async fn list_feedback(
        &self,
        request: Request<pb::ListFeedbackRequest>,
    ) -> Result<Response<pb::ListFeedbackResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.get_ref();
        let page = zhengna_platform::paging::Page::from_request(r.page.as_ref())?;
        let (reviews, total) = self.feedback.review(r, &page).await?;
        Ok(Response::new(pb::ListFeedbackResponse { page: Some(page.response(reviews.len(), total)), reviews }))
    }

    async fn create_item(
        &self,
        request: Request<pb::CreateItemRequest>,
    ) -> Result<Response<pb::CreateItemResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let item = crate::exchange::from_proto(&r.item.unwrap_or_default());
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT catalog_id FROM kb_items WHERE catalog_id = ANY($1) OR catalog_id = $2")
                .bind(&item.related)
                .bind(&item.catalog_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(ApiError::from)?;
        let topics = crate::catalog::topics(&mut tx).await?;
        let problems = crate::exchange::validate(&item, &|id| existing.iter().any(|e| e == id), &topics);
        if !problems.is_empty() {
            let v = problems
                .into_iter()
                .map(|(field, message)| {
                    let field =
                        format!("item.{}", field.replace("topic", "topic_id").replace("related", "related_item_ids"));
                    FieldViolation::new(field.clone(), format!("{field} is invalid"), message)
                })
                .collect();
            return Err(ApiError::InvalidArgument(v).into());
        }
        if existing.contains(&item.catalog_id) {
            // A retried create with the same content returns the item it created.
            let row: Row =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM kb_items WHERE catalog_id = $1")))
                    .bind(&item.catalog_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(ApiError::from)?;
            let same = crate::exchange::export(&self.pool, &[row.id]).await?.first().map(|f| {
                f.standard_question == item.standard_question && f.similar_questions == item.similar_questions
            });
            if same == Some(true) && row.status == "draft" && !r.client_request_id.is_empty() {
                return Ok(Response::new(pb::CreateItemResponse { item: Some(row.to_proto()) }));
            }
            return Err(ApiError::AlreadyExists(format!("catalog id {}", item.catalog_id)).into());
        }
        let id = crate::exchange::write(&mut tx, None, &item, "draft").await?;
        let row = locked(&mut tx, id).await?;
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(item = %id, catalog_id = %item.catalog_id, "knowledge item created");
        Ok(Response::new(pb::CreateItemResponse { item: Some(row.to_proto()) }))
    }

    async fn import_items(
        &self,
        request: Request<pb::ImportItemsRequest>,
    ) -> Result<Response<pb::ImportItemsResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        if r.content.len() > 20 * 1024 * 1024 {
            return Err(ApiError::invalid("content", "at most 20 MiB", "导入文件不能超过20MB。").into());
        }
        if r.content.is_empty() {
            return Err(ApiError::invalid("content", "empty file", "导入文件是空的。").into());
        }
        let rows = match pb::ItemFileFormat::try_from(r.format) {
            Ok(pb::ItemFileFormat::Jsonl) => crate::exchange::parse_jsonl(&r.content)?,
            Ok(pb::ItemFileFormat::Xlsx) => crate::exchange::parse_xlsx(&r.content)?,
            _ => {
                return Err(
                    ApiError::invalid("format", "choose JSONL or XLSX", "请选择文件格式（JSONL或Excel）。").into()
                );
            }
        };
        let create_only = pb::ImportMode::try_from(r.mode) == Ok(pb::ImportMode::CreateOnly);
        let done = crate::exchange::import(&self.pool, rows, create_only, r.publish, r.dry_run).await?;
        tracing::info!(
            created = done.created,
            updated = done.updated,
            skipped = done.skipped,
            errors = done.errors.len(),
            dry_run = r.dry_run,
            "knowledge import"
        );
        Ok(Response::new(pb::ImportItemsResponse {
            created: done.created,
            updated: done.updated,
            skipped: done.skipped,
            errors: done.errors,
        }))
    }

    async fn export_items(
        &self,
        request: Request<pb::ExportItemsRequest>,
    ) -> Result<Response<pb::ExportItemsResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let (rows, _) = select_items(&self.pool, &r.filter.unwrap_or_default(), None).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let items = crate::exchange::export(&self.pool, &ids).await?;
        let day = zhengna_platform::time::shanghai_today().format("%Y%m%d");
        let (content, file_name, content_type) = match pb::ItemFileFormat::try_from(r.format) {
            Ok(pb::ItemFileFormat::Jsonl) => {
                let mut out = Vec::new();
                for item in &items {
                    out.extend(serde_json::to_vec(item).map_err(|e| ApiError::Internal(e.to_string()))?);
                    out.push(b'\n');
                }
                (out, format!("knowledge-{day}.jsonl"), "application/jsonl")
            }
            Ok(pb::ItemFileFormat::Xlsx) => {
                let mut rows = vec![crate::exchange::COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect::<Vec<_>>()];
                rows.extend(items.iter().map(crate::exchange::xlsx_row));
                (
                    crate::exchange::write_xlsx(&rows)?,
                    format!("knowledge-{day}.xlsx"),
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                )
            }
            _ => {
                return Err(
                    ApiError::invalid("format", "choose JSONL or XLSX", "请选择文件格式（JSONL或Excel）。").into()
                );
            }
        };
        Ok(Response::new(pb::ExportItemsResponse {
            content,
            file_name,
            content_type: content_type.to_owned(),
            item_count: i32::try_from(items.len()).unwrap_or(i32::MAX),
        }))
    }

    async fn update_item(
        &self,
        request: Request<pb::UpdateItemRequest>,
    ) -> Result<Response<pb::UpdateItemResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let item = r.item.unwrap_or_default();
        let id = parse_id("item.id", &item.id)?;
        let paths: Vec<String> = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ApiError::invalid("update_mask", "name the fields to change", "请选择要修改的内容。").into());
        }
        let mut v = Vec::new();
        let mut edit = Pending::default();
        for (i, p) in paths.iter().enumerate() {
            match p.as_str() {
                "standard_question" => {
                    let q = item.standard_question.trim();
                    if q.is_empty() || q.chars().count() > 200 {
                        v.push(FieldViolation::new(
                            "item.standard_question",
                            "must be 1 to 200 characters",
                            "标准问题不能为空，且不超过200个字。",
                        ));
                    }
                    edit.question = Some(q.to_owned());
                }
                "similar_questions" => {
                    edit.similar =
                        Some(texts(&mut v, "item.similar_questions", &item.similar_questions, 50, 200, "相似问题"));
                }
                "keywords" => edit.keywords = Some(texts(&mut v, "item.keywords", &item.keywords, 30, 30, "关键词")),
                "audience_tags" => {
                    edit.audience = Some(texts(&mut v, "item.audience_tags", &item.audience_tags, 10, 20, "适用对象"))
                }
                _ => v.push(FieldViolation::new(
                    format!("update_mask.paths[{i}]"),
                    "not editable here",
                    "该内容暂不支持在此修改。",
                )),
            }
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let row = locked(&mut tx, id).await?;
        version_conflict(r.expected_version, row.version)?;
        if row.status == "retired" {
            return Err(ApiError::refused("item is retired", "该知识条目已停用，不能再修改。").into());
        }
        let mut pending = row.pending.as_ref().map(|p| p.0.clone()).unwrap_or_default();
        pending.question = edit.question.or(pending.question);
        pending.similar = edit.similar.or(pending.similar);
        pending.keywords = edit.keywords.or(pending.keywords);
        pending.audience = edit.audience.or(pending.audience);
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE kb_items SET pending = $2 WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(sqlx::types::Json(&pending))
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateItemResponse { item: Some(row.to_proto()) }))
    }

    async fn publish_item(
        &self,
        request: Request<pb::PublishItemRequest>,
    ) -> Result<Response<pb::PublishItemResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let row = locked(&mut tx, id).await?;
        version_conflict(r.expected_version, row.version)?;
        if row.pending.is_none() && row.status == "published" {
            // Nothing staged: publishing again changes nothing and tells no one.
            return Ok(Response::new(pb::PublishItemResponse { item: Some(row.to_proto()) }));
        }
        let p = row.pending.as_ref().map(|p| p.0.clone()).unwrap_or_default();
        let question = p.question.unwrap_or(row.question);
        let similar = p.similar.unwrap_or(row.similar_questions);
        let normalized: Vec<String> = similar.iter().map(|s| crate::normalize::normalize(s)).collect();
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE kb_items SET question = $2, question_normalized = $3, similar_questions = $4,
                 similar_normalized = $5, keywords = $6, audience = $7, status = 'published', pending = NULL,
                 version = version + 1, superseded_by = '', updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(&question)
        .bind(crate::normalize::normalize(&question))
        .bind(&similar)
        .bind(&normalized)
        .bind(p.keywords.unwrap_or(row.keywords))
        .bind(p.audience.unwrap_or(row.audience))
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::from)?;
        let (item, told) = announce(&mut tx, &row).await?;
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(item = %row.id, version = row.version, favourites = told, "knowledge item published");
        Ok(Response::new(pb::PublishItemResponse { item: Some(item) }))
    }

    async fn retire_item(
        &self,
        request: Request<pb::RetireItemRequest>,
    ) -> Result<Response<pb::RetireItemResponse>, Status> {
        editor(&identity::caller(&request)?)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let successor = match r.superseded_by.trim() {
            "" => String::new(),
            s => parse_id("superseded_by", s)?.to_string(),
        };
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let row = locked(&mut tx, id).await?;
        version_conflict(r.expected_version, row.version)?;
        if row.status == "retired" {
            return Ok(Response::new(pb::RetireItemResponse { item: Some(row.to_proto()) }));
        }
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE kb_items SET status = 'retired', superseded_by = $2, version = version + 1, updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(&successor)
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::from)?;
        outbox::enqueue(
            &mut tx,
            OutboxEvent {
                topic: zhengna_proto::topics::ANSWER,
                key: &row.id.to_string(),
                event_type: "zhengna.answer.v1.ItemRetired",
                payload: event(
                    pb::answer_event::Payload::ItemRetired(pb::ItemRetired {
                        item_id: row.id.to_string(),
                        catalog_id: row.catalog_id.clone().unwrap_or_default(),
                        superseded_by: successor.clone(),
                    }),
                    &row.id.to_string(),
                ),
            },
        )
        .await
        .map_err(ApiError::from)?;
        tell_favourites(&mut tx, &row, true).await?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::RetireItemResponse { item: Some(row.to_proto()) }))
    }
}
