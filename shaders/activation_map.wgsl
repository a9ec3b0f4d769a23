// An activation on its own, for training, which keeps the pre-activation x:
//   forward (backward = 0):  out[i] = act(x[i])
//   backward (backward = 1): out[i] = out[i] · act'(x[i])   (out holds dy, in place)
// act codes as in activation.wgsl.

struct Params {
    len: u32,
    act: u32,
    backward: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) { return; }
    if (p.backward != 0u) {
        out[i] = out[i] * derivative(x[i], p.act);
    } else {
        out[i] = activate(x[i], p.act);
    }
}
