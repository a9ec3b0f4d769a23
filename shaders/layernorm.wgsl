// out = LayerNorm(x + residual) over the last dimension, one workgroup per row.
// Mean first, then the variance of the centred values (two passes: exact
// enough for rows with a large mean). The residual add is fused here because
// every BERT layer norm follows a residual connection (except the embeddings').

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

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

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
    let n = f32(p.hidden);

    var s = 0.0;
    for (var d = lid; d < p.hidden; d += WG) { s += input(base + d); }
    let mean = workgroup_sum(s, lid) / n;

    var v = 0.0;
    for (var d = lid; d < p.hidden; d += WG) {
        let c = input(base + d) - mean;
        v = fma(c, c, v);
    }
    let inv_std = inverseSqrt(workgroup_sum(v, lid) / n + p.eps);

    for (var d = lid; d < p.hidden; d += WG) {
        out[base + d] = (input(base + d) - mean) * inv_std * gamma[d] + beta[d];
    }
}
