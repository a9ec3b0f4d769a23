// y = act(x · Wᵀ + bias) for a few rows (ROWS, substituted: 1, 2, 4, 8 or
// 16): what one short batch needs, where a 64-row tile would compute 64
// rows for a handful. x [m, k] (rows x_stride4 vec4s apart: dense, or the
// [CLS] rows of a batch for the pooler), W [n, k], k a multiple of 4. Each workgroup
// computes 32 columns for ROWS rows (rows wg.y·ROWS …; more than ROWS rows
// take more workgroups along y); its 256 threads split k eight ways (a
// column reads W once for all its rows), then sum the eight partials.
// ACT (substituted): the epilogue (shaders/activation.wgsl, prepended).

struct Params {
    m: u32,
    n: u32,
    k4: u32, // k / 4
    x_stride4: u32, // x's row stride in vec4s
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 8 * ROWS * 32>; // [slice][row][column]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = li % 32u;
    let slice = li / 32u;
    let w_at = min(wg.x * 32u + c, p.n - 1u) * p.k4; // columns past n read the last one, never stored
    let row0 = wg.y * u32(ROWS);
    var acc: array<f32, ROWS>;
    for (var kv = slice; kv < p.k4; kv += 8u) {
        let wv = w[w_at + kv];
        // rows past m read row m - 1, never stored
        //#unroll r 0..ROWS
        acc[{r}] += dot(x[min(row0 + {r}u, p.m - 1u) * p.x_stride4 + kv], wv);
        //#end
    }
    //#unroll r 0..ROWS
    part[(slice * ROWS + {r}u) * 32u + c] = acc[{r}];
    //#end
    workgroupBarrier();
    for (var o = li; o < ROWS * 32u; o += 256u) {
        let r = o / 32u;
        let row = row0 + r;
        let col = wg.x * 32u + o % 32u;
        var sum = 0.0;
        //#unroll s 0..8
        sum += part[({s}u * ROWS + r) * 32u + o % 32u];
        //#end
        if (row < p.m && col < p.n) { y[row * p.n + col] = activate(sum + bias[col], ACT); }
    }
}
