//! The matching engine: one decision per question — answer, clarify, suggest or no answer —
//! with a confidence in [0, 1].
//!
//! Retrieval is BM25 over analysed variants ([`analyzer`], [`index`]). The confidence of the
//! best item is its score over the query's ideal score (how much of what was asked the best
//! variant covers, weighted by rarity); the margin to the runner-up separates a clear match
//! from a choice the taxpayer should make. Thresholds are calibrated on our own held-out
//! paraphrases and out-of-scope questions (`seed/eval`), never on the dev paraphrases.

pub mod analyzer;
pub mod index;
pub mod typeahead;

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

pub use self::analyzer::{Analyzed, Analyzer, Dicts};
use self::index::Index;
use self::typeahead::Typeahead;

/// What the engine knows of one knowledge item.
#[derive(Debug, Clone, Default)]
pub struct EngineItem {
    /// Stable key the caller maps back (item id).
    pub key: String,
    pub catalog_id: String,
    pub question: String,
    pub similar: Vec<String>,
    pub keywords: Vec<String>,
    /// Answer content (facts, summary): matched with a lower weight, for questions that
    /// name a detail rather than the topic.
    pub content: Vec<String>,
    pub topic: String,
    /// Audience tags (一般纳税人, 自然人…); empty = everyone.
    pub audience: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    /// Times asked recently (ranks autocomplete suggestions).
    pub popularity: u32,
}

/// One autocomplete suggestion: the item and the matched character range of its question.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub item: usize,
    pub highlight: Option<(usize, usize)>,
}

/// A verbatim question shared by several items.
const AMBIGUOUS: usize = usize::MAX;

/// Weight of the answer-content variant against the question variants.
const CONTENT_WEIGHT: f32 = 0.45;

/// The audience tag meaning every taxpayer.
pub const EVERYONE: &str = "所有纳税人";

/// Who asks and when: answers are filtered by audience and validity.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub today: NaiveDate,
    /// The caller's profile tags; empty = unknown (no audience filtering).
    pub tags: &'a [String],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Minimum match quality to answer.
    pub answer: f32,
    /// Minimum relative margin over the runner-up to answer (below it: clarify).
    pub margin: f32,
    /// Quality above which the margin does not matter.
    pub sure: f32,
    /// Minimum quality to offer candidates (clarify or 猜你想问).
    pub suggest: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { answer: 0.53, margin: 0.10, sure: 0.75, suggest: 0.25 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Index into [`Engine::items`].
    pub item: usize,
    pub score: f32,
    /// Match quality in [0, 1]: the geometric mean of the score over the query's ideal
    /// score and the share of the query's words the item uses.
    pub quality: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer {
        best: Candidate,
        others: Vec<Candidate>,
    },
    /// Close candidates: ask which one is meant.
    Clarify {
        candidates: Vec<Candidate>,
    },
    /// Related questions only (猜你想问).
    Suggest {
        candidates: Vec<Candidate>,
    },
    NoAnswer {
        best: Option<Candidate>,
    },
    /// About another province's tax matters: this bot serves Shandong only.
    OtherJurisdiction,
}

impl Decision {
    pub fn confidence(&self) -> f32 {
        match self {
            Decision::Answer { best, .. } => best.quality,
            Decision::Clarify { candidates } | Decision::Suggest { candidates } => {
                candidates.first().map(|c| c.quality).unwrap_or(0.0)
            }
            Decision::NoAnswer { best } => best.map(|c| c.quality).unwrap_or(0.0),
            Decision::OtherJurisdiction => 0.0,
        }
    }
}

pub struct Engine {
    analyzer: Analyzer,
    index: Index,
    items: Vec<EngineItem>,
    typeahead: Typeahead,
    by_key: HashMap<String, usize>,
    by_catalog: HashMap<String, usize>,
    /// Tax-domain words (the tax dictionary, the synonym groups, the KB's keywords), as the
    /// analyzer's canonical words. A question without any is not about tax, whatever it
    /// shares with the KB ("孩子上户口要带什么"): it gets choices, never an outright answer.
    domain: HashSet<String>,
    /// The same terms whole (normalised), found anywhere in the question's text.
    domain_terms: aho_corasick::AhoCorasick,
    /// Every standard and similar question, compact, with its item ([`AMBIGUOUS`] when two
    /// items share it): asked verbatim, it is that item's, whatever words it uses.
    verbatim: HashMap<String, usize>,
    pub thresholds: Thresholds,
}

