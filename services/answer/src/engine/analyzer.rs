//! Text analysis shared by indexing and asking, so both sides always agree:
//!
//! 1. normalise: NFKC (full/half width), lower case, traditional → simplified, punctuation
//!    to spaces;
//! 2. Latin runs: a synonym (`zzs`, `etb`), or pinyin / initials of a known term (`geshui`,
//!    `huisuan`, `zzs`) become that term; anything else (`ukey`, `app`) stays a token;
//! 3. jieba (search mode) with the tax user dictionary; each word mapped to its synonym
//!    group's canonical form; question words and particles dropped;
//! 4. three token streams: canonical words, character bigrams of the canonical text (robust
//!    to segmentation differences) and pinyin syllable bigrams (robust to homophone typos
//!    such as 发漂 for 发票).

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

/// Function words that carry no topic: dropped from every stream.
const STOP_WORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "啊",
    "呀",
    "吧",
    "嘛",
    "哦",
    "哈",
    "么",
    "是",
    "在",
    "我",
    "我们",
    "你",
    "你们",
    "您",
    "他",
    "她",
    "它",
    "请问",
    "问",
    "问下",
    "问一下",
    "一下",
    "想",
    "想问",
    "想知道",
    "知道",
    "怎么",
    "怎么样",
    "怎样",
    "如何",
    "咋",
    "咋办",
    "咋整",
    "啥",
    "什么",
    "哪",
    "哪里",
    "哪儿",
    "哪个",
    "为什么",
    "为啥",
    "能",
    "能不能",
    "可以",
    "可不可以",
    "要",
    "需要",
    "需不需要",
    "该",
    "应该",
    "得",
    "地",
    "和",
    "与",
    "及",
    "或",
    "或者",
    "还是",
    "就",
    "都",
    "也",
    "还",
    "又",
    "有",
    "有没有",
    "没有",
    "没",
    "不",
    "这",
    "那",
    "这个",
    "那个",
    "个",
    "一个",
    "些",
    "一些",
    "吗的",
    "谢谢",
    "你好",
    "您好",
    "麻烦",
    "下",
    "办",
    "弄",
    "搞",
    "给",
    "让",
    "把",
    "被",
    "对",
    "从",
    "到",
    "去",
    "来",
    "上",
    "里",
    "中",
    "后",
    "前",
    "时",
    "时候",
    "的话",
    "请",
    "帮",
    "帮我",
    "告诉",
    "一",
    "啦",
    "嗯",
    "喔",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analyzed {
    /// Canonical words (with repeats, for term frequency).
    pub words: Vec<String>,
    /// Character bigrams of the canonical text.
    pub bigrams: Vec<String>,
    /// Pinyin syllable bigrams (`fa_piao`).
    pub pinyin: Vec<String>,
}

pub struct Analyzer {
    jieba: jieba_rs::Jieba,
    /// Variant → canonical.
    synonyms: HashMap<String, String>,
    /// Full pinyin or initials → term.
    pinyin_terms: HashMap<String, String>,
    stop: HashSet<&'static str>,
}

/// The dictionaries the analyzer is built from (see `seed/dict/`).
#[derive(Debug, Clone, Default)]
pub struct Dicts {
    /// jieba user dictionary: `word [freq [tag]]` per line.
    pub user_dict: String,
    /// One synonym group per line, canonical first, space separated; `#` comments.
    pub synonyms: String,
}

