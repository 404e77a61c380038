//! An in-memory BM25 index over analysed question variants (standard question, similar
//! questions, keywords), three fields per variant: words, character bigrams and pinyin
//! bigrams. Scores aggregate to items by their best variant.
//!
//! The whole KB fits in memory (100k items × 6 variants is a few hundred MB at most), the
//! index is rebuilt on publish, and asking must stay in single-digit milliseconds; a
//! purpose-built postings map with a reusable score buffer does that without a
//! general-purpose engine's per-query overhead.

use std::cell::RefCell;
use std::collections::HashMap;

use super::analyzer::Analyzed;

const K1: f32 = 1.2;
/// Share of an item's second-best variant added to its best.
const SECOND_VARIANT: f32 = 0.25;
const B: f32 = 0.6;
/// Field weights: words, bigrams, pinyin.
pub const WEIGHTS: [f32; 3] = [1.0, 0.55, 0.3];

#[derive(Default)]
struct Field {
    terms: HashMap<String, u32>,
    /// While building: per term, (variant, term frequency).
    raw: Vec<Vec<(u32, u16)>>,
    /// Once finished: per term, (variant, BM25 impact without the field weight), highest
    /// impact first, so a query can stop early on a long list and lose only its weakest
    /// entries.
    postings: Vec<Vec<(u32, f32)>>,
    doc_len: Vec<u16>,
    avg_len: f32,
    idf: Vec<f32>,
}

impl Field {
    fn add(&mut self, doc: u32, tokens: &[String]) {
        let mut tf: HashMap<&str, u16> = HashMap::new();
        for t in tokens {
            *tf.entry(t.as_str()).or_default() += 1;
        }
        for (t, n) in tf {
            let id = match self.terms.get(t) {
                Some(id) => *id,
                None => {
                    let id = self.raw.len() as u32;
                    self.terms.insert(t.to_owned(), id);
                    self.raw.push(Vec::new());
                    id
                }
            };
            self.raw[id as usize].push((doc, n));
        }
        self.doc_len.push(tokens.len().min(u16::MAX as usize) as u16);
    }

    /// Turns term frequencies into impacts: BM25 times the variant's weight.
    fn finish(&mut self, weights: &[f32]) {
        let n = self.doc_len.len().max(1) as f32;
        self.avg_len = (self.doc_len.iter().map(|l| f32::from(*l)).sum::<f32>() / n).max(1.0);
        let raw = std::mem::take(&mut self.raw);
        self.idf = Vec::with_capacity(raw.len());
        self.postings = Vec::with_capacity(raw.len());
        for list in raw {
            let df = list.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            let mut impacts: Vec<(u32, f32)> = list
                .into_iter()
                .map(|(doc, tf)| {
                    let len = f32::from(self.doc_len[doc as usize]);
                    let tf = f32::from(tf);
                    let bm25 = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len));
                    (doc, bm25 * weights[doc as usize])
                })
                .collect();
            impacts.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            self.idf.push(idf);
            self.postings.push(impacts);
        }
    }

    fn idf_of(&self, term: &str) -> Option<(u32, f32)> {
        let id = *self.terms.get(term)?;
        Some((id, self.idf[id as usize]))
    }

    /// Whether a term is too common to score (only in large KBs).
    fn too_common(&self, id: u32) -> bool {
        let df = self.postings.get(id as usize).map_or(0, Vec::len);
        df > COMMON_FLOOR && df as f32 > COMMON_SHARE * self.doc_len.len() as f32
    }
}

pub struct Index {
    fields: [Field; 3],
    /// Most postings one query reads ([`POSTINGS_BUDGET`] unless changed).
    pub budget: usize,
    /// Per variant: its item, and the weight of its score (questions 1.0, answer content
    /// less; folded into the impacts when the index is finished).
    doc_item: Vec<u32>,
    doc_weight: Vec<f32>,
    /// Per item, the sorted ids of every word in any of its variants.
    item_words: Vec<Vec<u32>>,
}

/// Per-thread buffers reused across queries: variant scores, touched variants, per-item
/// best and second-best scores, touched items.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
    best: Vec<(f32, f32)>,
    items: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Terms in more variants than this share (and more than [`COMMON_FLOOR`]) carry almost no
/// information and would dominate the work: they are skipped, like stop words.
const COMMON_SHARE: f32 = 0.08;
const COMMON_FLOOR: usize = 20_000;

/// Most postings one query reads. A seed-sized KB never reaches it, so its results are
/// exact; in a very large KB the longest lists are cut at their weakest entries (impact
/// ordering, as in anytime ranking), which bounds the work per question.
pub const POSTINGS_BUDGET: usize = 12_000;

/// Distinct query terms with their counts.
fn query_terms(tokens: &[String]) -> Vec<(&str, f32)> {
    let mut out: Vec<(&str, f32)> = Vec::new();
    for t in tokens {
        match out.iter_mut().find(|(x, _)| *x == t.as_str()) {
            Some((_, n)) => *n += 1.0,
            None => out.push((t.as_str(), 1.0)),
        }
    }
    out
}

fn streams(a: &Analyzed) -> [&[String]; 3] {
    [&a.words, &a.bigrams, &a.pinyin]
}

impl Default for Index {
    fn default() -> Self {
        Self {
            fields: Default::default(),
            budget: POSTINGS_BUDGET,
            doc_item: Vec::new(),
            doc_weight: Vec::new(),
            item_words: Vec::new(),
        }
    }
}

