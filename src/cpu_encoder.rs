//! The BERT forward pass on the CPU, written to be read: each step is one
//! call to a kernel's CPU reference. It is the oracle the GPU path and the
//! fast CPU path (`fast_cpu`, what runs where there is no GPU) are tested against.

use crate::kernels::attention::{attention_cpu, AttentionShape};
use crate::kernels::embeddings::embeddings_cpu;
use crate::kernels::layernorm::layernorm_cpu;
use crate::kernels::matmul::{linear_cpu, Epilogue};
use crate::outputs::{Attentions, Keep, Outputs};
use crate::tokenize::Batch;
use crate::weights::{BertWeights, Linear};

fn linear(x: &[f32], rows: usize, l: &Linear, act: Epilogue) -> Vec<f32> {
    linear_cpu(x, &l.weight, &l.bias, rows, l.out_dim, l.in_dim, act)
}

/// Runs the encoder over a (validated) batch.
pub fn forward_cpu(w: &BertWeights, batch: &Batch, keep: impl Into<Keep>) -> Outputs {
    let keep = keep.into();
    let c = &w.config;
    let (b, s, h) = (batch.batch_size, batch.seq_len, c.hidden_size);
    let rows = b * s;
    let eps = c.layer_norm_eps;
    let shape = AttentionShape { batch: b, seq: s, heads: c.num_attention_heads, head_dim: c.head_dim() };
    let layers = w.layers.len();
    let kept = keep.attentions.rows(b);
    let mut probs_kept = kept.as_ref().map(|r| vec![0.0f32; r.len() * layers * shape.heads * s * s]);

    let emb =
        embeddings_cpu(&batch.input_ids, &batch.token_type_ids, s, &w.word_embeddings, &w.position_embeddings, &w.token_type_embeddings, h);
    let mut x = layernorm_cpu(&emb, None, &w.embeddings_norm, h, eps);
    let mut hidden_states = keep.hidden_states.then(|| vec![x.clone()]);

    for (l, layer) in w.layers.iter().enumerate() {
        let qkv = linear(&x, rows, &layer.qkv, Epilogue::None);
        let (ctx, probs) = attention_cpu(&qkv, &batch.attention_mask, shape);
        let attn = linear(&ctx, rows, &layer.attn_out, Epilogue::None);
        let x1 = layernorm_cpu(&attn, Some(&x), &layer.attn_norm, h, eps);
        let inter = linear(&x1, rows, &layer.ffn_in, c.hidden_act.into());
        let out = linear(&inter, rows, &layer.ffn_out, Epilogue::None);
        x = layernorm_cpu(&out, Some(&x1), &layer.ffn_norm, h, eps);
        if let Some(states) = hidden_states.as_mut() {
            states.push(x.clone());
        }

        if let (Some(all), Some(rows)) = (probs_kept.as_mut(), kept.as_ref()) {
            // [batch, heads, s, s] of this layer into [rows, layers, heads, s, s]
            let per = shape.heads * s * s;
            for (i, r) in rows.clone().enumerate() {
                all[(i * layers + l) * per..][..per].copy_from_slice(&probs[r * per..][..per]);
            }
        }
    }

    let pooler_output = w.pooler.as_ref().map(|p| {
        let cls: Vec<f32> = (0..b).flat_map(|r| x[r * s * h..][..h].iter().copied()).collect();
        linear(&cls, b, p, Epilogue::Tanh)
    });
    Outputs {
        batch: b,
        seq: s,
        hidden: h,
        last_hidden_state: x,
        pooler_output,
        attentions: kept.zip(probs_kept).map(|(rows, probs)| Attentions { rows, layers, heads: shape.heads, probs }),
        hidden_states,
    }
}
