//! Knowledge-base files: import and export as JSONL and as Excel (`.xlsx`, how KB editors
//! work), and the one validation every item goes through, also for CreateItem.
//!
//! **Import is all or nothing.** Every row is checked first; if any row is wrong, the reply
//! lists every error by row and field and nothing is written. Otherwise all rows are applied
//! in one transaction. A row whose content equals the stored item is skipped.
//!
//! **Row format.** JSONL: one [`FileItem`] per line. XLSX: the first sheet, a header row
//! with the column names of [`COLUMNS`] (any order; unknown columns are ignored), one item per
//! row; list cells hold one entry per line; 答案内容 and 政策依据 hold the JSON of the blocks /
//! citations, or plain text (one paragraph, or one citation, per line); dates are Excel
//! dates or `YYYY-MM-DD`.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Write};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use zhengna_platform::ApiError;
use zhengna_proto::answer::v1 as pb;

/// One answer block as stored (`kb_items.blocks`) and as written in files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// One policy-basis citation as stored and as written in files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cite {
    pub article_id: Option<String>,
    pub text: String,
}

/// One knowledge item in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileItem {
    pub catalog_id: String,
    pub topic: String,
    pub standard_question: String,
    pub similar_questions: Vec<String>,
    pub keywords: Vec<String>,
    pub summary: String,
    pub blocks: Vec<Block>,
    pub citations: Vec<Cite>,
    pub audience_tags: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    /// Catalog ids of related items (猜你想问 after the answer).
    pub related: Vec<String>,
    /// Exported for reading; ignored on import.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl FileItem {
    /// The fields an import compares and writes.
    fn content(&self) -> FileItem {
        FileItem { status: String::new(), version: 0, ..self.clone() }
    }
}

/// One problem: the field path and what a KB editor reads.
pub type Problem = (String, String);

pub fn catalog_id_ok(id: &str) -> bool {
    let Some((prefix, number)) = id.split_once('-') else { return false };
    (2..=4).contains(&prefix.len())
        && prefix.chars().all(|c| c.is_ascii_uppercase())
        && (3..=5).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit())
}

fn check_texts(out: &mut Vec<Problem>, field: &str, list: &[String], max_items: usize, max_chars: usize, what: &str) {
    if list.len() > max_items {
        out.push((field.to_owned(), format!("{what}最多{max_items}个。")));
    }
    let mut seen = HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let t = s.trim();
        if t.is_empty() || t.chars().count() > max_chars {
            out.push((format!("{field}[{i}]"), format!("{what}不能为空，且不超过{max_chars}个字。")));
        } else if !seen.insert(t) {
            out.push((format!("{field}[{i}]"), format!("{what}“{t}”重复了。")));
        }
    }
}

