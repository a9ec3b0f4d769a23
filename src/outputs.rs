//! What a forward pass returns, the sentence embeddings derived from it, and
//! PyTorch-style printing of tensors.

/// Results of one forward pass over a batch of `batch × seq` tokens.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outputs {
    pub batch: usize,
    pub seq: usize,
    pub hidden: usize,
    /// `[batch, seq, hidden]`; rows at padding positions are computed like
    /// PyTorch computes them but mean nothing.
    pub last_hidden_state: Vec<f32>,
    /// `[batch, hidden]`: tanh(W·h_[CLS] + b); `None` when the checkpoint has no pooler.
    pub pooler_output: Option<Vec<f32>>,
    /// Attention probabilities when asked for.
    pub attentions: Option<Attentions>,
    /// When asked for, transformers' `hidden_states`: the embeddings' output,
    /// then each layer's, each `[batch, seq, hidden]` (the last is `last_hidden_state`).
    pub hidden_states: Option<Vec<Vec<f32>>>,
}

/// What a forward pass keeps besides `last_hidden_state` and `pooler_output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Keep {
    pub attentions: AttentionRequest,
    /// Every layer's hidden states (`output_hidden_states=True`): `layers + 1` copies of the batch's activations.
    pub hidden_states: bool,
}

impl From<AttentionRequest> for Keep {
    fn from(attentions: AttentionRequest) -> Self {
        Keep { attentions, hidden_states: false }
    }
}

/// Which rows' attention probabilities a forward pass keeps: every row's
/// take B·L·H·S² floats, so the explorer asks for the one it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AttentionRequest {
    #[default]
    None,
    Row(usize),
    All,
}

impl AttentionRequest {
    /// The rows kept, of a batch of `batch` rows.
    pub fn rows(self, batch: usize) -> Option<std::ops::Range<usize>> {
        match self {
            AttentionRequest::None => None,
            AttentionRequest::Row(r) => Some(r..r + 1),
            AttentionRequest::All => Some(0..batch),
        }
    }

    /// The request for rows `part` of the batch run as a batch of their own.
    pub fn within(self, part: std::ops::Range<usize>) -> AttentionRequest {
        match self {
            AttentionRequest::Row(r) if part.contains(&r) => AttentionRequest::Row(r - part.start),
            AttentionRequest::Row(_) => AttentionRequest::None,
            other => other,
        }
    }
}

/// `[rows, layers, heads, seq, seq]` attention probabilities of the batch rows `rows`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attentions {
    pub rows: std::ops::Range<usize>,
    pub layers: usize,
    pub heads: usize,
    pub probs: Vec<f32>,
}

/// How a sentence's token vectors become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The [CLS] token's last hidden state.
    Cls,
    /// The mean over the real (unpadded) tokens, as sentence-transformers does.
    Mean,
    /// BERT's pooler output.
    Pooler,
}

impl Outputs {
    /// The hidden state of token `t` of row `b`.
    pub fn token(&self, b: usize, t: usize) -> &[f32] {
        &self.last_hidden_state[(b * self.seq + t) * self.hidden..][..self.hidden]
    }

    /// The `seq × seq` attention probabilities of row `b`, `layer`, `head`,
    /// when that row's were kept.
    pub fn attention(&self, b: usize, layer: usize, head: usize) -> Option<&[f32]> {
        let a = self.attentions.as_ref().filter(|a| a.rows.contains(&b))?;
        let s2 = self.seq * self.seq;
        Some(&a.probs[(((b - a.rows.start) * a.layers + layer) * a.heads + head) * s2..][..s2])
    }

