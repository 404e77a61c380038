//! Moderation (spec §1.7): sensitive words and emotion, for taxpayer questions, bot output
//! and agents' messages.
//!
//! - **Words.** Tagged sensitive words (政治, 毒品, 色情, 赌博) of three or more characters and
//!   insult lists, matched case-insensitively (Aho-Corasick, leftmost-longest).
//! - **Allow-list.** Never blocked: the tax terms of our user dictionary and synonym groups,
//!   the words the statutes themselves use (代开发票, 国税, 逃税…) and the upstream allow-list.
//!   A hit overlapping an allowed term is ignored.
//! - **Verdicts.** Taxpayer input with a political, drug, sexual or gambling word is blocked
//!   with a kind notice. Insults and other illegal-category words are masked (＊). An agent's
//!   message with any hit is blocked, so the agent can rephrase. Bot output is masked.
//! - **Emotion.** A lexicon we wrote (`seed/dict/emotion.txt`) plus punctuation: agitated →
//!   a soothing preface and a human offer; negative → anxious.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use zhengna_proto::answer::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    TaxpayerInput,
    BotOutput,
    AgentOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Mask,
    Block,
}

/// What a lexicon word does when it occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The shipped lists: political and sexual words block a taxpayer's message, others mask.
    ByCategory,
    Mask,
    Block,
}

/// Directions a word applies to, as a bit set.
pub const ALL_DIRECTIONS: u8 = 0b111;

pub fn direction_bit(d: Direction) -> u8 {
    match d {
        Direction::TaxpayerInput => 0b001,
        Direction::BotOutput => 0b010,
        Direction::AgentOutput => 0b100,
    }
}

/// One lexicon word as the moderator uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub word: String,
    pub category: pb::SensitiveCategory,
    pub action: Action,
    pub directions: u8,
    /// When a supervisor last changed it (shipped words: never).
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A supervisor's change to the shipped lists: a word added or changed (`Some`), or removed.
#[derive(Debug, Clone)]
pub struct Override {
    pub word: String,
    pub entry: Option<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub word: String,
    pub category: pb::SensitiveCategory,
    pub action: Action,
    /// Character range in the checked text.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub verdict: Verdict,
    pub masked: String,
    pub hits: Vec<Hit>,
    pub emotion: pb::Emotion,
    pub emotion_score: f32,
}

pub struct Moderator {
    words: AhoCorasick,
    /// Per pattern of `words`, in order.
    entries: Vec<Entry>,
    allowed: AhoCorasick,
    agitated: AhoCorasick,
    negative: AhoCorasick,
}

fn category(tags: &str) -> pb::SensitiveCategory {
    // Most severe first when a word has several tags.
    let tags: Vec<&str> = tags.split(',').map(str::trim).collect();
    if tags.contains(&"0") {
        pb::SensitiveCategory::Political
    } else if tags.contains(&"2") {
        pb::SensitiveCategory::Porn
    } else if tags.contains(&"1") || tags.contains(&"3") || tags.contains(&"4") {
        pb::SensitiveCategory::Illegal
    } else {
        pb::SensitiveCategory::Other
    }
}

pub(crate) fn automaton(words: &[String]) -> AhoCorasick {
    match AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostLongest).ascii_case_insensitive(true).build(words) {
        Ok(a) => a,
        // Only a pattern set too large for memory fails; an empty automaton then matches nothing.
        Err(_) => AhoCorasick::new(Vec::<String>::new()).unwrap_or_else(|_| unreachable_empty()),
    }
}

#[cold]
fn unreachable_empty() -> AhoCorasick {
    panic!("an empty Aho-Corasick automaton always builds")
}

impl Moderator {
    /// The lists shipped in `seed/moderation` and `seed/dict`.
    pub fn builtin() -> Self {
        Self::with_overrides(&[])
    }

