//! Every parameter of the library's jobs by name ([`Param`]), so that an error about one
//! ([`crate::Error::Param`]) says which without knowing who asked: the command line maps a
//! [`Param`] to its flag, the Python binding to its keyword. [`Param::name`] is the library's
//! own spelling (snake_case, the Python keyword).

/// Declares [`Param`]: each variant with its snake_case name.
macro_rules! params {
    ($($(#[$m:meta])* $var:ident => $name:literal,)+) => {
        /// A parameter of one of the library's jobs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Param {
            $($(#[$m])* $var,)+
        }

        impl Param {
            /// Every parameter.
            pub const ALL: &'static [Param] = &[$(Param::$var,)+];

            /// The library's name of the parameter (snake_case, as the Python keyword).
            pub fn name(self) -> &'static str {
                match self {
                    $(Param::$var => $name,)+
                }
            }
        }
    };
}

params! {
    // Networks and how they see images (describe, extract, classify).
    /// Checkpoint file(s).
    Weights => "weights",
    /// Descriptor layer.
    Layer => "layer",
    /// Scales Q.
    Scales => "scales",
    /// Averaging with the horizontal flip.
    Flip => "flip",
    /// Input convention.
    Preprocess => "preprocess",
    /// Arithmetic of the products.
    Precision => "precision",
    /// Implementation that runs the network.
    Engine => "engine",
    /// Device.
    Device => "device",
    /// Inputs per forward pass.
    Batch => "batch",
    /// Largest accepted image in pixels.
    MaxPixels => "max_pixels",
    /// Decoding threads.
    DecodeThreads => "decode_threads",
    /// Decoded images waiting for the network.
    Queue => "queue",
    /// Compute threads.
    Threads => "threads",
    /// Scale aggregation.
    Aggregate => "aggregate",
    /// Which nets of a store.
    Nets => "nets",
    /// Images to describe.
    Images => "images",
    // Extraction into a store.
    /// Input folders, devkits, lists, tables or tar shards.
    Inputs => "inputs",
    /// Output folder or file.
    Out => "out",
    /// Root of a table's relative paths.
    Root => "root",
    /// VOC image set of a devkit input.
    VocSplit => "voc_split",
    /// Classes to keep.
    Classes => "classes",
    /// Images per class at most.
    LimitPerClass => "limit_per_class",
    /// Shard of the inputs.
    Shard => "shard",
    /// Images per store chunk.
    Chunk => "chunk",
    // Export.
    /// A feature store.
    Store => "store",
    /// Output format.
    Format => "format",
    /// Rows per output shard.
    Rows => "rows",
    /// Raw (per net and scale) descriptors.
    Raw => "raw",
    // Neighbours.
    /// Store ids to query with.
    Ids => "ids",
    /// Neighbours per query.
    K => "k",
    /// Whether a query by id leaves its own record out.
    ExcludeSelf => "exclude_self",
    /// Store rows per matrix product.
    Block => "block",
    /// Side of the page's thumbnails.
    Thumbnail => "thumbnail",
    /// Approximate index folder.
    Index => "index",
    /// Search expansion of an approximate index.
    Expansion => "expansion",
    /// Candidate list of an approximate index while adding.
    ExpansionAdd => "expansion_add",
    /// Edges per node of an approximate index.
    Connectivity => "connectivity",
    /// How an approximate index stores its vectors.
    Quantization => "quantization",
    /// Rows whose recall an index build measures.
    RecallQueries => "recall_queries",
    // Evaluation.
    /// Feature stores to evaluate on.
    Features => "features",
    /// Evaluation protocol.
    Protocol => "protocol",
    /// Training images per class.
    TrainPerClass => "train_per_class",
    /// Test images per class.
    TestPerClass => "test_per_class",
    /// Number of random splits.
    Splits => "splits",
    /// Random seed.
    Seed => "seed",
    /// Classes to leave out.
    DropClasses => "drop_classes",
    /// Split files.
    SplitFiles => "split_files",
    /// A VOC devkit year folder.
    Devkit => "devkit",
    /// VOC training image set.
    TrainSet => "train_set",
    /// VOC test image set.
    TestSet => "test_set",
    /// AP definition.
    Ap => "ap",
    /// SVM solver.
    Solver => "solver",
    /// SVM loss.
    Loss => "loss",
    /// SVM cost C.
    C => "c",
    /// The C grid of the selection.
    CGrid => "c_grid",
    /// SVM stopping tolerance.
    Eps => "eps",
    /// SVM iteration limit.
    MaxIter => "max_iter",
    /// SVM bias feature.
    Bias => "bias",
    /// Hold-out fraction of the C selection.
    ValidationFraction => "validation_fraction",
    /// How the C selection validates (k-fold or hold-out).
    CValidation => "c_validation",
    /// Folds of the C selection's cross-validation.
    Folds => "folds",
    /// Title of a results table.
    Title => "title",
    /// Benchmark folders of a reproduction.
    Benchmarks => "benchmarks",
    /// Working folder of a reproduction.
    Work => "work",
    // Classification.
    /// Multi-crop grid side.
    Crops => "crops",
    /// Dense evaluation.
    Dense => "dense",
    /// Classes reported per image.
    Top => "top",
    // Prediction.
    /// A saved classifier.
    Model => "model",
    // Training.
    /// Training dataset.
    Data => "data",
    /// VGG configuration.
    Config => "config",
    /// Where the weights start.
    Init => "init",
    /// Random initialisation scheme.
    InitScheme => "init_scheme",
    /// Layers kept fixed.
    FreezeThrough => "freeze_through",
    /// Augmented variants per training image whose frozen-prefix outputs are cached.
    CacheFrozen => "cache_frozen",
    /// Folder that keeps frozen caches between runs.
    CacheDir => "cache_dir",
    /// Channel-width divisor.
    WidthDiv => "width_div",
    /// Width of fc6 and fc7.
    FcWidth => "fc_width",
    /// Training crop side.
    Crop => "crop",
    /// Training scale S.
    TrainScale => "train_scale",
    /// Validation test scale Q.
    TestScale => "test_scale",
    /// Images per forward/backward pass.
    MicroBatch => "micro_batch",
    /// Learning rate.
    Lr => "lr",
    /// SGD momentum (Adam's first beta).
    Momentum => "momentum",
    /// The update rule: SGD or Adam.
    Optimizer => "optimizer",
    /// What fc6 does to its input first.
    Fc6Input => "fc6_input",
    /// Weight decay.
    WeightDecay => "weight_decay",
    /// Weight decay of biases.
    DecayBiases => "decay_biases",
    /// Dropout probability.
    Dropout => "dropout",
    /// Learning-rate division factor.
    LrFactor => "lr_factor",
    /// Plateau patience.
    Patience => "patience",
    /// Rate decreases before stopping.
    MaxDecreases => "max_decreases",
    /// Epoch limit.
    Epochs => "epochs",
    /// Colour-shift strength.
    ColourStd => "colour_std",
    /// Images of the colour PCA.
    PcaImages => "pca_images",
    /// Validation images per class.
    ValPerClass => "val_per_class",
    /// Seed of the train/validation split.
    SplitSeed => "split_seed",
    /// Classes kept for training.
    MaxClasses => "max_classes",
    /// What a run trains: classification or localisation.
    Task => "task",
    /// Box-regression head (SCR or PCR).
    Regression => "regression",
    /// Validation image set of a devkit.
    ValSplit => "val_split",
    // Localisation (localise).
    /// Localisation nets (or baselines).
    Localisers => "localisers",
    /// Overlap from which boxes merge.
    MergeIou => "merge_iou",
    /// The ground-truth-class variant.
    GtClass => "gt_class",
    /// Images drawn as pictures.
    Pictures => "pictures",
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Param;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for p in Param::ALL {
            let n = p.name();
            assert!(seen.insert(n), "{n} twice");
            // Digits only after a letter (`fc6_input`, the paper's layer name).
            assert!(
                n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }
}
