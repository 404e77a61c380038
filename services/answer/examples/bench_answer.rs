//! Answer quality and engine speed.
//!
//! `cargo run --release -p zhengna-answer --example bench_answer` evaluates the dev
//! paraphrases (`../shared/data/kb/catalog/dev-paraphrases.jsonl`, or
//! `ZHENGNA_DEV_PARAPHRASES`), our held-out paraphrases and the out-of-scope set
//! (`seed/eval`), then measures the engine on the seed KB and a synthetic 100k-item KB.
//! With file arguments it evaluates those files only; each line is
//! `{"id": "<catalog id>" | null, "query": "..."}` and the last line printed is
//! `top1=… top3=… confident_wrong=…`.
//!
//! top1 / top3: share of in-scope queries whose item ranks first / in the first three.
//! confident_wrong: share of all queries answered outright with a wrong item (any answer
//! to an out-of-scope query is wrong).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use serde::Deserialize;
use zhengna_answer::engine::{Context, Decision, Dicts, Engine, EngineItem};

#[derive(Deserialize)]
struct Query {
    id: Option<String>,
    query: String,
}

#[derive(Deserialize)]
struct Catalog {
    id: String,
    topic: String,
    question: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    facts: Vec<String>,
}

#[derive(Deserialize)]
struct Draft {
    id: String,
    similar: Vec<String>,
    #[serde(default)]
    summary: String,
}

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seed")
}

fn lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

fn seed_items() -> Vec<EngineItem> {
    let catalog: Vec<Catalog> = lines(&seed().join("standard-questions.jsonl"));
    let mut drafts = std::collections::HashMap::new();
    let mut files: Vec<_> =
        std::fs::read_dir(seed().join("kb")).expect("seed/kb").flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")) {
        for d in lines::<Draft>(f) {
            drafts.insert(d.id, (d.similar, d.summary));
        }
    }
    catalog
        .into_iter()
        .map(|c| {
            let (similar, summary) = drafts.remove(&c.id).unwrap_or_default();
            (c, similar, summary)
        })
        .map(|(c, similar, summary)| EngineItem {
            key: c.id.clone(),
            similar,
            content: c.facts.into_iter().chain(std::iter::once(summary).filter(|s| !s.is_empty())).collect(),
            catalog_id: c.id,
            question: c.question,
            keywords: c.keywords,
            topic: c.topic,
            ..Default::default()
        })
        .collect()
}

struct Score {
    in_scope: usize,
    top1: usize,
    top3: usize,
    total: usize,
    confident_wrong: usize,
    answered: usize,
}

