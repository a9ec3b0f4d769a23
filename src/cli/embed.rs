//! `bertlab embed`: tokens, tensors printed as PyTorch prints them, and the
//! same as JSON.

use bertlab::outputs::torch_format;
use bertlab::{BackendChoice, Batch, Engine, Input, Keep, Model, Outputs, Pooling};

pub fn run(
    dir: &std::path::Path,
    inputs: Vec<Input>,
    backend: BackendChoice,
    json: bool,
    keep: Keep,
    normalize: bool,
) -> Result<(), String> {
    if inputs.is_empty() {
        return Err("no text given: bertlab embed \"some text\" [--pair A B]".into());
    }
    let model = Model::from_dir(dir).map_err(|e| e.to_string())?;
    // Tokenize before opening a device: bad text fails fast.
    let batch = model.tokenizer.encode_batch(&inputs).map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, backend)).map_err(|e| e.to_string())?;
    let start = web_time::Instant::now();
    let out = pollster::block_on(engine.forward(&batch, keep)).map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if json {
        println!("{}", to_json(dir, &engine, &inputs, &batch, &out, normalize, ms));
        return Ok(());
    }
    let c = &engine.config;
    println!("model: {} ({} layers, hidden {}, {} heads)", dir.display(), c.num_hidden_layers, c.hidden_size, c.num_attention_heads);
    println!("backend: {}", engine.backend());
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Single(t) => println!("text {}: {t:?}", i + 1),
            Input::Pair(a, b) => println!("pair {}: {a:?} / {b:?}", i + 1),
        }
        let toks: Vec<String> = batch.tokens[i].iter().map(|t| format!("{t:?}")).collect();
        println!("  tokens ({}): [{}]", toks.len(), toks.join(", "));
        if batch.truncated[i] {
            println!("  note: truncated to the model's {} positions", c.max_position_embeddings);
        }
    }
    let (b, s, h) = (out.batch, out.seq, out.hidden);
    println!("last_hidden_state: torch.Size([{b}, {s}, {h}])");
    println!("{}", torch_format(&out.last_hidden_state, &[b, s, h]));
    match &out.pooler_output {
        Some(p) => {
            println!("pooler_output: torch.Size([{b}, {h}])");
            println!("{}", torch_format(p, &[b, h]));
        }
        None => println!("pooler_output: none (the checkpoint has no pooler weights)"),
    }
    if let Some(states) = &out.hidden_states {
        println!(
            "hidden_states: {} × torch.Size([{b}, {s}, {h}]) (the embeddings' output, then each layer's; --json has them)",
            states.len()
        );
    }
    if b > MAX_SIMILARITY_ROWS {
        println!("cosine similarity: {b} sentences make a {b} × {b} matrix, not printed here (at most {MAX_SIMILARITY_ROWS}; --json gives the embeddings)");
    } else if b > 1 {
        let emb: Vec<Vec<f32>> = (0..b).filter_map(|r| out.sentence_embedding(r, &batch.attention_mask, Pooling::Mean, true)).collect();
        println!("cosine similarity of the mean-pooled embeddings:");
        for (i, u) in emb.iter().enumerate() {
            let row: Vec<String> = emb.iter().map(|v| format!("{:6.3}", u.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())).collect();
            println!("  {:>3}  {}", i + 1, row.join(" "));
        }
    }
    println!("forward: {ms:.1} ms");
    Ok(())
}

/// The largest similarity matrix printed as a table (10 000 sentences would print 700 MB).
const MAX_SIMILARITY_ROWS: usize = 32;

fn nested(data: &[f32], inner: usize) -> Vec<&[f32]> {
    data.chunks(inner).collect()
}

fn to_json<'a>(
    dir: &std::path::Path,
    engine: &Engine,
    inputs: &[Input],
    batch: &Batch,
    out: &'a Outputs,
    normalize: bool,
    ms: f64,
) -> String {
    let (b, s, h) = (out.batch, out.seq, out.hidden);
    let rows: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let ids = &batch.input_ids[i * s..(i + 1) * s];
            let (text, pair) = match input {
                Input::Single(t) => (t.clone(), None),
                Input::Pair(a, p) => (a.clone(), Some(p.clone())),
            };
            serde_json::json!({
                "text": text,
                "pair": pair,
                "tokens": batch.tokens[i],
                "input_ids": ids,
                "token_type_ids": &batch.token_type_ids[i * s..(i + 1) * s],
                "attention_mask": &batch.attention_mask[i * s..(i + 1) * s],
                "truncated": batch.truncated[i],
            })
        })
        .collect();
    let tensor = |v: &'a [f32]| -> Vec<Vec<&'a [f32]>> { nested(v, s * h).into_iter().map(|r| nested(r, h)).collect() };
    let hidden = tensor(&out.last_hidden_state);
    let hidden_states = out.hidden_states.as_ref().map(|states| states.iter().map(|v| tensor(v)).collect::<Vec<_>>());
    let pooled =
        |p: Pooling| -> Option<Vec<Vec<f32>>> { (0..b).map(|r| out.sentence_embedding(r, &batch.attention_mask, p, normalize)).collect() };
    let attentions = out.attentions.as_ref().map(|a| {
        // [batch][layer][head][query][key]
        (0..b)
            .map(|r| {
                (0..a.layers)
                    .map(|l| (0..a.heads).map(|hd| out.attention(r, l, hd).map(|p| nested(p, s))).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    serde_json::json!({
        "model": dir.display().to_string(),
        "backend": engine.backend().to_string(),
        "forward_ms": ms,
        "inputs": rows,
        "shape": [b, s, h],
        "last_hidden_state": hidden,
        "pooler_output": out.pooler_output.as_ref().map(|p| nested(p, h)),
        "sentence_embeddings": {
            "normalized": normalize,
            "mean": pooled(Pooling::Mean),
            "cls": pooled(Pooling::Cls),
        },
        "attentions": attentions,
        "hidden_states": hidden_states,
    })
    .to_string()
}
