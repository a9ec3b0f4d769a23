//! What the page and its engine worker say to each other, and the plain data
//! the page shows: the explorer's sentences, a loaded model's description,
//! fine-tuning runs and their events, saved runs. Messages travel as compact
//! binary (postcard) in one transferred buffer, so model bytes and hidden
//! states cross threads without copies of their own.

use serde::{Deserialize, Serialize};

use crate::analysis::{cosine_matrix, TokenAt, WordInContext};
use crate::engine::BackendChoice;
use crate::finetune::{Metrics, TrainConfig};
use crate::mlm::MaskFill;
use crate::model::{ModelFiles, ModelIdentity};
use crate::outputs::{AttentionRequest, Outputs, Pooling};
use crate::task::{Examples, Task};
use crate::tokenize::Batch;

/// What the page shows about the loaded model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub identity: ModelIdentity,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub backend: String,
    /// Whether the engine runs on a GPU (then model runs train there too).
    pub on_gpu: bool,
    /// Whether the checkpoint has BertForMaskedLM's head (the masked word can be predicted).
    pub masked_lm: bool,
}

/// Every `[MASK]`'s predictions, seen from both sides and from one side only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskedWord {
    pub both: Vec<MaskFill>,
    pub left: Vec<MaskFill>,
    pub right: Vec<MaskFill>,
}

/// One sentence as the explorer shows it (padding removed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentenceView {
    pub text: String,
    pub tokens: Vec<String>,
    pub ids: Vec<u32>,
    pub truncated: bool,
    /// `[tokens, hidden]`, of the exploration's layer
    pub hidden_state: Vec<f32>,
    /// BERT's pooler output: of the last layer only.
    pub pooler: Option<Vec<f32>>,
    pub cls: Vec<f32>,
    pub mean: Vec<f32>,
    /// `[layers, heads, tokens, tokens]`, for the selected sentence only.
    pub attentions: Option<Vec<f32>>,
}

impl SentenceView {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn embedding(&self, pooling: Pooling) -> Option<&Vec<f32>> {
        match pooling {
            Pooling::Cls => Some(&self.cls),
            Pooling::Mean => Some(&self.mean),
            Pooling::Pooler => self.pooler.as_ref(),
        }
    }

    /// The `tokens × tokens` probabilities of one layer and head (selected sentence only).
    pub fn attention(&self, layer: usize, head: usize, heads: usize) -> Option<&[f32]> {
        let n = self.len() * self.len();
        self.attentions.as_ref().and_then(|a| a.get((layer * heads + head) * n..(layer * heads + head + 1) * n))
    }
}

/// One explorer run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    pub sentences: Vec<SentenceView>,
    /// Which sentence has its attentions.
    pub selected: usize,
    /// Sentences given beyond [`MAX_SENTENCES`], not run.
    pub left_out: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub forward_ms: f64,
    pub backend: String,
    pub max_positions: usize,
    /// Whose hidden states the sentences hold (`layers`: the last, `last_hidden_state`).
    pub layer: usize,
    /// Why an earlier layer asked for is not shown (every layer of these sentences would not fit).
    pub layer_note: Option<String>,
}

/// The most floats every layer's hidden states of one explorer batch may take
/// (128 MB): inner layers are kept for the whole batch, then all but one dropped.
pub const MAX_LAYER_FLOATS: usize = 32 << 20;

/// The most sentences one explorer run encodes; the rest wait, with a notice.
pub const MAX_SENTENCES: usize = 64;

impl Exploration {
    pub fn similarity(&self, pooling: Pooling) -> Option<Vec<f32>> {
        let v: Option<Vec<Vec<f32>>> = self.sentences.iter().map(|s| s.embedding(pooling).cloned()).collect();
        v.map(|v| cosine_matrix(&v))
    }
}

/// Why a run paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PauseReason {
    Asked,
    /// Another model was loaded; the run resumes when its model is loaded again.
    ModelChanged,
}

/// The split being encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitName {
    Train,
    Validation,
}

/// How a saved run ended, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunEnd {
    Done,
    Stopped,
    Failed,
}

/// What the runs list shows, and what resuming checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// Milliseconds since the epoch.
    pub created_ms: f64,
    pub model: ModelIdentity,
    pub config: TrainConfig,
    pub data: String,
    pub train_pairs: usize,
    /// The step of the last saved checkpoint.
    pub step: u32,
    pub total_steps: usize,
    /// The best validation score so far (runs saved before tasks: accuracy).
    #[serde(alias = "best_accuracy")]
    pub best_score: Option<f64>,
    /// What that score is: "accuracy", "entity F1", "Spearman".
    #[serde(default = "accuracy")]
    pub score_name: String,
    pub ended: Option<RunEnd>,
}

fn accuracy() -> String {
    "accuracy".into()
}

impl RunRecord {
    pub fn resumable(&self) -> bool {
        self.ended.is_none()
    }
}