impl Dicts {
    /// The dictionaries shipped in `seed/dict`, compiled into the binary.
    pub fn builtin() -> Self {
        Self {
            user_dict: include_str!("../../seed/dict/tax_userdict.txt").to_owned(),
            synonyms: include_str!("../../seed/dict/synonyms.txt").to_owned(),
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

/// NFKC, lower case, simplified Chinese; anything that is not a letter, digit or CJK
/// becomes a space.
pub fn normalize(text: &str) -> String {
    let nfkc: String = text.nfkc().collect::<String>().to_lowercase();
    let simplified = fast2s::convert(&nfkc);
    simplified.chars().map(|c| if c.is_alphanumeric() || is_cjk(c) { c } else { ' ' }).collect()
}

/// [`normalize`] without the spaces: for substring and whole-phrase comparisons.
pub fn compact(text: &str) -> String {
    normalize(text).replace(' ', "")
}

/// Plain pinyin (no tones) of a CJK character.
fn char_pinyin(c: char) -> Option<&'static str> {
    use pinyin::ToPinyin;
    c.to_pinyin().map(|p| p.plain())
}

fn term_pinyin(term: &str) -> Option<(String, String)> {
    let mut full = String::new();
    let mut initials = String::new();
    for c in term.chars() {
        let p = char_pinyin(c)?;
        full.push_str(p);
        initials.push(p.chars().next()?);
    }
    Some((full, initials))
}

impl Analyzer {
    /// Builds the analyzer; `vocabulary` adds terms (from the KB) reachable by pinyin.
    pub fn new(dicts: &Dicts, vocabulary: &[String]) -> Self {
        let mut jieba = jieba_rs::Jieba::new();
        let mut synonyms = HashMap::new();
        let mut pinyin_terms: HashMap<String, String> = HashMap::new();
        let add_pinyin = |term: &str, pinyin_terms: &mut HashMap<String, String>| {
            let chars = term.chars().count();
            if !(2..=8).contains(&chars) || !term.chars().all(is_cjk) {
                return;
            }
            if let Some((full, initials)) = term_pinyin(term) {
                pinyin_terms.entry(full).or_insert_with(|| term.to_owned());
                if chars >= 2 {
                    pinyin_terms.entry(initials).or_insert_with(|| term.to_owned());
                }
            }
        };
        for line in dicts.synonyms.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut words = line.split_whitespace().map(compact);
            let Some(canonical) = words.next() else { continue };
            jieba.add_word(&canonical, Some(5000), None);
            add_pinyin(&canonical, &mut pinyin_terms);
            for w in words.filter(|w| !w.is_empty() && *w != canonical) {
                if w.chars().any(is_cjk) {
                    jieba.add_word(&w, Some(3000), None);
                }
                synonyms.entry(w).or_insert_with(|| canonical.clone());
            }
        }
        for line in dicts.user_dict.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let Some(word) = parts.next() else { continue };
            let freq = parts.next().and_then(|f| f.parse::<usize>().ok());
            let word = compact(word);
            jieba.add_word(&word, freq.or(Some(2000)), None);
            add_pinyin(synonyms.get(&word).map(String::as_str).unwrap_or(&word), &mut pinyin_terms);
        }
        for term in vocabulary {
            add_pinyin(term, &mut pinyin_terms);
        }
        Self { jieba, synonyms, pinyin_terms, stop: STOP_WORDS.iter().copied().collect() }
    }

    fn canonical<'a>(&'a self, word: &'a str) -> &'a str {
        self.synonyms.get(word).map(String::as_str).unwrap_or(word)
    }

    /// A Latin run as Chinese terms, if it is a synonym or (a sequence of) known pinyin.
    fn latin(&self, run: &str) -> Option<String> {
        if let Some(c) = self.synonyms.get(run) {
            return Some(c.clone());
        }
        if let Some(t) = self.pinyin_terms.get(run) {
            return Some(t.clone());
        }
        // Split into known pinyin terms (`geshuihuisuan`): shortest number of pieces.
        let n = run.len();
        if n > 40 || !run.is_ascii() {
            return None;
        }
        let mut best: Vec<Option<(usize, usize)>> = vec![None; n + 1];
        best[0] = Some((0, 0));
        for end in 1..=n {
            for start in 0..end {
                if let (Some((pieces, _)), Some(_)) = (best[start], self.pinyin_terms.get(&run[start..end]))
                    && best[end].is_none_or(|(p, _)| pieces + 1 < p)
                {
                    best[end] = Some((pieces + 1, start));
                }
            }
        }
        best[n]?;
        let mut out = Vec::new();
        let mut end = n;
        while end > 0 {
            let (_, start) = best[end]?;
            out.push(self.pinyin_terms.get(&run[start..end])?.clone());
            end = start;
        }
        out.reverse();
        Some(out.concat())
    }

