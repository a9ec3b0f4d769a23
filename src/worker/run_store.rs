//! Fine-tuning runs saved in the browser, each one unit under its own id:
//! `run.json` (what it is and how far it got), `features.safetensors` (its
//! data: the encoded splits of a head run, the tokenized examples of a run
//! that trains BERT's layers) and `checkpoint.safetensors` (what trains, AdamW
//! moments, position). Both binary files carry the run's id, checked on resume, so a
//! checkpoint never resumes on another run's data. Runs live in a cache of
//! their own, apart from the cached models.

use bertlab::browser::{resolve, storage};
use bertlab::finetune::encoded::{Encoded, RowTargets};
use bertlab::finetune::model_training::ModelTraining;
use bertlab::finetune::training::{Split, Training};
use bertlab::protocol::RunRecord;
use bertlab::tensor_file::{TensorReader, TensorWriter};

const CACHE: &str = "bertlab-runs-v1";
const RECORD: &str = "run.json";
const FEATURES: &str = "features.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";

/// A run's training and validation data.
pub enum RunData {
    /// Encoded features, for a head.
    Features { train: Split, eval: Split },
    /// Tokenized examples, for BERT's layers.
    Encoded { train: Encoded, eval: Encoded },
}

fn url(id: &str, file: &str) -> String {
    resolve(&format!("bertlab-runs/{id}/{file}"))
}

/// A new run id: the time and a random suffix.
pub fn new_id() -> String {
    format!("{:x}-{:06x}", js_sys::Date::now() as u64, (js_sys::Math::random() * 16_777_215.0) as u32)
}

/// Every saved run, newest first.
pub async fn list() -> Result<Vec<RunRecord>, String> {
    let cache = storage::open(CACHE).await?;
    let mut runs = Vec::new();
    for (u, _) in storage::entries(&cache).await? {
        if u.ends_with(RECORD) {
            if let Some(r) = storage::get(&cache, &u).await.and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
                runs.push(r);
            }
        }
    }
    runs.sort_by(|a, b| b.created_ms.total_cmp(&a.created_ms));
    Ok(runs)
}

pub async fn save_record(r: &RunRecord) -> Result<(), String> {
    let cache = storage::open(CACHE).await?;
    let bytes = serde_json::to_vec(r).map_err(|e| e.to_string())?;
    storage::put(&cache, &url(&r.id, RECORD), &bytes).await
}

/// A token's label as saved: its class id, or -1 for an unlabelled one (ids below 2^24 are exact in f32).
fn label_f32(y: u32) -> f32 {
    if y == bertlab::kernels::cross_entropy::IGNORE_INDEX {
        -1.0
    } else {
        y as f32
    }
}

fn label_u32(v: f32) -> u32 {
    if v < 0.0 {
        bertlab::kernels::cross_entropy::IGNORE_INDEX
    } else {
        v as u32
    }
}

fn encode_data(id: &str, data: &RunData) -> Result<Vec<u8>, String> {
    let floats = |v: &[u32]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut w = TensorWriter::new();
    match data {
        RunData::Features { train, eval } => {
            for (name, s) in [("train", train), ("eval", eval)] {
                let width = s.x.len() / s.labels.len().max(1);
                w.tensor(format!("{name}_x"), &[s.labels.len(), width], &s.x).tensor(
                    format!("{name}_y"),
                    &[s.labels.len()],
                    &floats(&s.labels),
                );
            }
        }
        RunData::Encoded { train, eval } => {
            // token ids are below 2^24, so f32 holds them exactly
            for (name, p) in [("train", train), ("eval", eval)] {
                let ids: Vec<f32> = p.rows.iter().flat_map(|(i, _)| i.iter().map(|&v| v as f32)).collect();
                let types: Vec<f32> = p.rows.iter().flat_map(|(_, t)| t.iter().map(|&v| v as f32)).collect();
                let lens: Vec<f32> = p.rows.iter().map(|(i, _)| i.len() as f32).collect();
                w.tensor(format!("{name}_ids"), &[ids.len()], &ids).tensor(format!("{name}_types"), &[types.len()], &types).tensor(
                    format!("{name}_lens"),
                    &[lens.len()],
                    &lens,
                );
                match &p.targets {
                    RowTargets::Classes(y) => w.tensor(format!("{name}_y"), &[y.len()], &floats(y)),
                    RowTargets::Values(v) => w.tensor(format!("{name}_values"), &[v.len()], v),
                    RowTargets::Tokens(t) => {
                        let flat: Vec<f32> = t.iter().flat_map(|r| r.iter().map(|&y| label_f32(y))).collect();
                        w.tensor(format!("{name}_token_y"), &[flat.len()], &flat)
                    }
                };
            }
        }
    }
    w.meta("run_id", id);
    w.to_bytes().map_err(|e| e.to_string())
}

