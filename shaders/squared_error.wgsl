// Squared error of one output per row against a wanted value, forward and backward
// at once (regression, as transformers' MSELoss with num_labels 1):
//   loss[r]    = (output[r] − wanted[r])²
//   doutput[r] = 2·(output[r] − wanted[r]) · scale
// (scale = 1/rows for the mean loss). One thread per row.

struct Params {
    rows: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> output: array<f32>;
@group(0) @binding(2) var<storage, read> wanted: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> doutput: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let e = output[r] - wanted[r];
    loss[r] = e * e;
    doutput[r] = 2.0 * e * p.scale;
}