    /// Analyzes a question, similar question or keyword list.
    pub fn analyze(&self, text: &str) -> Analyzed {
        let normalized = normalize(text);
        // Latin runs become terms where we can; Chinese stays as it is.
        let mut prepared = String::with_capacity(normalized.len());
        let mut latin_tokens = Vec::new();
        for piece in split_runs(&normalized) {
            match piece {
                Run::Cjk(s) => prepared.push_str(s),
                Run::Latin(s) => match self.latin(s) {
                    Some(t) => prepared.push_str(&t),
                    None => {
                        latin_tokens.push(s.to_owned());
                        prepared.push(' ');
                    }
                },
                Run::Space => prepared.push(' '),
            }
        }
        let mut words = Vec::new();
        let mut canonical_text: Vec<String> = Vec::new();
        for chunk in prepared.split_whitespace() {
            for w in self.jieba.cut_for_search(chunk, true) {
                let w = w.word.trim();
                if !w.is_empty() && !self.stop.contains(w) {
                    words.push(self.canonical(w).to_owned());
                }
            }
            let mut line = String::new();
            // The canonical text for bigrams: search-mode cut repeats sub-words, so use the
            // plain cut here.
            for w in self.jieba.cut(chunk, true) {
                let w = w.word.trim();
                if w.is_empty() || self.stop.contains(w) {
                    if !line.is_empty() {
                        canonical_text.push(std::mem::take(&mut line));
                    }
                    continue;
                }
                line.push_str(self.canonical(w));
            }
            if !line.is_empty() {
                canonical_text.push(line);
            }
        }
        for t in latin_tokens {
            words.push(self.canonical(&t).to_owned());
        }
        let mut bigrams = Vec::new();
        let mut pinyin = Vec::new();
        for seg in &canonical_text {
            let chars: Vec<char> = seg.chars().filter(|c| is_cjk(*c)).collect();
            if chars.len() == 1 {
                bigrams.push(chars[0].to_string());
            }
            for pair in chars.windows(2) {
                bigrams.push(pair.iter().collect());
                if let (Some(a), Some(b)) = (char_pinyin(pair[0]), char_pinyin(pair[1])) {
                    pinyin.push(format!("{a}_{b}"));
                }
            }
        }
        Analyzed { words, bigrams, pinyin }
    }
}

enum Run<'a> {
    Cjk(&'a str),
    Latin(&'a str),
    Space,
}

/// Splits normalised text into CJK runs, Latin/digit runs and spaces.
fn split_runs(s: &str) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut kind = 0u8; // 0 none, 1 cjk, 2 latin
    for (i, c) in s.char_indices() {
        let k = if is_cjk(c) {
            1
        } else if c.is_alphanumeric() {
            2
        } else {
            0
        };
        if k != kind {
            push_run(&mut out, kind, &s[start..i]);
            start = i;
            kind = k;
        }
    }
    push_run(&mut out, kind, &s[start..]);
    out
}

fn push_run<'a>(out: &mut Vec<Run<'a>>, kind: u8, piece: &'a str) {
    if piece.is_empty() {
        return;
    }
    out.push(match kind {
        1 => Run::Cjk(piece),
        2 => Run::Latin(piece),
        _ => Run::Space,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new(&Dicts::builtin(), &[])
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize("ＡＢＣ，個稅！"), "abc 个税 ");
        assert_eq!(normalize("發票開具"), "发票开具");
    }

    #[test]
    fn synonyms_and_pinyin_meet_the_canonical_term() {
        let a = analyzer();
        let canonical = a.analyze("增值税专用发票");
        assert!(a.analyze("专票").words.iter().any(|w| canonical.words.contains(w)), "{:?}", a.analyze("专票"));
        let geshui = a.analyze("geshui 汇算怎么退税");
        assert!(geshui.words.iter().any(|w| w == "个人所得税"), "{geshui:?}");
        let zzs = a.analyze("zzs 小规模");
        assert!(zzs.words.iter().any(|w| w == "增值税"), "{zzs:?}");
    }

    #[test]
    fn homophone_typos_share_pinyin() {
        let a = analyzer();
        let right = a.analyze("退税");
        let typo = a.analyze("推税");
        assert_eq!(right.pinyin, typo.pinyin);
        assert_ne!(right.bigrams, typo.bigrams);
    }

    #[test]
    fn particles_are_dropped() {
        let a = analyzer();
        assert!(a.analyze("请问怎么开发票呢").words.iter().all(|w| w != "请问" && w != "呢" && w != "怎么"));
    }
}
