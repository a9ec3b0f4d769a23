//! The Trainer's optimizer step: gradients clipped to a global norm
//! (`max_grad_norm`, as `clip_grad_norm_`), then AdamW on every trained
//! tensor, with no weight decay on biases and LayerNorm weights.

use rayon::prelude::*;

use crate::classifier::{ClassifierParams, TrainLayers};
use crate::kernels::adamw::{adamw_cpu, AdamW};
use crate::kernels::sum_squares::sum_squares_cpu;

/// Elements of a tensor one core updates at a time.
const CHUNK: usize = 1 << 16;

/// The Trainer's default `max_grad_norm`.
pub const MAX_GRAD_NORM: f32 = 1.0;

/// AdamW's moments of every tensor (zeros for the ones a run does not train).
#[derive(Debug, Clone)]
pub struct Moments {
    pub m: ClassifierParams,
    pub v: ClassifierParams,
}

impl Moments {
    pub fn new(p: &ClassifierParams) -> Self {
        let z = p.zeros_like();
        Moments { m: z.clone(), v: z }
    }
}

/// Zeroes the gradients of the tensors `train` trains (the others stay zero).
pub fn zero_trained(grads: &mut ClassifierParams, train: TrainLayers) {
    let layers = grads.bert.layers.len();
    let layout = grads.layout();
    for (info, g) in layout.iter().zip(grads.data_mut()) {
        if train.trains(info.part, layers) {
            g.par_chunks_mut(CHUNK).for_each(|c| c.fill(0.0));
        }
    }
}

/// The global L2 norm of the trained tensors' gradients (in f64, as one sum).
pub fn grad_norm(grads: &ClassifierParams, train: TrainLayers) -> f64 {
    let layers = grads.bert.layers.len();
    let layout = grads.layout();
    let sq: f64 =
        layout.iter().zip(grads.data()).filter(|(info, _)| train.trains(info.part, layers)).map(|(_, g)| sum_squares_cpu(g)).sum();
    sq.sqrt()
}

/// One optimizer step `t` (from 1) with `opt`'s learning rate and decay.
/// Clips the gradients (inside the update); returns their norm before clipping.
pub fn step(
    params: &mut ClassifierParams,
    grads: &ClassifierParams,
    moments: &mut Moments,
    train: TrainLayers,
    opt: &AdamW,
    t: u32,
    max_grad_norm: f32,
) -> f64 {
    let layers = params.bert.layers.len();
    let norm = grad_norm(grads, train);
    // torch.nn.utils.clip_grad_norm_: scale by max/(norm + 1e-6) when that is below 1
    let clip = (f64::from(max_grad_norm) / (norm + 1e-6)).min(1.0) as f32;
    let layout = params.layout();
    let tensors = params.data_mut().into_iter().zip(grads.data()).zip(moments.m.data_mut()).zip(moments.v.data_mut());
    for (info, (((p, g), m), v)) in layout.iter().zip(tensors) {
        if !train.trains(info.part, layers) {
            continue;
        }
        let weight_decay = if info.decays() { opt.weight_decay } else { 0.0 };
        let opt = AdamW { weight_decay, grad_scale: clip, ..*opt };
        // element by element, so chunks across the cores give the same values
        let chunks = p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK));
        chunks.for_each(|(((p, g), m), v)| adamw_cpu(&opt, t, p, g, m, v));
    }
    norm
}
