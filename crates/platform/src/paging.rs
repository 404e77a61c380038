//! Offset paging for filtered lists (`common.v1.PageRequest` / `PageResponse`): the token is
//! the offset of the next page; size 0 means the default and sizes above the maximum are
//! clamped, as `common.proto` documents.

use zhengna_proto::common::v1 as common;

use crate::error::ApiError;

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// An offset and a page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub size: i64,
}

impl Page {
    pub fn from_request(p: Option<&common::PageRequest>) -> Result<Self, ApiError> {
        let p = p.cloned().unwrap_or_default();
        let size = match p.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(ApiError::invalid("page.page_size", "must not be negative", "分页参数有误。")),
            n => n.min(MAX_PAGE),
        };
        let offset = match p.page_token.as_str() {
            "" => 0,
            t => t
                .parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .ok_or_else(|| ApiError::invalid("page.page_token", "malformed", "分页参数有误，请刷新后重试。"))?,
        };
        Ok(Self { offset, size: i64::from(size) })
    }

    /// The response for a page that returned `returned` rows out of `total`.
    pub fn response(&self, returned: usize, total: i64) -> common::PageResponse {
        let next = self.offset + returned as i64;
        common::PageResponse {
            next_page_token: if returned as i64 == self.size && next < total {
                next.to_string()
            } else {
                String::new()
            },
            total_size: total.min(i64::from(i32::MAX)) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_clamps_and_tokens() {
        assert_eq!(Page::from_request(None).expect("default"), Page { offset: 0, size: 20 });
        let big = common::PageRequest { page_size: 500, page_token: "40".into() };
        assert_eq!(Page::from_request(Some(&big)).expect("clamped"), Page { offset: 40, size: 100 });
        for bad in [
            common::PageRequest { page_size: -1, ..Default::default() },
            common::PageRequest { page_size: 1, page_token: "x".into() },
        ] {
            assert!(Page::from_request(Some(&bad)).is_err());
        }
        let p = Page { offset: 0, size: 2 };
        assert_eq!(p.response(2, 5).next_page_token, "2");
        assert_eq!(p.response(2, 2).next_page_token, "");
        assert_eq!(p.response(1, 5).next_page_token, "");
    }
}
