//! Topics (专题, some offered as 问答套餐) and clarification trees (多轮互动) as KB editors keep
//! them (KnowledgeAdminService), and the snapshot the answering side reads, reloaded with
//! the index when either changes.
//!
//! A topic's id is its catalog prefix (FP, GS…): items are numbered under it and packages
//! are named by it. A tree's node and option ids are their positions (`root/2`, `3`).

use std::sync::{Arc, RwLock};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use zhengna_platform::{ApiError, FieldViolation, StartupError};
use zhengna_proto::answer::v1 as pb;

use crate::clarify::{Node, Opt, Tree, Trees};
use crate::popular::Topic;

/// What the answering side reads: topics in display order and the enabled trees.
pub struct Catalog {
    pub topics: Vec<Topic>,
    pub trees: Trees,
}

pub type SharedCatalog = Arc<RwLock<Arc<Catalog>>>;

/// Loads the seed topics and trees into empty tables.
pub async fn seed_if_empty(pool: &PgPool) -> Result<(), StartupError> {
    let mut tx = pool.begin().await?;
    let topics: i64 = sqlx::query_scalar("SELECT count(*) FROM topics").fetch_one(&mut *tx).await?;
    if topics == 0 {
        for (i, t) in crate::popular::seed_topics().into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO topics (prefix, name, description, is_package, sort_order) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.prefix)
            .bind(&t.topic)
            .bind(&t.description)
            .bind(t.package)
            .bind(i32::try_from(i + 1).unwrap_or(i32::MAX) * 10)
            .execute(&mut *tx)
            .await?;
        }
    }
    let trees: i64 = sqlx::query_scalar("SELECT count(*) FROM clarification_trees").fetch_one(&mut *tx).await?;
    if trees == 0 {
        for t in crate::clarify::seed() {
            sqlx::query("INSERT INTO clarification_trees (id, triggers, root) VALUES ($1, $2, $3)")
                .bind(Uuid::now_v7())
                .bind(vec![t.input])
                .bind(sqlx::types::Json(&t.root))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TopicRow {
    prefix: String,
    name: String,
    description: String,
    is_package: bool,
    sort_order: i32,
}

impl TopicRow {
    fn topic(self) -> Topic {
        Topic {
            prefix: self.prefix,
            topic: self.name,
            package: self.is_package,
            description: self.description,
            sort_order: self.sort_order,
        }
    }
}

/// Topics in display order.
pub async fn topics(conn: &mut PgConnection) -> Result<Vec<Topic>, ApiError> {
    let rows: Vec<TopicRow> = sqlx::query_as(
        "SELECT prefix, name, description, is_package, sort_order FROM topics ORDER BY sort_order, prefix",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(TopicRow::topic).collect())
}

#[derive(sqlx::FromRow)]
struct TreeRow {
    id: Uuid,
    triggers: Vec<String>,
    root: sqlx::types::Json<Node>,
    enabled: bool,
    version: i32,
    updated_at: chrono::DateTime<chrono::Utc>,
}

const TREE_COLUMNS: &str = "id, triggers, root, enabled, version, updated_at";

impl TreeRow {
    fn to_proto(&self) -> pb::ClarificationTree {
        pb::ClarificationTree {
            id: self.id.to_string(),
            triggers: self.triggers.clone(),
            root: Some(node_proto(&self.root.0, "root")),
            enabled: self.enabled,
            version: self.version,
            updated_at: Some(prost_types::Timestamp { seconds: self.updated_at.timestamp(), nanos: 0 }),
        }
    }
}

fn node_proto(node: &Node, id: &str) -> pb::ClarificationNode {
    use pb::clarification_node_option::Target;
    pb::ClarificationNode {
        id: id.to_owned(),
        prompt: node.prompt.clone(),
        options: node
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| pb::ClarificationNodeOption {
                id: i.to_string(),
                label: o.label.clone(),
                target: match (&o.node, &o.item) {
                    (Some(n), _) => Some(Target::Node(node_proto(n, &format!("{id}/{i}")))),
                    (None, Some(item)) => Some(Target::ItemId(item.clone())),
                    (None, None) => None,
                },
            })
            .collect(),
    }
}

/// The snapshot: topics and enabled trees.
pub async fn load(pool: &PgPool) -> Result<Catalog, ApiError> {
    let mut conn = pool.acquire().await?;
    let topics = topics(&mut conn).await?;
    let rows: Vec<TreeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TREE_COLUMNS} FROM clarification_trees WHERE enabled ORDER BY triggers[1], id"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let trees = rows.into_iter().map(|r| Tree { id: r.id, triggers: r.triggers, root: r.root.0 }).collect();
    Ok(Catalog { topics, trees: Trees::new(trees) })
}