/// Every problem with an item; `known` answers whether a catalog id exists (in the KB or
/// elsewhere in the same file).
pub fn validate(item: &FileItem, known: &dyn Fn(&str) -> bool, topics: &[crate::popular::Topic]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |f: &str, m: &str| out.push((f.to_owned(), m.to_owned()));
    if !catalog_id_ok(&item.catalog_id) {
        push("catalog_id", "目录编号格式应为“FP-001”：2至4个大写字母、短横线、3至5位数字。");
    }
    match topics.iter().find(|t| t.topic == item.topic.trim()) {
        None => push("topic", "专题不存在，请填写专题名称，如“数电发票开具与管理”。"),
        Some(t) if catalog_id_ok(&item.catalog_id) && !item.catalog_id.starts_with(&format!("{}-", t.prefix)) => {
            push("catalog_id", &format!("该专题的目录编号应以“{}-”开头。", t.prefix))
        }
        Some(_) => {}
    }
    let q = item.standard_question.trim();
    if q.is_empty() || q.chars().count() > 200 {
        push("standard_question", "标准问题不能为空，且不超过200个字。");
    }
    if item.summary.chars().count() > 500 {
        push("summary", "答案摘要不超过500个字。");
    }
    check_texts(&mut out, "similar_questions", &item.similar_questions, 100, 200, "相似问题");
    check_texts(&mut out, "keywords", &item.keywords, 50, 30, "关键词");
    check_texts(&mut out, "audience_tags", &item.audience_tags, 10, 20, "适用对象");
    check_texts(&mut out, "related", &item.related, 10, 20, "相关问题");
    let mut push = |f: String, m: String| out.push((f, m));
    if item.blocks.is_empty() && item.summary.trim().is_empty() {
        push("blocks".into(), "答案内容不能为空。".into());
    }
    if item.blocks.len() > 30 {
        push("blocks".into(), "答案内容最多30段。".into());
    }
    for (i, b) in item.blocks.iter().enumerate() {
        let f = format!("blocks[{i}]");
        match b.kind.as_str() {
            "paragraph" | "note" => {
                if b.text.trim().is_empty() || b.text.chars().count() > 2000 {
                    push(format!("{f}.text"), "段落内容不能为空，且不超过2000个字。".into());
                }
            }
            "steps" | "guide" => {
                if b.items.is_empty() || b.items.len() > 30 {
                    push(format!("{f}.items"), "步骤或材料应有1至30条。".into());
                }
                for (j, s) in b.items.iter().enumerate() {
                    if s.trim().is_empty() || s.chars().count() > 500 {
                        push(format!("{f}.items[{j}]"), "每条不能为空，且不超过500个字。".into());
                    }
                }
            }
            "link" => {
                if !b.url.starts_with("https://") || b.url.chars().count() > 500 {
                    push(format!("{f}.url"), "链接须以 https:// 开头，且不超过500个字符。".into());
                }
                if b.title.trim().is_empty() || b.title.chars().count() > 100 {
                    push(format!("{f}.title"), "链接文字不能为空，且不超过100个字。".into());
                }
            }
            _ => push(format!("{f}.type"), "段落类型应为 paragraph、steps、guide、note 或 link。".into()),
        }
    }
    for (i, c) in item.citations.iter().enumerate() {
        if c.text.trim().is_empty() || c.text.chars().count() > 300 {
            push(format!("citations[{i}].text"), "政策依据不能为空，且不超过300个字。".into());
        }
        if let Some(a) = &c.article_id
            && (a.trim().is_empty() || a.chars().count() > 100)
        {
            push(format!("citations[{i}].article_id"), "法规条款编号格式有误。".into());
        }
    }
    if let (Some(from), Some(to)) = (item.valid_from, item.valid_to)
        && from > to
    {
        push("valid_to".into(), "失效日期不能早于生效日期。".into());
    }
    for (i, r) in item.related.iter().enumerate() {
        let r = r.trim();
        if r == item.catalog_id {
            push(format!("related[{i}]"), "相关问题不能是条目本身。".into());
        } else if !r.is_empty() && !known(r) {
            push(format!("related[{i}]"), format!("相关问题“{r}”不存在。"));
        }
    }
    out
}

/// Trims every text of an item and drops blank list entries.
fn tidy(mut item: FileItem) -> FileItem {
    let list = |v: Vec<String>| -> Vec<String> {
        v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    };
    item.catalog_id = item.catalog_id.trim().to_owned();
    item.topic = item.topic.trim().to_owned();
    item.standard_question = item.standard_question.trim().to_owned();
    item.summary = item.summary.trim().to_owned();
    item.similar_questions = list(item.similar_questions);
    item.keywords = list(item.keywords);
    item.audience_tags = list(item.audience_tags);
    item.related = list(item.related);
    item
}

/// A row of a file: its 1-based number and the item, or why it could not be read.
pub type ParsedRow = (i32, Result<FileItem, Problem>);