    /// The shipped lists with supervisors' additions, changes and removals.
    pub fn with_overrides(overrides: &[Override]) -> Self {
        // Word → category; an insult stays an insult even where the tag list files it under
        // another category.
        let mut table: std::collections::BTreeMap<String, pb::SensitiveCategory> = std::collections::BTreeMap::new();
        for line in include_str!("../seed/moderation/sensitive_word_tags.txt").lines() {
            let Some((word, tags)) = line.trim().rsplit_once(' ') else { continue };
            let word = word.trim();
            let category = category(tags);
            // The tag list is a noisy crowd-sourced dump: two-character entries (姐姐, 证书) and
            // the 违法犯罪 tag (mostly spam phrases, but also 房产证, 批发) hit ordinary tax
            // questions, so only longer political and sexual entries are used.
            if word.chars().count() < 3
                || word.chars().any(char::is_control)
                || category == pb::SensitiveCategory::Illegal
            {
                continue;
            }
            table.insert(word.to_lowercase(), category);
        }
        for line in include_str!("../seed/moderation/insult_2020.txt").lines() {
            let w = line.trim();
            // Two-letter Latin abbreviations (sb, bt) hit ordinary words; keep Chinese ones.
            if w.chars().count() >= 2 && (!w.is_ascii() || w.len() >= 4) {
                table.insert(w.to_lowercase(), pb::SensitiveCategory::Abuse);
            }
        }
        for w in include_str!("../seed/dict/insults.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            table.insert(w.to_lowercase(), pb::SensitiveCategory::Abuse);
        }
        let mut table: std::collections::BTreeMap<String, Entry> = table
            .into_iter()
            .map(|(word, category)| {
                let e = Entry {
                    word: word.clone(),
                    category,
                    action: Action::ByCategory,
                    directions: ALL_DIRECTIONS,
                    updated_at: None,
                };
                (word, e)
            })
            .collect();
        for o in overrides {
            let key = o.word.trim().to_lowercase();
            match &o.entry {
                Some(e) => table.insert(key.clone(), Entry { word: key, ..e.clone() }),
                None => table.remove(&key),
            };
        }
        let (words, entries): (Vec<String>, Vec<Entry>) = table.into_iter().unzip();
        let mut allowed: Vec<String> = Vec::new();
        allowed
            .extend(include_str!("../seed/moderation/sensitive_word_allow.txt").lines().map(|l| l.trim().to_owned()));
        allowed.extend(
            include_str!("../seed/moderation/tax_domain_false_positives.tsv")
                .lines()
                .skip(1)
                .filter_map(|l| l.split('\t').next())
                .map(|w| w.trim().to_owned()),
        );
        allowed.extend(
            include_str!("../seed/dict/tax_userdict.txt")
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned),
        );
        allowed.extend(
            include_str!("../seed/dict/synonyms.txt")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(|l| l.split_whitespace())
                .filter(|w| !w.is_ascii())
                .map(str::to_owned),
        );
        allowed.extend(
            include_str!("../seed/dict/allow.txt")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        allowed.retain(|w| w.chars().count() >= 2);
        let mut agitated = Vec::new();
        let mut negative = Vec::new();
        for line in include_str!("../seed/dict/emotion.txt").lines() {
            match line.split_once('\t') {
                Some(("agitated", p)) if !p.trim().is_empty() => agitated.push(p.trim().to_owned()),
                Some(("negative", p)) if !p.trim().is_empty() => negative.push(p.trim().to_owned()),
                _ => {}
            }
        }
        Self {
            words: automaton(&words),
            entries,
            allowed: automaton(&allowed),
            agitated: automaton(&agitated),
            negative: automaton(&negative),
        }
    }

    fn emotion(&self, text: &str) -> (pb::Emotion, f32) {
        let agitated = self.agitated.find_iter(text).count();
        let negative = self.negative.find_iter(text).count();
        let bangs = text.chars().filter(|c| matches!(c, '!' | '！')).count();
        let score = (agitated as f32 * 0.6 + negative as f32 * 0.25 + if bangs >= 3 { 0.3 } else { 0.0 }).min(1.0);
        let emotion = if agitated > 0 || (negative > 0 && bangs >= 3) {
            pb::Emotion::Angry
        } else if negative > 0 {
            pb::Emotion::Anxious
        } else {
            pb::Emotion::Neutral
        };
        (emotion, score)
    }

    pub fn check(&self, text: &str, direction: Direction) -> Checked {
        // Byte ranges of allowed terms; hits inside them are ignored.
        let allowed: Vec<(usize, usize)> = self.allowed.find_iter(text).map(|m| (m.start(), m.end())).collect();
        let char_at = |byte: usize| text[..byte].chars().count();
        let mut hits = Vec::new();
        let mut masked = String::with_capacity(text.len());
        let mut last = 0;
        for m in self.words.find_iter(text) {
            let Some(entry) = self.entries.get(m.pattern().as_usize()) else { continue };
            // A shipped word that overlaps an allowed term is part of an ordinary word; a
            // supervisor's own word ("退税黑中介") means what it says.
            if entry.action == Action::ByCategory && allowed.iter().any(|&(s, e)| s < m.end() && m.start() < e) {
                continue;
            }
            if entry.directions & direction_bit(direction) == 0 {
                continue;
            }
            let word = &text[m.start()..m.end()];
            hits.push(Hit {
                word: word.to_owned(),
                category: entry.category,
                action: entry.action,
                start: char_at(m.start()),
                end: char_at(m.end()),
            });
            masked.push_str(&text[last..m.start()]);
            masked.extend(std::iter::repeat_n('＊', word.chars().count()));
            last = m.end();
        }
        masked.push_str(&text[last..]);
        let severe = hits.iter().any(|h| {
            h.action == Action::Block
                || (h.action == Action::ByCategory
                    && matches!(h.category, pb::SensitiveCategory::Political | pb::SensitiveCategory::Porn))
        });
        let verdict = match (direction, hits.is_empty(), severe) {
            (_, true, _) => Verdict::Allow,
            (Direction::AgentOutput, false, _) => Verdict::Block,
            (Direction::TaxpayerInput, false, true) => Verdict::Block,
            _ => Verdict::Mask,
        };
        let (emotion, emotion_score) =
            if direction == Direction::TaxpayerInput { self.emotion(text) } else { (pb::Emotion::Neutral, 0.0) };
        Checked { verdict, masked, hits, emotion, emotion_score }
    }
}