fn topic_proto(t: &Topic, published: i64) -> pb::Topic {
    pb::Topic {
        id: t.prefix.clone(),
        prefix: t.prefix.clone(),
        name: t.topic.clone(),
        description: t.description.clone(),
        is_package: t.package,
        sort_order: t.sort_order,
        published_item_count: i32::try_from(published).unwrap_or(i32::MAX),
    }
}

fn check_topic(t: &pb::Topic, v: &mut Vec<FieldViolation>, prefix_too: bool) {
    let prefix = t.prefix.trim();
    if prefix_too && !((2..=4).contains(&prefix.len()) && prefix.chars().all(|c| c.is_ascii_uppercase())) {
        v.push(FieldViolation::new("topic.prefix", "2-4 upper-case letters", "专题编码应为2至4个大写字母，如“FP”。"));
    }
    let name = t.name.trim();
    if name.is_empty() || name.chars().count() > 30 {
        v.push(FieldViolation::new("topic.name", "must be 1 to 30 characters", "专题名称不能为空，且不超过30个字。"));
    }
    if t.description.chars().count() > 200 {
        v.push(FieldViolation::new("topic.description", "at most 200 characters", "专题说明不超过200个字。"));
    }
}

async fn published_counts(conn: &mut PgConnection) -> Result<std::collections::HashMap<String, i64>, ApiError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT topic, count(*) FROM kb_items WHERE status = 'published' GROUP BY topic")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

pub async fn list_topics(pool: &PgPool, packages_only: bool) -> Result<Vec<pb::Topic>, ApiError> {
    let mut conn = pool.acquire().await?;
    let counts = published_counts(&mut conn).await?;
    Ok(topics(&mut conn)
        .await?
        .iter()
        .filter(|t| !packages_only || t.package)
        .map(|t| topic_proto(t, counts.get(&t.topic).copied().unwrap_or(0)))
        .collect())
}

/// Unique-name clashes as field errors rather than a bare ALREADY_EXISTS.
fn clash(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let (field, text) = if db.constraint() == Some("topics_pkey") {
                ("topic.prefix", "该专题编码已存在。")
            } else {
                ("topic.name", "该专题名称已存在。")
            };
            ApiError::InvalidArgument(vec![FieldViolation::new(field, "already used", text)])
        }
        _ => e.into(),
    }
}

pub async fn create_topic(pool: &PgPool, t: pb::Topic) -> Result<pb::Topic, ApiError> {
    let mut v = Vec::new();
    check_topic(&t, &mut v, true);
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    let row: TopicRow = sqlx::query_as(
        "INSERT INTO topics (prefix, name, description, is_package, sort_order) VALUES ($1, $2, $3, $4, $5)
         RETURNING prefix, name, description, is_package, sort_order",
    )
    .bind(t.prefix.trim())
    .bind(t.name.trim())
    .bind(t.description.trim())
    .bind(t.is_package)
    .bind(t.sort_order)
    .fetch_one(pool)
    .await
    .map_err(clash)?;
    Ok(topic_proto(&row.topic(), 0))
}

