//! Shared by the integration tests: the GPU, the fixtures, comparisons.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

#[cfg(not(target_arch = "wasm32"))]
use bertlab::gpu::GpuContext;
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny-bert")
}

/// The default model, fetched by `.ci/setup`; its absence is a failure, not a skip.
pub fn minilm_dir() -> PathBuf {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "the default model is missing: run `bash .ci/setup` (it fetches it into {})",
        dir.display()
    );
    dir
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A GPU context; without an adapter this fails (install Mesa's lavapipe: `.ci/setup`).
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> GpuContext {
    pollster::block_on(GpuContext::new())
        .unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter; `bash .ci/setup` installs Mesa's lavapipe"))
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

pub fn u32s_2d(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32)).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let err = max_abs_diff(got, want);
    assert!(err <= tol, "{what}: max abs error {err:e} > {tol:e}");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite values");
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}
