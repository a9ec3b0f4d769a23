// Attention's backward pass, by key: one thread per element d of head h of
// key/value token j of sequence b, summing over the queries i in order:
//   dk_j = Σ_i dS_ij · q_i            (dS from attention_backward_query.wgsl)
//   dv_j = Σ_i P_ij · f_ij · dc_i     (f: the probabilities' dropout factors)

struct Params {
    rows: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    seed: u32,
    p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> d_ctx: array<f32>;
@group(0) @binding(4) var<storage, read> d_scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hidden = params.heads * params.head_dim;
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= params.rows * hidden) { return; }
    let t = e / hidden;
    let c = e % hidden;
    let h = c / params.head_dim;
    let b = t / params.seq;
    let j = t % params.seq;
    let stride = 3u * hidden;
    let row0 = b * params.seq;
    var dk = 0.0;
    var dv = 0.0;
    for (var i = 0u; i < params.seq; i++) {
        let at = ((b * params.heads + h) * params.seq + i) * params.seq + j;
        dk = fma(d_scores[at], qkv[(row0 + i) * stride + c], dk);
        let pf = probs[at] * dropout_factor(params.seed, at, params.p);
        dv = fma(pf, d_ctx[(row0 + i) * hidden + c], dv);
    }
    dqkv[t * stride + hidden + c] = dk;
    dqkv[t * stride + 2u * hidden + c] = dv;
}