/// Updates name, description, package flag and order (the prefix is the id). A new name is
/// carried to the topic's items.
pub async fn update_topic(pool: &PgPool, t: pb::Topic, paths: &[String]) -> Result<pb::Topic, ApiError> {
    let all = ["name", "description", "is_package", "sort_order"];
    let mut v = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if !all.contains(&p.as_str()) {
            v.push(FieldViolation::new(format!("update_mask.paths[{i}]"), "not updatable", "该内容不能修改。"));
        }
    }
    let wants = |f: &str| paths.is_empty() || paths.iter().any(|p| p == f);
    if wants("name") || wants("description") {
        check_topic(
            &pb::Topic { name: if wants("name") { t.name.clone() } else { "x".into() }, ..t.clone() },
            &mut v,
            false,
        );
    }
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    let mut tx = pool.begin().await?;
    let old: TopicRow = sqlx::query_as(
        "SELECT prefix, name, description, is_package, sort_order FROM topics WHERE prefix = $1 FOR UPDATE",
    )
    .bind(t.id.trim())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::NotFound("topic".into()))?;
    let name = if wants("name") { t.name.trim().to_owned() } else { old.name.clone() };
    let row: TopicRow = sqlx::query_as(
        "UPDATE topics SET name = $2, description = $3, is_package = $4, sort_order = $5, updated_at = now()
         WHERE prefix = $1 RETURNING prefix, name, description, is_package, sort_order",
    )
    .bind(&old.prefix)
    .bind(&name)
    .bind(if wants("description") { t.description.trim().to_owned() } else { old.description.clone() })
    .bind(if wants("is_package") { t.is_package } else { old.is_package })
    .bind(if wants("sort_order") { t.sort_order } else { old.sort_order })
    .fetch_one(&mut *tx)
    .await
    .map_err(clash)?;
    if name != old.name {
        sqlx::query("UPDATE kb_items SET topic = $2, updated_at = now() WHERE topic = $1")
            .bind(&old.name)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
    }
    let counts = published_counts(&mut tx).await?;
    tx.commit().await?;
    let topic = row.topic();
    let published = counts.get(&topic.topic).copied().unwrap_or(0);
    Ok(topic_proto(&topic, published))
}

