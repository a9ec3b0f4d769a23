//! `bertlab finetune`'s feature cache: a dataset's features under a key of
//! everything they depend on (the model's weights, the texts, the head input,
//! the maximum length). Written to a temporary file and renamed, so an
//! interrupted run leaves no half-written file; read back only when the key,
//! the shape and the values check out, and recomputed otherwise.

use std::path::{Path, PathBuf};

use bertlab::glue::Dataset;
use bertlab::head::HeadInput;
use bertlab::tensor_file::{TensorReader, TensorWriter};
use bertlab::ModelIdentity;
use sha2::{Digest, Sha256};

pub struct FeatureCache {
    /// `None`: caching is off.
    dir: Option<PathBuf>,
}

/// What the features of one dataset are made from.
pub struct Entry<'a> {
    pub model: &'a ModelIdentity,
    pub data: &'a Dataset,
    pub input: HeadInput,
    pub max_len: usize,
}

impl Entry<'_> {
    fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.model.fingerprint.as_str(), self.input.name(), &self.max_len.to_string()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for e in &self.data.examples {
            for s in [&e.sentence1, &e.sentence2] {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn shape(&self) -> [usize; 2] {
        [self.data.examples.len(), self.input.width(self.model.hidden_size)]
    }
}

impl FeatureCache {
    /// `dir`, else `$BERTLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/bertlab`, else `~/.cache/bertlab`.
    pub fn new(dir: Option<PathBuf>, enabled: bool) -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = dir
            .or_else(|| env("BERTLAB_CACHE_DIR"))
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("bertlab")))
            .or_else(|| env("HOME").map(|d| d.join(".cache/bertlab")));
        FeatureCache { dir: dir.filter(|_| enabled).map(|d| d.join("features")) }
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.safetensors")))
    }

    /// The cached features, if a valid file holds them.
    pub fn load(&self, entry: &Entry) -> Option<Vec<f32>> {
        let key = entry.key();
        let bytes = std::fs::read(self.file(&key)?).ok()?;
        let r = TensorReader::parse(&bytes, "cached features").ok()?;
        if r.meta("key") != Some(key.as_str()) {
            return None;
        }
        let v = r.f32("features", &entry.shape()).ok()?;
        v.iter().all(|x| x.is_finite()).then_some(v)
    }

    /// Caches features; a failure only costs the next run the encoding.
    pub fn store(&self, entry: &Entry, features: &[f32]) -> Result<(), String> {
        let key = entry.key();
        let Some(file) = self.file(&key) else { return Ok(()) };
        let bytes =
            TensorWriter::new().tensor("features", &entry.shape(), features).meta("key", key).to_bytes().map_err(|e| e.to_string())?;
        write_atomically(&file, &bytes).map_err(|e| format!("cannot cache features in {}: {e}", file.display()))
    }
}

/// Writes `bytes` to a temporary file beside `file`, then renames it over `file`.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
