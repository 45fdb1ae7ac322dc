//! The one standard normal sampler of the crate (random initialisation, colour augmentation).

/// A standard normal draw by Box-Muller, one draw per call (so a stream is consumed at a fixed
/// rate: two uniforms per normal).
pub fn normal(rng: &mut impl rand::Rng) -> f32 {
    let u1: f64 = rng.r#gen::<f64>().max(1e-300);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
