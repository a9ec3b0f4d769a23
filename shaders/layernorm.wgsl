// out = LayerNorm(x + residual) over the last dimension, one workgroup per row
// (layernorm_rows.wgsl: the row's mean and 1/std). The residual add is fused
// here because every BERT layer norm follows a residual connection (except
// the embeddings').

struct Params {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_residual: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn input(i: u32) -> f32 {
    if (p.has_residual != 0u) { return x[i] + residual[i]; }
    return x[i];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) { return; }
    let base = row * p.hidden;
    let stats = row_stats(base, p.hidden, p.eps, lid);
    let mean = stats.x;
    let inv_std = stats.y;

    for (var d = lid; d < p.hidden; d += WG) {
        out[base + d] = (input(base + d) - mean) * inv_std * gamma[d] + beta[d];
    }
}
