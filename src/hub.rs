//! Pretrained ImageNet weights for users who are online: timm's `vgg16.tv_in1k` and
//! `vgg19.tv_in1k` (torchvision's weights in safetensors, timm names) from the Hugging Face hub.
//! Offline, or in a build without the `fetch` feature, it fails fast with where to download the
//! file by hand.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A downloadable pretrained network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pretrained {
    /// Short name (`vgg16`, `vgg19`).
    pub name: &'static str,
    /// Hugging Face repository.
    pub repo: &'static str,
    /// File in the repository.
    pub file: &'static str,
    /// torchvision's own `.pth` of the same weights (also loadable).
    pub torchvision_url: &'static str,
}

/// A pretrained network by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PretrainedName {
    /// VGG-16 (configuration D).
    Vgg16,
    /// VGG-19 (configuration E).
    Vgg19,
}

crate::util::choice::choice!(PretrainedName, "pretrained network", crate::error::Param::Weights, [
    PretrainedName::Vgg16 => "vgg16" | "D" | "vgg-16": "timm's vgg16.tv_in1k (torchvision's ImageNet VGG-16).",
    PretrainedName::Vgg19 => "vgg19" | "E" | "vgg-19": "timm's vgg19.tv_in1k.",
]);

/// The networks `vggfeat weights fetch` knows.
pub const PRETRAINED: [Pretrained; 2] = [
    Pretrained {
        name: "vgg16",
        repo: "timm/vgg16.tv_in1k",
        file: "model.safetensors",
        torchvision_url: "https://download.pytorch.org/models/vgg16-397923af.pth",
    },
    Pretrained {
        name: "vgg19",
        repo: "timm/vgg19.tv_in1k",
        file: "model.safetensors",
        torchvision_url: "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    },
];

impl Pretrained {
    /// Looks a network up by name (`vgg16`, `vgg19`, or `D` / `E`).
    pub fn find(name: &str) -> Result<Self> {
        Ok(Self::of(name.parse()?))
    }

    /// The download of a network.
    pub fn of(name: PretrainedName) -> Self {
        let n = name.to_string();
        PRETRAINED
            .iter()
            .copied()
            .find(|p| p.name == n)
            .expect("every name has a download")
    }

    /// The direct download address of the safetensors file.
    pub fn url(&self) -> String {
        format!(
            "https://huggingface.co/{}/resolve/main/{}",
            self.repo, self.file
        )
    }

    fn manual_hint(&self) -> String {
        format!(
            "download it by hand from {} (or torchvision's {}) and give the file as the weights",
            self.url(),
            self.torchvision_url
        )
    }

    /// Downloads the file into the Hugging Face cache (or returns the cached copy) and returns
    /// its local path.
    #[cfg(feature = "fetch")]
    pub fn fetch(&self) -> Result<PathBuf> {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(true)
            .with_retries(0)
            .build()
            .map_err(|e| Error::Unsupported(format!("cannot start the download client: {e}")))?;
        api.model(self.repo.to_string())
            .get(self.file)
            .map_err(|e| {
                Error::Unsupported(format!(
                    "could not download {} from the Hugging Face hub ({e}); {}",
                    self.repo,
                    self.manual_hint()
                ))
            })
    }

    /// Without the `fetch` feature: always an error saying where to get the file.
    #[cfg(not(feature = "fetch"))]
    pub fn fetch(&self) -> Result<PathBuf> {
        Err(Error::Unsupported(format!(
            "this vggfeat was built without the `fetch` feature; {}",
            self.manual_hint()
        )))
    }
}