/// Deletes an empty topic; one that still has items is refused.
pub async fn delete_topic(pool: &PgPool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await?;
    let name: String = sqlx::query_scalar("SELECT name FROM topics WHERE prefix = $1 FOR UPDATE")
        .bind(id.trim())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("topic".into()))?;
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM kb_items WHERE topic = $1 AND status <> 'retired'")
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    if items > 0 {
        return Err(ApiError::refused(
            format!("topic has {items} items"),
            format!("该专题下还有{items}个知识条目，请先移到其他专题或停用后再删除。"),
        ));
    }
    sqlx::query("DELETE FROM topics WHERE prefix = $1").bind(id.trim()).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks a tree from an editor and turns it into the stored form (options lead to catalog
/// ids). `items` resolves an item id or catalog id to the catalog id of a published item.
fn tree_from_proto(
    t: &pb::ClarificationTree,
    items: &dyn Fn(&str) -> Option<String>,
    taken: &dyn Fn(&str) -> bool,
) -> Result<(Vec<String>, Node), ApiError> {
    let mut v = Vec::new();
    let mut triggers: Vec<String> = Vec::new();
    if t.triggers.is_empty() || t.triggers.len() > 10 {
        v.push(FieldViolation::new("tree.triggers", "1 to 10 triggers", "请填写1至10个触发词。"));
    }
    for (i, g) in t.triggers.iter().enumerate() {
        let g = g.trim();
        let field = format!("tree.triggers[{i}]");
        if g.is_empty() || g.chars().count() > 20 {
            v.push(FieldViolation::new(field, "must be 1 to 20 characters", "触发词不能为空，且不超过20个字。"));
        } else if triggers.iter().any(|x| x == g) {
            v.push(FieldViolation::new(field, "repeated", format!("触发词“{g}”重复了。")));
        } else if taken(g) {
            v.push(FieldViolation::new(field, "used by another tree", format!("触发词“{g}”已被其他追问使用。")));
        } else {
            triggers.push(g.to_owned());
        }
    }
    fn node(
        n: &pb::ClarificationNode,
        path: &str,
        depth: usize,
        items: &dyn Fn(&str) -> Option<String>,
        v: &mut Vec<FieldViolation>,
    ) -> Node {
        let prompt = n.prompt.trim();
        if prompt.is_empty() || prompt.chars().count() > 100 {
            v.push(FieldViolation::new(
                format!("{path}.prompt"),
                "must be 1 to 100 characters",
                "追问内容不能为空，且不超过100个字。",
            ));
        }
        if !(2..=10).contains(&n.options.len()) {
            v.push(FieldViolation::new(format!("{path}.options"), "2 to 10 options", "每个追问需要2至10个选项。"));
        }
        let options = n
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                use pb::clarification_node_option::Target;
                let at = format!("{path}.options[{i}]");
                let label = o.label.trim();
                if label.is_empty() || label.chars().count() > 30 {
                    v.push(FieldViolation::new(
                        format!("{at}.label"),
                        "must be 1 to 30 characters",
                        "选项文字不能为空，且不超过30个字。",
                    ));
                }
                let (node_next, item) = match &o.target {
                    Some(Target::ItemId(id)) => match items(id.trim()) {
                        Some(catalog) => (None, Some(catalog)),
                        None => {
                            v.push(FieldViolation::new(
                                format!("{at}.item_id"),
                                "no such published item",
                                "选项指向的知识条目不存在或未发布。",
                            ));
                            (None, None)
                        }
                    },
                    Some(Target::Node(n)) if depth < 4 => {
                        (Some(node(n, &format!("{at}.node"), depth + 1, items, v)), None)
                    }
                    Some(Target::Node(_)) => {
                        v.push(FieldViolation::new(format!("{at}.node"), "at most 5 levels", "追问最多5层。"));
                        (None, None)
                    }
                    None => {
                        v.push(FieldViolation::new(
                            at.clone(),
                            "leads nowhere",
                            "每个选项需要指向一个知识条目或下一层追问。",
                        ));
                        (None, None)
                    }
                };
                Opt { label: label.to_owned(), node: node_next, item }
            })
            .collect();
        Node { prompt: prompt.to_owned(), options }
    }
    let root = match &t.root {
        Some(r) => node(r, "tree.root", 0, items, &mut v),
        None => {
            v.push(FieldViolation::new("tree.root", "required", "请填写第一层追问。"));
            Node { prompt: String::new(), options: Vec::new() }
        }
    };
    if !v.is_empty() {
        return Err(ApiError::InvalidArgument(v));
    }
    Ok((triggers, root))
}

/// Published items: id and catalog id.
async fn published(conn: &mut PgConnection) -> Result<Vec<(Uuid, String)>, ApiError> {
    Ok(sqlx::query_as("SELECT id, catalog_id FROM kb_items WHERE status = 'published' AND catalog_id IS NOT NULL")
        .fetch_all(&mut *conn)
        .await?)
}

/// The catalog id of a published item named by its id or catalog id.
fn resolve(items: &[(Uuid, String)], key: &str) -> Option<String> {
    items.iter().find(|(id, catalog)| catalog == key || id.to_string() == key).map(|(_, c)| c.clone())
}

/// Triggers of the other enabled trees.
async fn taken_triggers(conn: &mut PgConnection, except: Option<Uuid>) -> Result<Trees, ApiError> {
    let rows: Vec<(Uuid, Vec<String>)> =
        sqlx::query_as("SELECT id, triggers FROM clarification_trees WHERE enabled AND id IS DISTINCT FROM $1")
            .bind(except)
            .fetch_all(&mut *conn)
            .await?;
    let empty = Node { prompt: String::new(), options: Vec::new() };
    Ok(Trees::new(rows.into_iter().map(|(id, triggers)| Tree { id, triggers, root: empty.clone() }).collect()))
}

/// One editor at a time changes triggers, so two trees never claim the same word.
async fn lock_trees(conn: &mut PgConnection) -> Result<(), ApiError> {
    sqlx::query("LOCK TABLE clarification_trees IN SHARE ROW EXCLUSIVE MODE").execute(&mut *conn).await?;
    Ok(())
}

