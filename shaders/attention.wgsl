// Multi-head self-attention for one query token of one head per workgroup:
//   scores_j = (q · k_j) / sqrt(head_dim)   for unmasked keys j
//   p = softmax(scores) over unmasked keys (masked keys get probability 0)
//   ctx = Σ_j p_j v_j
// qkv: [batch·seq, 3·hidden], each row [q | k | v], head h at h·head_dim.
// mask: [batch·seq], 1 = real token. ctx: [batch·seq, hidden].
// probs (when write_probs): [kept.count, layers, heads, seq, seq], this layer's
// slice, for the batch rows kept.first .. kept.first + kept.count.
// Dispatch: (seq, heads, batch).

struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    write_probs: u32,
    layer: u32,
    layers: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> ctx: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;

// Which rows' probabilities are written: set per forward, shared by every layer.
struct Kept {
    first: u32,
    count: u32,
}
@group(0) @binding(5) var<uniform> kept: Kept;

const WG: u32 = 64u;
// The longest sequence this kernel handles (BERT's 512 positions).
const MAX_SEQ: u32 = 512u;

var<workgroup> scores: array<f32, MAX_SEQ>;
var<workgroup> partial: array<f32, WG>;

fn workgroup_max(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] = max(partial[lid], partial[lid + s]); }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.x;
    let h = wg.y;
    let b = wg.z;
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

    let write = p.write_probs != 0u && b >= kept.first && b < kept.first + kept.count;
    let probs_row = ((((b - kept.first) * p.layers + p.layer) * p.heads + h) * p.seq + i) * p.seq;
    for (var j = lid; j < p.seq; j += WG) {
        let pj = scores[j] * inv;
        scores[j] = pj;
        if (write) { probs[probs_row + j] = pj; }
    }
    workgroupBarrier();

    for (var c = lid; c < p.head_dim; c += WG) {
        var acc = 0.0;
        let v = row0 * stride + 2u * p.hidden + h * p.head_dim + c;
        for (var j = 0u; j < p.seq; j++) { acc = fma(scores[j], qkv[v + j * stride], acc); }
        ctx[(row0 + i) * p.hidden + h * p.head_dim + c] = acc;
    }
}
