//! The one standard normal sampler of the crate (random initialisation, colour augmentation):
//! `rand_distr`'s ziggurat sampler.

use rand_distr::Distribution;

/// A standard normal draw (f64 precision, returned as f32).
pub fn normal(rng: &mut impl rand::Rng) -> f32 {
    let x: f64 = rand_distr::StandardNormal.sample(rng);
    x as f32
}
