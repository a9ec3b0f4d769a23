//! What a fine-tuning run learns: a task (sequences or tokens, its labels)
//! and its examples, read from the built-in datasets (GLUE MRPC, SST-2,
//! CoNLL-2003) or the user's own file, as transformers' `run_glue` and
//! `run_ner` read them. Labels are checked here, once: every validation
//! label must be a training one, and a regression target a number.
//!
//! [`table`] reads TSV, CSV and JSON lines; [`conll`] reads `word … TAG`
//! files; [`metrics`] scores predictions as the examples' scripts do.

pub mod conll;
pub mod metrics;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};

use crate::classifier::{HeadKind, Labels};
use crate::error::{quoted, Error, Result};
use table::{Format, Table};

/// The shape of a task's examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskKind {
    /// A text, or a pair of texts, and one target (`BertForSequenceClassification`).
    Texts { pair: bool },
    /// Words with a tag each (`BertForTokenClassification`).
    Words,
}

/// A task: its name, the shape of its examples and what its labels are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    pub labels: Labels,
}

impl Task {
    /// The head that learns it.
    pub fn head(&self) -> HeadKind {
        match self.kind {
            TaskKind::Texts { .. } => HeadKind::Sequence,
            TaskKind::Words => HeadKind::Tokens,
        }
    }

    /// The label names (a regression has none).
    pub fn label_names(&self) -> &[String] {
        match &self.labels {
            Labels::Classes(names) => names,
            Labels::Regression => &[],
        }
    }
}

/// A text example's target.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    Class(u32),
    Value(f32),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextExample {
    pub text: String,
    pub pair: Option<String>,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordsExample {
    pub words: Vec<String>,
    /// A label id a word.
    pub tags: Vec<u32>,
}

/// One split's examples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Examples {
    Texts(Vec<TextExample>),
    Words(Vec<WordsExample>),
}