impl Engine {
    pub fn build(items: Vec<EngineItem>, dicts: &Dicts) -> Self {
        // KB words reachable by pinyin: the standard questions' and keywords' own terms.
        let vocabulary: Vec<String> =
            items.iter().flat_map(|i| i.keywords.iter().cloned()).filter(|k| k.chars().count() >= 2).collect();
        let analyzer = Analyzer::new(dicts, &vocabulary);
        let mut index = Index::default();
        for (n, item) in items.iter().enumerate() {
            let n = n as u32;
            let mut standard = analyzer.analyze(&item.question);
            // Keywords strengthen the standard question's variant.
            for k in &item.keywords {
                let a = analyzer.analyze(k);
                standard.words.extend(a.words);
            }
            index.add(n, 1.0, &standard);
            for s in &item.similar {
                index.add(n, 1.0, &analyzer.analyze(s));
            }
            if !item.content.is_empty() {
                index.add(n, CONTENT_WEIGHT, &analyzer.analyze(&item.content.join("。")));
            }
        }
        index.finish();
        let by_key = items.iter().enumerate().map(|(i, it)| (it.key.clone(), i)).collect();
        let by_catalog = items
            .iter()
            .enumerate()
            .filter(|(_, it)| !it.catalog_id.is_empty())
            .map(|(i, it)| (it.catalog_id.clone(), i))
            .collect();
        let typeahead = Typeahead::build(items.iter().map(|i| (i.question.as_str(), i.popularity)));
        let terms = dicts
            .user_dict
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .chain(dicts.synonyms.lines().filter(|l| !l.starts_with('#')).flat_map(str::split_whitespace))
            .chain(items.iter().flat_map(|i| i.keywords.iter().map(String::as_str)));
        let mut domain = HashSet::new();
        let mut whole: Vec<String> = Vec::new();
        for term in terms {
            let normal = analyzer::compact(term);
            if normal.chars().count() >= 2 && !normal.is_ascii() {
                whole.push(normal);
            }
            // Only terms the analyzer keeps whole: a keyword such as 开票入口 must not make
            // 入口 a tax word.
            if let [word] = &analyzer.analyze(term).words[..]
                && word.chars().count() >= 2
            {
                domain.insert(word.clone());
            }
        }
        whole.sort();
        whole.dedup();
        let domain_terms = crate::moderation::automaton(&whole);
        let mut verbatim: HashMap<String, usize> = HashMap::new();
        for (n, item) in items.iter().enumerate() {
            for q in std::iter::once(&item.question).chain(&item.similar) {
                let e = verbatim.entry(analyzer::compact(q)).or_insert(n);
                if *e != n {
                    *e = AMBIGUOUS;
                }
            }
        }
        Self {
            analyzer,
            index,
            items,
            typeahead,
            by_key,
            by_catalog,
            domain,
            domain_terms,
            verbatim,
            thresholds: Thresholds::default(),
        }
    }

    pub fn items(&self) -> &[EngineItem] {
        &self.items
    }

    pub fn item(&self, key: &str) -> Option<&EngineItem> {
        self.by_key.get(key).map(|i| &self.items[*i])
    }

    /// The published item with this catalog id.
    pub fn by_catalog(&self, catalog_id: &str) -> Option<&EngineItem> {
        self.by_catalog.get(catalog_id).map(|i| &self.items[*i])
    }

    pub fn variants(&self) -> usize {
        self.index.len()
    }

    /// Changes how many postings one question may read (see [`index::POSTINGS_BUDGET`]);
    /// `usize::MAX` makes every search exact.
    pub fn set_postings_budget(&mut self, budget: usize) {
        self.index.budget = budget.max(1);
    }

    /// Whether the KB uses this (canonical) word anywhere.
    pub fn is_kb_word(&self, word: &str) -> bool {
        self.index.has_word(word)
    }

    pub fn analyze(&self, text: &str) -> Analyzed {
        self.analyzer.analyze(text)
    }

    fn visible(&self, item: &EngineItem, ctx: &Context<'_>) -> bool {
        let valid = item.valid_from.is_none_or(|f| f <= ctx.today) && item.valid_to.is_none_or(|t| t >= ctx.today);
        let audience = item.audience.is_empty()
            || ctx.tags.is_empty()
            || item.audience.iter().any(|a| a == EVERYONE || ctx.tags.contains(a));
        valid && audience
    }

    /// The best `k` items for a question, visible in `ctx`.
    pub fn rank(&self, question: &str, ctx: &Context<'_>, k: usize) -> Vec<Candidate> {
        self.rank_analyzed(&self.analyzer.analyze(question), ctx, k)
    }

