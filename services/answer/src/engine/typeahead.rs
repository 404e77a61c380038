//! 智能联想 (§1.8) without scanning the KB: standard questions indexed by their characters,
//! character bigrams and pinyin / initials prefixes, each list kept in suggestion order
//! (most asked, then shortest), so a lookup reads only until it has enough.

use std::collections::HashMap;

use super::analyzer;

/// What autocomplete matches typed text against, per item.
struct Entry {
    /// The standard question normalised, without spaces.
    text: String,
    /// Pinyin of its Chinese characters, concatenated, and their initials.
    pinyin: String,
    initials: String,
    popularity: u32,
    /// Length of the original question, in bytes (shorter first on ties).
    len: usize,
}

/// Latin prefixes are indexed up to this many letters; longer input is checked in full.
const LATIN_KEY: usize = 3;

#[derive(Default)]
pub struct Typeahead {
    entries: Vec<Entry>,
    /// Items containing a character / a character bigram.
    by_char: HashMap<char, Vec<u32>>,
    by_bigram: HashMap<(char, char), Vec<u32>>,
    /// Items whose text starts with a character / a bigram.
    starts_char: HashMap<char, Vec<u32>>,
    starts_bigram: HashMap<(char, char), Vec<u32>>,
    /// Items whose pinyin or initials start with these letters.
    latin: HashMap<String, Vec<u32>>,
}

/// A match: the item and where the typed text starts in its question (0 for Latin input).
pub type Hit = (usize, usize);

