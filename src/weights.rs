//! model.safetensors → f32 weights in the layout the kernels use.
//!
//! Accepts a `BertModel` checkpoint and a `BertFor*` one (names under `bert.`,
//! extra heads ignored), the old `LayerNorm.gamma/beta` names next to
//! `weight/bias`, and f32/f16/bf16 tensors (always computed in f32). Every
//! shape is checked against the config before the tensor is converted, and
//! every value is checked to be finite; errors name the tensor.

use safetensors::SafeTensors;

use crate::config::BertConfig;
use crate::error::{clipped, Error, Result};
use crate::rng::Rng;
use crate::tensor_file::to_f32;

/// A `torch.nn.Linear`: `y = x·Wᵀ + b`, with W stored `[out, in]` row-major.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_dim: usize,
    pub out_dim: usize,
}

#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct EncoderLayer {
    /// Query, key and value stacked into one `[3·hidden, hidden]` projection,
    /// so one matmul produces all three.
    pub qkv: Linear,
    pub attn_out: Linear,
    pub attn_norm: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
}

#[derive(Debug, Clone)]
pub struct BertWeights {
    pub config: BertConfig,
    /// `[vocab, hidden]`, `[max_positions, hidden]`, `[type_vocab, hidden]`.
    pub word_embeddings: Vec<f32>,
    pub position_embeddings: Vec<f32>,
    pub token_type_embeddings: Vec<f32>,
    pub embeddings_norm: LayerNorm,
    pub layers: Vec<EncoderLayer>,
    /// Absent from some checkpoints (then there is no pooler_output).
    pub pooler: Option<Linear>,
}

/// Looks tensors up under both naming schemes and converts them to f32.
pub(crate) struct Reader<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::Weights(format!("model.safetensors is corrupt or truncated ({} bytes): {}", bytes.len(), clipped(&e.to_string())))
        })?;
        let names = st.names();
        let prefix = if names.iter().any(|n| n.starts_with("bert.embeddings.")) { "bert." } else { "" };
        if !names.iter().any(|n| n.starts_with(&format!("{prefix}embeddings."))) {
            return Err(Error::Weights(
                "model.safetensors holds no BERT embeddings (expected `embeddings.*` or `bert.embeddings.*` tensors)".into(),
            ));
        }
        Ok(Reader { st, prefix })
    }

    /// Names from the file's root: heads beside the encoder (`cls.*` of BertForMaskedLM).
    pub(crate) fn at_root(self) -> Self {
        Reader { prefix: "", ..self }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// The tensor `name` (the first of `aliases` that exists), checked to have `shape`.
    pub(crate) fn get(&self, aliases: &[&str], shape: &[usize]) -> Result<Vec<f32>> {
        let found = aliases.iter().find_map(|a| self.st.tensor(&format!("{}{a}", self.prefix)).ok().map(|t| (a, t)));
        let Some((name, view)) = found else {
            return Err(Error::Weights(format!("missing tensor `{}{}`", self.prefix, aliases[0])));
        };
        if view.shape() != shape {
            // a hostile header's shape can be long: show its first dimensions
            let found: Vec<usize> = view.shape().iter().copied().take(4).collect();
            let more = if view.shape().len() > 4 { ", …" } else { "" };
            return Err(Error::Weights(format!(
                "tensor `{}{name}` has shape {found:?}{more}, but config.json implies {shape:?}",
                self.prefix
            )));
        }
        let values = to_f32(&view).ok_or_else(|| {
            Error::Weights(format!("tensor `{}{name}` has dtype {:?}; only F32, F16 and BF16 are supported", self.prefix, view.dtype()))
        })?;
        // a NaN or an infinity would make every output it reaches NaN, printed as a result
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Weights(format!("tensor `{}{name}` holds {} at index {i}", self.prefix, values[i])));
        }
        Ok(values)
    }

    pub(crate) fn linear(&self, name: &str, out_dim: usize, in_dim: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&[&format!("{name}.weight")], &[out_dim, in_dim])?,
            bias: self.get(&[&format!("{name}.bias")], &[out_dim])?,
            in_dim,
            out_dim,
        })
    }

    pub(crate) fn layer_norm(&self, name: &str, dim: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: self.get(&[&format!("{name}.weight"), &format!("{name}.gamma")], &[dim])?,
            beta: self.get(&[&format!("{name}.bias"), &format!("{name}.beta")], &[dim])?,
        })
    }
}

