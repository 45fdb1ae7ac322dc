//! The in-memory path: images (paths, encoded bytes, decoded pixels) straight to descriptors
//! without a store, rows in input order. Images go through the same decoding threads, batching
//! and networks as an extraction into a store, so a row equals the store's (and `export`'s)
//! descriptor of the same image.

use std::path::PathBuf;

use ndarray::{Array2, Array4, ArrayView2};

use super::Extractor;
use super::input::{Scaled, prepare_image, prepare_item};
use crate::aggregate::{Aggregate, RecordLayout};
use crate::dataset::Item;
use crate::error::{Error, Result};
use crate::image_io::Image;
use crate::util::Progress;

/// An image that could not be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its position in the list given.
    pub index: usize,
    /// How it is named: its path, or `images[i] (bytes)` / `images[i] (pixels)`.
    pub name: PathBuf,
    /// Why.
    pub reason: String,
}

impl Failure {
    /// The failure as an [`Error::Image`] naming the image.
    pub fn to_error(&self) -> Error {
        Error::Image {
            path: self.name.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// What [`Extractor::describe_all`] made of a list of images: the raw descriptors of the images
/// that could be used, in input order, and the failures.
#[derive(Debug, Clone)]
pub struct Described {
    raw: Array2<f32>,
    kept: Vec<usize>,
    failed: Vec<Failure>,
    layout: RecordLayout,
    aggregate: Aggregate,
}

impl Described {
    /// Positions (in the list given) of the described images, in order: row `r` of every matrix
    /// here is image `kept()[r]`.
    pub fn kept(&self) -> &[usize] {
        &self.kept
    }

    /// The images that could not be described, in input order.
    pub fn failed(&self) -> &[Failure] {
        &self.failed
    }

    /// The layout of a row of [`Described::raw_rows`].
    pub fn layout(&self) -> &RecordLayout {
        &self.layout
    }

    /// Each kept image's per-net, per-scale descriptors before any normalisation, one row each
    /// (net 0 at every scale, then net 1, ...: a store record's floats).
    pub fn raw_rows(&self) -> ArrayView2<'_, f32> {
        self.raw.view()
    }

    /// The descriptors aggregated as the extractor's parameters say
    /// ([`crate::ExtractorParams::aggregate`], every net, fused by stacking), L2-normalised.
    pub fn features(&self) -> Result<Array2<f32>> {
        self.aggregated(self.aggregate)
    }

    /// The descriptors aggregated over scales by `how`, every net fused by stacking,
    /// L2-normalised: what `export` writes for a store of the same images.
    pub fn aggregated(&self, how: Aggregate) -> Result<Array2<f32>> {
        let nets: Vec<usize> = (0..self.layout.dims.len()).collect();
        let d = self.layout.dim(how, &nets);
        let mut out = Array2::<f32>::zeros((self.raw.nrows(), d));
        for (mut o, r) in out.rows_mut().into_iter().zip(self.raw.rows()) {
            let row = r.as_slice().expect("rows of a standard-layout matrix");
            let v = self.layout.aggregate(row, how, &nets)?;
            o.as_slice_mut()
                .expect("rows of a standard-layout matrix")
                .copy_from_slice(&v);
        }
        Ok(out)
    }

    /// The raw descriptors as an (images, nets, scales, dimension) array. The nets must have
    /// the same descriptor dimension (otherwise use [`Described::raw_rows`] and
    /// [`Described::layout`]).
    pub fn into_raw(self) -> Result<Array4<f32>> {
        let l = &self.layout;
        let d = l.dims.first().copied().unwrap_or(0);
        if l.dims.iter().any(|x| *x != d) {
            return Err(Error::usage(format!(
                "the nets' descriptors differ in dimension ({:?}): one 4-d array cannot hold \
                 them; take the rows per net instead",
                l.dims
            )));
        }
        let n = self.raw.nrows();
        let (nets, scales) = (l.dims.len(), l.scales);
        let (v, _) = self.raw.into_raw_vec_and_offset();
        Array4::from_shape_vec((n, nets, scales, d), v)
            .map_err(|e| Error::Internal(format!("raw descriptors: {e}")))
    }
}

impl Extractor {
    /// Describes `images` (rows in input order), going on past images that cannot be used:
    /// they are listed in [`Described::failed`] with the reason. `progress` hears of every image
    /// and of every failure. Errors only when the network or a worker fails as a whole.
    pub fn describe_all(&self, images: &[Image], progress: &dyn Progress) -> Result<Described> {
        let decode = self.params.decode();
        self.describe_with(
            images.len(),
            |i| prepare_image(&images[i], i, &self.params.scales, &decode),
            |i| images[i].name(i),
            progress,
        )
    }

    /// [`Extractor::describe_all`] of dataset items (files, or members of tar shards), as an
    /// extraction reads them: what a batch of a listed dataset gives without a store.
    pub fn describe_items(&self, items: &[Item], progress: &dyn Progress) -> Result<Described> {
        let decode = self.params.decode();
        self.describe_with(
            items.len(),
            |i| prepare_item(&items[i], &self.params.scales, &decode).0,
            |i| items[i].path.clone(),
            progress,
        )
    }

    fn describe_with(
        &self,
        n: usize,
        prepare: impl Fn(usize) -> Scaled + Sync,
        name: impl Fn(usize) -> PathBuf,
        progress: &dyn Progress,
    ) -> Result<Described> {
        let p = &self.params;
        let mut rows: Vec<Option<std::result::Result<Vec<f32>, String>>> = vec![None; n];
        let todo: Vec<usize> = (0..n).collect();
        let mut network_seconds = 0.0;
        progress.begin("describe", "images", n as u64);
        self.pipeline().run(
            &todo,
            |i| (prepare(i), None),
            |group| {
                let ok: Vec<&Vec<image::RgbImage>> = group
                    .iter()
                    .filter_map(|g| g.scaled.as_ref().ok())
                    .collect();
                let mut floats = self.describe_group(&ok, &mut network_seconds).into_iter();
                for g in &group {
                    let r = match &g.scaled {
                        Err(reason) => Err(reason.clone()),
                        Ok(_) => floats.next().expect("one result per decoded image"),
                    };
                    if let Err(reason) = &r {
                        progress.note(&format!("skipped {}: {reason}", name(g.index).display()));
                    }
                    rows[g.index] = Some(r);
                    progress.advance(1);
                }
                Ok(())
            },
        )?;
        progress.end();
        let layout = self.layout();
        let width = layout.floats();
        let mut kept = Vec::new();
        let mut failed = Vec::new();
        let mut data = Vec::with_capacity(n * width);
        for (i, r) in rows.into_iter().enumerate() {
            match r {
                Some(Ok(v)) => {
                    data.extend_from_slice(&v);
                    kept.push(i);
                }
                Some(Err(reason)) => failed.push(Failure {
                    index: i,
                    name: name(i),
                    reason,
                }),
                None => {
                    return Err(Error::Internal(format!("image {i} was never described")));
                }
            }
        }
        let raw = Array2::from_shape_vec((kept.len(), width), data)
            .map_err(|e| Error::Internal(format!("descriptor rows: {e}")))?;
        Ok(Described {
            raw,
            kept,
            failed,
            layout,
            aggregate: p.aggregate,
        })
    }

    /// The descriptors of `images`, one row each in input order, aggregated as the parameters
    /// say and L2-normalised. The first image that cannot be used is an [`Error::Image`]
    /// naming it ([`Extractor::describe_all`] goes on instead).
    pub fn describe(&self, images: &[Image]) -> Result<Array2<f32>> {
        let d = self.describe_complete(images)?;
        d.features()
    }

    /// The raw descriptors of `images` as an (images, nets, scales, dimension) array, before
    /// any normalisation (what `export --raw` writes). The first image that cannot be used is an
    /// [`Error::Image`] naming it.
    pub fn describe_raw(&self, images: &[Image]) -> Result<Array4<f32>> {
        self.describe_complete(images)?.into_raw()
    }

    fn describe_complete(&self, images: &[Image]) -> Result<Described> {
        let d = self.describe_all(images, &crate::util::Silent)?;
        match d.failed.first() {
            Some(f) => Err(f.to_error()),
            None => Ok(d),
        }
    }
}
