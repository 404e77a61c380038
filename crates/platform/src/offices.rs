//! The tax-office hierarchy encoded in office codes: 11 digits, 省 (3) · 市 (2) · 区县 (2) ·
//! 分局 (2) · 所 (2); lower levels are zero when the office sits higher. For example
//! 13700000000 (山东省), 13701000000 (济南市), 13701020000 (历下区).

/// Lengths of the code prefixes that identify each level.
const LEVEL_ENDS: [usize; 5] = [3, 5, 7, 9, 11];

fn valid(code: &str) -> bool {
    code.len() == 11 && code.chars().all(|c| c.is_ascii_digit())
}

/// The significant prefix of an office: every office under it (itself included) starts with
/// it. `None` for a malformed code.
pub fn subtree_prefix(code: &str) -> Option<&str> {
    if !valid(code) {
        return None;
    }
    let end = LEVEL_ENDS.iter().rev().find(|&&end| end == 3 || &code[end - 2..end] != "00").copied().unwrap_or(3);
    Some(&code[..end])
}

/// The parent office, or `None` at the province (or for a malformed code).
pub fn parent(code: &str) -> Option<String> {
    let prefix = subtree_prefix(code)?;
    if prefix.len() == 3 {
        return None;
    }
    let parent = &prefix[..prefix.len() - 2];
    Some(format!("{parent}{}", "0".repeat(11 - parent.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(subtree_prefix("13710000000"), Some("13710"), "a city ending in 0 keeps its digit");
        assert_eq!(subtree_prefix("13701020000"), Some("1370102"));
        assert_eq!(subtree_prefix("13700000000"), Some("137"));
        assert_eq!(subtree_prefix("1370102"), None);
        assert_eq!(parent("13701020100").as_deref(), Some("13701020000"));
        assert_eq!(parent("13701020000").as_deref(), Some("13701000000"));
        assert_eq!(parent("13710000000").as_deref(), Some("13700000000"));
        assert_eq!(parent("13700000000"), None);
        assert_eq!(parent("x"), None);
    }
}
