//! Shared helpers for the integration tests: paths to `../shared`, reference loading, and the
//! tolerance checks of `../shared/fixtures/PROTOCOL.md`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// `../shared` beside the checkout (CI has it there). Panics if absent: these tests must not pass
/// vacuously.
pub fn shared() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.join("fixtures").is_dir(),
        "{} not found: the fixtures must be beside the checkout",
        p.display()
    );
    p
}

pub fn tiny() -> PathBuf {
    shared().join("fixtures/vgg-d-tiny")
}

pub fn hed_fixture() -> PathBuf {
    shared().join("fixtures/vgg16-conv-hed")
}

pub fn hed_weights() -> PathBuf {
    shared().join("weights/vgg16-conv-hed/vgg16_conv_hed.safetensors")
}

pub fn reference(dir: &std::path::Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap()
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// PROTOCOL.md's network tolerance: max |a - b| <= 1e-4 * max(1, max |b|). Returns the ratio of
/// the error to the allowed error (must be <= 1).
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let (a, b) = (to_vec(a), to_vec(b));
    let maxb = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let tol = 1e-4 * maxb.max(1.0);
    assert!(err <= tol, "{what}: max abs error {err:e} > {tol:e}");
    err / tol
}

/// PROTOCOL.md's end-to-end tolerance: ||a - b|| / ||b|| <= limit. Returns the relative error.
pub fn assert_rel_l2(what: &str, a: &[f32], b: &[f32], limit: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let num: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt();
    let den: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
    let rel = num / den.max(1e-12);
    assert!(rel <= limit, "{what}: relative L2 error {rel} > {limit}");
    rel
}
