//! Scores as transformers' examples report them: accuracy (and F1 of label 1
//! for two classes, as GLUE's MRPC), a confusion matrix up to 20 classes;
//! Pearson and Spearman correlations for a regression (scipy's, ties given
//! their mean rank); entity-level precision, recall and F1 for tags, as
//! seqeval computes them in its default mode (conlleval's chunks: an `I-`
//! after `O` or another type starts an entity), with a row per entity type.
//! tests/fixtures/metrics.json holds sklearn's, scipy's and seqeval's
//! numbers on the same inputs.

use std::collections::BTreeMap;

/// The largest confusion matrix kept (a 1 000-class task would make a million cells).
pub const MAX_CONFUSION_CLASSES: usize = 20;

/// Accuracy, F1 of class 1 when there are two classes, and the confusion
/// matrix (`[true][predicted]`) for up to [`MAX_CONFUSION_CLASSES`].
pub fn classification(predicted: &[u32], gold: &[u32], classes: usize) -> (f64, Option<f64>, Option<Vec<Vec<usize>>>) {
    let n = gold.len().max(1) as f64;
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count();
    let f1 = (classes == 2).then(|| {
        let count = |p: u32, g: u32| predicted.iter().zip(gold).filter(|&(&a, &b)| a == p && b == g).count() as f64;
        let (tp, fp, fn_) = (count(1, 1), count(1, 0), count(0, 1));
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    });
    let confusion = (classes <= MAX_CONFUSION_CLASSES).then(|| {
        let mut m = vec![vec![0; classes]; classes];
        for (&p, &g) in predicted.iter().zip(gold) {
            if let Some(cell) = m.get_mut(g as usize).and_then(|r| r.get_mut(p as usize)) {
                *cell += 1;
            }
        }
        m
    });
    (correct as f64 / n, f1, confusion)
}

/// Pearson's correlation (NaN when either side is constant, as scipy's).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let vy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
    cov / (vx * vy).sqrt()
}

/// Spearman's correlation: Pearson's of the ranks, ties given their mean rank.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        // positions i..=j share the mean of ranks i+1..=j+1
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// An entity: its type and its first and last word.
type Entity = (String, usize, usize);

/// The entities of a tag sequence, as seqeval's `get_entities` finds them.
pub fn entities(tags: &[&str]) -> Vec<Entity> {
    let split = |t: &str| -> (char, String) {
        let prefix = t.chars().next().unwrap_or('O');
        let rest = t.get(prefix.len_utf8()..).unwrap_or("");
        let kind = rest.split_once('-').map_or(rest, |(_, k)| k);
        (prefix, if kind.is_empty() { "_".to_string() } else { kind.to_string() })
    };
    let mut found = Vec::new();
    let (mut prev_tag, mut prev_type, mut begin) = ('O', String::new(), 0);
    for (i, t) in tags.iter().copied().chain(std::iter::once("O")).enumerate() {
        let (tag, kind) = split(t);
        if end_of_chunk(prev_tag, tag, &prev_type, &kind) {
            found.push((prev_type.clone(), begin, i - 1));
        }
        if start_of_chunk(prev_tag, tag, &prev_type, &kind) {
            begin = i;
        }
        (prev_tag, prev_type) = (tag, kind);
    }
    found
}

fn end_of_chunk(prev: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && prev_type != kind)
}

fn start_of_chunk(prev: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// One entity type's scores (or the total's).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntityScores {
    pub kind: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities of this type.
    pub support: usize,
}

/// seqeval's micro-averaged precision, recall and F1 over sentences of
/// (predicted, gold) tags, the word accuracy, and a row per entity type.
pub fn entity_scores(sentences: &[(Vec<&str>, Vec<&str>)]) -> (EntityScores, f64, Vec<EntityScores>) {
    let mut per: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new(); // (correct, predicted, gold)
    let (mut words, mut right) = (0, 0);
    for (pred, gold) in sentences {
        words += gold.len();
        right += pred.iter().zip(gold).filter(|(p, g)| p == g).count();
        let (p, g) = (entities(pred), entities(gold));
        for e in &p {
            let s = per.entry(e.0.clone()).or_default();
            s.1 += 1;
            if g.contains(e) {
                s.0 += 1;
            }
        }
        for e in &g {
            per.entry(e.0.clone()).or_default().2 += 1;
        }
    }
    let score = |kind: String, (c, p, g): (usize, usize, usize)| {
        let precision = if p == 0 { 0.0 } else { c as f64 / p as f64 };
        let recall = if g == 0 { 0.0 } else { c as f64 / g as f64 };
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        EntityScores { kind, precision, recall, f1, support: g }
    };
    let total = per.values().fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let rows = per.into_iter().map(|(k, v)| score(k, v)).collect();
    (score("all".into(), total), right as f64 / words.max(1) as f64, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_follow_conlleval_s_chunks() {
        let tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"];
        assert_eq!(
            entities(&tags),
            [("PER".into(), 0, 1), ("LOC".into(), 3, 4), ("LOC".into(), 5, 5), ("ORG".into(), 6, 6), ("MISC".into(), 8, 8)]
        );
        let (all, acc, rows) = entity_scores(&[(vec!["B-PER", "O", "B-LOC"], vec!["B-PER", "O", "B-ORG"])]);
        assert_eq!((all.precision, all.recall, acc), (0.5, 0.5, 2.0 / 3.0));
        assert_eq!(rows.iter().map(|r| (r.kind.as_str(), r.support)).collect::<Vec<_>>(), [("LOC", 0), ("ORG", 1), ("PER", 1)]);
    }

    #[test]
    fn ranks_share_ties_and_correlations_are_one_for_a_monotone_map() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), [2.5, 4.0, 2.5, 1.0]);
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&x, &[1.0, 4.0, 9.0, 16.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        let (acc, f1, m) = classification(&[1, 0, 1, 1], &[1, 1, 0, 1], 2);
        assert_eq!((acc, f1), (0.5, Some(2.0 / 3.0)));
        assert_eq!(m.unwrap(), [[0, 1], [1, 2]]);
        assert!(classification(&[0], &[0], 21).2.is_none());
    }
}
