// An embedding table's gradient without float atomics: the host sorts the
// batch's tokens by the table row they read (stably), so segment s lists, in
// token order, the tokens order[starts[s] .. starts[s+1]] that read row
// rows[s]. One workgroup per segment sums their gradient rows and adds the sum
// into the table's gradient: the same sums, in the same order, every run.

struct Params {
    segments: u32,
    hidden: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> starts: array<u32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> table: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let s = wg.x + wg.y * nwg.x;
    if (s >= p.segments) { return; }
    let dst = rows[s] * p.hidden;
    for (var d = lid; d < p.hidden; d += 64u) {
        var acc = 0.0;
        for (var k = starts[s]; k < starts[s + 1u]; k++) { acc += d_out[order[k] * p.hidden + d]; }
        table[dst + d] += acc;
    }
}
