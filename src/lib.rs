//! Bert Lab: BERT on our own WGSL kernels, natively and in the browser.
//!
//! Data flows one way: bytes ([`model::ModelFiles`]) → weights and tokenizer
//! ([`model::Model`]) → [`engine::Engine`] (GPU or CPU) → [`outputs::Outputs`].

// The CPU references index arrays the way the math is written (llm.c style),
// and kernel launchers take their buffers one by one: both are deliberate.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod analysis;
#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod charts;
pub mod classifier;
pub mod compare;
pub mod config;
pub mod cpu_encoder;
#[cfg(not(target_arch = "wasm32"))]
pub mod disk;
pub mod engine;
pub mod error;
pub mod explain;
pub mod fast_cpu;
pub mod finetune;
pub mod glue;
pub mod gpu;
pub mod gpu_encoder;
pub mod head;
pub mod kernels;
pub mod mlm;
pub mod model;
pub mod outputs;
pub mod protocol;
pub mod rng;
pub mod task;
pub mod tensor_file;
pub mod tokenize;
pub mod weights;
pub mod wgsl;

pub use engine::{BackendChoice, BackendInfo, EmbedOptions, Engine};
pub use error::{Error, Result};
pub use model::{Model, ModelFiles, ModelIdentity};
pub use outputs::{AttentionRequest, Keep, Outputs, Pooling};
pub use tokenize::{Batch, Input};
