// The epilogues of the matmul kernels (prepended to each of them):
// act 0 none, 1 gelu (erf), 2 gelu (tanh approx.), 3 relu, 4 tanh.

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); WGSL has no erf.
fn erf(v: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(v));
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(v) * (1.0 - poly * exp(-v * v));
}

// tanh saturates to ±1 in f32 long before 15; clamping keeps exp() in range on every driver.
fn tanh_safe(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

fn activate(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return 0.5 * v * (1.0 + erf(v * 0.70710678118654752)); }
        case 2u: { return 0.5 * v * (1.0 + tanh_safe(0.79788456080286536 * (v + 0.044715 * v * v * v))); }
        case 3u: { return max(v, 0.0); }
        case 4u: { return tanh_safe(v); }
        default: { return v; }
    }
}

// d act(v) / dv at the pre-activation v (for the backward pass).
fn derivative(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: {
            // Φ(v) + v·φ(v)
            return 0.5 * (1.0 + erf(v * 0.70710678118654752)) + v * exp(-0.5 * v * v) * 0.39894228040143268;
        }
        case 2u: {
            let t = tanh_safe(0.79788456080286536 * (v + 0.044715 * v * v * v));
            return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.79788456080286536 * (1.0 + 3.0 * 0.044715 * v * v);
        }
        case 3u: { return select(0.0, 1.0, v > 0.0); }
        case 4u: { let t = tanh_safe(v); return 1.0 - t * t; }
        default: { return 1.0; }
    }
}
