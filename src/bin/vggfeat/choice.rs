//! Values of the command line parsed by the library's own spellings: every closed choice through
//! [`Choice`] (the library's [`vggfeat::Choice`] table: names, aliases and help listed in
//! `--help`, a bad value answered with `unknown <what> `<value>` (expected a, b or c)` and exit 2
//! before anything is read), open-ended values (layers, devices, shards, `--init`) through the
//! library's `FromStr` ([`lib_parser`]). And the one map from the library's parameters to the
//! flags that set them ([`flag`]).

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, Command};

use vggfeat::Param;

/// The value parser of a library choice.
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

impl<T: vggfeat::Choice + Send + Sync> TypedValueParser for Choice<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        vggfeat::util::choice::parse::<T>(&s).map_err(|_| {
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("{}\n", vggfeat::util::choice::unknown::<T>(&s)),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(T::all().iter().map(|v| {
            PossibleValue::new(v.name())
                .aliases(v.aliases().iter().copied())
                .help(v.help())
        })))
    }
}

/// A value parser from the library's `FromStr` (whose errors are `vggfeat::Error`s): the
/// library's reason, without the parameter's name (clap names the flag).
pub fn lib_parser<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = vggfeat::Error>,
{
    s.parse().map_err(|e| match e {
        vggfeat::Error::Param { reason, .. } => reason,
        e => e.to_string(),
    })
}

/// The flag (or argument) of `command` that sets `param`.
pub fn flag(command: &str, param: Param) -> String {
    let fixed = match (command, param) {
        ("classify", Param::Scales) => "--scale",
        ("classify", Param::Images) => "IMAGE",
        ("classify", Param::Dense) => "--dense/--crops",
        ("extract", Param::VocSplit) => "--split",
        ("extract", Param::Inputs) => "INPUT",
        ("export", Param::Store) => "STORE",
        ("export", Param::Format) => "--csv/--npy/--parquet/--npy-shards",
        ("merge", Param::Inputs) => "STORES",
        ("neighbours", Param::Ids) => "--ids/--ids-file/--query",
        ("neighbours", Param::Images) => "--query",
        ("neighbours", Param::Store) => "--features",
        ("neighbours", Param::K) => "-k",
        ("neighbours", Param::ExcludeSelf) => "--include-self",
        ("index", Param::Store) => "--features",
        ("index", Param::K) => "--recall-k",
        ("reproduce", Param::Weights) => "--weights-d/--weights-e",
        ("reproduce", Param::Benchmarks) => "--voc2007/--voc2012/--caltech101/--caltech256",
        ("svm", Param::Devkit) => "--voc",
        ("svm" | "train", Param::DropClasses) => "--drop-class",
        ("train", Param::Data) => "DATA",
        ("train", Param::TrainScale) => "--scale",
        ("train" | "localise", Param::VocSplit) => "--split",
        ("localise", Param::Localisers) => "--loc",
        ("localise", Param::Inputs) => "INPUT",
        ("localise", Param::Weights) => "-w/--weights",
        ("localise", Param::Flip) => "--no-flip",
        (_, Param::Features) => "--features",
        _ => return format!("--{}", param.name().replace('_', "-")),
    };
    fixed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_of_parameters() {
        assert_eq!(flag("extract", Param::DecodeThreads), "--decode-threads");
        assert_eq!(flag("classify", Param::Scales), "--scale");
        assert_eq!(flag("extract", Param::Scales), "--scales");
        assert_eq!(flag("train", Param::TrainScale), "--scale");
    }
}
