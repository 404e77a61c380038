//! Clarification trees (多轮互动, spec §1.4): a bare, ambiguous input such as 发票 or 申报 gets a
//! question back with options; an option leads to a narrower question or to an item.
//! Trees are edited by KB editors (`clarification_trees`, seeded from
//! `seed/clarifications.jsonl`). Node ids are the tree's id and the path of option indexes
//! (`tree:<uuid>/3/1`), so any replica can continue a conversation's clarification without
//! shared state.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::analyzer::compact;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub prompt: String,
    pub options: Vec<Opt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opt {
    pub label: String,
    /// A narrower question…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    /// …or the catalog id of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// One line of `seed/clarifications.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedTree {
    pub input: String,
    #[serde(flatten)]
    pub root: Node,
}

/// The seed trees.
pub fn seed() -> Vec<SeedTree> {
    include_str!("../seed/clarifications.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<SeedTree>(l) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "unreadable clarification tree skipped");
                None
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub id: Uuid,
    pub triggers: Vec<String>,
    pub root: Node,
}

/// Where a chosen option leads.
pub enum Next<'a> {
    Ask { node_id: String, node: &'a Node, depth: usize },
    Answer { catalog_id: &'a str },
}

pub struct Trees {
    trees: Vec<Tree>,
}

/// Framing around a bare topic word that does not change what is asked.
const PREFIXES: &[&str] = &["我想咨询", "我想问", "咨询一下", "咨询", "请问", "关于", "问下", "问一下"];
const SUFFIXES: &[&str] =
    &["方面的问题", "的问题", "问题", "相关", "的事", "方面", "咨询", "怎么办", "吗", "呢", "啊", "呀", "的"];

fn strip(text: &str) -> String {
    let mut t = compact(text);
    loop {
        let before = t.len();
        for p in PREFIXES {
            if let Some(rest) = t.strip_prefix(p) {
                t = rest.to_owned();
            }
        }
        for s in SUFFIXES {
            if let Some(rest) = t.strip_suffix(s) {
                t = rest.to_owned();
            }
        }
        if t.len() == before {
            return t;
        }
    }
}

impl Trees {
    /// Trees in use (enabled ones).
    pub fn new(trees: Vec<Tree>) -> Self {
        Self { trees }
    }

    /// The seed trees, with fresh ids.
    #[cfg(test)]
    pub fn builtin() -> Self {
        Self::new(
            seed().into_iter().map(|t| Tree { id: Uuid::now_v7(), triggers: vec![t.input], root: t.root }).collect(),
        )
    }

    /// The tree for a bare, ambiguous input, with its root node id.
    pub fn for_input(&self, question: &str) -> Option<(String, &Node)> {
        let t = strip(question);
        let tree = self.trees.iter().find(|tree| tree.triggers.iter().any(|g| strip(g) == t))?;
        Some((format!("tree:{}", tree.id), &tree.root))
    }

    /// Whether an input (a trigger) already starts one of these trees, other than `except`.
    pub fn trigger_taken(&self, trigger: &str, except: Option<Uuid>) -> bool {
        let t = strip(trigger);
        self.trees.iter().any(|tree| Some(tree.id) != except && tree.triggers.iter().any(|g| strip(g) == t))
    }

    fn node(&self, node_id: &str) -> Option<(&Node, usize)> {
        let mut parts = node_id.strip_prefix("tree:")?.split('/');
        let tree: Uuid = parts.next()?.parse().ok()?;
        let mut node = &self.trees.iter().find(|t| t.id == tree)?.root;
        let mut depth = 0;
        for p in parts {
            let o: usize = p.parse().ok()?;
            node = node.options.get(o)?.node.as_ref()?;
            depth += 1;
        }
        Some((node, depth))
    }

    pub fn is_tree_node(node_id: &str) -> bool {
        node_id.starts_with("tree:")
    }

    /// Follows option `option` (its index) of node `node_id`.
    pub fn choose(&self, node_id: &str, option: &str) -> Option<Next<'_>> {
        let (node, depth) = self.node(node_id)?;
        let index: usize = option.parse().ok()?;
        let opt = node.options.get(index)?;
        match (&opt.node, &opt.item) {
            (Some(next), _) => Some(Next::Ask { node_id: format!("{node_id}/{index}"), node: next, depth: depth + 1 }),
            (None, Some(item)) => Some(Next::Answer { catalog_id: item }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_loads_and_every_leaf_names_an_item() {
        let t = Trees::builtin();
        assert_eq!(t.trees.len(), 30);
        fn leaves(n: &Node) -> usize {
            n.options.iter().map(|o| o.node.as_ref().map(leaves).unwrap_or(usize::from(o.item.is_some()))).sum()
        }
        for tree in &t.trees {
            assert!(leaves(&tree.root) >= 2, "{:?}", tree.triggers);
        }
    }

    #[test]
    fn bare_inputs_match_with_their_framing() {
        let t = Trees::builtin();
        for q in ["发票", "发票？", "请问发票方面的问题", "咨询一下发票"] {
            assert!(t.for_input(q).is_some(), "{q}");
        }
        assert!(t.for_input("发票怎么红冲").is_none());
    }

    #[test]
    fn two_levels_walk_to_an_item() {
        let t = Trees::builtin();
        let (root, node) = t.for_input("发票").expect("tree");
        let first = node.options.iter().position(|o| o.node.is_some()).expect("a nested option");
        let Some(Next::Ask { node_id, node, depth }) = t.choose(&root, &first.to_string()) else { panic!("nested") };
        assert_eq!(depth, 1);
        let leaf = node.options.iter().position(|o| o.item.is_some()).expect("a leaf");
        assert!(matches!(t.choose(&node_id, &leaf.to_string()), Some(Next::Answer { .. })));
        assert!(t.choose(&node_id, "99").is_none());
        assert!(t.choose("tree:999", "0").is_none());
        assert!(t.choose(&format!("tree:{}", Uuid::now_v7()), "0").is_none());
        assert!(t.choose("nonsense", "0").is_none());
    }
}
