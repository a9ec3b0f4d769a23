// One AdamW step, exactly as torch.optim.AdamW orders it, on gradients
// scaled by grad_scale first (1, or clip_grad_norm_'s coefficient):
//   p ← p·(1 − lr·wd)                       (decoupled weight decay)
//   m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
//   p ← p − lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps),   bc = 1 − βᵗ

struct Params {
    len: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    grad_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) { return; }
    let g = grad[i] * p.grad_scale;
    var x = param[i] * (1.0 - p.lr * p.weight_decay);
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / sqrt(p.bias_correction2) + p.eps;
    param[i] = x - (p.lr / p.bias_correction1) * mi / denom;
}
