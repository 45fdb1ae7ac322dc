//! The library's one error type. Every failure names the file (and, for checkpoints, the tensor)
//! it is about, so that a user can act on it without a backtrace.

use std::path::PathBuf;

pub use crate::param::Param;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file could not be parsed (truncated, corrupt, unknown format).
    #[error("{}: cannot read checkpoint: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint parsed but does not describe a VGG network we know.
    #[error("{}: not a VGG checkpoint: {reason}", path.display())]
    NotVgg {
        /// The checkpoint file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor the configuration needs is missing from the checkpoint.
    #[error("{}: missing tensor `{key}` ({context})", path.display())]
    MissingKey {
        /// The checkpoint file.
        path: PathBuf,
        /// The missing tensor name.
        key: String,
        /// What the tensor was needed for.
        context: String,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor `{key}` has shape {found:?}, expected {expected}", path.display())]
    Shape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The expected shape, in words (some dimensions may be free).
        expected: String,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// An image could not be decoded or used.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// A parameter is malformed or out of its valid range, or does not fit the data it is
    /// about (a scale below the network's smallest input): a usage error naming the parameter.
    /// The CLI names the flag, the Python binding the keyword.
    #[error("invalid {param}: {reason}")]
    Param {
        /// The parameter.
        param: Param,
        /// What is wrong with its value.
        reason: String,
    },
    /// A request does not fit the data it is about, in a way no single parameter explains (two
    /// stores that share an image, splits without training images): a usage error.
    #[error("{0}")]
    Usage(String),
    /// A requested device or feature is not available in this build.
    #[error("{0}")]
    Unsupported(String),
    /// A data file (feature store, split list, dataset) is inconsistent.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A training run diverged: its loss became infinite or NaN.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A solver could not produce a model (e.g. linfa-svm failed on a problem).
    #[error("solver failed: {0}")]
    Solver(String),
    /// A worker thread of a pipeline stopped before it delivered its work (it panicked or was
    /// killed); the run cannot go on.
    #[error("{0}")]
    Worker(String),
    /// An internal invariant did not hold: a bug in vggfeat, to be reported.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// An error from linfa's base crate (needed by linfa's `Fit` trait, whose error type must
    /// convert from it).
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
    /// An error from candle's tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is a usage error ([`Error::Param`], [`Error::Usage`]): the request, not
    /// the data or the machine, is at fault. The CLI exits 2 for these and 3 for everything else.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Param { .. } | Error::Usage(_))
    }

    /// An [`Error::Param`] about `param`.
    pub fn param(param: Param, reason: impl Into<String>) -> Self {
        Error::Param {
            param,
            reason: reason.into(),
        }
    }

    /// An [`Error::Usage`].
    pub fn usage(reason: impl Into<String>) -> Self {
        Error::Usage(reason.into())
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
