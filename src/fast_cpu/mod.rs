//! The fast CPU backend: the same forward pass as `cpu_encoder` (the plain
//! reference), built for speed and tested against it. GEMMs run on weights
//! packed once at load (rten-gemm: AVX-512/FMA/NEON kernels natively, simd128
//! in wasm), element-wise math is vectorised (rten-vecmath), bias and GELU are
//! applied in the GEMM's output pass, residual adds are fused into layer norm,
//! attention keeps one score block per (sequence, head) and no probabilities
//! unless asked, and natively the work spreads over every core (rayon).

mod attention;
mod layernorm;
mod linear;

pub use attention::attention_fast;
pub use layernorm::layernorm_fast;
pub use linear::{apply as apply_activation, PackedLinear};

use rayon::prelude::*;

use crate::config::BertConfig;
use crate::kernels::attention::AttentionShape;
use crate::kernels::matmul::Epilogue;
use crate::outputs::{Attentions, Keep, Outputs};
use crate::tokenize::Batch;
use crate::weights::{BertWeights, LayerNorm};

struct Layer {
    qkv: PackedLinear,
    attn_out: PackedLinear,
    attn_norm: LayerNorm,
    ffn_in: PackedLinear,
    ffn_out: PackedLinear,
    ffn_norm: LayerNorm,
}

/// BERT's weights packed for the CPU's GEMM kernels.
pub struct FastCpuEncoder {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Option<PackedLinear>,
}

impl FastCpuEncoder {
    pub fn new(w: &BertWeights) -> Self {
        let act: Epilogue = w.config.hidden_act.into();
        FastCpuEncoder {
            config: w.config.clone(),
            word: w.word_embeddings.clone(),
            position: w.position_embeddings.clone(),
            token_type: w.token_type_embeddings.clone(),
            embeddings_norm: w.embeddings_norm.clone(),
            layers: w
                .layers
                .iter()
                .map(|l| Layer {
                    qkv: PackedLinear::new(&l.qkv, Epilogue::None),
                    attn_out: PackedLinear::new(&l.attn_out, Epilogue::None),
                    attn_norm: l.attn_norm.clone(),
                    ffn_in: PackedLinear::new(&l.ffn_in, act),
                    ffn_out: PackedLinear::new(&l.ffn_out, Epilogue::None),
                    ffn_norm: l.ffn_norm.clone(),
                })
                .collect(),
            pooler: w.pooler.as_ref().map(|p| PackedLinear::new(p, Epilogue::Tanh)),
        }
    }

    pub fn hidden(&self) -> usize {
        self.config.hidden_size
    }

    /// The threads the backend spreads its work over.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// Runs the encoder over a (validated) batch.
    pub fn forward(&self, batch: &Batch, keep: impl Into<Keep>) -> Outputs {
        let keep = keep.into();
        let c = &self.config;
        let (b, s, h) = (batch.batch_size, batch.seq_len, c.hidden_size);
        let rows = b * s;
        let eps = c.layer_norm_eps;
        let shape = AttentionShape { batch: b, seq: s, heads: c.num_attention_heads, head_dim: c.head_dim() };
        let layers = self.layers.len();
        let kept = keep.attentions.rows(b);
        let per_layer = shape.heads * s * s;
        let mut probs = kept.as_ref().map(|r| vec![0.0f32; r.len() * layers * per_layer]);

        let mut x = vec![0.0f32; rows * h];
        x.par_chunks_mut(h).enumerate().for_each(|(r, out)| {
            let (id, tt, pos) = (batch.input_ids[r] as usize, batch.token_type_ids[r] as usize, r % s);
            let (wv, pv, tv) = (&self.word[id * h..][..h], &self.position[pos * h..][..h], &self.token_type[tt * h..][..h]);
            for d in 0..h {
                out[d] = wv[d] + pv[d] + tv[d];
            }
        });
        layernorm_fast(&mut x, None, &self.embeddings_norm, h, eps);
        let mut hidden_states = keep.hidden_states.then(|| vec![x.clone()]);

        for (l, layer) in self.layers.iter().enumerate() {
            let qkv = layer.qkv.forward(&x, rows);
            // this layer's probabilities of the kept rows, straight into their slot
            let slot = probs.as_mut().zip(kept.as_ref()).map(|(p, r)| (p.as_mut_slice(), r.clone(), l, layers));
            let ctx = attention_fast(&qkv, &batch.attention_mask, shape, slot);
            let mut x1 = layer.attn_out.forward(&ctx, rows);
            layernorm_fast(&mut x1, Some(&x), &layer.attn_norm, h, eps);
            let inter = layer.ffn_in.forward(&x1, rows);
            x = layer.ffn_out.forward(&inter, rows);
            layernorm_fast(&mut x, Some(&x1), &layer.ffn_norm, h, eps);
            if let Some(states) = hidden_states.as_mut() {
                states.push(x.clone());
            }
        }

        let pooler_output = self.pooler.as_ref().map(|p| {
            let cls: Vec<f32> = (0..b).flat_map(|r| x[r * s * h..][..h].iter().copied()).collect();
            p.forward(&cls, b)
        });
        Outputs {
            batch: b,
            seq: s,
            hidden: h,
            last_hidden_state: x,
            pooler_output,
            attentions: kept.zip(probs).map(|(rows, probs)| Attentions { rows, layers, heads: shape.heads, probs }),
            hidden_states,
        }
    }
}
