//! Every closed choice of the command line as a clap `ValueEnum` mapped onto the library's type,
//! and one value parser for them that lists the allowed values in `--help` and answers a bad value
//! with `unknown <what> `<value>` (expected a, b or c)` (exit 2, before anything is read).
//! Open-ended values (layers, devices, shards, `--init`) are parsed by the library's `FromStr`
//! through [`lib_parser`].

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, Command, ValueEnum};

use vggfeat::aggregate::Aggregate;
use vggfeat::metrics::ApKind;
use vggfeat::model::config::ConfigName;
use vggfeat::model::{Engine, InitScheme, Precision};
use vggfeat::preprocess::Normalization;
use vggfeat::protocol::ProtocolName;
use vggfeat::svm::{Loss, Solver};

/// What a choice is called in error messages.
pub trait Noun {
    /// `engine`, `preprocessing`, ...
    const NOUN: &'static str;
}

/// The value parser of a [`Noun`] + `ValueEnum` choice.
#[derive(Debug)]
pub struct Choice<T>(PhantomData<T>);

impl<T> Clone for Choice<T> {
    fn clone(&self) -> Self {
        Choice(PhantomData)
    }
}

impl<T> Choice<T> {
    /// The parser.
    pub fn new() -> Self {
        Choice(PhantomData)
    }
}

/// `a, b or c`.
fn or_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl<T: ValueEnum + Noun + Clone + Send + Sync + 'static> TypedValueParser for Choice<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        T::from_str(&s, true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|p| p.get_name().to_string())
                .collect();
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("unknown {} `{s}` (expected {})\n", T::NOUN, or_list(&names)),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value()),
        ))
    }
}

/// A value parser from the library's `FromStr` (whose errors are `vggfeat::Error`s): the
/// library's message, without the "invalid parameter" prefix.
pub fn lib_parser<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = vggfeat::Error>,
{
    s.parse().map_err(|e| match e {
        vggfeat::Error::InvalidParam(m) => m,
        e => e.to_string(),
    })
}

