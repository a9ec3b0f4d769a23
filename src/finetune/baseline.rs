//! A logistic regression on the same features, for comparison with the head.

use crate::error::Result;
use crate::finetune::{evaluate, Metrics};
use crate::head::{CpuHead, HeadInput, HeadSpec};
use crate::kernels::adamw::{adamw_cpu, AdamW};

/// scikit-learn's `LogisticRegression(C=c)` objective (mean cross-entropy +
/// ½·||W||²/(c·n), intercept not penalised) on the raw features, minimised
/// full-batch with Adam (400 steps).
pub fn logistic_regression_baseline(train: (&[f32], &[u32]), eval: (&[f32], &[u32]), dim: usize, c: f32) -> Result<Metrics> {
    let n = train.1.len();
    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: dim, hidden: 0, classes: 2 };
    let mut head = CpuHead::new(spec, spec.init(0));
    let lambda = 1.0 / (c * n as f32);
    let opt = AdamW::new(1e-2, 0.0);
    let (mut m, mut v) = (head.params.zeros_like(), head.params.zeros_like());
    for t in 1..=400 {
        let (_, mut grads) = head.gradients(train.0, train.1);
        for ((g, p), (m, v)) in grads.layers.iter_mut().zip(&mut head.params.layers).zip(m.layers.iter_mut().zip(&mut v.layers)) {
            g.weight.iter_mut().zip(&p.weight).for_each(|(g, w)| *g += lambda * w);
            adamw_cpu(&opt, t, &mut p.weight, &g.weight, &mut m.weight, &mut v.weight);
            adamw_cpu(&opt, t, &mut p.bias, &g.bias, &mut m.bias, &mut v.bias);
        }
    }
    evaluate(&head.predict(eval.0, eval.1.len()), eval.1, 2)
}