impl Typeahead {
    /// Indexes `(question, popularity)` per item, in item order.
    pub fn build<'a>(questions: impl Iterator<Item = (&'a str, u32)>) -> Self {
        use pinyin::ToPinyin;
        let mut t = Typeahead::default();
        for (question, popularity) in questions {
            let text = analyzer::compact(question);
            let mut pinyin = String::new();
            let mut initials = String::new();
            for p in text.as_str().to_pinyin().flatten() {
                pinyin.push_str(p.plain());
                initials.push_str(p.first_letter());
            }
            t.entries.push(Entry { text, pinyin, initials, popularity, len: question.len() });
        }
        // Every list is filled in suggestion order, so it never needs sorting again.
        let mut order: Vec<u32> = (0..t.entries.len() as u32).collect();
        order.sort_by(|a, b| t.cmp_rank(*a as usize, *b as usize));
        for &i in &order {
            let e = &t.entries[i as usize];
            let chars: Vec<char> = e.text.chars().collect();
            let mut seen_c: Vec<char> = Vec::new();
            for &c in &chars {
                if !seen_c.contains(&c) {
                    seen_c.push(c);
                    t.by_char.entry(c).or_default().push(i);
                }
            }
            let mut seen_b: Vec<(char, char)> = Vec::new();
            for w in chars.windows(2) {
                let b = (w[0], w[1]);
                if !seen_b.contains(&b) {
                    seen_b.push(b);
                    t.by_bigram.entry(b).or_default().push(i);
                }
            }
            if let Some(&c) = chars.first() {
                t.starts_char.entry(c).or_default().push(i);
            }
            if let [a, b, ..] = chars[..] {
                t.starts_bigram.entry((a, b)).or_default().push(i);
            }
            let mut keys: Vec<&str> = Vec::new();
            for s in [&e.pinyin, &e.initials] {
                for n in 1..=LATIN_KEY.min(s.len()) {
                    let k = &s[..n];
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            for k in keys {
                t.latin.entry(k.to_owned()).or_default().push(i);
            }
        }
        t
    }

    /// Suggestion order without the match position: most asked, then shortest, then first.
    fn cmp_rank(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let (x, y) = (&self.entries[a], &self.entries[b]);
        y.popularity.cmp(&x.popularity).then(x.len.cmp(&y.len)).then(a.cmp(&b))
    }

    /// Full suggestion order: most asked, then questions that start with the typed text,
    /// then shortest, then first.
    fn cmp_hit(&self, a: &Hit, b: &Hit) -> std::cmp::Ordering {
        let (x, y) = (&self.entries[a.0], &self.entries[b.0]);
        y.popularity.cmp(&x.popularity).then((a.1 > 0).cmp(&(b.1 > 0))).then(x.len.cmp(&y.len)).then(a.0.cmp(&b.0))
    }

    /// The best `limit` items whose question contains `text` (compact, normalised), or
    /// whose pinyin or initials start with it when it is all Latin letters and digits;
    /// `visible` filters items.
    pub fn lookup(&self, text: &str, limit: usize, visible: impl Fn(usize) -> bool) -> Vec<Hit> {
        if text.is_empty() || limit == 0 {
            return Vec::new();
        }
        if text.chars().all(|c| c.is_ascii_alphanumeric()) {
            let key = &text[..text.len().min(LATIN_KEY)];
            let list = self.latin.get(key).map(Vec::as_slice).unwrap_or_default();
            return self.scan(
                list,
                limit,
                |e| (e.initials.starts_with(text) || e.pinyin.starts_with(text)).then_some(0),
                &visible,
            );
        }
        let chars: Vec<char> = text.chars().collect();
        let finder = memchr::memmem::Finder::new(text.as_bytes());
        // Questions that start with the text, and questions that contain it further in; each
        // list is in suggestion order, so the best `limit` of each are the first found, and
        // the answer is the best `limit` of both.
        let (starts, contains) = if let [a, b, ..] = chars[..] {
            // The rarest bigram of the text narrows the candidates most.
            let rarest = chars
                .windows(2)
                .map(|w| self.by_bigram.get(&(w[0], w[1])).map(Vec::as_slice).unwrap_or_default())
                .min_by_key(|l| l.len())
                .unwrap_or_default();
            (self.starts_bigram.get(&(a, b)).map(Vec::as_slice).unwrap_or_default(), rarest)
        } else {
            let c = chars[0];
            (
                self.starts_char.get(&c).map(Vec::as_slice).unwrap_or_default(),
                self.by_char.get(&c).map(Vec::as_slice).unwrap_or_default(),
            )
        };
        let mut hits = self.scan(starts, limit, |e| e.text.starts_with(text).then_some(0), &visible);
        hits.extend(self.scan(
            contains,
            limit,
            |e| finder.find(e.text.as_bytes()).filter(|p| *p > 0).map(|p| e.text[..p].chars().count()),
            &visible,
        ));
        hits.sort_by(|a, b| self.cmp_hit(a, b));
        hits.truncate(limit);
        hits
    }

    /// The first `limit` entries of a list (in suggestion order) that match and are visible.
    fn scan(
        &self,
        list: &[u32],
        limit: usize,
        matches: impl Fn(&Entry) -> Option<usize>,
        visible: &impl Fn(usize) -> bool,
    ) -> Vec<Hit> {
        let mut out = Vec::new();
        for &i in list {
            let i = i as usize;
            if let Some(pos) = matches(&self.entries[i])
                && visible(i)
            {
                out.push((i, pos));
                if out.len() == limit {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious implementation: check every entry, sort everything.
    fn brute(t: &Typeahead, text: &str, limit: usize) -> Vec<Hit> {
        let latin = text.chars().all(|c| c.is_ascii_alphanumeric());
        let mut hits: Vec<Hit> = (0..t.entries.len())
            .filter_map(|i| {
                let e = &t.entries[i];
                let pos = if latin {
                    (e.initials.starts_with(text) || e.pinyin.starts_with(text)).then_some(0)
                } else {
                    e.text.find(text).map(|p| e.text[..p].chars().count())
                };
                pos.map(|p| (i, p))
            })
            .collect();
        hits.sort_by(|a, b| t.cmp_hit(a, b));
        hits.truncate(limit);
        hits
    }

    #[test]
    fn indexed_lookup_equals_a_full_scan() {
        let questions = [
            ("数电发票怎么开具", 3),
            ("发票开错了怎么红冲", 10),
            ("红字发票信息确认单怎么填", 0),
            ("个人所得税年度汇算怎么办理", 7),
            ("发票额度不够用怎么办", 10),
            ("增值税专用发票怎么抵扣", 0),
            ("发票", 0),
            ("怎么开发票", 1),
            ("小规模纳税人发票怎么开", 1),
        ];
        let t = Typeahead::build(questions.iter().map(|(q, p)| (*q, *p)));
        for typed in [
            "发票",
            "发",
            "票怎么",
            "红",
            "红冲",
            "怎么开",
            "fp",
            "fapiao",
            "f",
            "grsds",
            "geren",
            "zz",
            "x",
            "开具发票",
            "无",
        ] {
            for limit in [1, 2, 3, 10] {
                let typed = analyzer::compact(typed);
                assert_eq!(t.lookup(&typed, limit, |_| true), brute(&t, &typed, limit), "{typed} / {limit}");
            }
        }
        let hidden = t.lookup("发票", 10, |i| i != 1);
        assert!(hidden.iter().all(|(i, _)| *i != 1));
    }
}
