// C = act(A · Wᵀ + bias): a torch.nn.Linear on rows of A, and the products
// its backward pass needs (dW = dYᵀ·X, dX = dY·W) through operand strides.
//   A(i, kk) = a[i·a_rs + kk·a_cs]   for i < m, kk < k
//   W(j, kk) = w[j·w_rs + kk·w_cs]   for j < n   (PyTorch's Linear: w_rs = k, w_cs = 1)
//   bias: [n] when has_bias, C: [m, n] row-major (added into when accumulate)
// (a_rs > k gathers rows, e.g. every sequence's [CLS] row for the pooler.)
// Tiles of 64×64 outputs per workgroup, 16×16 threads, 4×4 outputs each,
// k in steps of 16 through workgroup memory. Out-of-range loads read 0.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32, // 0 none, 1 gelu (erf), 2 gelu (tanh approx.), 3 relu, 4 tanh
    a_rs: u32,
    a_cs: u32,
    w_rs: u32,
    w_cs: u32,
    has_bias: u32,
    accumulate: u32, // 1: C += A·Wᵀ (a gradient summed into; act none, no bias)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> w_tile: array<array<f32, 64>, 16>; // [k][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    var acc: array<array<f32, 4>, 4>;

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 64 rows × 16 k of each operand: 4 values per thread, consecutive threads along k.
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            let r = e / TK;
            let kk = e % TK;
            let gk = k0 + kk;
            var av = 0.0;
            if (row0 + r < p.m && gk < p.k) { av = a[(row0 + r) * p.a_rs + gk * p.a_cs]; }
            a_tile[kk][r] = av;
            var wv = 0.0;
            if (col0 + r < p.n && gk < p.k) { wv = w[(col0 + r) * p.w_rs + gk * p.w_cs]; }
            w_tile[kk][r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var wv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk][lid.y + 16u * i];
                wv[i] = w_tile[kk][lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], wv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (row < p.m && col < p.n) {
                var v = acc[i][j];
                if (p.has_bias != 0u) { v += bias[col]; }
                v = activate(v, p.act);
                if (p.accumulate != 0u) { v += c[row * p.n + col]; }
                c[row * p.n + col] = v;
            }
        }
    }
}
