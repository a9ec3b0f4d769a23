// out[t] = word[input_ids[t]] + position[t mod seq] + token_type[token_type_ids[t]]
// for every token t of a [batch, seq] batch; one workgroup per token.
// (BERT's position ids are 0..seq for every row, padding or not.)

struct Params {
    tokens: u32,
    seq: u32,
    hidden: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input_ids: array<u32>;
@group(0) @binding(2) var<storage, read> token_type_ids: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<f32>;
@group(0) @binding(4) var<storage, read> position: array<f32>;
@group(0) @binding(5) var<storage, read> token_type: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = wg.x + wg.y * nwg.x;
    if (t >= p.tokens) { return; }
    let w = input_ids[t] * p.hidden;
    let pos = (t % p.seq) * p.hidden;
    let tt = token_type_ids[t] * p.hidden;
    for (var d = lid; d < p.hidden; d += 64u) {
        out[t * p.hidden + d] = word[w + d] + position[pos + d] + token_type[tt + d];
    }
}
