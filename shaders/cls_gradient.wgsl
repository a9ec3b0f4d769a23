// The gradient of the encoder's output from the pooler's: each sequence's
// [CLS] row (its first) gets d_cls's row, every other row 0.

struct Params {
    rows: u32,
    seq: u32,
    hidden: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> d_cls: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= p.rows * p.hidden) { return; }
    let t = e / p.hidden;
    var v = 0.0;
    if (t % p.seq == 0u) { v = d_cls[(t / p.seq) * p.hidden + e % p.hidden]; }
    dx[e] = v;
}
