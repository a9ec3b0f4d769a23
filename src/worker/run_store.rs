//! Fine-tuning runs saved in the browser, each one unit under its own id:
//! `run.json` (what it is and how far it got), `features.safetensors` (the
//! encoded splits) and `checkpoint.safetensors` (head, AdamW moments,
//! position). Both binary files carry the run's id, checked on resume, so a
//! checkpoint never resumes on another run's data. Runs live in a cache of
//! their own, apart from the cached models.

use bertlab::browser::{resolve, storage};
use bertlab::finetune::training::{Split, Training};
use bertlab::protocol::RunRecord;
use bertlab::tensor_file::{TensorReader, TensorWriter};

const CACHE: &str = "bertlab-runs-v1";
const RECORD: &str = "run.json";
const FEATURES: &str = "features.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";

/// Encoded training and validation features of one run.
pub struct Features {
    pub train: Split,
    pub eval: Split,
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

fn encode_features(id: &str, f: &Features) -> Result<Vec<u8>, String> {
    let labels = |s: &Split| s.labels.iter().map(|&v| f32::from(v)).collect::<Vec<f32>>();
    let width = |s: &Split| s.x.len() / s.labels.len().max(1);
    let mut w = TensorWriter::new();
    for (name, s) in [("train", &f.train), ("eval", &f.eval)] {
        w.tensor(format!("{name}_x"), &[s.labels.len(), width(s)], &s.x).tensor(format!("{name}_y"), &[s.labels.len()], &labels(s));
    }
    w.meta("run_id", id);
    w.to_bytes().map_err(|e| e.to_string())
}

fn decode_features(id: &str, bytes: &[u8]) -> Result<Features, String> {
    let r = TensorReader::parse(bytes, "saved features").map_err(|e| e.to_string())?;
    if r.meta("run_id") != Some(id) {
        return Err("the saved features belong to another run".into());
    }
    let split = |name: &str| -> Result<Split, String> {
        let (_, x) = r.f32_with_shape(&format!("{name}_x")).map_err(|e| e.to_string())?;
        let (_, y) = r.f32_with_shape(&format!("{name}_y")).map_err(|e| e.to_string())?;
        Ok(Split { x, labels: y.into_iter().map(|v| v as u8).collect() })
    };
    Ok(Features { train: split("train")?, eval: split("eval")? })
}

/// Saves a new run's record and features, after checking there is room.
pub async fn save_new(r: &RunRecord, f: &Features) -> Result<(), String> {
    let bytes = encode_features(&r.id, f)?;
    if let Some(e) = storage::estimate().await {
        e.check_room("saving this run", bytes.len() as f64 * 1.1)?;
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

/// A saved run's record, features and checkpoint, checked to be one run's.
pub async fn load(id: &str) -> Result<(RunRecord, Features, Vec<u8>), String> {
    let cache = storage::open(CACHE).await?;
    let missing = |what: &str| format!("the saved run {id} has no {what} (it was not saved completely)");
    let record: RunRecord =
        storage::get(&cache, &url(id, RECORD)).await.and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| missing("record"))?;
    let features = decode_features(id, &storage::get(&cache, &url(id, FEATURES)).await.ok_or_else(|| missing("features"))?)?;
    let checkpoint = storage::get(&cache, &url(id, CHECKPOINT)).await.ok_or_else(|| missing("checkpoint"))?;
    let (setup, _) = Training::peek(&checkpoint).map_err(|e| e.to_string())?;
    if setup.run_id != id {
        return Err("the saved checkpoint belongs to another run".into());
    }
    Ok((record, features, checkpoint))
}

pub async fn delete(id: &str) -> Result<(), String> {
    let cache = storage::open(CACHE).await?;
    for f in [CHECKPOINT, FEATURES, RECORD] {
        storage::delete(&cache, &url(id, f)).await?;
    }
    Ok(())
}