    /// One vector per row; `mask` is the batch's attention mask.
    pub fn sentence_embedding(&self, b: usize, mask: &[u32], pooling: Pooling, normalize: bool) -> Option<Vec<f32>> {
        let mut v = match pooling {
            Pooling::Cls => self.token(b, 0).to_vec(),
            Pooling::Pooler => self.pooler_output.as_ref()?[b * self.hidden..][..self.hidden].to_vec(),
            Pooling::Mean => mean_of_tokens(&self.last_hidden_state, self.seq, self.hidden, b, mask),
        };
        if normalize {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Some(v)
    }

    /// Joins outputs of consecutive row chunks of one batch.
    /// The parts' attentions carry row ranges of their own part; they become
    /// ranges of the whole batch.
    pub fn concat(parts: Vec<Outputs>) -> Option<Outputs> {
        let mut it = parts.into_iter();
        let mut all = it.next()?;
        for p in it {
            let offset = all.batch;
            all.batch += p.batch;
            all.last_hidden_state.extend(p.last_hidden_state);
            if let (Some(a), Some(b)) = (all.pooler_output.as_mut(), p.pooler_output) {
                a.extend(b);
            }
            if let (Some(a), Some(b)) = (all.hidden_states.as_mut(), p.hidden_states) {
                a.iter_mut().zip(b).for_each(|(a, b)| a.extend(b));
            }
            if let Some(b) = p.attentions {
                let rows = b.rows.start + offset..b.rows.end + offset;
                match all.attentions.as_mut() {
                    Some(a) => {
                        a.rows.end = rows.end;
                        a.probs.extend(b.probs);
                    }
                    None => all.attentions = Some(Attentions { rows, ..b }),
                }
            }
        }
        Some(all)
    }
}

/// The mean of row `b`'s real (unpadded) token vectors in `states`
/// (`[batch, seq, hidden]`, as `last_hidden_state` or one of `hidden_states`).
pub fn mean_of_tokens(states: &[f32], seq: usize, hidden: usize, b: usize, mask: &[u32]) -> Vec<f32> {
    let mut sum = vec![0.0f32; hidden];
    let mut n = 0.0f32;
    for t in 0..seq {
        if mask[b * seq + t] != 0 {
            sum.iter_mut().zip(&states[(b * seq + t) * hidden..][..hidden]).for_each(|(s, x)| *s += x);
            n += 1.0;
        }
    }
    sum.iter_mut().for_each(|s| *s /= n.max(1.0));
    sum
}

/// Formats a tensor the way `print(tensor)` does in PyTorch with its default
/// options (precision 4, summarised past 1000 elements to 3 edge items, lines
/// of 80 characters), e.g. `tensor([[[-0.0162,  0.0318, ...]]])`.
pub fn torch_format(data: &[f32], shape: &[usize]) -> String {
    const EDGE: usize = 3;
    const THRESHOLD: usize = 1000;
    const LINEWIDTH: usize = 80;
    assert_eq!(data.len(), shape.iter().product::<usize>());
    let summarize = data.len() > THRESHOLD;
    let indent = "tensor(".len();

    // The values PyTorch looks at to choose the format: the printed ones.
    let mut shown = Vec::new();
    collect_shown(data, shape, summarize, EDGE, &mut shown);
    let finite_nonzero: Vec<f64> = shown.iter().filter(|v| v.is_finite() && **v != 0.0).map(|v| v.abs()).collect();
    let all_ints = shown.iter().filter(|v| v.is_finite()).all(|v| v.fract() == 0.0);
    let (lo, hi) = finite_nonzero.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let sci = !finite_nonzero.is_empty() && (hi / lo > 1000.0 || hi > 1e8 || (!all_ints && lo < 1e-4));
    let fmt = |v: f64| -> String {
        if !v.is_finite() {
            return if v.is_nan() {
                "nan".into()
            } else if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            };
        }
        if sci {
            let s = format!("{v:.4e}");
            let (mantissa, exp) = s.split_once('e').unwrap();
            format!("{mantissa}e{:+03}", exp.parse::<i32>().unwrap())
        } else if all_ints {
            format!("{v:.0}.")
        } else {
            format!("{v:.4}")
        }
    };
    let width = shown.iter().map(|&v| fmt(v).len()).max().unwrap_or(1);
    let fmt_padded = |v: f32| format!("{:>width$}", fmt(v as f64));

    fn rec(data: &[f32], shape: &[usize], indent: usize, summarize: bool, width: usize, f: &dyn Fn(f32) -> String) -> String {
        let n = shape[0];
        let skip = summarize && n > 2 * EDGE;
        let idx: Vec<Option<usize>> =
            if skip { (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect() } else { (0..n).map(Some).collect() };
        if shape.len() == 1 {
            let items: Vec<String> = idx.iter().map(|i| i.map_or(" ...".to_string(), |i| f(data[i]))).collect();
            let per_line = ((LINEWIDTH.saturating_sub(indent)) / (width + 2)).max(1);
            let lines: Vec<String> = items.chunks(per_line).map(|c| c.join(", ")).collect();
            return format!("[{}]", lines.join(&format!(",\n{}", " ".repeat(indent + 1))));
        }
        let inner: usize = shape[1..].iter().product();
        let parts: Vec<String> = idx
            .iter()
            .map(|i| match i {
                Some(i) => rec(&data[i * inner..(i + 1) * inner], &shape[1..], indent + 1, summarize, width, f),
                None => "...".to_string(),
            })
            .collect();
        let sep = format!(",{}{}", "\n".repeat(shape.len() - 1), " ".repeat(indent + 1));
        format!("[{}]", parts.join(&sep))
    }
    format!("tensor({})", rec(data, shape, indent, summarize, width, &fmt_padded))
}

/// The values `torch_format` prints, in order.
fn collect_shown(data: &[f32], shape: &[usize], summarize: bool, edge: usize, out: &mut Vec<f64>) {
    let n = shape[0];
    let idx: Vec<usize> = if summarize && n > 2 * edge { (0..edge).chain(n - edge..n).collect() } else { (0..n).collect() };
    let inner: usize = shape[1..].iter().product();
    for i in idx {
        if shape.len() == 1 {
            out.push(data[i] as f64);
        } else {
            collect_shown(&data[i * inner..(i + 1) * inner], &shape[1..], summarize, edge, out);
        }
    }
}