    /// Whether a question uses any tax-domain word: among its canonical words (so typos and
    /// pinyin mapped to a KB term count) or anywhere in its text.
    fn about_tax(&self, question: &str, q: &Analyzed) -> bool {
        let compact = analyzer::compact(question);
        q.words.iter().any(|w| w.contains('税') || w.contains('票') || self.domain.contains(w))
            || self.domain_terms.is_match(&compact)
            || self.verbatim.contains_key(&compact)
    }

    fn rank_analyzed(&self, q: &Analyzed, ctx: &Context<'_>, k: usize) -> Vec<Candidate> {
        let ideal = self.index.ideal(q);
        if ideal <= 0.0 {
            return Vec::new();
        }
        self.index
            .search(q, k, |i| self.visible(&self.items[i as usize], ctx))
            .into_iter()
            .map(|(item, score)| {
                let fit = (score / ideal).clamp(0.0, 1.0);
                let coverage = self.index.coverage(q, item);
                Candidate { item: item as usize, score, quality: (fit * coverage).sqrt() }
            })
            .collect()
    }

    /// 智能联想 while typing (§1.8): standard questions containing the typed text, or whose
    /// pinyin or initials start with typed Latin letters, most asked first; topped up with
    /// the best fuzzy matches.
    pub fn autocomplete(&self, typed: &str, ctx: &Context<'_>, limit: usize) -> Vec<Completion> {
        let text = analyzer::compact(typed);
        if text.is_empty() || limit == 0 {
            return Vec::new();
        }
        let hits = self.typeahead.lookup(&text, limit, |i| self.visible(&self.items[i], ctx));
        let mut out: Vec<Completion> = hits
            .into_iter()
            .take(limit)
            .map(|(item, _)| Completion { item, highlight: highlight(&self.items[item].question, typed) })
            .collect();
        if out.len() < limit && text.chars().count() >= 2 {
            for c in self.rank(typed, ctx, limit * 2) {
                if out.len() >= limit {
                    break;
                }
                if c.quality >= self.thresholds.suggest && !out.iter().any(|o| o.item == c.item) {
                    out.push(Completion { item: c.item, highlight: highlight(&self.items[c.item].question, typed) });
                }
            }
        }
        out
    }

    /// One decision for a question.
    pub fn decide(&self, question: &str, ctx: &Context<'_>) -> Decision {
        if other_jurisdiction(&analyzer::normalize(question)) {
            return Decision::OtherJurisdiction;
        }
        let q = self.analyzer.analyze(question);
        let ranked = self.rank_analyzed(&q, ctx, 6);
        // A standard or similar question asked word for word is answered by its item.
        if let Some(&item) = self.verbatim.get(&analyzer::compact(question))
            && item != AMBIGUOUS
            && self.visible(&self.items[item], ctx)
        {
            let score = ranked.iter().find(|c| c.item == item).map_or(0.0, |c| c.score);
            return Decision::Answer {
                best: Candidate { item, score, quality: 1.0 },
                others: ranked.into_iter().filter(|c| c.item != item).take(3).collect(),
            };
        }
        let t = self.thresholds;
        let Some(best) = ranked.first().copied() else { return Decision::NoAnswer { best: None } };
        let second = ranked.get(1).map(|c| c.score).unwrap_or(0.0);
        let margin = if best.score > 0.0 { (best.score - second) / best.score } else { 0.0 };
        // A very good match may sit close to a weaker one, but not to another very good one
        // (a bare topic word such as 发票 fits many items perfectly).
        let second_quality = ranked.get(1).map(|c| c.quality).unwrap_or(0.0);
        let clear = margin >= t.margin || (best.quality >= t.sure && second_quality < t.sure);
        let about_tax = self.about_tax(question, &q);
        if best.quality >= t.answer && clear && about_tax {
            return Decision::Answer { best, others: ranked[1..].iter().copied().take(3).collect() };
        }
        if best.quality >= t.answer {
            // Several items fit about equally well: let the taxpayer choose.
            let close: Vec<Candidate> =
                ranked.iter().copied().filter(|c| c.score >= best.score * (1.0 - 2.0 * t.margin)).take(4).collect();
            if close.len() >= 2 {
                return Decision::Clarify { candidates: close };
            }
        }
        // Off-topic questions get related questions only when they match one well.
        if best.quality >= t.suggest && (about_tax || best.quality >= t.answer) {
            return Decision::Suggest { candidates: ranked.into_iter().take(3).collect() };
        }
        Decision::NoAnswer { best: Some(best) }
    }
}

