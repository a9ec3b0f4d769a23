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

use std::collections::BTreeSet;

use crate::classifier::{HeadKind, Labels};
use crate::error::{quoted, Error, Result};
use crate::tokenize::Input;
use table::{Format, Table};

/// The largest data file read (TSV, CSV, JSON lines, CoNLL): GLUE's largest split is 10 MB.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

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
        self.labels.names()
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

impl TextExample {
    /// What the tokenizer reads.
    pub fn input(&self) -> Input {
        match &self.pair {
            Some(p) => Input::Pair(self.text.clone(), p.clone()),
            None => Input::Single(self.text.clone()),
        }
    }
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

    /// What the tokenizer reads of each example (a sentence's words joined by spaces).
    pub fn inputs(&self) -> Vec<Input> {
        match self {
            Examples::Texts(e) => e.iter().map(TextExample::input).collect(),
            Examples::Words(e) => e.iter().map(|x| Input::Single(x.words.join(" "))).collect(),
        }
    }

    /// Each text example's class id (a regression's have none).
    pub fn class_ids(&self) -> Vec<u32> {
        match self {
            Examples::Texts(e) => e.iter().filter_map(|x| if let Target::Class(c) = x.target { Some(c) } else { None }).collect(),
            Examples::Words(e) => e.iter().flat_map(|x| x.tags.iter().copied()).collect(),
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
    /// fine-tuned model's `id2label` gives them; GLUE's files write the ids).
    pub fn labels(self) -> Labels {
        let names: &[&str] = match self {
            Builtin::Mrpc => &["not_equivalent", "equivalent"],
            Builtin::Sst2 => &["negative", "positive"],
            Builtin::Conll2003 => &["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
        };
        Labels::Classes(names.iter().map(|s| s.to_string()).collect())
    }

    /// How its files are read.
    pub fn source(self) -> Source {
        match self {
            Builtin::Mrpc => Source::Table(
                Format::Tsv,
                Columns { text: Some("#1 String".into()), pair: Some("#2 String".into()), label: Some("Quality".into()) },
            ),
            Builtin::Sst2 => Source::Table(Format::Tsv, Columns { text: Some("sentence".into()), pair: None, label: Some("label".into()) }),
            Builtin::Conll2003 => Source::Conll,
        }
    }
}

/// How a task's files are read: a table with its columns, or CoNLL lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Table(Format, Columns),
    Conll,
}

/// Reads a task's training and validation text. `labels`: the task's labels
/// when they are known (a built-in task's); otherwise they come from the
/// training data, as `run_glue` and `run_ner` make them.
pub fn read(
    name: &str,
    (train_src, train): (&Source, &str),
    (eval_src, eval): (&Source, &str),
    labels: Option<Labels>,
) -> Result<TaskData> {
    let train_rows = rows_of(train_src, train, "training file")?;
    let eval_rows = rows_of(eval_src, eval, "validation file")?;
    let mut notes = train_rows.notes.clone();
    notes.extend(eval_rows.notes.iter().cloned());
    let labels = match labels {
        Some(l) => l,
        None => infer_labels(&train_rows),
    };
    let train = examples(train_rows, &labels, "training file")?;
    let eval = examples(eval_rows, &labels, "validation file")?;
    let kind = match &train {
        Examples::Texts(e) => TaskKind::Texts { pair: e.iter().any(|x| x.pair.is_some()) },
        Examples::Words(_) => TaskKind::Words,
    };
    let mut data = TaskData { task: Task { name: name.to_string(), kind, labels }, train, eval, notes };
    note_rare_labels(&mut data);
    Ok(data)
}

/// One file of a task whose labels are known (`--eval-only` on a fine-tuned model).
pub fn read_split(src: &Source, text: &str, labels: &Labels, what: &str) -> Result<(Examples, Vec<String>)> {
    let rows = rows_of(src, text, what)?;
    let notes = rows.notes.clone();
    Ok((examples(rows, labels, what)?, notes))
}

/// One labelled file on its own, its labels inferred from it as from a training file.
pub fn read_file(src: &Source, text: &str, what: &str) -> Result<(Examples, Labels, Vec<String>)> {
    let rows = rows_of(src, text, what)?;
    let notes = rows.notes.clone();
    let labels = infer_labels(&rows);
    Ok((examples(rows, &labels, what)?, labels, notes))
}

/// A file's examples before their labels are looked up: (line or sentence, text, pair, label) or (words, tags).
struct Rows {
    texts: Vec<(usize, String, Option<String>, String)>,
    words: Option<Vec<conll::TaggedSentence>>,
    notes: Vec<String>,
}

/// The usual names of each column, as GLUE's files and `datasets` name them.
const TEXT_COLUMNS: &[&str] = &["sentence", "sentence1", "text", "#1 String", "question", "premise"];
const PAIR_COLUMNS: &[&str] = &["sentence2", "#2 String", "hypothesis", "text_pair"];
const LABEL_COLUMNS: &[&str] = &["label", "labels", "Quality", "score", "target"];

fn rows_of(src: &Source, text: &str, what: &str) -> Result<Rows> {
    let prefixed = |e: Error| Error::Input(format!("{what}: {}", e.message()));
    let (format, columns) = match src {
        Source::Conll => {
            let (sentences, skipped) = conll::parse(text).map_err(prefixed)?;
            let notes = skipped.iter().map(|s| format!("{what}: skipped {s}")).collect();
            return Ok(Rows { texts: Vec::new(), words: Some(sentences), notes });
        }
        Source::Table(f, c) => (*f, c),
    };
    let table = Table::parse(text, format).map_err(prefixed)?;
    let pick = |given: &Option<String>, usual: &[&str], role: &str| -> Result<usize> {
        match given {
            Some(c) => table.column(c).map_err(prefixed),
            None => table.find(usual).ok_or_else(|| {
                Error::Input(format!(
                    "{what}: which column is the {role}? It has {}: choose one (--{role}-column)",
                    table.columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ")
                ))
            }),
        }
    };
    let x = pick(&columns.text, TEXT_COLUMNS, "text")?;
    let y = pick(&columns.label, LABEL_COLUMNS, "label")?;
    let p = match &columns.pair {
        Some(c) => Some(table.column(c).map_err(prefixed)?),
        None => table.find(PAIR_COLUMNS).filter(|&p| p != x && p != y),
    };
    let mut notes: Vec<String> = table.skipped.iter().map(|s| format!("{what}: skipped {s}")).collect();
    let mut texts = Vec::new();
    for (line, row) in &table.rows {
        // a row without its text or label is skipped by line, said with the rest
        match [Some(x), p, Some(y)].into_iter().flatten().find(|&c| row[c].is_empty()) {
            Some(c) => notes.push(format!("{what}: skipped line {line}: no {}", quoted(&table.columns[c]))),
            None => texts.push((*line, row[x].clone(), p.map(|c| row[c].clone()), row[y].clone())),
        }
    }
    if texts.is_empty() {
        let why = notes.first().map(|n| format!(" ({n})")).unwrap_or_default();
        return Err(Error::Input(format!("the {what} has no usable rows{why}")));
    }
    Ok(Rows { texts, words: None, notes })
}

/// Labels from the training data, as `run_glue` does for a user's table:
/// numbers that are not all integers are a regression; anything else is
/// classes, sorted (integers as numbers). Tags are sorted, as `run_ner` does.
fn infer_labels(rows: &Rows) -> Labels {
    if let Some(sentences) = &rows.words {
        return Labels::Classes(sentences.iter().flat_map(|s| s.tags.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect());
    }
    let raw: Vec<&str> = rows.texts.iter().map(|r| r.3.as_str()).collect();
    let numbers: Option<Vec<f64>> = raw.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
    if numbers.as_ref().is_some_and(|v| v.iter().any(|x| x.fract() != 0.0)) {
        return Labels::Regression;
    }
    let mut names: Vec<String> = raw.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>().into_iter().collect();
    if numbers.is_some() {
        names.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
    }
    Labels::Classes(names)
}

/// A label's id: its name, or (as GLUE's files and `LABEL_n` names write
/// them) its index, where no name is itself a number (then "0" could mean either).
fn class_id(names: &[String], s: &str) -> Option<u32> {
    let numeric_names = names.iter().any(|n| n.parse::<f64>().is_ok());
    let index = || s.parse::<usize>().ok().filter(|&i| i < names.len() && !numeric_names);
    names.iter().position(|n| n == s).or_else(index).map(|i| i as u32)
}

fn examples(rows: Rows, labels: &Labels, what: &str) -> Result<Examples> {
    let known = |names: &[String]| names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ");
    if let Some(sentences) = rows.words {
        let Labels::Classes(names) = labels else {
            return Err(Error::Input("a token task's labels are tags, not numbers".into()));
        };
        let convert = |(i, s): (usize, conll::TaggedSentence)| -> Result<WordsExample> {
            let tags = s
                .tags
                .iter()
                .map(|t| {
                    class_id(names, t).ok_or_else(|| {
                        Error::Input(format!(
                            "{what} sentence {}: tag {} is not one of the task's tags ({})",
                            i + 1,
                            quoted(t),
                            known(names)
                        ))
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            Ok(WordsExample { words: s.words, tags })
        };
        return Ok(Examples::Words(sentences.into_iter().enumerate().map(convert).collect::<Result<_>>()?));
    }
    let target = |line: usize, s: &str| -> Result<Target> {
        match labels {
            Labels::Regression => s
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Target::Value)
                .ok_or_else(|| Error::Input(format!("{what} line {line}: label {} is not a number", quoted(s)))),
            Labels::Classes(names) => class_id(names, s).map(Target::Class).ok_or_else(|| {
                Error::Input(format!("{what} line {line}: label {} is not one of the task's labels ({})", quoted(s), known(names)))
            }),
        }
    };
    let texts = rows.texts.into_iter().map(|(line, text, pair, y)| Ok(TextExample { text, pair, target: target(line, &y)? }));
    Ok(Examples::Texts(texts.collect::<Result<_>>()?))
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

/// A sentence typed in as words the way CoNLL files split them: at spaces,
/// with each punctuation mark a word of its own ("London." → "London", ".").
pub fn words_of(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for chunk in text.split_whitespace() {
        let mut word = String::new();
        for c in chunk.chars() {
            if c.is_alphanumeric() || c == '\'' && !word.is_empty() {
                word.push(c);
            } else {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                words.push(c.to_string());
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
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
    /// A task's data from examples made elsewhere (the hub's rows), checked
    /// as files are: every target one of `labels`' classes (or a number).
    pub fn from_examples(name: &str, labels: Labels, train: Examples, eval: Examples) -> Result<TaskData> {
        let outputs = labels.outputs() as u32;
        for (what, split) in [("training", &train), ("validation", &eval)] {
            let fits = match (split, &labels) {
                (Examples::Texts(e), Labels::Regression) => e.iter().all(|x| matches!(x.target, Target::Value(v) if v.is_finite())),
                (Examples::Texts(e), Labels::Classes(_)) => e.iter().all(|x| matches!(x.target, Target::Class(c) if c < outputs)),
                (Examples::Words(e), Labels::Classes(_)) => {
                    e.iter().all(|x| x.tags.len() == x.words.len() && x.tags.iter().all(|&t| t < outputs))
                }
                (Examples::Words(_), Labels::Regression) => false,
            };
            if split.is_empty() || !fits {
                return Err(Error::Input(format!("the {what} split of {name} has no examples, or targets outside its labels")));
            }
        }
        let kind = match &train {
            Examples::Texts(e) => TaskKind::Texts { pair: e.iter().any(|x| x.pair.is_some()) },
            Examples::Words(_) => TaskKind::Words,
        };
        let mut data = TaskData { task: Task { name: name.to_string(), kind, labels }, train, eval, notes: Vec::new() };
        note_rare_labels(&mut data);
        Ok(data)
    }

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

    fn builtin(b: Builtin, train: &str, eval: &str) -> Result<TaskData> {
        let src = b.source();
        read(b.name(), (&src, train), (&src, eval), Some(b.labels()))
    }

    fn table(f: Format, columns: Columns) -> Source {
        Source::Table(f, columns)
    }

    #[test]
    fn builtin_sst2_and_mrpc_read_glue_s_columns_with_the_hub_s_label_names() {
        let d = builtin(Builtin::Sst2, "sentence\tlabel\ngood film \t1\nbad\t0\n", "sentence\tlabel\nok\t1\n").unwrap();
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
        let d = builtin(Builtin::Mrpc, mrpc, mrpc).unwrap();
        assert_eq!(d.task.kind, TaskKind::Texts { pair: true });
        let Examples::Texts(e) = &d.eval else { panic!() };
        assert_eq!(e[1], TextExample { text: "c \"d".into(), pair: Some("e".into()), target: Target::Class(0) });
        let e = builtin(Builtin::Sst2, "sentence\tlabel\nx\t2\n", "sentence\tlabel\ny\t1\n").unwrap_err().to_string();
        assert!(e.contains("training file line 2: label \"2\" is not one of the task's labels"), "{e}");
    }

    #[test]
    fn a_user_table_s_labels_are_classes_or_a_regression_and_its_columns_are_found_or_named() {
        let (train, eval) = ("text,stars\nnice,5\nawful,1\nfine,3\nmeh,3\n", "text,stars\ngreat,5\n");
        let src = table(Format::Csv, Columns::default());
        let e = read("mine", (&src, train), (&src, eval), None).unwrap_err().to_string();
        assert!(e.contains("which column is the label?") && e.contains("\"stars\""), "{e}");
        let src = table(Format::Csv, Columns { label: Some("stars".into()), ..Columns::default() });
        let d = read("mine", (&src, train), (&src, eval), None).unwrap();
        assert_eq!(d.task.labels, Labels::Classes(vec!["1".into(), "3".into(), "5".into()]));
        assert!(d.notes.iter().any(|n| n.contains("label \"1\" appears once")), "{:?}", d.notes);
        let s = d.summary(&d.train);
        assert_eq!(s.counts, [("1".to_string(), 1), ("3".into(), 2), ("5".into(), 1)]);
        assert_eq!(s.majority_accuracy, Some(0.5));

        let reg =
            "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 4.2}\n{\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": 1}\n";
        let src = table(Format::JsonLines, Columns::default());
        let d = read("sts", (&src, reg), (&src, reg), None).unwrap();
        assert_eq!((d.task.kind, d.task.labels), (TaskKind::Texts { pair: true }, Labels::Regression));
        let Examples::Texts(e) = &d.train else { panic!() };
        assert_eq!(e[0].target, Target::Value(4.2));

        let tsv = table(Format::Tsv, Columns::default());
        let e = read("x", (&tsv, "text\tlabel\na\tp\n"), (&tsv, "text\tlabel\nb\tq\n"), None).unwrap_err().to_string();
        assert!(e.contains("validation file line 2: label \"q\" is not one of the task's labels (\"p\")"), "{e}");
        let e = read("x", (&tsv, "text\tlabel\na\t1\nb\t3\n"), (&tsv, "text\tlabel\nc\t0\n"), None).unwrap_err().to_string();
        assert!(e.contains("label \"0\" is not one of the task's labels"), "a number is never read as an index of numbers: {e}");
        let e = read("x", (&tsv, "text\tlabel\n\tp\n"), (&tsv, "text\tlabel\nb\tp\n"), None).unwrap_err().to_string();
        assert!(e.contains("the training file has no usable rows (training file: skipped line 2: no \"text\")"), "{e}");
        // a known label set reads names and, as GLUE's files and LABEL_n names write them, indices
        let labels = Labels::Classes(vec!["neg".into(), "pos".into()]);
        let (ex, _) = read_split(&tsv, "text\tlabel\na\tpos\nb\t0\n", &labels, "data").unwrap();
        let Examples::Texts(ex) = ex else { panic!() };
        assert_eq!((ex[0].target, ex[1].target), (Target::Class(1), Target::Class(0)));
    }

    #[test]
    fn typed_text_splits_into_words_as_conll_files_are() {
        assert_eq!(words_of("Peter Blackburn went to London."), ["Peter", "Blackburn", "went", "to", "London", "."]);
        assert_eq!(words_of("  it's 3.5 (sic)  "), ["it's", "3", ".", "5", "(", "sic", ")"]);
    }

    #[test]
    fn conll_tags_take_the_hub_s_order_for_the_builtin_and_sorted_order_otherwise() {
        let train = "EU B-ORG\nrejects O\n\nPeter B-PER\n";
        let d = builtin(Builtin::Conll2003, train, "Bonn B-LOC\n").unwrap();
        assert_eq!(d.task.label_names()[3], "B-ORG");
        assert_eq!(
            d.train,
            Examples::Words(vec![
                WordsExample { words: vec!["EU".into(), "rejects".into()], tags: vec![3, 0] },
                WordsExample { words: vec!["Peter".into()], tags: vec![1] },
            ])
        );
        let mine = read("mine", (&Source::Conll, train), (&Source::Conll, "Peter B-PER\n"), None).unwrap();
        assert_eq!(mine.task.label_names(), ["B-ORG", "B-PER", "O"]);
        let e = read("mine", (&Source::Conll, train), (&Source::Conll, "Bonn B-LOC\n"), None).unwrap_err().to_string();
        assert!(e.contains("validation file sentence 1: tag \"B-LOC\" is not one of the task's tags"), "{e}");
        assert_eq!(mine.summary(&mine.train).first[0], "EU/B-ORG rejects/O");
    }
}