/// Checks a tree (tree `except` being replaced) under the trees' lock, against the
/// published items and the other enabled trees' triggers.
async fn checked(
    conn: &mut PgConnection,
    t: &pb::ClarificationTree,
    except: Option<Uuid>,
) -> Result<(Vec<String>, Node), ApiError> {
    lock_trees(conn).await?;
    let items = published(conn).await?;
    let others = taken_triggers(conn, except).await?;
    tree_from_proto(t, &|k| resolve(&items, k), &|g| t.enabled && others.trigger_taken(g, except))
}

pub async fn create_tree(pool: &PgPool, t: pb::ClarificationTree) -> Result<pb::ClarificationTree, ApiError> {
    let mut tx = pool.begin().await?;
    let (triggers, root) = checked(&mut tx, &t, None).await?;
    let row: TreeRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO clarification_trees (id, triggers, root, enabled) VALUES ($1, $2, $3, $4) RETURNING {TREE_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(&triggers)
    .bind(sqlx::types::Json(&root))
    .bind(t.enabled)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.to_proto())
}

fn tree_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|_| ApiError::invalid("id", "must be a UUID", "追问标识无效。"))
}

pub async fn update_tree(
    pool: &PgPool,
    t: pb::ClarificationTree,
    expected_version: i32,
) -> Result<pb::ClarificationTree, ApiError> {
    let id = tree_id(&t.id).map_err(|_| ApiError::invalid("tree.id", "must be a UUID", "追问标识无效。"))?;
    let mut tx = pool.begin().await?;
    lock_trees(&mut tx).await?;
    let version: i32 = sqlx::query_scalar("SELECT version FROM clarification_trees WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("clarification tree".into()))?;
    if expected_version != 0 && expected_version != version {
        return Err(ApiError::refused(
            format!("expected version {expected_version}, tree is at {version}"),
            "该追问已被他人修改，请刷新后再编辑。",
        ));
    }
    let (triggers, root) = checked(&mut tx, &t, Some(id)).await?;
    let row: TreeRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE clarification_trees SET triggers = $2, root = $3, enabled = $4, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING {TREE_COLUMNS}"
    )))
    .bind(id)
    .bind(&triggers)
    .bind(sqlx::types::Json(&root))
    .bind(t.enabled)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.to_proto())
}

pub async fn delete_tree(pool: &PgPool, id: &str) -> Result<(), ApiError> {
    let done = sqlx::query("DELETE FROM clarification_trees WHERE id = $1").bind(tree_id(id)?).execute(pool).await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("clarification tree".into()));
    }
    Ok(())
}

pub async fn get_tree(pool: &PgPool, id: &str) -> Result<pb::ClarificationTree, ApiError> {
    let row: Option<TreeRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TREE_COLUMNS} FROM clarification_trees WHERE id = $1")))
            .bind(tree_id(id)?)
            .fetch_optional(pool)
            .await?;
    Ok(row.ok_or_else(|| ApiError::NotFound("clarification tree".into()))?.to_proto())
}

pub async fn list_trees(
    pool: &PgPool,
    query: &str,
    page: &zhengna_platform::paging::Page,
) -> Result<(Vec<pb::ClarificationTree>, i64), ApiError> {
    if query.chars().count() > 20 {
        return Err(ApiError::invalid("query", "at most 20 characters", "搜索内容过长。"));
    }
    let like = if query.trim().is_empty() {
        String::new()
    } else {
        format!("%{}%", zhengna_platform::db::escape_like(query.trim()))
    };
    let filter = "($1 = '' OR EXISTS (SELECT 1 FROM unnest(triggers) g WHERE g ILIKE $1))";
    let rows: Vec<TreeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TREE_COLUMNS} FROM clarification_trees WHERE {filter} ORDER BY triggers[1], id LIMIT $2 OFFSET $3"
    )))
    .bind(&like)
    .bind(page.size)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM clarification_trees WHERE {filter}")))
            .bind(&like)
            .fetch_one(pool)
            .await?;
    Ok((rows.iter().map(TreeRow::to_proto).collect(), total))
}