/// Places outside Shandong that taxpayers name when asking about their own bureau.
const ELSEWHERE: &[&str] = &[
    "北京",
    "天津",
    "河北",
    "石家庄",
    "山西",
    "太原",
    "内蒙古",
    "辽宁",
    "沈阳",
    "大连",
    "吉林",
    "长春",
    "黑龙江",
    "哈尔滨",
    "上海",
    "江苏",
    "南京",
    "苏州",
    "无锡",
    "浙江",
    "杭州",
    "宁波",
    "温州",
    "安徽",
    "合肥",
    "福建",
    "福州",
    "厦门",
    "江西",
    "南昌",
    "河南",
    "郑州",
    "湖北",
    "武汉",
    "湖南",
    "长沙",
    "广东",
    "广州",
    "深圳",
    "东莞",
    "佛山",
    "广西",
    "南宁",
    "海南",
    "海口",
    "三亚",
    "重庆",
    "四川",
    "成都",
    "贵州",
    "贵阳",
    "云南",
    "昆明",
    "西藏",
    "拉萨",
    "陕西",
    "西安",
    "甘肃",
    "兰州",
    "青海",
    "西宁",
    "宁夏",
    "银川",
    "新疆",
    "乌鲁木齐",
    "香港",
    "澳门",
    "台湾",
];
/// Shandong and its cities: a question naming them is ours even if it also names elsewhere.
const SHANDONG: &[&str] = &[
    "山东", "鲁", "济南", "青岛", "淄博", "枣庄", "东营", "烟台", "潍坊", "济宁", "泰安", "威海", "日照", "临沂",
    "德州", "聊城", "滨州", "菏泽",
];

/// Where `typed` occurs in `question`, in characters, for highlighting.
fn highlight(question: &str, typed: &str) -> Option<(usize, usize)> {
    let typed = typed.trim();
    if typed.is_empty() {
        return None;
    }
    let byte = question.find(typed)?;
    let start = question[..byte].chars().count();
    Some((start, start + typed.chars().count()))
}

/// Phrases asking for a person (转人工, 人工客服, 找真人…), from `seed/dict/transfer_intent.txt`.
fn transfer_phrases() -> &'static [String] {
    static PHRASES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PHRASES.get_or_init(|| {
        let mut v: Vec<String> = include_str!("../../seed/dict/transfer_intent.txt")
            .lines()
            .map(|l| analyzer::compact(l.trim()))
            .filter(|l| !l.is_empty())
            .collect();
        // Longest first, so 人工客服 is removed whole rather than 人工.
        v.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
        v
    })
}

/// Words that make a sentence a question about the human service rather than a request
/// for it ("人工客服几点上班").
const ABOUT_THE_SERVICE: &[&str] =
    &["几点", "时间", "电话", "号码", "怎么", "如何", "什么", "多久", "哪", "上班", "下班", "工作日", "周末", "收费"];

/// Whether the taxpayer asks to be put through to a person (§3.1): a transfer phrase with
/// little else, and nothing that makes it a question about the service.
pub fn transfer_intent(question: &str) -> bool {
    let text = analyzer::compact(question);
    let Some(phrase) = transfer_phrases().iter().find(|p| text.contains(p.as_str())) else { return false };
    if ABOUT_THE_SERVICE.iter().any(|w| text.contains(w)) {
        return false;
    }
    let rest = text.replacen(phrase.as_str(), "", 1);
    let filler = [
        "我", "要", "想", "请", "帮我", "给我", "麻烦", "你好", "您好", "谢谢", "吧", "呀", "啊", "呢", "吗", "了",
        "快", "点", "直接",
    ];
    let mut left = rest;
    for f in filler {
        left = left.replace(f, "");
    }
    left.chars().count() <= 2
}

