// y = act(x · Wᵀ + bias): a torch.nn.Linear on dense row-major x [m, k] and
// W [n, k], with k a multiple of 16 and x allocated to a multiple of 64 rows
// (so tile loads need no row check). Tiles of 64×64 outputs per workgroup,
// 16×16 threads with 4×4 outputs each, k in steps of 16 through workgroup
// memory, vec4 loads. The k-step's inner loop is unrolled in the text
// (`//#unroll`, src/wgsl.rs) so the accumulators stay in registers.
// ACT (substituted): the epilogue (shaders/activation.wgsl, prepended).

struct Params {
    m: u32,
    n: u32,
    k4: u32, // k / 4
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> xs: array<f32, 1024>; // [k 16][row 64]
var<workgroup> ws: array<f32, 1024>; // [k 16][col 64]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    // each thread loads one vec4 of x and of W per k-step: row (column) li / 4, k-vector li % 4
    let lr = li / 4u;
    let lk = li % 4u;
    let x_at = (row0 + lr) * p.k4 + lk;
    let w_at = min(col0 + lr, p.n - 1u) * p.k4 + lk; // columns past n read the last one, never stored
    var acc: array<vec4<f32>, 4>;
    for (var k = 0u; k < p.k4; k += 4u) {
        let xv = x[x_at + k];
        let wv = w[w_at + k];
        xs[(lk * 4u) * 64u + lr] = xv.x;
        xs[(lk * 4u + 1u) * 64u + lr] = xv.y;
        xs[(lk * 4u + 2u) * 64u + lr] = xv.z;
        xs[(lk * 4u + 3u) * 64u + lr] = xv.w;
        ws[(lk * 4u) * 64u + lr] = wv.x;
        ws[(lk * 4u + 1u) * 64u + lr] = wv.y;
        ws[(lk * 4u + 2u) * 64u + lr] = wv.z;
        ws[(lk * 4u + 3u) * 64u + lr] = wv.w;
        workgroupBarrier();
        //#unroll kk 0..16
        {
            let a = vec4<f32>(xs[{kk}u * 64u + lid.y], xs[{kk}u * 64u + lid.y + 16u], xs[{kk}u * 64u + lid.y + 32u], xs[{kk}u * 64u + lid.y + 48u]);
            let b = vec4<f32>(ws[{kk}u * 64u + lid.x], ws[{kk}u * 64u + lid.x + 16u], ws[{kk}u * 64u + lid.x + 32u], ws[{kk}u * 64u + lid.x + 48u]);
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        //#end
        workgroupBarrier();
    }
    // thread (x, y) holds rows y + 16i, columns x + 16j
    //#unroll i 0..4
    {
        let row = row0 + lid.y + 16u * {i}u;
        if (row < p.m) {
            let r = acc[{i}];
            let c = col0 + lid.x;
            if (c < p.n) { y[row * p.n + c] = activate(r.x + bias[c], ACT); }
            if (c + 16u < p.n) { y[row * p.n + c + 16u] = activate(r.y + bias[c + 16u], ACT); }
            if (c + 32u < p.n) { y[row * p.n + c + 32u] = activate(r.z + bias[c + 32u], ACT); }
            if (c + 48u < p.n) { y[row * p.n + c + 48u] = activate(r.w + bias[c + 48u], ACT); }
        }
    }
    //#end
}
