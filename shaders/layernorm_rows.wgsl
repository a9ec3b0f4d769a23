// What layernorm.wgsl and layernorm_backward.wgsl share (prepended to both):
// one 256-thread workgroup per row, and the row's mean and 1/std of the
// values the including shader's `input(i)` gives — mean first, then the
// variance of the centred values (two passes: exact enough for rows with a
// large mean), biased as PyTorch's.

const WG: u32 = 256u;

// (workgroup_sum: workgroup_reduce.wgsl)
// (mean, 1/sqrt(variance + eps)) of input(base .. base + hidden).
fn row_stats(base: u32, hidden: u32, eps: f32, lid: u32) -> vec2<f32> {
    let n = f32(hidden);
    var s = 0.0;
    for (var d = lid; d < hidden; d += WG) { s += input(base + d); }
    let mean = workgroup_sum(s, lid) / n;
    var v = 0.0;
    for (var d = lid; d < hidden; d += WG) {
        let c = input(base + d) - mean;
        v = fma(c, c, v);
    }
    return vec2<f32>(mean, inverseSqrt(workgroup_sum(v, lid) / n + eps));
}
