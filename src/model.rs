//! A model's files → config, weights and tokenizer, checked against each other.

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::mlm::MlmHead;
use crate::tokenize::BertTokenizer;
use crate::weights::BertWeights;

/// The most bytes a model's file may hold, by its name (the same bound on
/// disk and in a download): more is a corrupt, hostile or misnamed file, said
/// before it is read. Weights: bert-large is 1.3 GB in f32; a tab has 4 GB
/// of memory at most.
pub fn max_file_bytes(file: &str) -> u64 {
    match file {
        "model.safetensors" if cfg!(target_arch = "wasm32") => 2 << 30,
        "model.safetensors" => 16 << 30,
        "tokenizer.json" | "vocab.txt" => 256 << 20,
        _ => 16 << 20,
    }
}

/// The bytes of a Hugging Face model folder (as read from disk, fetched, or dropped on the page).
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelFiles {
    /// Where the files came from, for people to read ("bert-base-uncased", a folder).
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub config_json: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub model_safetensors: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub tokenizer_json: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub vocab_txt: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub tokenizer_config_json: Option<Vec<u8>>,
}

impl std::fmt::Debug for ModelFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        f.debug_struct("ModelFiles")
            .field("name", &self.name)
            .field("model_safetensors_bytes", &len(&self.model_safetensors))
            .finish_non_exhaustive()
    }
}

/// Which model something (a trained head, a saved run, cached features) was
/// made with: a head refuses to run on another model's features.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelIdentity {
    pub name: String,
    pub hidden_size: usize,
    /// [`BertWeights::fingerprint`]: equal weights, equal fingerprints.
    pub fingerprint: String,
}

impl ModelIdentity {
    pub fn of(name: &str, weights: &BertWeights) -> Self {
        ModelIdentity { name: name.to_string(), hidden_size: weights.config.hidden_size, fingerprint: weights.fingerprint() }
    }

    /// The same weights, wherever they were loaded from.
    pub fn same_model(&self, other: &ModelIdentity) -> bool {
        self.fingerprint == other.fingerprint && self.hidden_size == other.hidden_size
    }

    /// Fails with a one-line message naming both models unless `loaded` is this model.
    pub fn check_loaded(&self, what: &str, loaded: &ModelIdentity) -> Result<()> {
        if self.same_model(loaded) {
            return Ok(());
        }
        Err(Error::Input(format!("{what} was made with {self}; the loaded model is {loaded}: load that model first")))
    }
}

impl std::fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.fingerprint.get(..8).unwrap_or(&self.fingerprint);
        write!(f, "{} (hidden {}, weights {short})", self.name, self.hidden_size)
    }
}

pub struct Model {
    pub name: String,
    pub config: BertConfig,
    pub weights: BertWeights,
    pub tokenizer: BertTokenizer,
    /// BertForMaskedLM's head, when the checkpoint has one.
    pub mlm: Option<MlmHead>,
}

impl Model {
    pub fn from_files(files: &ModelFiles) -> Result<Self> {
        let config_bytes = files.config_json.as_deref().ok_or_else(|| Error::Config("config.json is missing".into()))?;
        let config = BertConfig::from_json(config_bytes)?;
        let tokenizer = tokenizer_from_files(files, &config)?;
        let weights_bytes = files.model_safetensors.as_deref().ok_or_else(|| Error::Weights("model.safetensors is missing".into()))?;
        let weights = BertWeights::from_safetensors(&config, weights_bytes)?;
        let mlm = MlmHead::from_safetensors(&config, weights_bytes, &weights.word_embeddings)?;
        Ok(Model { name: files.name.clone(), config, weights, tokenizer, mlm })
    }

    /// Reads a folder laid out like a Hugging Face model repo.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Io(format!("model folder {} does not exist", dir.display())));
        }
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            crate::disk::read_bounded(&p, max_file_bytes(name)).map(Some)
        };
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        Self::from_files(&ModelFiles {
            name,
            config_json: read("config.json")?,
            model_safetensors: read("model.safetensors")?,
            tokenizer_json: read("tokenizer.json")?,
            vocab_txt: read("vocab.txt")?,
            tokenizer_config_json: read("tokenizer_config.json")?,
        })
    }
}

fn tokenizer_from_files(files: &ModelFiles, config: &BertConfig) -> Result<BertTokenizer> {
    let max_len = config.max_position_embeddings;
    if let Some(json) = &files.tokenizer_json {
        return BertTokenizer::from_tokenizer_json(json, max_len, config.pad_token_id);
    }
    let Some(vocab) = &files.vocab_txt else {
        return Err(Error::Tokenizer("neither tokenizer.json nor vocab.txt was found".into()));
    };
    let vocab = std::str::from_utf8(vocab).map_err(|_| Error::Tokenizer("vocab.txt is not UTF-8".into()))?;
    // BertTokenizer lowercases unless tokenizer_config.json says do_lower_case: false.
    let lowercase = files
        .tokenizer_config_json
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|x| x.as_bool()))
        .unwrap_or(true);
    BertTokenizer::from_vocab_txt(vocab, lowercase, max_len, config.pad_token_id)
}
