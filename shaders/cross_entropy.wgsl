// Softmax cross-entropy over rows of logits, forward and backward at once:
//   loss[r]      = -log softmax(logits[r])[label[r]]
//   dlogits[r,c] = (softmax(logits[r])[c] - [c == label[r]]) · scale
// (scale = 1/labelled rows for the mean loss). A row labelled IGNORE
// (transformers' -100) has loss 0 and gradient 0. One thread per row.

const IGNORE: u32 = 0xffffffffu;

struct Params {
    rows: u32,
    classes: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let base = r * p.classes;
    let y = labels[r];
    if (y == IGNORE) {
        loss[r] = 0.0;
        for (var c = 0u; c < p.classes; c++) { dlogits[base + c] = 0.0; }
        return;
    }
    var m = logits[base];
    for (var c = 1u; c < p.classes; c++) { m = max(m, logits[base + c]); }
    var sum = 0.0;
    for (var c = 0u; c < p.classes; c++) { sum += exp(logits[base + c] - m); }
    let log_sum = log(sum) + m;
    loss[r] = log_sum - logits[base + y];
    for (var c = 0u; c < p.classes; c++) {
        let prob = exp(logits[base + c] - log_sum);
        dlogits[base + c] = (prob - select(0.0, 1.0, c == y)) * p.scale;
    }
}
