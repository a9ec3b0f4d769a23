//! `bertlab fill-mask`: the top words for every `[MASK]` of a text, as
//! transformers' fill-mask pipeline gives them, with attention free or
//! limited to one side of each mask.

use bertlab::mlm::{fill_mask, MaskFill, Sees};
use bertlab::{BackendChoice, Engine, Model};

pub fn run(dir: &std::path::Path, text: &str, top_k: usize, sees: Sees, backend: BackendChoice, json: bool) -> Result<(), String> {
    let model = Model::from_dir(dir).map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, backend)).map_err(|e| e.to_string())?;
    let masks = pollster::block_on(fill_mask(&mut engine, text, top_k, sees)).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::json!({ "masks": masks, "sees": sees }));
        return Ok(());
    }
    println!("model: {} · backend: {} · attention sees: {}", dir.display(), engine.backend(), describe(sees));
    for MaskFill { position, predictions } in &masks {
        println!("[MASK] at token {position}:");
        for p in predictions {
            println!("  {:>7.4}  {:<16} {}", p.score, p.token_str, p.sequence);
        }
    }
    Ok(())
}

fn describe(sees: Sees) -> &'static str {
    match sees {
        Sees::Both => "both sides",
        Sees::Left => "only the tokens left of each mask",
        Sees::Right => "only the tokens right of each mask",
    }
}