/// Whether a (normalised) question is about another province's bureau.
fn other_jurisdiction(text: &str) -> bool {
    ELSEWHERE.iter().any(|p| text.contains(p)) && !SHANDONG.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, q: &str, similar: &[&str]) -> EngineItem {
        EngineItem {
            key: key.into(),
            catalog_id: key.into(),
            question: q.into(),
            similar: similar.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn engine() -> Engine {
        Engine::build(
            vec![
                item("FP-1", "数电发票怎么开具？", &["怎么开电子发票", "全电发票在哪开"]),
                item("FP-2", "发票开错了怎么红冲？", &["开错的发票怎么作废", "红字发票怎么开"]),
                item("GS-1", "个人所得税年度汇算怎么办理？", &["个税汇算清缴怎么弄", "年度汇算在哪里办"]),
                EngineItem {
                    valid_to: NaiveDate::from_ymd_opt(2020, 1, 1),
                    ..item("OLD-1", "2019年小规模纳税人免税政策", &["2019年小规模免税"])
                },
                EngineItem {
                    audience: vec!["自然人".into()],
                    ..item("ZR-1", "自然人代开发票怎么办", &["个人怎么代开发票"])
                },
            ],
            &Dicts::builtin(),
        )
    }

    fn ctx() -> Context<'static> {
        Context { today: NaiveDate::from_ymd_opt(2026, 11, 24).expect("date"), tags: &[] }
    }

    fn answered(e: &Engine, q: &str, c: &Context<'_>) -> Option<String> {
        match e.decide(q, c) {
            Decision::Answer { best, .. } => Some(e.items()[best.item].key.clone()),
            _ => None,
        }
    }

    #[test]
    fn colloquial_pinyin_and_typos_are_answered() {
        let e = engine();
        assert_eq!(answered(&e, "全电票咋开", &ctx()).as_deref(), Some("FP-1"));
        assert_eq!(answered(&e, "geshui 汇算去哪办", &ctx()).as_deref(), Some("GS-1"));
        assert_eq!(answered(&e, "发漂开错了要红冲", &ctx()).as_deref(), Some("FP-2"));
    }

    #[test]
    fn out_of_scope_is_not_answered() {
        let e = engine();
        assert!(matches!(e.decide("今天济南天气怎么样", &ctx()), Decision::NoAnswer { .. }));
        assert!(matches!(e.decide("讲个笑话", &ctx()), Decision::NoAnswer { .. }));
    }

    #[test]
    fn autocomplete_by_text_pinyin_and_initials_most_asked_first() {
        let mut items = vec![
            item("FP-1", "数电发票怎么开具？", &[]),
            item("FP-2", "发票开错了怎么红冲？", &[]),
            item("GS-1", "个人所得税年度汇算怎么办理？", &[]),
        ];
        items[1].popularity = 10;
        let e = Engine::build(items, &Dicts::builtin());
        let keys = |typed: &str| -> Vec<String> {
            e.autocomplete(typed, &ctx(), 10).iter().map(|c| e.items()[c.item].key.clone()).collect()
        };
        assert_eq!(keys("发票")[..2], ["FP-2".to_owned(), "FP-1".to_owned()], "most asked first");
        assert_eq!(keys("grsds")[0], "GS-1");
        assert_eq!(keys("geren")[0], "GS-1");
        let c = e.autocomplete("红冲", &ctx(), 10);
        assert_eq!(c[0].highlight, Some((7, 9)));
        assert!(e.autocomplete("", &ctx(), 10).is_empty());
        assert!(e.autocomplete("发票", &ctx(), 1).len() == 1);
    }

    #[test]
    fn transfer_requests_are_told_from_questions_about_the_service() {
        for yes in ["转人工", "我要人工客服", "请帮我转人工服务", "不要机器人", "找真人", "人工！人工！"]
        {
            assert!(transfer_intent(yes), "{yes}");
        }
        for no in ["人工客服几点上班", "人工服务电话是多少", "数电发票怎么开具", "个税汇算"]
        {
            assert!(!transfer_intent(no), "{no}");
        }
    }

    #[test]
    fn other_provinces_are_referred_to_their_bureau() {
        let e = engine();
        assert_eq!(e.decide("广东电子税务局的数电发票怎么开具", &ctx()), Decision::OtherJurisdiction);
        assert_eq!(answered(&e, "济南的企业数电发票怎么开具", &ctx()).as_deref(), Some("FP-1"));
        // A move between provinces is still a Shandong question when Shandong is named.
        assert!(!other_jurisdiction("从上海迁到山东的企业怎么开数电发票"));
    }

    #[test]
    fn expired_items_and_other_audiences_are_never_answered() {
        let e = engine();
        let q = "2019年小规模纳税人免税政策";
        assert!(e.rank(q, &ctx(), 5).iter().all(|c| e.items()[c.item].key != "OLD-1"));
        let company = vec!["一般纳税人".to_owned()];
        let as_company = Context { tags: &company, ..ctx() };
        assert!(e.rank("自然人代开发票怎么办", &as_company, 5).iter().all(|c| e.items()[c.item].key != "ZR-1"));
        let person = vec!["自然人".to_owned()];
        let as_person = Context { tags: &person, ..ctx() };
        assert_eq!(answered(&e, "自然人代开发票怎么办", &as_person).as_deref(), Some("ZR-1"));
    }

    #[test]
    fn a_vague_question_gets_choices_not_a_guess() {
        let e = engine();
        match e.decide("发票", &ctx()) {
            Decision::Clarify { candidates } | Decision::Suggest { candidates } => assert!(!candidates.is_empty()),
            other => panic!("expected choices, got {other:?}"),
        }
    }
}
