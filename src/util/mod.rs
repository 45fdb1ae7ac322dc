//! Plumbing that every layer of the crate uses and that belongs to no paper concept: atomic file
//! writes ([`atomic`]), progress reporting on a terminal or in a log ([`progress`]), and the one
//! normal sampler ([`rng`]), and float32 tensors for safetensors writers ([`f32_view`]).

pub mod atomic;
pub mod f32_view;
pub mod progress;
pub mod rng;

pub use atomic::{AtomicFile, read_json, write_atomic, write_json};
pub use f32_view::F32View;
pub use progress::Progress;
