// Attention probabilities, for the rows someone looks at (the explorer's
// selected sentence); the context of every row comes from attention_flash.wgsl,
// so hidden states do not depend on what was asked. One query token of one
// head per workgroup:
//   scores_j = (q · k_j) / sqrt(head_dim)   for unmasked keys j
//   p = softmax(scores) over unmasked keys (masked keys get probability 0)
// qkv: [batch·seq, 3·hidden], each row [q | k | v], head h at h·head_dim.
// mask: [batch·seq], 1 = real token.
// probs: [kept.count, layers, heads, seq, seq], this layer's slice, for the
// batch rows kept.first .. kept.first + kept.count.
// Dispatch: (seq, heads, kept.count as planned).

struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    layer: u32,
    layers: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

// Which rows' probabilities are written: set per forward, shared by every layer.
struct Kept {
    first: u32,
    count: u32,
}
@group(0) @binding(4) var<uniform> kept: Kept;

const WG: u32 = 64u;
// The longest sequence this kernel handles (BERT's 512 positions).
const MAX_SEQ: u32 = 512u;

// (workgroup_sum, workgroup_max: workgroup_reduce.wgsl)
var<workgroup> scores: array<f32, MAX_SEQ>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.x;
    let h = wg.y;
    let b = kept.first + wg.z;
    let stride = 3u * p.hidden;
    let row0 = b * p.seq;
    let q = (row0 + i) * stride + h * p.head_dim;

    var local_max = -3.0e38;
    for (var j = lid; j < p.seq; j += WG) {
        var s = 0.0;
        if (mask[row0 + j] != 0u) {
            let k = (row0 + j) * stride + p.hidden + h * p.head_dim;
            for (var d = 0u; d < p.head_dim; d++) { s = fma(qkv[q + d], qkv[k + d], s); }
            s *= p.scale;
            local_max = max(local_max, s);
        }
        scores[j] = s;
    }
    let row_max = workgroup_max(local_max, lid);

    var local_sum = 0.0;
    for (var j = lid; j < p.seq; j += WG) {
        var e = 0.0;
        if (mask[row0 + j] != 0u) { e = exp(scores[j] - row_max); }
        scores[j] = e;
        local_sum += e;
    }
    let total = workgroup_sum(local_sum, lid);
    let inv = select(0.0, 1.0 / total, total > 0.0);

    let probs_row = (((wg.z * p.layers + p.layer) * p.heads + h) * p.seq + i) * p.seq;
    for (var j = lid; j < p.seq; j += WG) {
        probs[probs_row + j] = scores[j] * inv;
    }
}
