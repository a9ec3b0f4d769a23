//! Bert Lab: BERT on our own WGSL kernels, natively and in the browser.
//!
//! Data flows one way: bytes ([`model::ModelFiles`]) → weights and tokenizer
//! ([`model::Model`]) → [`engine::Engine`] (GPU or CPU) → [`outputs::Outputs`].

pub mod analysis;
pub mod config;
pub mod cpu_encoder;
pub mod engine;
pub mod error;
pub mod finetune;
pub mod glue;
pub mod gpu;
pub mod gpu_encoder;
pub mod head;
pub mod kernels;
pub mod model;
pub mod outputs;
pub mod tokenize;
pub mod weights;

pub use engine::{BackendChoice, Engine};
pub use error::{Error, Result};
pub use model::{Model, ModelFiles};
pub use outputs::{Outputs, Pooling};
pub use tokenize::{Batch, Input};
