// Dropout factors from a counter-based hash, as src/kernels/dropout.rs draws
// them: element i of the mask of site seed `seed` is 0 with probability p,
// else 1/(1 − p). u32 arithmetic wraps in WGSL as wrapping_mul does in Rust.

fn hash32(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn dropout_factor(seed: u32, i: u32, p: f32) -> f32 {
    if (p <= 0.0) { return 1.0; }
    let u = f32(hash32(seed ^ hash32(i)) >> 8u) / 16777216.0;
    return select(1.0 / (1.0 - p), 0.0, u < p);
}
