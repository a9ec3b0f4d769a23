// A bias's gradient: sums[j] += Σ_r x[r·n + j] over `rows` rows. A workgroup
// takes 16 columns; its 16 lanes per column sum every 16th row, then the
// lanes' sums are added in lane order: the same order every run, no atomics.
// (Lanes also keep each thread's loop short: llvmpipe stops loops at 65535
// iterations.)

struct Params {
    rows: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

const LANES: u32 = 16u;
var<workgroup> partial: array<array<f32, 16>, 16>; // [lane][column]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = (wg.x + wg.y * nwg.x) * 16u + lid.x;
    let lane = lid.y;
    var s = 0.0;
    if (j < p.n) {
        for (var r = lane; r < p.rows; r += LANES) { s += x[r * p.n + j]; }
    }
    partial[lane][lid.x] = s;
    workgroupBarrier();
    if (lane == 0u && j < p.n) {
        var total = 0.0;
        for (var l = 0u; l < LANES; l++) { total += partial[l][lid.x]; }
        sums[j] += total;
    }
}
