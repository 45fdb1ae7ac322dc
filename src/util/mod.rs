//! Plumbing that every layer of the crate uses and that belongs to no paper concept: atomic file
//! writes (`atomic`), the progress observer (`progress`), closed choices with one spelling
//! (`choice`), the one normal sampler (`rng`), float32 tensors for safetensors writers
//! (`f32_view`), and subnormals flushed to zero while training runs (`subnormals`).

pub(crate) mod atomic;
pub mod choice;
pub(crate) mod f32_view;
pub mod progress;
pub(crate) mod rng;
pub mod subnormals;

pub(crate) use atomic::{AtomicFile, read_json, write_atomic, write_json};
pub use choice::Choice;
pub(crate) use f32_view::F32View;
pub use subnormals::FlushSubnormals;

/// Implements serde's traits for a type through its `Display` and `FromStr` (the manifest and
/// `params.json` spell layers and devices as the user does).
macro_rules! serde_as_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub use progress::{Progress, Silent};
pub(crate) use serde_as_str;
