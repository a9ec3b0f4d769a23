// The backward pass of out = LayerNorm(x + residual), one workgroup per row
// (layernorm_rows.wgsl: the row's mean and 1/std):
//   x̂ = (s − mean)·inv_std with s = x + residual, dx̂ = dy·gamma
//   ds = inv_std·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))          → d_sum
//   d_branch = ds ⊙ dropout(seed, p)   (the branch x went through dropout in the forward pass)
//   g_xhat = dy·x̂                     (its column sums are gamma's gradient; dy's are beta's)

struct Params {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_residual: u32,
    seed: u32,
    p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_sum: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_branch: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_xhat: array<f32>;

fn input(i: u32) -> f32 {
    if (params.has_residual != 0u) { return x[i] + residual[i]; }
    return x[i];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= params.rows) { return; }
    let base = row * params.hidden;
    let n = f32(params.hidden);
    let stats = row_stats(base, params.hidden, params.eps, lid);
    let mean = stats.x;
    let inv_std = stats.y;

    var sum_dxhat = 0.0;
    var sum_dxhat_xhat = 0.0;
    for (var d = lid; d < params.hidden; d += WG) {
        let xhat = (input(base + d) - mean) * inv_std;
        let dxhat = dy[base + d] * gamma[d];
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
    }
    let mean_dxhat = workgroup_sum(sum_dxhat, lid) / n;
    let mean_dxhat_xhat = workgroup_sum(sum_dxhat_xhat, lid) / n;

    for (var d = lid; d < params.hidden; d += WG) {
        let i = base + d;
        let xhat = (input(i) - mean) * inv_std;
        let g = dy[i];
        let ds = inv_std * (g * gamma[d] - mean_dxhat - xhat * mean_dxhat_xhat);
        d_sum[i] = ds;
        d_branch[i] = ds * dropout_factor(params.seed, i, params.p);
        g_xhat[i] = g * xhat;
    }
}