pub fn parse_jsonl(content: &[u8]) -> Result<Vec<ParsedRow>, ApiError> {
    let text = std::str::from_utf8(content)
        .map_err(|_| ApiError::invalid("content", "not UTF-8", "文件不是UTF-8编码的JSONL文件。"))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let row = i32::try_from(i + 1).unwrap_or(i32::MAX);
            (
                row,
                serde_json::from_str::<FileItem>(l)
                    .map(tidy)
                    .map_err(|e| ("".to_owned(), format!("该行不是有效的知识条目JSON：{e}"))),
            )
        })
        .collect())
}

/// Column names of the Excel layout, with the field each holds.
pub const COLUMNS: &[(&str, &str)] = &[
    ("目录编号", "catalog_id"),
    ("专题", "topic"),
    ("标准问题", "standard_question"),
    ("相似问题", "similar_questions"),
    ("关键词", "keywords"),
    ("答案摘要", "summary"),
    ("答案内容", "blocks"),
    ("政策依据", "citations"),
    ("适用对象", "audience_tags"),
    ("生效日期", "valid_from"),
    ("失效日期", "valid_to"),
    ("相关问题", "related"),
    ("状态", "status"),
    ("版本", "version"),
];

fn lines(cell: &str) -> Vec<String> {
    cell.lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

fn cell_text(c: &calamine::Data) -> String {
    match c {
        calamine::Data::Empty => String::new(),
        calamine::Data::String(s) => s.clone(),
        calamine::Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        other => other.to_string(),
    }
}

fn cell_date(c: &calamine::Data, field: &str) -> Result<Option<NaiveDate>, Problem> {
    use calamine::DataType as _;
    if let Some(d) = c.as_date() {
        return Ok(Some(d));
    }
    let t = cell_text(c);
    let t = t.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%Y/%m/%d"))
        .map(Some)
        .map_err(|_| (field.to_owned(), "日期格式应为“2026-01-01”。".to_owned()))
}

fn parse_row(cells: &HashMap<&str, &calamine::Data>) -> Result<FileItem, Problem> {
    let text = |f: &str| cells.get(f).map(|c| cell_text(c)).unwrap_or_default();
    let blocks = {
        let t = text("blocks");
        let t = t.trim();
        if t.starts_with('[') {
            serde_json::from_str(t).map_err(|e| ("blocks".to_owned(), format!("答案内容的JSON有误：{e}")))?
        } else {
            lines(t).into_iter().map(|l| Block { kind: "paragraph".into(), text: l, ..Default::default() }).collect()
        }
    };
    let citations = {
        let t = text("citations");
        let t = t.trim();
        if t.starts_with('[') {
            serde_json::from_str(t).map_err(|e| ("citations".to_owned(), format!("政策依据的JSON有误：{e}")))?
        } else {
            lines(t).into_iter().map(|l| Cite { article_id: None, text: l }).collect()
        }
    };
    let empty = calamine::Data::Empty;
    let date = |f: &str| cell_date(cells.get(f).copied().unwrap_or(&empty), f);
    Ok(tidy(FileItem {
        catalog_id: text("catalog_id"),
        topic: text("topic"),
        standard_question: text("standard_question"),
        similar_questions: lines(&text("similar_questions")),
        keywords: lines(&text("keywords")),
        summary: text("summary"),
        blocks,
        citations,
        audience_tags: lines(&text("audience_tags")),
        valid_from: date("valid_from")?,
        valid_to: date("valid_to")?,
        related: lines(&text("related")),
        status: String::new(),
        version: 0,
    }))
}

pub fn parse_xlsx(content: &[u8]) -> Result<Vec<ParsedRow>, ApiError> {
    use calamine::Reader as _;
    let unreadable =
        || ApiError::invalid("content", "not an xlsx workbook", "无法读取该Excel文件，请使用导出的模板（.xlsx）。");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(content)).map_err(|_| unreadable())?;
    let range = book.worksheet_range_at(0).ok_or_else(unreadable)?.map_err(|_| unreadable())?;
    let mut rows = range.rows();
    let header: Vec<String> =
        rows.next().map(|r| r.iter().map(|c| cell_text(c).trim().to_owned()).collect()).unwrap_or_default();
    let columns: Vec<Option<&str>> =
        header.iter().map(|h| COLUMNS.iter().find(|(name, _)| name == h).map(|(_, field)| *field)).collect();
    for required in ["目录编号", "专题", "标准问题"] {
        if !header.iter().any(|h| h == required) {
            return Err(ApiError::InvalidArgument(vec![zhengna_platform::FieldViolation::new(
                "content",
                format!("missing column {required}"),
                format!("Excel第1行缺少“{required}”列，请使用导出的模板。"),
            )]));
        }
    }
    Ok(rows
        .enumerate()
        .filter(|(_, r)| r.iter().any(|c| !cell_text(c).trim().is_empty()))
        .map(|(i, r)| {
            let cells: HashMap<&str, &calamine::Data> =
                columns.iter().zip(r).filter_map(|(f, c)| f.map(|f| (f, c))).collect();
            (i32::try_from(i + 2).unwrap_or(i32::MAX), parse_row(&cells))
        })
        .collect())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn column_name(mut n: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// A one-sheet workbook (inline strings, wrapped text) of the given rows.
pub fn write_xlsx(rows: &[Vec<String>]) -> Result<Vec<u8>, ApiError> {
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews><cols><col min="1" max="2" width="14" customWidth="1"/><col min="3" max="4" width="40" customWidth="1"/><col min="5" max="14" width="24" customWidth="1"/></cols><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, v) in row.iter().enumerate() {
            let style = if r == 0 { 1 } else { 2 };
            sheet.push_str(&format!(
                r#"<c r="{}{}" t="inlineStr" s="{style}"><is><t xml:space="preserve">{}</t></is></c>"#,
                column_name(c),
                r + 1,
                xml_escape(v)
            ));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let files: [(&str, String); 6] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#
                .into(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
                .into(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="知识库" sheetId="1" r:id="rId1"/></sheets></workbook>"#
                .into(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#
                .into(),
        ),
        (
            "xl/styles.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="2"><font><sz val="11"/><name val="等线"/></font><font><b/><sz val="11"/><name val="等线"/></font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/><xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1" applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf></cellXfs></styleSheet>"#
                .into(),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let failed = |e: &dyn std::fmt::Display| ApiError::Internal(format!("writing xlsx: {e}"));
    for (name, body) in files {
        zip.start_file(name, options).map_err(|e| failed(&e))?;
        zip.write_all(body.as_bytes()).map_err(|e| failed(&e))?;
    }
    Ok(zip.finish().map_err(|e| failed(&e))?.into_inner())
}

/// The Excel row of an item, in [`COLUMNS`] order.
pub fn xlsx_row(item: &FileItem) -> Vec<String> {
    let date = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    vec![
        item.catalog_id.clone(),
        item.topic.clone(),
        item.standard_question.clone(),
        item.similar_questions.join("\n"),
        item.keywords.join("\n"),
        item.summary.clone(),
        serde_json::to_string(&item.blocks).unwrap_or_default(),
        serde_json::to_string(&item.citations).unwrap_or_default(),
        item.audience_tags.join("\n"),
        date(item.valid_from),
        date(item.valid_to),
        item.related.join("\n"),
        item.status.clone(),
        item.version.to_string(),
    ]
}

#[derive(Debug, sqlx::FromRow)]
struct Stored {
    id: Uuid,
    catalog_id: Option<String>,
    topic: String,
    question: String,
    similar_questions: Vec<String>,
    keywords: Vec<String>,
    summary: String,
    blocks: sqlx::types::Json<serde_json::Value>,
    citations: sqlx::types::Json<serde_json::Value>,
    audience: Vec<String>,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
    related: Vec<String>,
    status: String,
    version: i32,
}

const STORED: &str =
    "id, catalog_id, topic, question, similar_questions, keywords, summary, blocks, citations, audience,
    valid_from, valid_to, related, status, version";

impl Stored {
    fn to_file(&self) -> FileItem {
        FileItem {
            catalog_id: self.catalog_id.clone().unwrap_or_default(),
            topic: self.topic.clone(),
            standard_question: self.question.clone(),
            similar_questions: self.similar_questions.clone(),
            keywords: self.keywords.clone(),
            summary: self.summary.clone(),
            blocks: serde_json::from_value(self.blocks.0.clone()).unwrap_or_default(),
            citations: serde_json::from_value(self.citations.0.clone()).unwrap_or_default(),
            audience_tags: self.audience.clone(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            related: self.related.clone(),
            status: self.status.clone(),
            version: self.version,
        }
    }
}

/// Items by id, in the given order, as file items.
pub async fn export(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<FileItem>, ApiError> {
    let rows: Vec<Stored> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STORED} FROM kb_items WHERE id = ANY($1) ORDER BY catalog_id, id"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(Stored::to_file).collect())
}

#[derive(Debug, Default)]
pub struct Applied {
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub errors: Vec<pb::ImportRowError>,
}

/// Checks every row, then (unless `dry_run` or any row is wrong) applies them all in one
/// transaction: new catalog ids become drafts (published with `publish`), existing ones are
/// updated (skipped in create-only mode, or when nothing changed).
pub async fn import(
    pool: &PgPool,
    rows: Vec<ParsedRow>,
    create_only: bool,
    publish: bool,
    dry_run: bool,
) -> Result<Applied, ApiError> {
    let mut out = Applied::default();
    let mut seen: HashMap<String, i32> = HashMap::new();
    let in_file: HashSet<String> =
        rows.iter().filter_map(|(_, r)| r.as_ref().ok().map(|i| i.catalog_id.clone())).collect();
    let existing: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT catalog_id FROM kb_items WHERE catalog_id IS NOT NULL")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let known = |id: &str| in_file.contains(id) || existing.contains(id);
    let topics = crate::catalog::topics(&mut *pool.acquire().await?).await?;
    let mut items = Vec::new();
    for (row, parsed) in rows {
        let error = |catalog_id: &str, (field, message): Problem| pb::ImportRowError {
            row,
            catalog_id: catalog_id.to_owned(),
            field,
            message,
        };
        match parsed {
            Err(p) => out.errors.push(error("", p)),
            Ok(item) => {
                let problems = validate(&item, &known, &topics);
                let duplicate = seen.insert(item.catalog_id.clone(), row);
                if let Some(first) = duplicate {
                    out.errors
                        .push(error(&item.catalog_id, ("catalog_id".into(), format!("目录编号与第{first}行重复。"))));
                }
                if problems.is_empty() && duplicate.is_none() {
                    items.push(item);
                } else {
                    out.errors.extend(problems.into_iter().map(|p| error(&item.catalog_id, p)));
                }
            }
        }
    }
    if !out.errors.is_empty() {
        return Ok(out);
    }
    let mut tx = pool.begin().await?;
    let ids: Vec<String> = items.iter().map(|i| i.catalog_id.clone()).collect();
    let stored: Vec<Stored> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STORED} FROM kb_items WHERE catalog_id = ANY($1) ORDER BY catalog_id FOR UPDATE"
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let stored: HashMap<String, Stored> =
        stored.into_iter().filter_map(|s| s.catalog_id.clone().map(|c| (c, s))).collect();
    for item in items {
        match stored.get(&item.catalog_id) {
            Some(_) if create_only => out.skipped += 1,
            Some(s) if s.to_file().content() == item.content() && (!publish || s.status == "published") => {
                out.skipped += 1
            }
            Some(s) => {
                let status = if publish { "published" } else { s.status.as_str() };
                write(&mut tx, Some(s.id), &item, status).await?;
                out.updated += 1;
            }
            None => {
                write(&mut tx, None, &item, if publish { "published" } else { "draft" }).await?;
                out.created += 1;
            }
        }
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(out)
}

/// Inserts (`id` None) or overwrites an item; a published result is announced
/// (ItemPublished) and, for an existing item, told to whoever favourited it.
pub async fn write(conn: &mut PgConnection, id: Option<Uuid>, item: &FileItem, status: &str) -> Result<Uuid, ApiError> {
    let similar_normalized: Vec<String> =
        item.similar_questions.iter().map(|s| crate::normalize::normalize(s)).collect();
    let basis: Vec<String> = item.citations.iter().map(|c| c.text.clone()).collect();
    let sql = match id {
        None => {
            "INSERT INTO kb_items (id, catalog_id, topic, question, question_normalized, similar_questions,
                 similar_normalized, keywords, summary, blocks, citations, basis, audience, valid_from, valid_to,
                 related, status, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1)"
        }
        Some(_) => {
            "UPDATE kb_items SET catalog_id = $2, topic = $3, question = $4, question_normalized = $5,
                 similar_questions = $6, similar_normalized = $7, keywords = $8, summary = $9, blocks = $10,
                 citations = $11, basis = $12, audience = $13, valid_from = $14, valid_to = $15, related = $16,
                 status = $17, version = version + 1, pending = NULL, updated_at = now()
             WHERE id = $1"
        }
    };
    let id = id.unwrap_or_else(Uuid::now_v7);
    sqlx::query(sql)
        .bind(id)
        .bind(&item.catalog_id)
        .bind(&item.topic)
        .bind(&item.standard_question)
        .bind(crate::normalize::normalize(&item.standard_question))
        .bind(&item.similar_questions)
        .bind(&similar_normalized)
        .bind(&item.keywords)
        .bind(&item.summary)
        .bind(sqlx::types::Json(&item.blocks))
        .bind(sqlx::types::Json(&item.citations))
        .bind(sqlx::types::Json(&basis))
        .bind(&item.audience_tags)
        .bind(item.valid_from)
        .bind(item.valid_to)
        .bind(&item.related)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    if status == "published" {
        crate::admin::announce_published(conn, id).await?;
    }
    Ok(id)
}

/// A proto item (CreateItem) as a file item.
pub fn from_proto(item: &pb::KnowledgeItem) -> FileItem {
    use pb::answer_block::Block as B;
    let date = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| zhengna_platform::time::to_shanghai(t).date_naive())
    };
    let blocks = item
        .blocks
        .iter()
        .map(|b| match &b.block {
            Some(B::Paragraph(p)) => Block { kind: "paragraph".into(), text: p.text.clone(), ..Default::default() },
            Some(B::Steps(s)) => {
                Block { kind: "steps".into(), title: s.title.clone(), items: s.steps.clone(), ..Default::default() }
            }
            Some(B::GuideCard(g)) => Block {
                kind: "guide".into(),
                title: g.title.clone(),
                items: g.materials.clone(),
                url: g.url.clone(),
                ..Default::default()
            },
            Some(B::Link(l)) => {
                Block { kind: "link".into(), title: l.title.clone(), url: l.url.clone(), ..Default::default() }
            }
            // Media blocks need uploaded files, which the KB does not store yet.
            _ => Block { kind: "unsupported".into(), ..Default::default() },
        })
        .collect();
    tidy(FileItem {
        catalog_id: item.catalog_id.clone(),
        topic: item.topic_id.clone(),
        standard_question: item.standard_question.clone(),
        similar_questions: item.similar_questions.clone(),
        keywords: item.keywords.clone(),
        summary: String::new(),
        blocks,
        citations: item
            .citations
            .iter()
            .map(|c| Cite {
                article_id: (!c.article_id.is_empty()).then(|| c.article_id.clone()),
                text: c.text.clone(),
            })
            .collect(),
        audience_tags: item.audience_tags.clone(),
        valid_from: date(item.valid_from.as_ref()),
        valid_to: date(item.valid_to.as_ref()),
        related: item.related_item_ids.clone(),
        status: String::new(),
        version: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> FileItem {
        FileItem {
            catalog_id: "FP-901".into(),
            topic: "数电发票开具与管理".into(),
            standard_question: "数电发票可以开具几张？".into(),
            similar_questions: vec!["数电票能开多少张".into()],
            summary: "在发票总额度内不限张数。".into(),
            blocks: vec![Block {
                kind: "paragraph".into(),
                text: "在发票总额度内不限张数。".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_good_item_passes_and_each_fault_names_its_field() {
        let topics = crate::popular::seed_topics();
        assert!(validate(&good(), &|_| true, &topics).is_empty());
        let fields =
            |i: &FileItem| validate(i, &|id| id == "FP-001", &topics).into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(fields(&FileItem { catalog_id: "fp1".into(), ..good() }), ["catalog_id"]);
        assert_eq!(fields(&FileItem { catalog_id: "GS-901".into(), ..good() }), ["catalog_id"]);
        assert_eq!(fields(&FileItem { topic: "天气".into(), ..good() }), ["topic"]);
        assert_eq!(fields(&FileItem { standard_question: " ".into(), ..good() }), ["standard_question"]);
        assert_eq!(fields(&FileItem { related: vec!["FP-404".into()], ..good() }), ["related[0]"]);
        assert!(fields(&FileItem { related: vec!["FP-001".into()], ..good() }).is_empty());
        let to = NaiveDate::from_ymd_opt(2025, 1, 1);
        let from = NaiveDate::from_ymd_opt(2026, 1, 1);
        assert_eq!(fields(&FileItem { valid_from: from, valid_to: to, ..good() }), ["valid_to"]);
        let link = Block { kind: "link".into(), title: "入口".into(), url: "http://x".into(), ..Default::default() };
        assert_eq!(fields(&FileItem { blocks: vec![link], ..good() }), ["blocks[0].url"]);
        assert_eq!(
            fields(&FileItem { similar_questions: vec!["a".into(), "a".into()], ..good() }),
            ["similar_questions[1]"]
        );
    }

    #[test]
    fn excel_written_here_reads_back_the_same() {
        let item = FileItem {
            keywords: vec!["张数".into(), "额度".into()],
            valid_from: NaiveDate::from_ymd_opt(2024, 12, 1),
            citations: vec![Cite {
                article_id: Some("fpgl-1".into()), text: "《发票管理办法》<第三条> & 附则".into()
            }],
            status: "draft".into(),
            version: 2,
            ..good()
        };
        let mut rows = vec![COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect::<Vec<_>>()];
        rows.push(xlsx_row(&item));
        let bytes = write_xlsx(&rows).expect("xlsx");
        let parsed = parse_xlsx(&bytes).expect("readable");
        assert_eq!(parsed.len(), 1);
        let (row, back) = &parsed[0];
        assert_eq!(*row, 2);
        assert_eq!(back.as_ref().expect("row").content(), item.content());
    }

    #[test]
    fn plain_text_cells_become_paragraphs_and_citations() {
        let header: Vec<String> = ["目录编号", "专题", "标准问题", "答案内容", "政策依据", "生效日期"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let row: Vec<String> = ["FP-902", "数电发票开具与管理", "问题", "第一段\n第二段", "依据一\n依据二", "2026/3/1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let bytes = write_xlsx(&[header, row]).expect("xlsx");
        let parsed = parse_xlsx(&bytes).expect("readable");
        let item = parsed[0].1.as_ref().expect("row");
        assert_eq!(item.blocks.len(), 2);
        assert_eq!(item.citations[1].text, "依据二");
        assert_eq!(item.valid_from, NaiveDate::from_ymd_opt(2026, 3, 1));
        let bad = write_xlsx(&[vec!["标准问题".to_owned()]]).expect("xlsx");
        assert!(parse_xlsx(&bad).is_err(), "a sheet without the key columns is refused");
        assert!(parse_xlsx(b"not a zip").is_err());
    }
}
