//! `stats.json`: what the last extraction run into a store did, for the person watching a
//! cluster job: counts, failures grouped by reason, rates, wall time, host and shard.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::Result;
use crate::store::Manifest;

/// What an extraction did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExtractSummary {
    /// Inputs given (images and entries the listing could not use).
    pub total: usize,
    /// Inputs already in the store (resumed), skipped.
    pub already_done: usize,
    /// Of those, records from an older store without a file fingerprint (kept unverified).
    pub unverified: usize,
    /// Inputs re-extracted because their file changed since they were stored.
    pub changed: usize,
    /// Failed inputs tried again (their file changed, or `retry_failed`).
    pub retried: usize,
    /// Records removed because their input no longer exists.
    pub removed: usize,
    /// Records kept whose labels changed (a relabelled list, table or `.cls`): rewritten with
    /// the new labels, without the network.
    pub relabelled: usize,
    /// Inputs extracted by this run.
    pub extracted: usize,
    /// Inputs this run decoded and ran through the network (extracted, or failed on the way):
    /// what the rates count.
    pub processed: usize,
    /// Inputs that failed in this run: (id, reason). Also recorded in the store.
    pub failed: Vec<(String, String)>,
    /// Wall-clock seconds of the run's processing (decoding and the network; the interval the
    /// progress bar shows).
    pub seconds: f64,
    /// Seconds spent in the network (forward passes).
    pub network_seconds: f64,
}

impl ExtractSummary {
    /// Images per second end to end: [`processed`](Self::processed) over
    /// [`seconds`](Self::seconds).
    pub fn images_per_sec(&self) -> f64 {
        self.processed as f64 / self.seconds.max(1e-9)
    }

    /// Images per second in the network alone.
    pub fn network_images_per_sec(&self) -> f64 {
        self.processed as f64 / self.network_seconds.max(1e-9)
    }
}

/// The statistics of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    /// vggfeat's version.
    pub tool_version: String,
    /// The machine.
    pub host: String,
    /// The shard `[i, N]`, if any.
    pub shard: Option<(usize, usize)>,
    /// Start of the run, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Whether the run went through all its inputs (false: it stopped on an error).
    pub finished: bool,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Seconds in the network.
    pub network_seconds: f64,
    /// Images per second, end to end and in the network (0 when nothing was computed).
    pub images_per_second: Rates,
    /// Inputs: given, extracted, already in the store, re-extracted, retried, removed, failed.
    pub counts: Counts,
    /// Failures of this run grouped by reason (the text before the first `:` or `(`).
    pub failures_by_reason: BTreeMap<String, usize>,
    /// What computed the descriptors: engine, kernels, precision, threads, nets and dimensions.
    pub runtime: Runtime,
}

/// What computes an extractor's descriptors: printed as the run header, recorded in
/// `stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runtime {
    /// The engine (`fast`, `fast-gemm`, `candle`).
    pub engine: String,
    /// The kernels and their instruction set (`AVX-512F f32 micro-kernels`, ...).
    pub kernel: String,
    /// Precision of the products.
    pub precision: String,
    /// The device (`cpu`, `cuda:0`).
    pub device: String,
    /// Threads of the network's computation.
    pub threads: usize,
    /// Per net: configuration, descriptor layer and its dimension per scale.
    pub nets: Vec<RuntimeNet>,
    /// Scales Q.
    pub scales: Vec<u32>,
    /// Whether the flip is averaged in.
    pub flip: bool,
    /// The stored record's length (every net, every scale).
    pub record_dim: usize,
    /// The dimension of the aggregated descriptor (stack of every net and scale), what `svm`
    /// and `export` use by default.
    pub descriptor_dim: usize,
}

/// One net of a [`Runtime`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeNet {
    /// Configuration (A .. E).
    pub config: String,
    /// Descriptor layer.
    pub layer: String,
    /// Its dimension per scale.
    pub dim: usize,
}

impl std::fmt::Display for Runtime {
    /// `engine fast (AVX-512F f32 micro-kernels), precision f32, cpu, 2 threads; D pool4 512-d;
    /// scales [224, 384] with flips; records 1024 floats, descriptor 1024-d (stack)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nets: Vec<String> = self
            .nets
            .iter()
            .map(|n| format!("{} {} {}-d", n.config, n.layer, n.dim))
            .collect();
        write!(
            f,
            "engine {} ({}), precision {}, {}, {} thread{}; {}; scales {:?}{}; records {} floats, \
             descriptor {}-d (stack)",
            self.engine,
            self.kernel,
            self.precision,
            self.device,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            nets.join(" & "),
            self.scales,
            if self.flip { " with flips" } else { "" },
            self.record_dim,
            self.descriptor_dim
        )
    }
}

/// Throughput.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rates {
    /// Decoding, network and writing together.
    pub end_to_end: f64,
    /// The forward passes alone.
    pub network: f64,
}

/// The run's counts (see [`ExtractSummary`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    /// Inputs given.
    pub total: usize,
    /// Extracted by this run.
    pub extracted: usize,
    /// Already in the store.
    pub already_done: usize,
    /// Re-extracted because their file changed.
    pub changed: usize,
    /// Failed before and tried again.
    pub retried: usize,
    /// Removed (file gone).
    pub removed: usize,
    /// Kept, rewritten with their new labels.
    pub relabelled: usize,
    /// Failed in this run.
    pub failed: usize,
}

/// The class of a failure reason: `cannot read: ... (os error 13)` -> `cannot read`.
fn reason_class(reason: &str) -> String {
    let end = reason.find([':', '(']).unwrap_or(reason.len());
    reason[..end].trim().to_string()
}

impl RunStats {
    /// The statistics of a run described by `summary`.
    pub fn new(
        summary: &ExtractSummary,
        manifest: &Manifest,
        runtime: Runtime,
        started: SystemTime,
        finished: bool,
    ) -> Self {
        let mut failures_by_reason = BTreeMap::new();
        for (_, why) in &summary.failed {
            *failures_by_reason.entry(reason_class(why)).or_insert(0) += 1;
        }
        let computed = summary.processed;
        RunStats {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            shard: manifest.input.shard,
            started_unix: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            finished,
            wall_seconds: summary.seconds,
            network_seconds: summary.network_seconds,
            images_per_second: if computed > 0 && summary.network_seconds > 0.0 {
                Rates {
                    end_to_end: summary.images_per_sec(),
                    network: summary.network_images_per_sec(),
                }
            } else {
                Rates {
                    end_to_end: 0.0,
                    network: 0.0,
                }
            },
            counts: Counts {
                total: summary.total,
                extracted: summary.extracted,
                already_done: summary.already_done,
                changed: summary.changed,
                retried: summary.retried,
                removed: summary.removed,
                relabelled: summary.relabelled,
                failed: summary.failed.len(),
            },
            failures_by_reason,
            runtime,
        }
    }

    /// Writes `stats.json` into the store folder, atomically.
    pub fn write(&self, store: &Path) -> Result<()> {
        crate::util::write_json(&store.join("stats.json"), self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_are_grouped_by_their_first_words() {
        assert_eq!(
            super::reason_class("cannot read: Permission denied (os error 13)"),
            "cannot read"
        );
        assert_eq!(
            super::reason_class("not an image (unrecognised file signature)"),
            "not an image"
        );
        assert_eq!(super::reason_class("truncated"), "truncated");
    }
}
