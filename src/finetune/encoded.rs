//! A task's examples as the model reads them: token ids and type ids a row
//! (unpadded), and each row's target — a class, a number, or a label a
//! WordPiece (the word's label on its first piece and [`IGNORE_INDEX`] on
//! the rest and on [CLS]/[SEP], as transformers' `run_ner` aligns them).

use crate::classifier::loss::Targets;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels::cross_entropy::IGNORE_INDEX;
use crate::task::{Examples, Target, TextExample};
use crate::tokenize::{BertTokenizer, Input};

/// Every row's target, by task kind.
#[derive(Debug, Clone, PartialEq)]
pub enum RowTargets {
    Classes(Vec<u32>),
    Values(Vec<f32>),
    /// A label (or [`IGNORE_INDEX`]) a token of each row.
    Tokens(Vec<Vec<u32>>),
}

/// One split, tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub rows: Vec<(Vec<u32>, Vec<u32>)>,
    pub targets: RowTargets,
}

impl Encoded {
    /// Tokenizes `examples`, each cut to `max_len` tokens (pairs longest-first).
    pub fn encode(tokenizer: &BertTokenizer, examples: &Examples, max_len: usize) -> Result<Self> {
        match examples {
            Examples::Texts(e) => {
                let mut rows = Vec::with_capacity(e.len());
                for chunk in e.chunks(256) {
                    let inputs: Vec<Input> = chunk.iter().map(TextExample::input).collect();
                    let b = tokenizer.encode_batch_to(&inputs, max_len)?;
                    for r in 0..b.batch_size {
                        let row = r * b.seq_len..r * b.seq_len + b.len_of(r);
                        rows.push((b.input_ids[row.clone()].to_vec(), b.token_type_ids[row].to_vec()));
                    }
                }
                let targets = match e.first().map(|x| x.target) {
                    Some(Target::Value(_)) => {
                        RowTargets::Values(e.iter().map(|x| if let Target::Value(v) = x.target { v } else { f32::NAN }).collect())
                    }
                    _ => RowTargets::Classes(e.iter().map(|x| if let Target::Class(c) = x.target { c } else { IGNORE_INDEX }).collect()),
                };
                Ok(Encoded { rows, targets })
            }
            Examples::Words(e) => {
                let mut rows = Vec::with_capacity(e.len());
                let mut labels = Vec::with_capacity(e.len());
                for (i, x) in e.iter().enumerate() {
                    let (ids, words) = tokenizer.encode_words(&x.words, max_len, &format!("sentence {}", i + 1))?;
                    // the label on each word's first piece
                    let mut previous = None;
                    let row = words
                        .iter()
                        .map(|&w| {
                            let first = w.is_some() && w != previous;
                            previous = w;
                            match w {
                                Some(w) if first => x.tags.get(w as usize).copied().unwrap_or(IGNORE_INDEX),
                                _ => IGNORE_INDEX,
                            }
                        })
                        .collect();
                    rows.push((ids.clone(), vec![0; ids.len()]));
                    labels.push(row);
                }
                Ok(Encoded { rows, targets: RowTargets::Tokens(labels) })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The targets of rows `idx`, as a batch padded to `seq_len` holds them
    /// (a token head's rows are every token of every row; padding is unlabelled).
    pub fn batch_targets(&self, idx: &[usize], seq_len: usize) -> Targets {
        match &self.targets {
            RowTargets::Classes(c) => Targets::Classes(idx.iter().map(|&i| c[i]).collect()),
            RowTargets::Values(v) => Targets::Values(idx.iter().map(|&i| v[i]).collect()),
            RowTargets::Tokens(t) => Targets::Classes(
                idx.iter().flat_map(|&i| t[i].iter().copied().chain(std::iter::repeat(IGNORE_INDEX)).take(seq_len)).collect(),
            ),
        }
    }

    /// Refuses rows the model cannot read (saved data can be damaged): ids
    /// outside its tables, more tokens than its positions, targets outside
    /// the head's `outputs` or not numbers.
    pub fn check(&self, what: &str, c: &BertConfig, outputs: usize) -> Result<()> {
        if self.rows.is_empty() {
            return Err(Error::Input(format!("the {what} split has no examples")));
        }
        let n = match &self.targets {
            RowTargets::Classes(t) => t.len(),
            RowTargets::Values(t) => t.len(),
            RowTargets::Tokens(t) => t.len(),
        };
        if n != self.rows.len() {
            return Err(Error::Input(format!("the {what} split has {} examples for {n} targets", self.rows.len())));
        }
        for (i, (ids, types)) in self.rows.iter().enumerate() {
            let fits = !ids.is_empty()
                && ids.len() == types.len()
                && ids.len() <= c.max_position_embeddings
                && ids.iter().all(|&t| (t as usize) < c.vocab_size)
                && types.iter().all(|&t| (t as usize) < c.type_vocab_size);
            if !fits {
                return Err(Error::Input(format!("{what} example {} has token ids this model cannot read", i + 1)));
            }
        }
        let class_ok = |y: u32| y == IGNORE_INDEX || (y as usize) < outputs;
        let bad = match &self.targets {
            RowTargets::Classes(t) if outputs > 1 => t.iter().position(|&y| !class_ok(y) || y == IGNORE_INDEX),
            RowTargets::Values(t) if outputs == 1 => t.iter().position(|v| !v.is_finite()),
            RowTargets::Tokens(t) if outputs > 1 => {
                t.iter().zip(&self.rows).position(|(labels, row)| labels.len() != row.0.len() || !labels.iter().all(|&y| class_ok(y)))
            }
            _ => return Err(Error::Input(format!("the {what} split's targets do not fit a head of {outputs} outputs"))),
        };
        match bad {
            Some(i) => Err(Error::Input(format!("{what} example {} has a target the head cannot learn", i + 1))),
            None => Ok(()),
        }
    }
}
