//! Taxpayer preferences: the quick entries shown under the chat box (快捷入口, chosen from a
//! catalog, in order) and the font size (字体大小).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use zhengna_platform::ApiError;
use zhengna_proto::session::v1 as pb;

/// The catalog of quick entries: id, title, link (resolved by the host page), description,
/// shown by default.
pub const CATALOG: &[(&str, &str, &str, &str, bool)] = &[
    ("guide", "办税指南", "/quick/guide", "常见涉税事项的办理流程和所需资料", true),
    ("map", "办税地图", "/quick/map", "查找附近的办税服务厅和自助办税点", true),
    ("calendar", "办税日历", "/quick/calendar", "本月申报纳税期限和重要日期", true),
    ("invoice-check", "发票查验", "/quick/invoice-check", "全国增值税发票查验平台", false),
    ("policy", "政策法规", "/quick/policy", "税收政策文件和解读", false),
    ("etax", "我要办税", "/quick/etax", "电子税务局办税入口", false),
    ("progress", "办税进度", "/quick/progress", "查询已提交事项的办理进度", false),
    ("notice", "通知公告", "/quick/notice", "税务机关发布的通知公告", false),
];

pub const MAX_ENTRIES: usize = 8;

pub fn catalog() -> Vec<pb::QuickEntry> {
    CATALOG
        .iter()
        .map(|(id, title, url, description, default)| pb::QuickEntry {
            id: (*id).into(),
            title: (*title).into(),
            icon_url: format!("/icons/quick/{id}.svg"),
            url: (*url).into(),
            description: (*description).into(),
            is_default: *default,
        })
        .collect()
}

fn defaults() -> Vec<String> {
    CATALOG.iter().filter(|e| e.4).map(|e| e.0.to_owned()).collect()
}

pub fn font_str(f: pb::FontSize) -> Option<&'static str> {
    Some(match f {
        pb::FontSize::Unspecified => return None,
        pb::FontSize::Small => "small",
        pb::FontSize::Medium => "medium",
        pb::FontSize::Large => "large",
        pb::FontSize::ExtraLarge => "extra_large",
    })
}

fn font_pb(s: &str) -> pb::FontSize {
    match s {
        "small" => pb::FontSize::Small,
        "large" => pb::FontSize::Large,
        "extra_large" => pb::FontSize::ExtraLarge,
        _ => pb::FontSize::Medium,
    }
}

/// Checks chosen entries: known, not repeated, at most 8.
pub fn check_entries(ids: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let id = id.trim();
        if !CATALOG.iter().any(|e| e.0 == id) {
            return Err(ApiError::invalid(
                &format!("preferences.quick_entry_ids[{i}]"),
                "unknown quick entry",
                "快捷入口不存在。",
            ));
        }
        if out.iter().any(|o| o == id) {
            return Err(ApiError::invalid(
                &format!("preferences.quick_entry_ids[{i}]"),
                "repeated",
                "快捷入口不能重复添加。",
            ));
        }
        out.push(id.to_owned());
    }
    if out.len() > MAX_ENTRIES {
        return Err(ApiError::invalid("preferences.quick_entry_ids", "at most 8 entries", "最多添加8个快捷入口。"));
    }
    Ok(out)
}

pub async fn get(pool: &PgPool, tax_id: &str) -> Result<pb::Preferences, ApiError> {
    let row: Option<(Vec<String>, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT quick_entry_ids, font_size, updated_at FROM preferences WHERE taxpayer_id = $1")
            .bind(tax_id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((ids, font, at)) => pb::Preferences {
            quick_entry_ids: ids,
            font_size: font_pb(&font) as i32,
            updated_at: Some(crate::store::timestamp(at)),
        },
        None => {
            pb::Preferences { quick_entry_ids: defaults(), font_size: pb::FontSize::Medium as i32, updated_at: None }
        }
    })
}

pub async fn set(pool: &PgPool, tax_id: &str, ids: &[String], font: &str) -> Result<pb::Preferences, ApiError> {
    sqlx::query(
        "INSERT INTO preferences (taxpayer_id, quick_entry_ids, font_size) VALUES ($1, $2, $3)
         ON CONFLICT (taxpayer_id) DO UPDATE SET quick_entry_ids = EXCLUDED.quick_entry_ids,
             font_size = EXCLUDED.font_size, updated_at = now()",
    )
    .bind(tax_id)
    .bind(ids)
    .bind(font)
    .execute(pool)
    .await?;
    get(pool, tax_id).await
}

/// The current font size as stored (or the default).
pub fn font_of(p: &pb::Preferences) -> &'static str {
    font_str(pb::FontSize::try_from(p.font_size).unwrap_or(pb::FontSize::Medium)).unwrap_or("medium")
}
