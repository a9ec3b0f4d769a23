// Part of a global gradient norm: each workgroup writes the sum of squares
// of its 256·PER elements of x to partials[offset + workgroup]; the host adds
// the partials of every tensor (in f64) and takes the root.

struct Params {
    len: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

const WG: u32 = 256u;
const PER: u32 = 16u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = wg.x + wg.y * nwg.x;
    let base = g * WG * PER;
    // a folded grid may have a few workgroups past the end (uniform per workgroup)
    if (base >= p.len) { return; }
    var s = 0.0;
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG + lid;
        if (i < p.len) { s = fma(x[i], x[i], s); }
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) { partials[p.offset + g] = total; }
}
