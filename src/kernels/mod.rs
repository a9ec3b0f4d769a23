//! The compute kernels. Each module holds, side by side, the plain CPU
//! reference of one operation and the launcher of its WGSL shader in
//! `shaders/`; `tests/kernels.rs`, `tests/backward_kernels.rs` and
//! `tests/training.rs` hold one against the other. (The fast CPU path is
//! `fast_cpu`, tested against these references.)

pub mod adamw;
pub mod attention;
pub mod cls_gradient;
pub mod cross_entropy;
pub mod dropout;
pub mod embeddings;
pub mod layernorm;
pub mod linear;
pub mod matmul;
pub mod relu_backward;
pub mod squared_error;
pub mod sum_squares;

/// Workgroup-wide sum and max (shaders/workgroup_reduce.wgsl), prepended to
/// the shaders that reduce across a workgroup; each defines its own `WG`.
pub const WORKGROUP_REDUCE_WGSL: &str = include_str!("../../shaders/workgroup_reduce.wgsl");
