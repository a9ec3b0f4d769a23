// Attention's backward pass, by query: one workgroup per (query i, head h,
// sequence b). With P the probabilities, f their dropout factors and dc the
// context's gradient:
//   dP_j = (dc_i · v_j) · f_ij
//   dS_j = P_ij · (dP_j − Σ_k P_ik·dP_k) · scale    (softmax, then S = q·kᵀ·scale)
//   dq_i = Σ_j dS_j · k_j
// dS is written out for attention_backward_key.wgsl (dK, dV).
// Masked keys have P = 0, so their dS is 0.

struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
    seed: u32,
    p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> d_ctx: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;

const WG: u32 = 64u;
// The longest sequence (BERT's 512 positions).
const MAX_SEQ: u32 = 512u;
// (workgroup_sum: workgroup_reduce.wgsl)
var<workgroup> ds: array<f32, MAX_SEQ>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.x;
    let h = wg.y;
    let b = wg.z;
    let hidden = params.heads * params.head_dim;
    let stride = 3u * hidden;
    let row0 = b * params.seq;
    let row = ((b * params.heads + h) * params.seq + i) * params.seq;
    let dc = (row0 + i) * hidden + h * params.head_dim;

    // dP into ds, and Σ P·dP
    var local = 0.0;
    for (var j = lid; j < params.seq; j += WG) {
        let v = (row0 + j) * stride + 2u * hidden + h * params.head_dim;
        var dot = 0.0;
        for (var d = 0u; d < params.head_dim; d++) { dot = fma(d_ctx[dc + d], qkv[v + d], dot); }
        let dp = dot * dropout_factor(params.seed, row + j, params.p);
        ds[j] = dp;
        local = fma(probs[row + j], dp, local);
    }
    let total = workgroup_sum(local, lid);
    for (var j = lid; j < params.seq; j += WG) {
        let s = probs[row + j] * (ds[j] - total) * params.scale;
        ds[j] = s;
        d_scores[row + j] = s;
    }
    workgroupBarrier();

    let q = (row0 + i) * stride + h * params.head_dim;
    for (var d = lid; d < params.head_dim; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < params.seq; j++) {
            acc = fma(ds[j], qkv[(row0 + j) * stride + hidden + h * params.head_dim + d], acc);
        }
        dqkv[q + d] = acc;
    }
}