fn decode_data(id: &str, bytes: &[u8]) -> Result<RunData, String> {
    let r = TensorReader::parse(bytes, "saved run data").map_err(|e| e.to_string())?;
    if r.meta("run_id") != Some(id) {
        return Err("the saved data belong to another run".into());
    }
    let get = |name: String| r.f32_with_shape(&name).map(|(_, v)| v).map_err(|e| e.to_string());
    let labels = |name: &str| -> Result<Vec<u32>, String> { Ok(get(format!("{name}_y"))?.into_iter().map(|v| v as u32).collect()) };
    if !r.has("train_ids") {
        let split = |name: &str| -> Result<Split, String> { Ok(Split { x: get(format!("{name}_x"))?, labels: labels(name)? }) };
        return Ok(RunData::Features { train: split("train")?, eval: split("eval")? });
    }
    let encoded = |name: &str| -> Result<Encoded, String> {
        let (ids, types, lens) = (get(format!("{name}_ids"))?, get(format!("{name}_types"))?, get(format!("{name}_lens"))?);
        let mut rows = Vec::with_capacity(lens.len());
        let mut at = 0;
        for len in lens {
            let end = at + len as usize;
            if end > ids.len() || end > types.len() {
                return Err("the saved pairs are cut short".into());
            }
            let as_u32 = |v: &[f32]| v.iter().map(|&x| x as u32).collect::<Vec<u32>>();
            rows.push((as_u32(&ids[at..end]), as_u32(&types[at..end])));
            at = end;
        }
        let targets = if r.has(&format!("{name}_values")) {
            RowTargets::Values(get(format!("{name}_values"))?)
        } else if r.has(&format!("{name}_token_y")) {
            let flat = get(format!("{name}_token_y"))?;
            if flat.len() != at {
                return Err("the saved token labels do not match the saved tokens".into());
            }
            let mut start = 0;
            RowTargets::Tokens(
                rows.iter()
                    .map(|(ids, _)| {
                        let row = flat[start..start + ids.len()].iter().map(|&v| label_u32(v)).collect();
                        start += ids.len();
                        row
                    })
                    .collect(),
            )
        } else {
            RowTargets::Classes(labels(name)?)
        };
        Ok(Encoded { rows, targets })
    };
    Ok(RunData::Encoded { train: encoded("train")?, eval: encoded("eval")? })
}

/// Saves a new run's record and data, after checking there is room for
/// them and for `checkpoint_bytes` (what its checkpoints will take).
pub async fn save_new(r: &RunRecord, data: &RunData, checkpoint_bytes: f64) -> Result<(), String> {
    let bytes = encode_data(&r.id, data)?;
    if let Some(e) = storage::estimate().await {
        e.check_room("saving this run", (bytes.len() as f64 + checkpoint_bytes) * 1.1)?;
    }
    storage::persist().await;
    let cache = storage::open(CACHE).await?;
    storage::put(&cache, &url(&r.id, FEATURES), &bytes).await?;
    save_record(r).await
}

/// Saves a checkpoint, then the record that says how far it got.
pub async fn save_checkpoint(r: &RunRecord, checkpoint: &[u8]) -> Result<(), String> {
    let cache = storage::open(CACHE).await?;
    storage::put(&cache, &url(&r.id, CHECKPOINT), checkpoint).await?;
    save_record(r).await
}

/// A saved run's record, data and checkpoint, checked to be one run's.
pub async fn load(id: &str) -> Result<(RunRecord, RunData, Vec<u8>), String> {
    let cache = storage::open(CACHE).await?;
    let missing = |what: &str| format!("the saved run {id} has no {what} (it was not saved completely)");
    let record: RunRecord =
        storage::get(&cache, &url(id, RECORD)).await.and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| missing("record"))?;
    let data = decode_data(id, &storage::get(&cache, &url(id, FEATURES)).await.ok_or_else(|| missing("data"))?)?;
    let checkpoint = storage::get(&cache, &url(id, CHECKPOINT)).await.ok_or_else(|| missing("checkpoint"))?;
    let run_id = match &data {
        RunData::Features { .. } => Training::peek(&checkpoint).map(|(setup, _)| setup.run_id),
        RunData::Encoded { .. } => ModelTraining::peek(&checkpoint).map(|(id, _)| id),
    };
    if run_id.map_err(|e| e.to_string())? != id {
        return Err("the saved checkpoint belongs to another run".into());
    }
    Ok((record, data, checkpoint))
}

pub async fn delete(id: &str) -> Result<(), String> {
    let cache = storage::open(CACHE).await?;
    for f in [CHECKPOINT, FEATURES, RECORD] {
        storage::delete(&cache, &url(id, f)).await?;
    }
    Ok(())
}
