// The context from kept attention probabilities, through their dropout:
//   ctx[b, i, h·dh + d] = Σ_j P[b, h, i, j] · f(b, h, i, j) · V[b, j, h, d]
// with f the dropout factor of element ((b·heads + h)·seq + i)·seq + j of the
// probabilities' mask (1 where p = 0). One thread per context element.
// qkv: [batch·seq, 3·hidden], each row [q | k | v]; probs: [batch, heads, seq, seq].

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
@group(0) @binding(3) var<storage, read_write> ctx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hidden = params.heads * params.head_dim;
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= params.rows * hidden) { return; }
    let t = e / hidden;
    let c = e % hidden;
    let h = c / params.head_dim;
    let b = t / params.seq;
    let i = t % params.seq;
    let row = ((b * params.heads + h) * params.seq + i) * params.seq;
    let v0 = b * params.seq * 3u * hidden + 2u * hidden + c;
    var acc = 0.0;
    for (var j = 0u; j < params.seq; j++) {
        let pj = probs[row + j] * dropout_factor(params.seed, row + j, params.p);
        acc = fma(pj, qkv[v0 + j * 3u * hidden], acc);
    }
    ctx[e] = acc;
}
