//! The `vggfeat` command line: clap parsing, each command's arguments turned into the library's
//! checked parameters (`TryFrom`), one library call, and what it returns printed. Exit codes:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the run finished but some inputs failed (listed at the end, recorded in the store) |
//! | 2 | usage error: a bad flag or value, or parameters that do not fit the data |
//! | 3 | fatal error: unreadable or invalid files, I/O, a diverged training run, a failed worker |

mod choice;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run finished, but some inputs failed.
pub const EXIT_SOME_FAILED: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: fatal error.
pub const EXIT_FATAL: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "vggfeat",
    version,
    about = "Very deep convolutional networks (VGG) as a transfer-learning tool",
    long_about = None,
    after_help = "Examples:\n  vggfeat info vgg16.safetensors\n  vggfeat extract 101_ObjectCategories -w vgg16.safetensors -o store\n  vggfeat svm -f store -o results/caltech101\n\nExit codes: 0 success, 1 some inputs failed, 2 usage error, 3 fatal error."
)]
struct Cli {
    /// Worker threads for the CPU path (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe a checkpoint: configuration, layer table with shapes, parameter count, preprocessing.
    Info(commands::info::InfoArgs),
    /// Classify images with the paper's dense test-time protocol (top-5 classes).
    Classify(commands::classify::ClassifyArgs),
    /// Dense multi-scale descriptors of a folder, VOC devkit or list file into a store (resumable).
    Extract(Box<commands::extract::ExtractArgs>),
    /// Aggregated, L2-normalised descriptors of a store as CSV or .npy.
    Export(commands::export::ExportArgs),
    /// Join shard stores (`extract --shard i/N`) into one.
    Merge(commands::merge::MergeArgs),
    /// Linear SVMs on stored descriptors: Caltech-style splits or VOC-style AP, results tables.
    Svm(Box<commands::svm::SvmArgs>),
    /// Nearest neighbours of store ids or images among a store's descriptors (cosine k-NN).
    Neighbours(commands::neighbours::NeighboursArgs),
    /// An approximate (HNSW) index of a store for `neighbours --index`, with its measured recall.
    Index(commands::index::IndexArgs),
    /// Apply the classifiers an `svm` run saved to another store (top classes or scores CSV).
    Predict(commands::predict::PredictArgs),
    /// The paper's transfer table (Table 11) for whichever benchmarks and nets are given.
    Reproduce(commands::reproduce::ReproduceArgs),
    /// Train with the paper's recipe: from scratch, from a shallower net, fine-tuning, resuming.
    Train(Box<commands::train::TrainArgs>),
    /// Localise objects with box-regression nets (centre crop or dense, merged boxes, errors).
    Localise(Box<commands::localise::LocaliseArgs>),
    /// Pretrained weights: `vggfeat weights fetch vgg16|vgg19`.
    Weights {
        #[command(subcommand)]
        action: commands::weights::WeightsAction,
    },
}

/// The error and its causes, each once (an I/O error's message already holds its cause). A
/// parameter error names the flag of `command` that sets the parameter.
fn message(e: &anyhow::Error, command: &str) -> String {
    let mut msg = match e.downcast_ref::<vggfeat::Error>() {
        Some(vggfeat::Error::Param { param, reason }) => {
            format!("{}: {reason}", choice::flag(command, *param))
        }
        _ => e.to_string(),
    };
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn main() -> ExitCode {
    // A closed pipe (`vggfeat info W | head -1`) ends the process quietly, as for any Unix
    // tool, instead of a panic on the next write to stdout.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global();
    }
    let name = command_name(&cli.command);
    let result = match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Classify(a) => commands::classify::run(a),
        Command::Extract(a) => commands::extract::run(*a),
        Command::Export(a) => commands::export::run(a),
        Command::Merge(a) => commands::merge::run(a),
        Command::Svm(a) => commands::svm::run(*a),
        Command::Predict(a) => commands::predict::run(a),
        Command::Neighbours(a) => commands::neighbours::run(a),
        Command::Index(a) => commands::index::run(a),
        Command::Reproduce(a) => commands::reproduce::run(a),
        Command::Weights { action } => commands::weights::run(action),
        Command::Train(a) => commands::train::run(*a),
        Command::Localise(a) => commands::localise::run(*a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", message(&e, name));
            let usage = e
                .downcast_ref::<vggfeat::Error>()
                .is_some_and(vggfeat::Error::is_usage);
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FATAL })
        }
    }
}

/// The subcommand's name, as typed.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Info(_) => "info",
        Command::Classify(_) => "classify",
        Command::Extract(_) => "extract",
        Command::Export(_) => "export",
        Command::Merge(_) => "merge",
        Command::Svm(_) => "svm",
        Command::Predict(_) => "predict",
        Command::Neighbours(_) => "neighbours",
        Command::Index(_) => "index",
        Command::Reproduce(_) => "reproduce",
        Command::Train(_) => "train",
        Command::Localise(_) => "localise",
        Command::Weights { .. } => "weights",
    }
}
