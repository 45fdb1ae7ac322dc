//! Random initialisation of a VGG network (a training concern: `vggfeat train --init scratch`,
//! and random nets for benchmarks and tests). Deterministic for a seed: one ChaCha8 stream,
//! layers drawn in network order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};

use super::config::{ConfigName, FC6_KERNEL, LayerName};
use super::params::{ConvParams, Format, Naming, VggWeights};
use super::plan::{HeadShape, Plan};
use crate::error::{Error, Result};
use crate::util::rng::normal;

/// How [`VggWeights::random`] draws weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitScheme {
    /// The paper's: weights from N(0, 0.01^2), zero biases.
    Paper,
    /// Glorot / Xavier uniform (Glorot & Bengio 2010), zero biases.
    Glorot,
    /// He / Kaiming normal (fan-in, ReLU), zero biases: trains deep nets from scratch without
    /// the paper's staged initialisation.
    He,
    /// torchvision's `VGG._initialize_weights`: convs He / Kaiming normal with fan-out, the fc
    /// layers N(0, 0.01^2) (the paper's), zero biases. Suits full-width networks; in narrow
    /// ones (`width_div` > 1) the 0.01 fc layers shrink the signal by ~4x each and training
    /// stalls, so use [`InitScheme::He`] there.
    Torchvision,
}

crate::util::choice::choice!(InitScheme, "init scheme", crate::error::Param::InitScheme, [
    InitScheme::Paper => "paper": "N(0, 0.01^2), the paper's.",
    InitScheme::Glorot => "glorot" | "xavier": "Glorot / Xavier uniform.",
    InitScheme::He => "he" | "kaiming": "He / Kaiming normal, fan-in.",
    InitScheme::Torchvision => "torchvision": "torchvision's: He fan-out convs, N(0, 0.01^2) fc layers.",
]);

impl VggWeights {
    /// Randomly initialised weights for `config` with channel widths divided by `width_div`
    /// (1 = ImageNet widths), fc width `fc_width` (None = no head) and `classes` outputs, fc6
    /// 7x7 as in the ImageNet networks. Deterministic for a seed.
    pub fn random(
        config: ConfigName,
        width_div: usize,
        fc_width: Option<usize>,
        classes: usize,
        scheme: InitScheme,
        seed: u64,
    ) -> Result<Self> {
        Self::random_with_fc6(
            config, width_div, fc_width, FC6_KERNEL, classes, scheme, seed,
        )
    }

    /// [`VggWeights::random`] with fc6 a `fc6_kernel` x `fc6_kernel` conv (at least 1): the
    /// head of a network trained at crop `32 * fc6_kernel`. The draws are in layer order, so
    /// the conv body is the same as [`VggWeights::random`]'s for the same seed.
    pub fn random_with_fc6(
        config: ConfigName,
        width_div: usize,
        fc_width: Option<usize>,
        fc6_kernel: usize,
        classes: usize,
        scheme: InitScheme,
        seed: u64,
    ) -> Result<Self> {
        if fc6_kernel == 0 {
            return Err(Error::Usage("fc6 kernel must be at least 1".into()));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut layer = |name: LayerName, shape: [usize; 4], fc: bool| -> Result<ConvParams> {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape[1..].iter().product();
            let fan_out = shape[0] * shape[2..].iter().product::<usize>();
            let v: Vec<f32> = match scheme {
                InitScheme::Paper => (0..n).map(|_| normal(&mut rng) * 0.01).collect(),
                InitScheme::Torchvision if fc => (0..n).map(|_| normal(&mut rng) * 0.01).collect(),
                InitScheme::Torchvision => {
                    let s = (2.0 / fan_out as f32).sqrt();
                    (0..n).map(|_| normal(&mut rng) * s).collect()
                }
                InitScheme::He => {
                    let s = (2.0 / fan_in as f32).sqrt();
                    (0..n).map(|_| normal(&mut rng) * s).collect()
                }
                InitScheme::Glorot => {
                    let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                    (0..n).map(|_| rng.gen_range(-a..a)).collect()
                }
            };
            Ok(ConvParams {
                name,
                weight: Tensor::from_vec(v, &shape, &Device::Cpu)?,
                bias: Tensor::zeros(shape[0], DType::F32, &Device::Cpu)?,
            })
        };
        let div = width_div.max(1);
        let head = fc_width.map(|width| HeadShape {
            width,
            fc6_kernel,
            classes,
        });
        let plan = Plan::for_config(config, div, head);
        let mut layers = Vec::new();
        let mut c_in = 3;
        for (step, kernel) in plan.conv_layers() {
            let shape = [step.channels, c_in, kernel, kernel];
            layers.push(layer(step.name, shape, step.is_head())?);
            c_in = step.channels;
        }
        let (convs, head) = VggWeights::split_layers(layers);
        Ok(VggWeights {
            path: PathBuf::from(format!("<random {config} /{div} seed {seed}>")),
            format: Format::Memory,
            naming: if head.is_some() {
                Naming::Torchvision
            } else {
                Naming::BodyOnly
            },
            dtype_on_disk: DType::F32,
            config,
            batch_norm: false,
            convs,
            head,
            metadata: BTreeMap::new(),
        })
    }
}
