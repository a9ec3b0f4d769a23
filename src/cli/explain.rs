//! `bertlab explain`: each token's share of a fine-tuned classifier's
//! prediction (gradient × input or integrated gradients).

use bertlab::classifier::export::read_head_config;
use bertlab::classifier::ClassifierParams;
use bertlab::disk::read_bounded;
use bertlab::explain::{explain, Method};
use bertlab::model::max_file_bytes;
use bertlab::{Input, Model};

pub fn run(dir: &std::path::Path, input: Input, method: Method, target: Option<usize>, json: bool) -> Result<(), String> {
    let read = |name: &str| read_bounded(&dir.join(name), max_file_bytes(name)).map_err(|e| e.to_string());
    let (kind, labels) = read_head_config(&read("config.json")?).map_err(|e| e.to_string())?;
    let model = Model::from_dir(dir).map_err(|e| e.to_string())?;
    let params = ClassifierParams::from_checkpoint(model.weights, kind, &read("model.safetensors")?).map_err(|e| e.to_string())?;
    let e = explain(&params, &labels, &model.tokenizer, &input, method, target).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&e).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let probs = bertlab::head::softmax_rows(&e.logits, e.logits.len());
    println!("{}: {} (p = {:.3}); logits {:?}", dir.display(), e.label, probs[e.target], e.logits);
    let largest = e.attributions.iter().fold(0.0f32, |m, a| m.max(a.abs())).max(1e-12);
    for (t, a) in e.tokens.iter().zip(&e.attributions) {
        // a bar of up to 20 characters: + for the class, − against it
        let bar = (if *a >= 0.0 { "+" } else { "−" }).repeat((20.0 * a.abs() / largest).round() as usize);
        println!("  {t:<16} {a:>9.4}  {bar}");
    }
    if let Some(gap) = e.f_x_minus_f_baseline {
        let sum: f32 = e.attributions.iter().sum();
        println!("completeness: Σ attributions {sum:.4} vs f(x) − f(baseline) {gap:.4}");
    }
    Ok(())
}
