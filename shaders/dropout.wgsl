// x[i] *= dropout_factor(seed, i, p), in place: dropout in the forward pass,
// and the same mask on the gradient in the backward pass.

struct Params {
    len: u32,
    seed: u32,
    p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.len) { return; }
    x[i] *= dropout_factor(params.seed, i, params.p);
}
