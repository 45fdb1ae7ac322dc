//! The `vggfeat` command line: clap parsing mapped onto the library, exit codes, and error
//! context. Nothing else lives here.
//!
//! Exit codes: 0 success; 1 the run finished but some inputs failed (listed at the end);
//! 2 usage error (bad flags or parameters); 3 fatal error (unreadable weights, I/O failure).

mod cmd;
mod train_cmd;

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
#[command(name = "vggfeat", version, about = "Very deep convolutional networks (VGG) as a transfer-learning tool", long_about = None)]
struct Cli {
    /// Worker threads for the CPU path (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe a checkpoint: configuration, layer table with shapes, parameter count, preprocessing.
    Info(cmd::InfoArgs),
    /// Classify images with the paper's dense test-time protocol (top-5 classes).
    Classify(cmd::ClassifyArgs),
    /// Dense multi-scale descriptors of a folder, VOC devkit or list file into a store (resumable).
    Extract(cmd::ExtractArgs),
    /// Aggregated, L2-normalised descriptors of a store as CSV or .npy.
    Export(cmd::ExportArgs),
    /// Join shard stores (`extract --shard i/N`) into one.
    Merge(cmd::MergeArgs),
    /// Linear SVMs on stored descriptors: Caltech-style splits or VOC-style AP, results tables.
    Svm(cmd::SvmArgs),
    /// The paper's transfer table (Table 11) for whichever benchmarks and nets are given.
    Reproduce(cmd::ReproduceArgs),
    /// Train with the paper's recipe: from scratch, from a shallower net, fine-tuning, resuming.
    Train(Box<train_cmd::TrainArgs>),
    /// Pretrained weights: `vggfeat weights fetch vgg16|vgg19`.
    Weights {
        #[command(subcommand)]
        action: cmd::WeightsAction,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(EXIT_USAGE);
        }
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let result = match cli.command {
        Command::Info(a) => cmd::info(a),
        Command::Classify(a) => cmd::classify(a),
        Command::Extract(a) => cmd::extract(a),
        Command::Export(a) => cmd::export(a),
        Command::Merge(a) => cmd::merge(a),
        Command::Svm(a) => cmd::svm(a),
        Command::Reproduce(a) => cmd::reproduce(a),
        Command::Weights { action } => cmd::weights(action),
        Command::Train(a) => train_cmd::train(*a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            let usage = e
                .downcast_ref::<vggfeat::Error>()
                .is_some_and(|e| matches!(e, vggfeat::Error::InvalidParam(_)));
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FATAL })
        }
    }
}