impl BertWeights {
    /// Parses and checks a safetensors file against `config`.
    pub fn from_safetensors(config: &BertConfig, bytes: &[u8]) -> Result<Self> {
        let r = Reader::new(bytes)?;
        let h = config.hidden_size;
        let i = config.intermediate_size;
        // the layer count against the file before anything is sized by it
        let layer = |l: usize| format!("encoder.layer.{l}.attention.self.query.weight");
        let last = layer(config.num_hidden_layers - 1);
        if !r.has(&last) {
            return Err(Error::Weights(format!(
                "model.safetensors has fewer layers than config.json's num_hidden_layers = {} (no `{}{last}`)",
                config.num_hidden_layers, r.prefix
            )));
        }
        if r.has(&layer(config.num_hidden_layers)) {
            return Err(Error::Weights(format!(
                "model.safetensors has more layers than config.json's num_hidden_layers = {} (found `{}{}`)",
                config.num_hidden_layers,
                r.prefix,
                layer(config.num_hidden_layers)
            )));
        }
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = r.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = r.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = r.linear(&format!("{p}.attention.self.value"), h, h)?;
            layers.push(EncoderLayer {
                qkv: Linear {
                    weight: [q.weight, k.weight, v.weight].concat(),
                    bias: [q.bias, k.bias, v.bias].concat(),
                    in_dim: h,
                    out_dim: 3 * h,
                },
                attn_out: r.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: r.layer_norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                ffn_in: r.linear(&format!("{p}.intermediate.dense"), i, h)?,
                ffn_out: r.linear(&format!("{p}.output.dense"), h, i)?,
                ffn_norm: r.layer_norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let pooler = if r.has("pooler.dense.weight") { Some(r.linear("pooler.dense", h, h)?) } else { None };
        Ok(BertWeights {
            config: config.clone(),
            word_embeddings: r.get(&["embeddings.word_embeddings.weight"], &[config.vocab_size, h])?,
            position_embeddings: r.get(&["embeddings.position_embeddings.weight"], &[config.max_position_embeddings, h])?,
            token_type_embeddings: r.get(&["embeddings.token_type_embeddings.weight"], &[config.type_vocab_size, h])?,
            embeddings_norm: r.layer_norm("embeddings.LayerNorm", h)?,
            layers,
            pooler,
        })
    }

    /// Every tensor, in a fixed order.
    fn tensors(&self) -> Vec<&[f32]> {
        let mut t: Vec<&[f32]> = vec![&self.word_embeddings, &self.position_embeddings, &self.token_type_embeddings];
        fn norm(n: &LayerNorm) -> [&[f32]; 2] {
            [&n.gamma, &n.beta]
        }
        t.extend(norm(&self.embeddings_norm));
        for l in &self.layers {
            for lin in [&l.qkv, &l.attn_out, &l.ffn_in, &l.ffn_out] {
                t.extend([&lin.weight[..], &lin.bias[..]]);
            }
            t.extend(norm(&l.attn_norm));
            t.extend(norm(&l.ffn_norm));
        }
        if let Some(p) = &self.pooler {
            t.extend([&p.weight[..], &p.bias[..]]);
        }
        t
    }

    /// A short content hash (XXH3, 64 bits, as 16 hex digits) of the
    /// geometry and every byte of every tensor: any changed value gives
    /// another fingerprint, so cached features and saved heads are never
    /// reused on other weights. Tens of milliseconds on a 400 MB checkpoint.
    pub fn fingerprint(&self) -> String {
        let c = &self.config;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for v in [
            c.vocab_size,
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.intermediate_size,
            c.max_position_embeddings,
            c.type_vocab_size,
        ] {
            h.update(&(v as u64).to_le_bytes());
        }
        for t in self.tensors() {
            h.update(&(t.len() as u64).to_le_bytes());
            // the values' bytes in memory: little-endian on every target we build (as safetensors stores them)
            h.update(bytemuck::cast_slice(t));
        }
        format!("{:016x}", h.digest())
    }

    /// Random weights of a given geometry (for benchmarks): small bell-shaped
    /// values from a fixed-seed generator, layer norms at identity.
    pub fn random(config: &BertConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let norm = |n: usize| LayerNorm { gamma: vec![1.0; n], beta: vec![0.0; n] };
        let linear =
            |rng: &mut Rng, o: usize, inp: usize| Linear { weight: rng.values(o * inp), bias: rng.values(o), in_dim: inp, out_dim: o };
        let layers = (0..config.num_hidden_layers)
            .map(|_| EncoderLayer {
                qkv: linear(&mut rng, 3 * h, h),
                attn_out: linear(&mut rng, h, h),
                attn_norm: norm(h),
                ffn_in: linear(&mut rng, i, h),
                ffn_out: linear(&mut rng, h, i),
                ffn_norm: norm(h),
            })
            .collect();
        BertWeights {
            config: config.clone(),
            word_embeddings: rng.values(config.vocab_size * h),
            position_embeddings: rng.values(config.max_position_embeddings * h),
            token_type_embeddings: rng.values(config.type_vocab_size * h),
            embeddings_norm: norm(h),
            layers,
            pooler: Some(linear(&mut rng, h, h)),
        }
    }
}