impl Examples {
    pub fn len(&self) -> usize {
        match self {
            Examples::Texts(e) => e.len(),
            Examples::Words(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` examples (`--max-train-samples`, `--max-eval-samples`).
    pub fn truncate(&mut self, n: usize) {
        match self {
            Examples::Texts(e) => e.truncate(n),
            Examples::Words(e) => e.truncate(n),
        }
    }

    /// How many examples (texts) or labelled words carry each class id.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        let mut count = |c: u32| {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        };
        match self {
            Examples::Texts(e) => {
                e.iter().filter_map(|x| if let Target::Class(c) = x.target { Some(c) } else { None }).for_each(&mut count)
            }
            Examples::Words(e) => e.iter().flat_map(|x| x.tags.iter().copied()).for_each(&mut count),
        }
        counts
    }
}

/// A task with its training and validation examples, and what was said
/// about them while reading (rows skipped, labels seen once).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    pub task: Task,
    pub train: Examples,
    pub eval: Examples,
    pub notes: Vec<String>,
}

/// Which columns of a table hold the text, the optional second text and the label.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Columns {
    pub text: Option<String>,
    pub pair: Option<String>,
    pub label: Option<String>,
}

/// The built-in tasks, as `--task` and the page name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Mrpc,
    Sst2,
    Conll2003,
}

impl Builtin {
    pub const ALL: [Builtin; 3] = [Builtin::Mrpc, Builtin::Sst2, Builtin::Conll2003];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Mrpc => "mrpc",
            Builtin::Sst2 => "sst2",
            Builtin::Conll2003 => "conll2003",
        }
    }

    pub fn parse(s: &str) -> Option<Builtin> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The training and validation files of its folder (the shared layout).
    pub fn files(self) -> [&'static str; 2] {
        match self {
            Builtin::Mrpc | Builtin::Sst2 => ["train.tsv", "dev.tsv"],
            Builtin::Conll2003 => ["train.txt", "dev.txt"],
        }
    }

    /// Its label names in the Hugging Face dataset's order (the ids a
    /// fine-tuned model's `id2label` gives them).
    fn labels(self) -> Vec<String> {
        let names: &[&str] = match self {
            Builtin::Mrpc => &["not_equivalent", "equivalent"],
            Builtin::Sst2 => &["negative", "positive"],
            Builtin::Conll2003 => &["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Reads its two files (text of `train` and of `eval`).
    pub fn read(self, train: &str, eval: &str) -> Result<TaskData> {
        let names = self.labels();
        match self {
            Builtin::Mrpc | Builtin::Sst2 => {
                let columns = match self {
                    Builtin::Mrpc => {
                        Columns { text: Some("#1 String".into()), pair: Some("#2 String".into()), label: Some("Quality".into()) }
                    }
                    _ => Columns { text: Some("sentence".into()), pair: None, label: Some("label".into()) },
                };
                // GLUE's labels are the class ids themselves
                let ids: Vec<String> = (0..names.len()).map(|i| i.to_string()).collect();
                let parse =
                    |text: &str, what: &str| Table::parse(text, Format::Tsv).map_err(|e| Error::Input(format!("{what}: {}", e.message())));
                read_texts(self.name(), (&parse(train, "training file")?, &parse(eval, "validation file")?), &columns, Some((&ids, names)))
            }
            Builtin::Conll2003 => read_words(self.name(), train, eval, Some(names)),
        }
    }
}

/// The user's own files: a table (`format`) with `columns` (found by their
/// usual names where not given), or CoNLL `word … TAG` lines when `words`.
pub fn read_files(name: &str, train: (&str, Option<Format>), eval: (&str, Option<Format>), columns: &Columns) -> Result<TaskData> {
    match (train.1, eval.1) {
        (Some(tf), Some(ef)) => {
            let parse =
                |text: &str, f: Format, what: &str| Table::parse(text, f).map_err(|e| Error::Input(format!("{what}: {}", e.message())));
            read_texts(name, (&parse(train.0, tf, "training file")?, &parse(eval.0, ef, "validation file")?), columns, None)
        }
        (None, None) => read_words(name, train.0, eval.0, None),
        _ => Err(Error::Input("give the training and validation data in the same kind of file (a table, or CoNLL lines)".into())),
    }
}

/// The usual names of each column, as GLUE's files and `datasets` name them.
const TEXT_COLUMNS: &[&str] = &["sentence", "sentence1", "text", "#1 String", "question", "premise"];
const PAIR_COLUMNS: &[&str] = &["sentence2", "#2 String", "hypothesis", "text_pair"];
const LABEL_COLUMNS: &[&str] = &["label", "labels", "Quality", "score", "target"];

/// A table's examples. `builtin`: the label strings as the file writes them, and their names.
fn read_texts(
    name: &str,
    (train, eval): (&Table, &Table),
    columns: &Columns,
    builtin: Option<(&[String], Vec<String>)>,
) -> Result<TaskData> {
    let pick = |given: &Option<String>, usual: &[&str], what: &str| -> Result<usize> {
        match given {
            Some(c) => train.column(c),
            None => train.find(usual).ok_or_else(|| {
                Error::Input(format!(
                    "which column is the {what}? The file has {}: choose one (--{what}-column)",
                    train.columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ")
                ))
            }),
        }
    };
    let text = pick(&columns.text, TEXT_COLUMNS, "text")?;
    let label = pick(&columns.label, LABEL_COLUMNS, "label")?;
    let pair = match &columns.pair {
        Some(c) => Some(train.column(c)?),
        None => train.find(PAIR_COLUMNS).filter(|&p| p != text && p != label),
    };
    let names: Vec<&str> = [Some(text), pair, Some(label)].into_iter().flatten().map(|i| train.columns[i].as_str()).collect();
    let eval_at = names
        .iter()
        .map(|n| eval.column(n).map_err(|e| Error::Input(format!("validation file: {}", e.message()))))
        .collect::<Result<Vec<_>>>()?;
    let (e_text, e_pair, e_label) = (eval_at[0], pair.map(|_| eval_at[1]), eval_at[eval_at.len() - 1]);

    let mut notes: Vec<String> = train.skipped.iter().map(|s| format!("training file: skipped {s}")).collect();
    notes.extend(eval.skipped.iter().map(|s| format!("validation file: skipped {s}")));
    // rows without text or label are skipped by line, said with the rest
    let rows = |t: &Table, (x, p, y): (usize, Option<usize>, usize), what: &str, notes: &mut Vec<String>| {
        let mut kept = Vec::new();
        for (line, row) in &t.rows {
            let missing = [Some(x), p, Some(y)].into_iter().flatten().find(|&c| row[c].is_empty());
            match missing {
                Some(c) => notes.push(format!("{what}: skipped line {line}: no {}", quoted(&t.columns[c]))),
                None => kept.push((*line, row[x].clone(), p.map(|c| row[c].clone()), row[y].clone())),
            }
        }
        kept
    };
    let train_rows = rows(train, (text, pair, label), "training file", &mut notes);
    let eval_rows = rows(eval, (e_text, e_pair, e_label), "validation file", &mut notes);
    if train_rows.is_empty() || eval_rows.is_empty() {
        let which = if train_rows.is_empty() { "training" } else { "validation" };
        let why = notes.iter().find(|n| n.starts_with(which)).map(|n| format!(" ({n})")).unwrap_or_default();
        return Err(Error::Input(format!("the {which} file has no usable rows{why}")));
    }

    let raw: Vec<&str> = train_rows.iter().map(|r| r.3.as_str()).collect();
    let (labels, id_of) = match builtin {
        Some((ids, names)) => (Labels::Classes(names), ids.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect()),
        None => infer_labels(&raw),
    };
    let target = |line: usize, s: &str, what: &str| -> Result<Target> {
        match &labels {
            Labels::Regression => s
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Target::Value)
                .ok_or_else(|| Error::Input(format!("{what} line {line}: label {} is not a number", quoted(s)))),
            Labels::Classes(names) => id_of.get(s).map(|&i| Target::Class(i)).ok_or_else(|| {
                let known = names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ");
                Error::Input(format!("{what} line {line}: label {} is not one of the training labels ({known})", quoted(s)))
            }),
        }
    };
    let examples = |rows: Vec<(usize, String, Option<String>, String)>, what: &str| -> Result<Vec<TextExample>> {
        rows.into_iter().map(|(line, text, pair, y)| Ok(TextExample { text, pair, target: target(line, &y, what)? })).collect()
    };
    let (train_ex, eval_ex) = (examples(train_rows, "training file")?, examples(eval_rows, "validation file")?);
    let task = Task { name: name.to_string(), kind: TaskKind::Texts { pair: pair.is_some() }, labels };
    let mut data = TaskData { task, train: Examples::Texts(train_ex), eval: Examples::Texts(eval_ex), notes };
    note_rare_labels(&mut data);
    Ok(data)
}

/// Labels from their strings, as `run_glue` does for a user's file: numbers
/// that are not all integers are a regression; anything else is classes,
/// sorted (integers as numbers).
fn infer_labels(raw: &[&str]) -> (Labels, BTreeMap<String, u32>) {
    let numbers: Option<Vec<f64>> = raw.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
    if numbers.as_ref().is_some_and(|v| v.iter().any(|x| x.fract() != 0.0)) {
        return (Labels::Regression, BTreeMap::new());
    }
    let mut names: Vec<String> = raw.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>().into_iter().collect();
    if numbers.is_some() {
        names.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
    }
    let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
    (Labels::Classes(names), ids)
}

/// CoNLL files' sentences; `names`: the built-in order of the tags, else sorted (as `run_ner`).
fn read_words(name: &str, train: &str, eval: &str, names: Option<Vec<String>>) -> Result<TaskData> {
    let read = |text: &str, what: &str| conll::parse(text).map_err(|e| Error::Input(format!("{what}: {}", e.message())));
    let (train_s, train_skipped) = read(train, "training file")?;
    let (eval_s, eval_skipped) = read(eval, "validation file")?;
    let names = names.unwrap_or_else(|| train_s.iter().flat_map(|s| s.tags.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect());
    let id_of: BTreeMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
    let convert = |sentences: Vec<conll::TaggedSentence>, what: &str| -> Result<Vec<WordsExample>> {
        sentences
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let tags = s
                    .tags
                    .iter()
                    .map(|t| {
                        id_of.get(t.as_str()).copied().ok_or_else(|| {
                            Error::Input(format!("{what} sentence {}: tag {} is not one of the training tags", i + 1, quoted(t)))
                        })
                    })
                    .collect::<Result<Vec<u32>>>()?;
                Ok(WordsExample { words: s.words, tags })
            })
            .collect()
    };
    let mut notes: Vec<String> = train_skipped.iter().map(|s| format!("training file: skipped {s}")).collect();
    notes.extend(eval_skipped.iter().map(|s| format!("validation file: skipped {s}")));
    let (train_ex, eval_ex) = (convert(train_s, "training file")?, convert(eval_s, "validation file")?);
    let task = Task { name: name.to_string(), kind: TaskKind::Words, labels: Labels::Classes(names) };
    let mut data = TaskData { task, train: Examples::Words(train_ex), eval: Examples::Words(eval_ex), notes };
    note_rare_labels(&mut data);
    Ok(data)
}

/// A class seen once (or never) in training is said: the model can hardly learn it.
fn note_rare_labels(data: &mut TaskData) {
    let names = data.task.label_names().to_vec();
    for (name, n) in names.iter().zip(data.train.class_counts(names.len())) {
        if n <= 1 {
            let times = if n == 0 { "never" } else { "once" };
            data.notes.push(format!("label {} appears {times} in the training data", quoted(name)));
        }
    }
}

/// What a split holds, for people to check before a run: counts per label,
/// the majority baseline (accuracy of always the most frequent class), and
/// its first examples in words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub examples: usize,
    /// (label, examples or labelled words) in id order; empty for a regression.
    pub counts: Vec<(String, usize)>,
    pub majority_accuracy: Option<f64>,
    pub first: Vec<String>,
}

impl TaskData {
    pub fn summary(&self, split: &Examples) -> Summary {
        let names = self.task.label_names();
        let counts: Vec<(String, usize)> = names.iter().cloned().zip(split.class_counts(names.len())).collect();
        let total: usize = counts.iter().map(|c| c.1).sum();
        let majority_accuracy = counts.iter().map(|c| c.1).max().filter(|_| total > 0).map(|m| m as f64 / total as f64);
        let label = |t: &Target| match t {
            Target::Class(c) => names.get(*c as usize).cloned().unwrap_or_default(),
            Target::Value(v) => format!("{v}"),
        };
        let first = match split {
            Examples::Texts(e) => e
                .iter()
                .take(3)
                .map(|x| match &x.pair {
                    Some(p) => format!("{} / {} → {}", x.text, p, label(&x.target)),
                    None => format!("{} → {}", x.text, label(&x.target)),
                })
                .collect(),
            Examples::Words(e) => e
                .iter()
                .take(3)
                .map(|x| x.words.iter().zip(&x.tags).map(|(w, &t)| format!("{w}/{}", names[t as usize])).collect::<Vec<_>>().join(" "))
                .collect(),
        };
        Summary { examples: split.len(), counts, majority_accuracy, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sst2_and_mrpc_read_glue_s_columns_with_the_hub_s_label_names() {
        let d = Builtin::Sst2.read("sentence\tlabel\ngood film \t1\nbad\t0\n", "sentence\tlabel\nok\t1\n").unwrap();
        assert_eq!(d.task.kind, TaskKind::Texts { pair: false });
        assert_eq!(d.task.labels, Labels::Classes(vec!["negative".into(), "positive".into()]));
        assert_eq!(
            d.train,
            Examples::Texts(vec![
                TextExample { text: "good film".into(), pair: None, target: Target::Class(1) },
                TextExample { text: "bad".into(), pair: None, target: Target::Class(0) },
            ])
        );
        let mrpc = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n0\t3\t4\tc \"d\te\n";
        let d = Builtin::Mrpc.read(mrpc, mrpc).unwrap();
        assert_eq!(d.task.kind, TaskKind::Texts { pair: true });
        let Examples::Texts(e) = &d.eval else { panic!() };
        assert_eq!(e[1], TextExample { text: "c \"d".into(), pair: Some("e".into()), target: Target::Class(0) });
        let e = Builtin::Sst2.read("sentence\tlabel\nx\t2\n", "sentence\tlabel\ny\t1\n").unwrap_err().to_string();
        assert!(e.contains("training file line 2: label \"2\" is not one of the training labels"), "{e}");
    }

    #[test]
    fn a_user_table_s_labels_are_classes_or_a_regression_and_its_columns_are_found_or_named() {
        let t = |s: &str, f| (s.to_string(), Some(f));
        let train = t("text,stars\nnice,5\nawful,1\nfine,3\nmeh,3\n", Format::Csv);
        let eval = t("text,stars\ngreat,5\n", Format::Csv);
        let e = read_files("mine", (&train.0, train.1), (&eval.0, eval.1), &Columns::default()).unwrap_err().to_string();
        assert!(e.contains("which column is the label?") && e.contains("\"stars\""), "{e}");
        let cols = Columns { label: Some("stars".into()), ..Columns::default() };
        let d = read_files("mine", (&train.0, train.1), (&eval.0, eval.1), &cols).unwrap();
        assert_eq!(d.task.labels, Labels::Classes(vec!["1".into(), "3".into(), "5".into()]));
        assert!(d.notes.iter().any(|n| n.contains("label \"1\" appears once")), "{:?}", d.notes);
        let s = d.summary(&d.train);
        assert_eq!(s.counts, [("1".to_string(), 1), ("3".into(), 2), ("5".into(), 1)]);
        assert_eq!(s.majority_accuracy, Some(0.5));

        let reg =
            "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 4.2}\n{\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": 1}\n";
        let d = read_files("sts", (reg, Some(Format::JsonLines)), (reg, Some(Format::JsonLines)), &Columns::default()).unwrap();
        assert_eq!((d.task.kind, d.task.labels), (TaskKind::Texts { pair: true }, Labels::Regression));
        let Examples::Texts(e) = &d.train else { panic!() };
        assert_eq!(e[0].target, Target::Value(4.2));

        let e =
            read_files("x", ("text\tlabel\na\tp\n", Some(Format::Tsv)), ("text\tlabel\nb\tq\n", Some(Format::Tsv)), &Columns::default())
                .unwrap_err()
                .to_string();
        assert!(e.contains("validation file line 2: label \"q\" is not one of the training labels (\"p\")"), "{e}");
        let e = read_files("x", ("text\tlabel\n\tp\n", Some(Format::Tsv)), ("text\tlabel\nb\tp\n", Some(Format::Tsv)), &Columns::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("the training file has no usable rows (training file: skipped line 2: no \"text\")"), "{e}");
    }

    #[test]
    fn conll_tags_take_the_hub_s_order_for_the_builtin_and_sorted_order_otherwise() {
        let train = "EU B-ORG\nrejects O\n\nPeter B-PER\n";
        let d = Builtin::Conll2003.read(train, "Bonn B-LOC\n").unwrap();
        assert_eq!(d.task.label_names()[3], "B-ORG");
        assert_eq!(
            d.train,
            Examples::Words(vec![
                WordsExample { words: vec!["EU".into(), "rejects".into()], tags: vec![3, 0] },
                WordsExample { words: vec!["Peter".into()], tags: vec![1] },
            ])
        );
        let mine = read_files("mine", (train, None), ("Peter B-PER\n", None), &Columns::default()).unwrap();
        assert_eq!(mine.task.label_names(), ["B-ORG", "B-PER", "O"]);
        let e = read_files("mine", (train, None), ("Bonn B-LOC\n", None), &Columns::default()).unwrap_err().to_string();
        assert!(e.contains("validation file sentence 1: tag \"B-LOC\" is not one of the training tags"), "{e}");
        assert_eq!(mine.summary(&mine.train).first[0], "EU/B-ORG rejects/O");
    }
}
