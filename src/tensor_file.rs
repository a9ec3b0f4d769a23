//! Named f32 tensors with string metadata in one safetensors file: the one
//! format for exported heads, training checkpoints, cached features and saved
//! runs. Model weights are decoded through [`to_f32`] too (they may also be
//! stored as f16 or bf16).

use std::collections::HashMap;
use std::str::FromStr;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{clipped, quoted, Error, Result};

/// Tensors and metadata on their way to bytes.
#[derive(Default)]
pub struct TensorWriter {
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl TensorWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data` under `name` with `shape` (whose product must be `data.len()`).
    pub fn tensor(&mut self, name: impl Into<String>, shape: &[usize], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.push((name.into(), shape.to_vec(), bytes));
        self
    }

    pub fn meta(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let views = self
            .tensors
            .iter()
            .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.as_str(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::File(format!("cannot write tensors: {e}")))?;
        safetensors::serialize(views, Some(self.metadata.clone())).map_err(|e| Error::File(format!("cannot write tensors: {e}")))
    }
}

/// A safetensors file read back; every error names `what` the file is.
pub struct TensorReader<'a> {
    st: SafeTensors<'a>,
    metadata: HashMap<String, String>,
    what: &'static str,
}

impl<'a> TensorReader<'a> {
    pub fn parse(bytes: &'a [u8], what: &'static str) -> Result<Self> {
        let corrupt = |e: safetensors::SafeTensorError| Error::File(format!("{what}: corrupt or truncated ({})", clipped(&e.to_string())));
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
        Ok(TensorReader { st, metadata, what })
    }

    pub fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::File(format!("{}: {msg}", self.what))
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn require(&self, key: &str) -> Result<&str> {
        self.meta(key).ok_or_else(|| self.error(format!("no `{key}` in its metadata")))
    }

    /// A metadata value parsed as `T`.
    pub fn parse_meta<T: FromStr>(&self, key: &str) -> Result<T> {
        let v = self.require(key)?;
        v.parse().map_err(|_| self.error(format!("`{key}` = {} is not valid", quoted(v))))
    }

    /// A metadata value holding JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_str(self.require(key)?).map_err(|e| self.error(format!("`{key}`: {}", clipped(&e.to_string()))))
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.st.names();
        names.sort_unstable();
        names
    }

    pub fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// The f32 tensor `name` with its shape.
    pub fn f32_with_shape(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.st.tensor(name).map_err(|_| self.error(format!("missing tensor `{name}`")))?;
        if t.dtype() != Dtype::F32 {
            return Err(self.error(format!("`{name}` is {:?}, expected F32", t.dtype())));
        }
        Ok((t.shape().to_vec(), f32_values(t.data())))
    }

    /// The f32 tensor `name`, which must have `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (s, v) = self.f32_with_shape(name)?;
        if s != shape {
            return Err(self.error(format!("`{name}` has shape {s:?}, expected {shape:?}")));
        }
        Ok(v)
    }
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// A tensor's values as f32, from f32, f16 or bf16; `None` for other dtypes.
pub fn to_f32(view: &TensorView) -> Option<Vec<f32>> {
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => Some(f32_values(data)),
        Dtype::F16 => Some(data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        Dtype::BF16 => Some(data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_tensors_and_metadata_and_checks_shapes() {
        let mut w = TensorWriter::new();
        w.tensor("a", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).tensor("b", &[1], &[f32::MIN_POSITIVE]).meta("k", "7");
        let bytes = w.to_bytes().unwrap();
        let r = TensorReader::parse(&bytes, "test file").unwrap();
        assert_eq!(r.f32("a", &[2, 3]).unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!(r.f32("b", &[1]).unwrap(), [f32::MIN_POSITIVE]);
        assert_eq!(r.parse_meta::<u32>("k").unwrap(), 7);
        assert_eq!(r.names(), ["a", "b"]);
        let e = r.f32("a", &[3, 2]).unwrap_err().to_string();
        assert!(e.contains("test file: `a` has shape [2, 3], expected [3, 2]"), "{e}");
        assert!(r.f32("c", &[1]).unwrap_err().to_string().contains("missing tensor `c`"));
        assert!(r.require("nope").unwrap_err().to_string().contains("no `nope`"));
        let e = TensorReader::parse(&bytes[..bytes.len() - 3], "test file").err().unwrap().to_string();
        assert!(e.contains("test file: corrupt or truncated"), "{e}");
    }

    #[test]
    fn a_shape_that_disagrees_with_the_data_is_an_error_not_a_panic() {
        let mut w = TensorWriter::new();
        w.tensor("a", &[5], &[1.0]);
        assert!(w.to_bytes().is_err());
    }
}
