//! `bertlab compare`: what fine-tuning changed, layer by layer and head by head.

use std::path::{Path, PathBuf};

use bertlab::compare::compare;
use bertlab::task::{read_file, table::Format, Columns, Source};
use bertlab::{BackendChoice, Engine, Model};

/// The examples both models read.
pub struct Data {
    pub path: PathBuf,
    pub columns: Columns,
    pub max_samples: usize,
    pub max_seq_length: usize,
}

pub fn run(base: &Path, tuned: &Path, data: &Data, backend: BackendChoice, json: bool) -> Result<(), String> {
    let name = data.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let source = match Format::of_name(&name) {
        Some(format) => Source::Table(format, data.columns.clone()),
        None => Source::Conll,
    };
    let text = bertlab::disk::read_text(&data.path, bertlab::disk::MAX_DATA_BYTES).map_err(|e| e.to_string())?;
    let (mut examples, _, notes) = read_file(&source, &text, "data").map_err(|e| e.to_string())?;
    for n in notes {
        eprintln!("warning: {n}");
    }
    examples.truncate(data.max_samples);
    let load = |dir: &Path| -> Result<Engine, String> {
        let model = Model::from_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        pollster::block_on(Engine::new(model, backend)).map_err(|e| e.to_string())
    };
    let (mut base_engine, mut tuned_engine) = (load(base)?, load(tuned)?);
    let c = pollster::block_on(compare(&mut base_engine, &mut tuned_engine, &examples.inputs(), Some(data.max_seq_length)))
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&c).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{} → {} on {} examples of {} ({})", base.display(), tuned.display(), c.examples, data.path.display(), base_engine.backend());
    println!("layer  CKA (1 = unchanged)   mean attention moved per head (0 = unchanged, 1 = disjoint)");
    for l in &c.layers {
        let cka = l.cka.map_or_else(|| "   n/a".to_string(), |v| format!("{v:.4}"));
        let heads = match l.layer {
            0 => "(embeddings)".to_string(),
            k => c.heads[k - 1].iter().map(|m| format!("{m:.3}")).collect::<Vec<_>>().join(" "),
        };
        println!("{:>5}  {cka:>8}              {heads}", l.layer);
    }
    Ok(())
}