/// What a run tells the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    Encoding {
        split: SplitName,
        done: usize,
        total: usize,
        per_s: f64,
    },
    /// Training begins (or continues): everything so far, to show at once.
    Training {
        record: Box<RunRecord>,
        device: String,
        losses: Vec<f32>,
        metrics: Vec<Metrics>,
    },
    /// The losses of the steps since the last event, in order (a head's steps
    /// come thousands a second: one message per step would flood the page).
    Steps {
        losses: Vec<f32>,
    },
    Epoch {
        metrics: Metrics,
    },
    Saved {
        step: u32,
        total: usize,
    },
    /// A save failed (e.g. the storage is full); the run goes on.
    NotSaved(String),
    /// `in_memory`: Resume can continue it at once (else from the saved runs).
    Paused {
        why: PauseReason,
        in_memory: bool,
    },
    /// Stopped by the user, or while encoding by a model change (the message says).
    Stopped(Option<String>),
    Done,
    Failed(String),
}

/// What the page asks a run to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub config: TrainConfig,
    pub task: Task,
    pub train: Examples,
    pub dev: Examples,
    /// Where the data came from ("GLUE MRPC (bundled)", file names).
    pub data: String,
}

/// What "Try it" says about a text, by task kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Prediction {
    /// Each label with its probability, in id order.
    Classes(Vec<(String, f32)>),
    /// A regression's number.
    Value(f32),
    /// Each word with the tag of its first WordPiece (words past
    /// max_seq_length get none), and the entities those tags make: (type, first word, last word).
    Tags { words: Vec<String>, tags: Vec<Option<String>>, entities: Vec<(String, usize, usize)> },
}

/// One file of an exported folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedFile {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// The origin's storage use and quota in bytes, where the browser tells.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub used: f64,
    pub quota: f64,
    pub persisted: bool,
}

/// A question for the engine worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Load {
        files: ModelFiles,
        backend: BackendChoice,
    },
    Explore {
        texts: Vec<String>,
        selected: usize,
        /// Whose hidden states the views show: 0 the embeddings' output, `l` layer l's; `None` the last layer's.
        layer: Option<usize>,
    },
    /// One token of the explorer's sentences across every layer (`layer`: where its nearest tokens are measured; `None` the last).
    WordInContext {
        texts: Vec<String>,
        at: TokenAt,
        layer: Option<usize>,
    },
    /// "Try it": the trained model (or head) on a text, or a pair.
    /// The top `top_k` words for every `[MASK]` of `text`, attention free and limited to each side.
    FillMask {
        text: String,
        top_k: usize,
    },
    Predict {
        text: String,
        pair: Option<String>,
        max_len: usize,
    },
    ImportHead {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The last run's head or fine-tuned model (or the imported head), as files.
    Export,
    StartRun(RunRequest),
    Pause,
    Resume,
    Stop,
    ResumeSaved {
        id: String,
    },
    ListRuns,
    DeleteRun {
        id: String,
    },
    /// Times forwards of `batch × seq` ids (as `bertlab bench` makes them) for at least `min_ms`.
    Bench {
        batch: usize,
        seq: usize,
        min_ms: f64,
        /// On the engine's own thread only (no helper workers).
        one_thread: bool,
    },
    /// To a helper worker (the engine worker asks): hold this model on the
    /// CPU path to run parts of the engine's forwards.
    LoadPart {
        files: ModelFiles,
    },
    /// To a helper worker: a forward of these rows, on `model` only.
    ForwardPart {
        model: ModelIdentity,
        batch: Batch,
        attentions: AttentionRequest,
    },
}

/// The engine worker's answer to one [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Loaded(ModelInfo),
    /// `corrupt_model`: the files themselves are at fault (worth deleting from a cache).
    Failed {
        message: String,
        corrupt_model: bool,
    },
    Explored(Exploration),
    Predicted(Prediction),
    MaskFilled(MaskedWord),
    WordInContext(WordInContext),
    HeadImported(String),
    HeadExported {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        config: String,
    },
    /// A fine-tuned model's Hugging Face folder.
    ModelExported {
        files: Vec<ExportedFile>,
    },
    Runs {
        runs: Vec<RunRecord>,
        storage: Option<Estimate>,
    },
    /// Milliseconds per forward, on `backend`.
    Benched {
        ms: f64,
        backend: String,
    },
    /// A helper's part of a forward.
    ForwardedPart(Outputs),
    Ok,
}

impl Reply {
    pub fn failed(message: impl Into<String>) -> Reply {
        Reply::Failed { message: message.into(), corrupt_model: false }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ToWorker {
    pub id: u64,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker listens: messages sent before this would be lost, so the page holds them.
    Ready,
    Reply {
        id: u64,
        reply: Reply,
    },
    Run(RunEvent),
    /// The loaded model's CPU path gained threads (its helper workers joined):
    /// the backend in words, as the banner shows it.
    Backend {
        model: ModelIdentity,
        backend: String,
    },
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(message).map_err(|e| format!("a message for the engine does not serialise: {e}"))
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("a garbled message between the page and its engine: {e}"))
}
