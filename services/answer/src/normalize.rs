//! Text normalisation for matching: full-width → half-width, lower case, and no whitespace
//! or punctuation, so `企业如何登录山东省电子税务局？` and `企业如何登录山东省电子税务局` meet.

/// Normalises a question for exact matching.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(to_half_width)
        .filter(|c| !c.is_whitespace() && !is_punctuation(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn to_half_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c,
            '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}' | '\u{3014}'..='\u{301F}'
            | '\u{2010}'..='\u{2027}' | '\u{FE10}'..='\u{FE6B}' | '\u{00B7}')
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn punctuation_width_and_case_do_not_matter() {
        assert_eq!(normalize("企业如何登录山东省电子税务局？"), normalize("企业如何登录 山东省电子税务局"));
        assert_eq!(normalize("ＡＢＣ，个税！"), "abc个税");
        assert_eq!(normalize("“数电发票”怎么开…"), "数电发票怎么开");
    }

    #[test]
    fn different_questions_stay_different() {
        assert_ne!(normalize("怎么开发票"), normalize("怎么红冲发票"));
    }
}
