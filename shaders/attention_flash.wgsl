// Multi-head self-attention without the score matrix: one workgroup per block
// of 64 queries of one (sequence, head), one query per thread. Keys and values
// stream through workgroup memory CHUNK at a time; each thread keeps its
// query, a running max and sum, and its output (an online softmax), so any
// sequence length fits and nothing is written but the context:
//   ctx_i = Σ_j softmax_j(q_i · k_j / √d over real keys j) v_j
// qkv: [batch·seq, 3·hidden], each row [q | k | v], head h at h·HEAD_DIM.
// mask: [batch·seq], 1 = real token. ctx: [batch·seq, hidden].
// Rows are read as vec4 (HEAD_DIM % 4 == 0); V4 = HEAD_DIM / 4 and CHUNK are
// substituted and the inner loops unrolled (src/wgsl.rs), so every private
// and workgroup index is a literal or a plain offset.
// Dispatch: (ceil(seq / 64), heads, batch).

struct Params {
    seq: u32,
    hidden4: u32, // hidden / 4
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> ctx: array<vec4<f32>>;

var<workgroup> ks: array<vec4<f32>, CHUNK * V4>;
var<workgroup> vs: array<vec4<f32>, CHUNK * V4>;
var<workgroup> real: array<f32, CHUNK>; // 1 for a real key, 0 for padding or past the sequence

const NONE: f32 = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.y;
    let row0 = wg.z * p.seq;
    let stride = 3u * p.hidden4;
    let i = wg.x * 64u + lid;
    let qi = min(i, p.seq - 1u); // threads past the sequence compute a copy, never stored
    let q_at = (row0 + qi) * stride + h * V4;
    //#unroll d 0..V4
    let q{d} = qkv[q_at + {d}u] * p.scale;
    var o{d} = vec4<f32>(0.0);
    //#end
    var m = NONE;
    var l = 0.0;
    for (var j0 = 0u; j0 < p.seq; j0 += CHUNK) {
        for (var e = lid; e < CHUNK * V4; e += 64u) {
            let j = min(j0 + e / V4, p.seq - 1u);
            let at = (row0 + j) * stride + h * V4 + e % V4;
            ks[e] = qkv[at + p.hidden4];
            vs[e] = qkv[at + 2u * p.hidden4];
        }
        for (var e = lid; e < CHUNK; e += 64u) {
            let j = j0 + e;
            real[e] = select(0.0, 1.0, j < p.seq && mask[row0 + min(j, p.seq - 1u)] != 0u);
        }
        workgroupBarrier();
        var chunk_max = NONE;
        //#unroll c 0..CHUNK
        var dot{c} = vec4<f32>(0.0);
        //#unroll d 0..V4
        dot{c} = fma(q{d}, ks[{c}u * V4 + {d}u], dot{c});
        //#end
        let s{c} = select(NONE, dot{c}.x + dot{c}.y + dot{c}.z + dot{c}.w, real[{c}u] > 0.5);
        chunk_max = max(chunk_max, s{c});
        //#end
        // rescale what came before to the new maximum, then add this chunk
        let m_new = max(m, chunk_max);
        let correction = exp(m - m_new);
        l *= correction;
        //#unroll d 0..V4
        o{d} *= correction;
        //#end
        //#unroll c 0..CHUNK
        let p{c} = select(0.0, exp(s{c} - m_new), real[{c}u] > 0.5);
        l += p{c};
        //#unroll d 0..V4
        o{d} = fma(vec4<f32>(p{c}), vs[{c}u * V4 + {d}u], o{d});
        //#end
        //#end
        m = m_new;
        workgroupBarrier();
    }
    if (i < p.seq) {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let out_at = (row0 + i) * p.hidden4 + h * V4;
        //#unroll d 0..V4
        ctx[out_at + {d}u] = o{d} * inv;
        //#end
    }
}
