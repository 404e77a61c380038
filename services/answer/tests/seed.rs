//! The seed knowledge base drafts (`seed/kb/*.jsonl`) cover every catalog item, are
//! well-formed, cite only existing statute articles, and keep the held-out dev paraphrases
//! out of their similar questions.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seed")
}

/// `shared/` sits beside the repository (as in CI); a plain clone may not have it.
fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/kb");
    p.exists().then_some(p)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn normalized(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

fn kb() -> HashMap<String, Value> {
    let mut items = HashMap::new();
    for entry in std::fs::read_dir(seed().join("kb")).expect("kb dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for item in lines(&path) {
                let id = item["id"].as_str().expect("id").to_owned();
                assert!(items.insert(id.clone(), item).is_none(), "{id} appears twice");
            }
        }
    }
    items
}

#[test]
fn every_catalog_item_has_a_complete_draft() {
    let catalog = lines(&seed().join("standard-questions.jsonl"));
    let ids: HashSet<String> = catalog.iter().map(|c| c["id"].as_str().expect("id").to_owned()).collect();
    let questions: HashSet<String> = catalog.iter().map(|c| normalized(c["question"].as_str().expect("q"))).collect();
    let items = kb();
    let drafted: HashSet<String> = items.keys().cloned().collect();
    assert_eq!(drafted, ids, "drafts and catalog differ");
    for (id, item) in &items {
        assert!(!item["summary"].as_str().unwrap_or_default().trim().is_empty(), "{id}: summary");
        let blocks = item["blocks"].as_array().expect("blocks");
        assert!(!blocks.is_empty(), "{id}: blocks");
        for b in blocks {
            let kind = b["type"].as_str().expect("type");
            assert!(["paragraph", "steps", "guide", "note"].contains(&kind), "{id}: block type {kind}");
        }
        let similar = item["similar"].as_array().expect("similar");
        assert!(similar.len() >= 5, "{id}: {} similar questions", similar.len());
        for s in similar {
            let s = s.as_str().expect("similar");
            assert!(!questions.contains(&normalized(s)), "{id}: `{s}` repeats a standard question");
        }
        for r in item["related"].as_array().expect("related") {
            assert!(ids.contains(r.as_str().expect("related id")), "{id}: related {r}");
        }
    }
}

#[test]
fn citations_point_at_real_articles_and_dev_paraphrases_stay_out() {
    let Some(shared) = shared() else {
        eprintln!("shared/ not beside the repository: citation and paraphrase checks need it");
        return;
    };
    let articles: HashSet<String> = lines(&shared.join("lawrefbook-tax-statutes/articles.jsonl"))
        .iter()
        .map(|a| a["id"].as_str().expect("article id").to_owned())
        .collect();
    let dev: HashSet<String> = lines(&shared.join("catalog/dev-paraphrases.jsonl"))
        .iter()
        .map(|d| normalized(d["query"].as_str().expect("query")))
        .collect();
    let mut cited = 0;
    for (id, item) in kb() {
        for c in item["citations"].as_array().expect("citations") {
            if let Some(a) = c["article_id"].as_str() {
                assert!(articles.contains(a), "{id}: unknown article {a}");
                cited += 1;
            }
        }
        for s in item["similar"].as_array().expect("similar") {
            let s = s.as_str().expect("similar");
            assert!(!dev.contains(&normalized(s)), "{id}: `{s}` is a held-out dev paraphrase");
        }
    }
    assert!(cited > 100, "only {cited} citations resolved to statute articles");
}