impl Moderator {
    /// Every word in use, alphabetical.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// What the taxpayer reads when a message is blocked.
pub const BLOCKED_NOTICE: &str = "您的消息中包含不适宜的内容，请修改后再发送。";
/// The bot's first words to an agitated taxpayer.
pub const SOOTHING: &str = "非常理解您的心情，给您带来不便十分抱歉，我们会尽力帮您解决。";

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Moderator {
        Moderator::builtin()
    }

    #[test]
    fn ordinary_tax_questions_are_never_blocked() {
        let m = m();
        for q in [
            "代开发票需要带什么材料",
            "以前的国税地税合并了吗",
            "逃税会有什么处罚",
            "股权转让要交个人所得税吗",
            "车船税和印花税怎么申报",
            "法人变更后电子税务局怎么办",
            "完税证明在哪里打印",
        ] {
            let c = m.check(q, Direction::TaxpayerInput);
            assert_eq!(c.verdict, Verdict::Allow, "{q}: {:?}", c.hits);
        }
    }

    #[test]
    fn no_held_out_tax_question_is_intercepted() {
        let m = m();
        let mut intercepted = Vec::new();
        for line in include_str!("../seed/eval/heldout.jsonl").lines().filter(|l| !l.trim().is_empty()) {
            let q: serde_json::Value = serde_json::from_str(line).expect("json");
            let q = q["query"].as_str().unwrap_or_default();
            let c = m.check(q, Direction::TaxpayerInput);
            if c.verdict != Verdict::Allow {
                intercepted.push((q.to_owned(), c.hits));
            }
        }
        assert!(intercepted.is_empty(), "{intercepted:?}");
    }

    #[test]
    fn insults_are_masked_and_agents_are_stopped() {
        let m = m();
        let c = m.check("你们这帮傻逼，怎么还不给我退税", Direction::TaxpayerInput);
        assert_eq!(c.verdict, Verdict::Mask, "{:?}", c.hits);
        assert!(c.masked.contains("＊＊") && !c.masked.contains("傻逼"), "{}", c.masked);
        assert_eq!(c.hits[0].category, pb::SensitiveCategory::Abuse);
        assert_eq!((c.hits[0].start, c.hits[0].end), (4, 6));
        assert_eq!(m.check("你是傻逼吗", Direction::AgentOutput).verdict, Verdict::Block);
    }

    #[test]
    fn supervisors_add_restrict_and_remove_words() {
        let added = Entry {
            word: "退税黑中介".into(),
            category: pb::SensitiveCategory::Advertising,
            action: Action::Block,
            directions: direction_bit(Direction::TaxpayerInput),
            updated_at: Some(chrono::Utc::now()),
        };
        let m = Moderator::with_overrides(&[
            Override { word: added.word.clone(), entry: Some(added) },
            Override { word: "傻逼".into(), entry: None },
        ]);
        // Their own word counts even though it contains the tax word 退税, and only where they said.
        assert_eq!(m.check("找个退税黑中介", Direction::TaxpayerInput).verdict, Verdict::Block);
        assert_eq!(m.check("谨防退税黑中介", Direction::BotOutput).verdict, Verdict::Allow);
        assert_eq!(m.check("你是傻逼吗", Direction::AgentOutput).verdict, Verdict::Allow, "removed");
        assert_eq!(Moderator::builtin().check("你是傻逼吗", Direction::AgentOutput).verdict, Verdict::Block);
        assert!(m.entries().windows(2).all(|w| w[0].word < w[1].word), "alphabetical");
    }

    #[test]
    fn emotion_from_the_lexicon() {
        let m = m();
        assert_eq!(m.check("我要投诉你们，什么破系统！！！", Direction::TaxpayerInput).emotion, pb::Emotion::Angry);
        assert_eq!(m.check("个税汇算怎么办理", Direction::TaxpayerInput).emotion, pb::Emotion::Neutral);
    }
}