/// Declares a command-line choice: the enum, its noun, its mapping onto the library's type, its
/// display name, and `of` (the choice for a library value, to take defaults from the library).
macro_rules! choice {
    ($(#[$m:meta])* $name:ident => $lib:ty, $noun:literal {
        $($(#[$vm:meta])* $var:ident => $libvar:expr),+ $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }

        impl Noun for $name {
            const NOUN: &'static str = $noun;
        }

        impl From<$name> for $lib {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$var => $libvar),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let p = self.to_possible_value().expect("no variant is skipped");
                f.write_str(p.get_name())
            }
        }

        impl $name {
            /// The choice that maps onto `v`.
            #[allow(dead_code)]
            pub fn of(v: $lib) -> Self {
                *Self::value_variants()
                    .iter()
                    .find(|c| <$lib>::from(**c) == v)
                    .expect("every library value has a choice")
            }
        }
    };
}

choice! {
    /// `--engine`.
    EngineArg => Engine, "engine" {
        /// The fast CPU path on the CPU, candle (cuDNN) on CUDA.
        Auto => Engine::Auto,
        /// The fast CPU path: Winograd for 3x3 layers, GEMM elsewhere.
        Fast => Engine::Fast,
        /// The fast CPU path with every conv as unfold + GEMM.
        FastGemm => Engine::FastGemm,
        /// candle's own convolutions (the reference).
        Candle => Engine::Candle,
    }
}

choice! {
    /// `--precision`.
    PrecisionArg => Precision, "precision" {
        /// f32 products (the reference).
        F32 => Precision::F32,
        /// bf16 products with f32 accumulation: about twice as fast on CPUs with AVX512-BF16.
        Bf16 => Precision::Bf16,
    }
}

choice! {
    /// `--preprocess`.
    PreprocessArg => Option<Normalization>, "preprocessing" {
        /// The checkpoint's metadata, else torchvision.
        Auto => None,
        /// RGB, [0, 1], ImageNet mean and std.
        Torchvision => Some(Normalization::Torchvision),
        /// BGR, 0..255, minus the mean pixel (the original Caffe release).
        Caffe => Some(Normalization::Caffe),
    }
}

choice! {
    /// `--aggregate`.
    AggregateArg => Aggregate, "aggregation" {
        /// The L2-normalised mean of the L2-normalised per-scale descriptors.
        #[value(alias = "average", alias = "mean")]
        Avg => Aggregate::Avg,
        /// Their L2-normalised concatenation.
        #[value(alias = "concat")]
        Stack => Aggregate::Stack,
    }
}

choice! {
    /// `--solver`.
    SolverArg => Solver, "solver" {
        /// liblinear's dual coordinate descent.
        Dcd => Solver::Dcd,
        /// linfa-svm's SMO (small problems; a cross-check).
        #[value(alias = "linfa-svm")]
        Linfa => Solver::LinfaSvm,
    }
}

choice! {
    /// `--loss`.
    LossArg => Loss, "loss" {
        /// L2-loss (liblinear's default).
        #[value(alias = "l2")]
        SquaredHinge => Loss::SquaredHinge,
        /// L1-loss.
        #[value(alias = "l1")]
        Hinge => Loss::Hinge,
    }
}

choice! {
    /// `--ap`.
    ApArg => ApKind, "AP kind" {
        /// VOC 2007's 11-point interpolated AP.
        #[value(alias = "11point")]
        Voc07 => ApKind::Voc07,
        /// The area under the interpolated curve (VOC 2010+).
        Area => ApKind::Area,
    }
}

choice! {
    /// `--config`.
    ConfigArg => ConfigName, "VGG configuration" {
        /// 11 weight layers.
        #[value(name = "A", alias = "vgg11")]
        A => ConfigName::A,
        /// A with LRN.
        #[value(name = "A-LRN", alias = "alrn", alias = "a_lrn")]
        ALrn => ConfigName::ALrn,
        /// 13 weight layers.
        #[value(name = "B", alias = "vgg13")]
        B => ConfigName::B,
        /// 16 weight layers, 1x1 convs in blocks 3-5.
        #[value(name = "C")]
        C => ConfigName::C,
        /// 16 weight layers (VGG-16).
        #[value(name = "D", alias = "vgg16")]
        D => ConfigName::D,
        /// 19 weight layers (VGG-19).
        #[value(name = "E", alias = "vgg19")]
        E => ConfigName::E,
    }
}

choice! {
    /// `--init-scheme`.
    InitSchemeArg => InitScheme, "init scheme" {
        /// N(0, 0.01^2), the paper's.
        Paper => InitScheme::Paper,
        /// Glorot / Xavier uniform.
        #[value(alias = "xavier")]
        Glorot => InitScheme::Glorot,
        /// He / Kaiming normal, fan-in.
        #[value(alias = "kaiming")]
        He => InitScheme::He,
        /// torchvision's: He fan-out convs, N(0, 0.01^2) fc layers.
        Torchvision => InitScheme::Torchvision,
    }
}

choice! {
    /// `svm --protocol`.
    ProtocolArg => ProtocolName, "protocol" {
        /// Random per-class splits, mean class recall.
        Caltech => ProtocolName::Caltech,
        /// A VOC devkit's image sets, AP and mAP.
        Voc => ProtocolName::Voc,
    }
}

choice! {
    /// `weights fetch NAME`.
    PretrainedArg => &'static str, "pretrained network" {
        /// timm's vgg16.tv_in1k (torchvision's ImageNet VGG-16).
        #[value(alias = "D")]
        Vgg16 => "vgg16",
        /// timm's vgg19.tv_in1k.
        #[value(alias = "E")]
        Vgg19 => "vgg19",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mappings_agree_with_the_library() {
        assert_eq!(EngineArg::of(Engine::default()), EngineArg::Auto);
        assert_eq!(Engine::from(EngineArg::FastGemm), Engine::FastGemm);
        assert_eq!(EngineArg::FastGemm.to_string(), "fast-gemm");
        assert_eq!(ConfigArg::ALrn.to_string(), "A-LRN");
        assert_eq!(ConfigArg::from_str("vgg16", true).unwrap(), ConfigArg::D);
        assert_eq!(or_list(&["a".into(), "b".into(), "c".into()]), "a, b or c");
    }
}