fn evaluate(engine: &Engine, queries: &[Query], ctx: &Context<'_>, show_misses: bool) -> Score {
    let mut s = Score { in_scope: 0, top1: 0, top3: 0, total: 0, confident_wrong: 0, answered: 0 };
    for q in queries {
        s.total += 1;
        let ranked = engine.rank(&q.query, ctx, 3);
        let keys: Vec<&str> = ranked.iter().map(|c| engine.items()[c.item].catalog_id.as_str()).collect();
        let decision = engine.decide(&q.query, ctx);
        let answered = match &decision {
            Decision::Answer { best, .. } => Some(engine.items()[best.item].catalog_id.as_str()),
            _ => None,
        };
        if answered.is_some() {
            s.answered += 1;
        }
        if std::env::var_os("SHOW_DECISIONS").is_some() {
            eprintln!("{} => {:?} {keys:?} ({:.2})", q.query, std::mem::discriminant(&decision), decision.confidence());
        }
        match &q.id {
            Some(id) => {
                s.in_scope += 1;
                if keys.first() == Some(&id.as_str()) {
                    s.top1 += 1;
                } else if show_misses {
                    eprintln!("miss {id} <- {} => {keys:?} ({:.2})", q.query, decision.confidence());
                }
                if keys.contains(&id.as_str()) {
                    s.top3 += 1;
                }
                if answered.is_some_and(|a| a != id) {
                    s.confident_wrong += 1;
                }
            }
            None => {
                if let Some(a) = answered {
                    s.confident_wrong += 1;
                    if show_misses {
                        eprintln!("answered out-of-scope {} => {a} ({:.2})", q.query, decision.confidence());
                    }
                }
            }
        }
    }
    s
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn report(name: &str, s: &Score) {
    println!(
        "{name}: queries={} in_scope={} top1={:.3} top3={:.3} answered={:.3} confident_wrong={:.3}",
        s.total,
        s.in_scope,
        ratio(s.top1, s.in_scope),
        ratio(s.top3, s.in_scope),
        ratio(s.answered, s.total),
        ratio(s.confident_wrong, s.total)
    );
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<f64>().ok()))
        .map(|pages| pages * 4096.0 / 1_048_576.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Speed of `decide` over `queries` on one thread.
fn speed(name: &str, engine: &Engine, queries: &[String], ctx: &Context<'_>) {
    let mut lat = Vec::with_capacity(queries.len());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        std::hint::black_box(engine.decide(q, ctx));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{name}: asks={} asks_per_s_one_core={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        queries.len(),
        queries.len() as f64 / total,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}

/// The postings budget in use: `ZHENGNA_POSTINGS_BUDGET` or the engine's default.
fn budget() -> usize {
    std::env::var("ZHENGNA_POSTINGS_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(zhengna_answer::engine::index::POSTINGS_BUDGET)
}

/// How often the postings budget changes the top three against an exact search.
fn budget_agreement(name: &str, engine: &mut Engine, queries: &[String], ctx: &Context<'_>) {
    let top3 = |e: &Engine| -> Vec<Vec<usize>> {
        queries.iter().map(|q| e.rank(q, ctx, 3).iter().map(|c| c.item).collect()).collect()
    };
    let budgeted = top3(engine);
    engine.set_postings_budget(usize::MAX);
    let exact = top3(engine);
    engine.set_postings_budget(budget());
    let same_top1 = budgeted.iter().zip(&exact).filter(|(a, b)| a.first() == b.first()).count();
    // Synthetic items are near-copies of one catalog question; finding another copy of the
    // same question is as good an answer.
    let base = |i: &usize| engine.items()[*i].catalog_id.split('/').next().unwrap_or_default().to_owned();
    let same_question = budgeted.iter().zip(&exact).filter(|(a, b)| a.first().map(base) == b.first().map(base)).count();
    println!(
        "{name}: postings budget {} vs exact search: same top1 item {same_top1}/{n}, same top1 question {same_question}/{n}",
        budget(),
        n = queries.len()
    );
}

/// Speed of autocomplete over the first 2-4 characters of each query.
fn typeahead_speed(name: &str, engine: &Engine, queries: &[String], ctx: &Context<'_>) {
    let prefixes: Vec<String> =
        queries.iter().enumerate().map(|(i, q)| q.chars().take(2 + i % 3).collect::<String>()).collect();
    let mut lat = Vec::with_capacity(prefixes.len());
    let start = Instant::now();
    for p in &prefixes {
        let t = Instant::now();
        std::hint::black_box(engine.autocomplete(p, ctx, 10));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{name} autocomplete: calls={} per_s_one_core={:.0} p50_ms={:.3} p99_ms={:.3}",
        prefixes.len(),
        prefixes.len() as f64 / total,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// A synthetic KB: catalog questions recombined with other items' keywords and a variant
/// number, so vocabulary and posting lengths grow like a real provincial KB's would.
fn synthetic(base: &[EngineItem], n: usize) -> Vec<EngineItem> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    (0..n)
        .map(|i| {
            let a = &base[(next() % base.len() as u64) as usize];
            let b = &base[(next() % base.len() as u64) as usize];
            let kw = b.keywords.first().cloned().unwrap_or_default();
            EngineItem {
                key: format!("SYN-{i}"),
                // The catalog item it was made from, to compare searches by what they found.
                catalog_id: format!("{}/SYN-{i}", a.catalog_id),
                question: format!("{}（{kw}第{}类）", a.question, i % 997),
                similar: a.similar.iter().take(5).map(|s| format!("{s}{kw}")).collect(),
                keywords: a.keywords.clone(),
                topic: a.topic.clone(),
                ..Default::default()
            }
        })
        .collect()
}

fn main() {
    let files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
    let ctx = Context { today, tags: &[] };
    let t = Instant::now();
    let mut engine = Engine::build(seed_items(), &Dicts::builtin());
    engine.set_postings_budget(budget());
    // `ZHENGNA_THRESHOLDS=answer,margin,sure,suggest` tries other thresholds.
    if let Ok(v) = std::env::var("ZHENGNA_THRESHOLDS") {
        let v: Vec<f32> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if let [answer, margin, sure, suggest] = v[..] {
            engine.thresholds = zhengna_answer::engine::Thresholds { answer, margin, sure, suggest };
        }
    }
    eprintln!("seed KB: {} items, {} variants, built in {:.2?}", engine.items().len(), engine.variants(), t.elapsed());
    let show = std::env::var_os("SHOW_MISSES").is_some();

    if !files.is_empty() {
        let mut all = Vec::new();
        for f in &files {
            let q: Vec<Query> = lines(f);
            report(&f.display().to_string(), &evaluate(&engine, &q, &ctx, show));
            all.extend(q);
        }
        let s = evaluate(&engine, &all, &ctx, false);
        println!(
            "top1={:.3} top3={:.3} confident_wrong={:.3}",
            ratio(s.top1, s.in_scope),
            ratio(s.top3, s.in_scope),
            ratio(s.confident_wrong, s.total)
        );
        return;
    }

    let dev = std::env::var_os("ZHENGNA_DEV_PARAPHRASES").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/kb/catalog/dev-paraphrases.jsonl")
    });
    let heldout: Vec<Query> = lines(&seed().join("eval/heldout.jsonl"));
    let oos: Vec<Query> = lines(&seed().join("eval/out_of_scope.jsonl"));
    let dev_q: Vec<Query> = if dev.exists() { lines(&dev) } else { Vec::new() };
    if dev_q.is_empty() {
        eprintln!("no dev paraphrases at {} (set ZHENGNA_DEV_PARAPHRASES)", dev.display());
    } else {
        report("dev-paraphrases", &evaluate(&engine, &dev_q, &ctx, show));
    }
    report("heldout", &evaluate(&engine, &heldout, &ctx, show));
    report("out-of-scope", &evaluate(&engine, &oos, &ctx, show));

    // Speed: the seed KB, then 100k synthetic items.
    let asks: Vec<String> =
        dev_q.iter().chain(&heldout).chain(&oos).map(|q| q.query.clone()).cycle().take(20_000).collect();
    speed("seed KB", &engine, &asks, &ctx);
    budget_agreement("seed KB", &mut engine, &asks[..asks.len().min(dev_q.len() + heldout.len() + oos.len())], &ctx);
    typeahead_speed("seed KB", &engine, &asks[..5000], &ctx);
    let base = seed_items();
    let before = rss_mb();
    let t = Instant::now();
    let mut big = Engine::build(synthetic(&base, 100_000), &Dicts::builtin());
    big.set_postings_budget(budget());
    let build = t.elapsed();
    println!(
        "100k KB: items={} variants={} build_s={:.1} index_rss_mb={:.0}",
        big.items().len(),
        big.variants(),
        build.as_secs_f64(),
        rss_mb() - before
    );
    speed("100k KB", &big, &asks[..5000], &ctx);
    budget_agreement("100k KB", &mut big, &asks[..1000], &ctx);
    typeahead_speed("100k KB", &big, &asks[..2000], &ctx);
    let s = evaluate(&engine, &dev_q.into_iter().chain(heldout).chain(oos).collect::<Vec<_>>(), &ctx, false);
    println!(
        "top1={:.3} top3={:.3} confident_wrong={:.3}",
        ratio(s.top1, s.in_scope),
        ratio(s.top3, s.in_scope),
        ratio(s.confident_wrong, s.total)
    );
}
