//! Why a prediction: each token's share of a classifier's logit, by gradient
//! × input or by integrated gradients, on the plain backward pass
//! (`classifier::backprop`) in evaluation mode.
//!
//! e_i is token i's row of the word embeddings (before the position and type
//! rows and the LayerNorm), f the target class's logit.
//! grad × input: a_i = Σ_d e_id ∂f/∂e_id.
//! Integrated gradients: a_i = Σ_d e_id (1/m) Σ_{k=1..m} ∂f/∂e_id at every word
//! row scaled by k/m (a zero baseline; position and type rows unchanged). The
//! k-th point is the same model with its word table scaled by k/m: every
//! position's word row is scaled alike, the rest of the model untouched.

use crate::classifier::backprop::{backward, forward};
use crate::classifier::math::CpuMath;
use crate::classifier::{ClassifierParams, HeadKind, Labels, TrainLayers};
use crate::error::{Error, Result};
use crate::tokenize::{BertTokenizer, Input};

/// The most integration steps (each a forward and a backward pass).
pub const MAX_STEPS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GradXInput,
    IntegratedGradients { steps: usize },
}

/// A prediction and each token's share of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// The class explained (the predicted one unless chosen).
    pub target: usize,
    pub label: String,
    pub logits: Vec<f32>,
    pub tokens: Vec<String>,
    pub attributions: Vec<f32>,
    /// Integrated gradients' completeness check: f(x) − f(baseline), which the
    /// attributions' sum approaches as the steps grow.
    pub f_x_minus_f_baseline: Option<f32>,
}

/// The logits, and the gradient of the `target` logit reaching each position's embedding sum.
fn logit_gradient(
    math: CpuMath,
    p: &ClassifierParams,
    batch: &crate::tokenize::Batch,
    target: Option<usize>,
) -> (Vec<f32>, usize, Vec<f32>) {
    let f = forward(math, p, batch, TrainLayers::All, None, None);
    let logits = f.logits.clone();
    let target = target.unwrap_or_else(|| logits.iter().enumerate().fold(0, |best, (c, &v)| if v > logits[best] { c } else { best }));
    let mut dlogits = vec![0.0; logits.len()];
    dlogits[target] = 1.0;
    let mut grads = p.zeros_like();
    let d = backward(math, p, f, batch, &dlogits, &mut grads).unwrap_or_default();
    (logits, target, d)
}

/// Each token's attribution of `p`'s logit for `target` (or its predicted class) on `input`.
pub fn explain(
    p: &ClassifierParams,
    labels: &Labels,
    tokenizer: &BertTokenizer,
    input: &Input,
    method: Method,
    target: Option<usize>,
) -> Result<Explanation> {
    if p.kind != HeadKind::Sequence {
        return Err(Error::Input("attributions explain a sequence classifier's prediction (this is a token classifier)".into()));
    }
    if let Some(t) = target.filter(|&t| t >= p.outputs()) {
        return Err(Error::Input(format!("target class {t}: the classifier has {} classes", p.outputs())));
    }
    if let Method::IntegratedGradients { steps } = method {
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(Error::Input(format!("{steps} integration steps: choose 1 to {MAX_STEPS}")));
        }
    }
    let math = CpuMath::Reference;
    let batch = tokenizer.encode_batch(std::slice::from_ref(input))?;
    let (h, n) = (p.bert.config.hidden_size, batch.len_of(0));
    let row = |id: u32| &p.bert.word_embeddings[id as usize * h..][..h];
    let (logits, target, grad) = logit_gradient(math, p, &batch, target);
    let dot = |i: usize, g: &[f32]| row(batch.input_ids[i]).iter().zip(&g[i * h..][..h]).map(|(e, g)| e * g).sum::<f32>();
    let (attributions, gap) = match method {
        Method::GradXInput => ((0..n).map(|i| dot(i, &grad)).collect(), None),
        Method::IntegratedGradients { steps } => {
            let mut scaled = p.clone();
            let mut total = vec![0.0f32; grad.len()];
            for k in 1..=steps {
                let a = k as f32 / steps as f32;
                scaled.bert.word_embeddings.iter_mut().zip(&p.bert.word_embeddings).for_each(|(s, w)| *s = w * a);
                let (_, _, g) = logit_gradient(math, &scaled, &batch, Some(target));
                total.iter_mut().zip(&g).for_each(|(t, g)| *t += g / steps as f32);
            }
            scaled.bert.word_embeddings.iter_mut().for_each(|s| *s = 0.0);
            let baseline = forward(math, &scaled, &batch, TrainLayers::All, None, None).logits[target];
            ((0..n).map(|i| dot(i, &total)).collect(), Some(logits[target] - baseline))
        }
    };
    let label = labels.names().get(target).cloned().unwrap_or_else(|| format!("LABEL_{target}"));
    Ok(Explanation { target, label, logits, tokens: batch.tokens[0].clone(), attributions, f_x_minus_f_baseline: gap })
}
