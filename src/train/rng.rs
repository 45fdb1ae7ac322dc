//! The random streams of training: every random draw comes from a ChaCha8 stream whose seed is
//! derived from the run's seed, a purpose and two indices (see [`super`]'s docs), so the seed and
//! the epoch counter are the whole generator state.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A seeded ChaCha8 stream for `purpose` and two indices (see the module docs).
pub fn stream(seed: u64, purpose: &str, a: u64, b: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"vggfeat-train");
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(seed.to_le_bytes());
    h.update(a.to_le_bytes());
    h.update(b.to_le_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    ChaCha8Rng::from_seed(out)
}

/// How the streams are derived, recorded in `state.json` for the reader.
pub const RNG_NOTE: &str = "ChaCha8 streams seeded by SHA-256(\"vggfeat-train\", purpose, seed, \
                        epoch, index): the seed and the epoch counter are the whole state";