impl Index {
    pub fn add(&mut self, item: u32, weight: f32, analyzed: &Analyzed) {
        let doc = self.doc_item.len() as u32;
        for (f, tokens) in self.fields.iter_mut().zip(streams(analyzed)) {
            f.add(doc, tokens);
        }
        self.doc_item.push(item);
        self.doc_weight.push(weight);
        if self.item_words.len() <= item as usize {
            self.item_words.resize(item as usize + 1, Vec::new());
        }
        if weight < 1.0 {
            // Coverage counts what the item's questions say, not every word of its answer.
            return;
        }
        let words = &mut self.item_words[item as usize];
        words.extend(analyzed.words.iter().filter_map(|w| self.fields[0].terms.get(w).copied()));
        words.sort_unstable();
        words.dedup();
    }

    pub fn finish(&mut self) {
        for f in &mut self.fields {
            f.finish(&self.doc_weight);
        }
    }

    /// Whether any variant uses this (canonical) word.
    pub fn has_word(&self, word: &str) -> bool {
        self.fields[0].terms.contains_key(word)
    }

    pub fn len(&self) -> usize {
        self.doc_item.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_item.is_empty()
    }

    /// The best a document could score for this query: every query term present once in a
    /// document of average length. Used to turn scores into a [0, 1] match quality.
    pub fn ideal(&self, q: &Analyzed) -> f32 {
        let mut total = 0.0;
        for ((f, tokens), w) in self.fields.iter().zip(streams(q)).zip(WEIGHTS) {
            for (t, _) in query_terms(tokens) {
                // Unknown terms count as rare: a query full of words the KB never uses is a
                // poor match, not a perfect one.
                let idf = match f.idf_of(t) {
                    Some((id, _)) if f.too_common(id) => continue,
                    Some((_, idf)) => idf,
                    None => ((f.doc_len.len() as f32) + 1.0).ln(),
                };
                total += w * idf;
            }
        }
        total
    }

    /// Share of the query's words (weighted by rarity) that the item uses anywhere. Words
    /// the KB never uses weigh as the rarest, so an off-topic question scores low even when
    /// a few of its words are common in the KB.
    pub fn coverage(&self, q: &Analyzed, item: u32) -> f32 {
        let f = &self.fields[0];
        let unknown = ((f.doc_len.len() as f32) + 1.0).ln();
        let words = self.item_words.get(item as usize).map(Vec::as_slice).unwrap_or_default();
        let (mut hit, mut all) = (0.0, 0.0);
        for (t, _) in query_terms(&q.words) {
            match f.idf_of(t) {
                Some((id, idf)) => {
                    all += idf;
                    if words.binary_search(&id).is_ok() {
                        hit += idf;
                    }
                }
                None => all += unknown,
            }
        }
        if all > 0.0 { hit / all } else { 0.0 }
    }

    /// Per item, the best variant score, for the top `k` items passing `keep`.
    pub fn search(&self, q: &Analyzed, k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let Scratch { scores, touched, best, items } = &mut *guard;
            if scores.len() < self.doc_item.len() {
                scores.resize(self.doc_item.len(), 0.0);
            }
            if best.len() < self.item_words.len() {
                best.resize(self.item_words.len(), (0.0, 0.0));
            }
            touched.clear();
            items.clear();
            // The query's scored lists, shortest first: rare terms are read whole, and what
            // is left of the budget is shared among the long lists, each read from its
            // highest impact down.
            let mut lists: Vec<(&[(u32, f32)], f32)> = Vec::new();
            for ((f, tokens), w) in self.fields.iter().zip(streams(q)).zip(WEIGHTS) {
                for (t, qtf) in query_terms(tokens) {
                    let Some((id, _)) = f.idf_of(t) else { continue };
                    if f.too_common(id) {
                        continue;
                    }
                    lists.push((&f.postings[id as usize], w * qtf.min(2.0).sqrt()));
                }
            }
            lists.sort_by_key(|(l, _)| l.len());
            let mut budget = self.budget;
            let n = lists.len();
            for (i, (list, weight)) in lists.into_iter().enumerate() {
                let take = list.len().min(budget / (n - i));
                budget -= take;
                for &(doc, impact) in &list[..take] {
                    let slot = &mut scores[doc as usize];
                    if *slot == 0.0 {
                        touched.push(doc);
                    }
                    *slot += weight * impact;
                }
            }
            // Per item: the best variant, plus a little of the second best (an item several
            // of whose phrasings match is likelier the one meant).
            for &doc in touched.iter() {
                let item = self.doc_item[doc as usize];
                let s = std::mem::take(&mut scores[doc as usize]);
                let e = &mut best[item as usize];
                if e.0 == 0.0 && e.1 == 0.0 {
                    items.push(item);
                }
                if s > e.0 {
                    *e = (s, e.0);
                } else if s > e.1 {
                    e.1 = s;
                }
            }
            let mut ranked: Vec<(u32, f32)> = Vec::with_capacity(items.len());
            for &item in items.iter() {
                let (a, b) = std::mem::take(&mut best[item as usize]);
                ranked.push((item, a + SECOND_VARIANT * b));
            }
            // Audience and validity are checked only for the best few hundred.
            let shortlist = (k * 8).max(64).min(ranked.len());
            if shortlist > 0 && shortlist < ranked.len() {
                ranked.select_nth_unstable_by(shortlist - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                ranked.truncate(shortlist);
            }
            ranked.retain(|(item, _)| keep(*item));
            let k = k.min(ranked.len());
            if k == 0 {
                return Vec::new();
            }
            ranked.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(k);
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked
        })
    }
}
