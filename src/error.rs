//! One error type for the whole engine: every message is a single line that
//! names the file, tensor or input at fault, so the CLI and the page can show
//! it as is.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// config.json is missing, not JSON, or describes an impossible model.
    Config(String),
    /// model.safetensors is corrupt, truncated, or disagrees with the config.
    Weights(String),
    /// tokenizer.json / vocab.txt is missing or unusable.
    Tokenizer(String),
    /// The text or batch given to the model cannot be run (empty, bad ids...).
    Input(String),
    /// The GPU path failed: no adapter, a limit too small, a lost device.
    Gpu(String),
    /// The GPU device was lost (driver reset, browser reclaimed it); a new one can be opened.
    DeviceLost(String),
    /// A file could not be read.
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, msg) = match self {
            Error::Config(m) => ("config", m),
            Error::Weights(m) => ("weights", m),
            Error::Tokenizer(m) => ("tokenizer", m),
            Error::Input(m) => ("input", m),
            Error::Gpu(m) => ("gpu", m),
            Error::DeviceLost(m) => ("device lost", m),
            Error::Io(m) => ("io", m),
        };
        write!(f, "{kind} error: {msg}")
    }
}

impl std::error::Error for Error {}
