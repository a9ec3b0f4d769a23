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
    /// A file could not be read or written.
    Io(String),
    /// A saved file of ours (head, checkpoint, cached features, saved run) is
    /// unreadable, or not the one expected.
    File(String),
    /// The browser's storage refused a write (quota full, storage disabled).
    Storage(String),
}

impl Error {
    /// The message without the kind, for sentences of the caller's own.
    pub fn message(&self) -> &str {
        match self {
            Error::Config(m)
            | Error::Weights(m)
            | Error::Tokenizer(m)
            | Error::Input(m)
            | Error::Gpu(m)
            | Error::DeviceLost(m)
            | Error::Io(m)
            | Error::File(m)
            | Error::Storage(m) => m,
        }
    }

    /// The model's own files are at fault (as opposed to the device, the
    /// input or the browser): only then is a cached copy worth deleting.
    pub fn is_corrupt_model(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Weights(_) | Error::Tokenizer(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Input echoed into a message, quoted and cut to its first 40 characters
/// (a 10 MB string in a config file must not become a 10 MB error line).
pub fn quoted(s: &str) -> String {
    match cut_at(s, 40) {
        None => format!("{s:?}"),
        Some(cut) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// A message from elsewhere (a parser's, which may quote the input) cut to 200 characters.
pub fn clipped(s: &str) -> String {
    match cut_at(s, 200) {
        None => s.to_string(),
        Some(cut) => format!("{}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// The byte offset of character `chars`, if `s` is longer.
fn cut_at(s: &str, chars: usize) -> Option<usize> {
    s.char_indices().nth(chars).map(|(at, _)| at)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Error::Config(_) => "config",
            Error::Weights(_) => "weights",
            Error::Tokenizer(_) => "tokenizer",
            Error::Input(_) => "input",
            Error::Gpu(_) => "gpu",
            Error::DeviceLost(_) => "device lost",
            Error::Io(_) => "io",
            Error::File(_) => "file",
            Error::Storage(_) => "storage",
        };
        write!(f, "{kind} error: {}", self.message())
    }
}

impl std::error::Error for Error {}
