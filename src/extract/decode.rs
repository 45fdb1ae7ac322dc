//! The decode stage of extraction: threads that decode each input and resize it to every scale,
//! ahead of the network, through a bounded queue (memory stays flat on any folder size).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use image::RgbImage;

use super::ExtractParams;
use crate::dataset::Item;
use crate::error::Error;
use crate::image_io::load_rgb_with;
use crate::preprocess::{resize_smallest_side, scaled_size};

/// A decoded input, resized to every scale, or why it cannot be used.
pub(super) struct Prepared {
    /// Index into the items.
    pub item: usize,
    /// One image per scale, or the reason.
    pub result: std::result::Result<Vec<RgbImage>, String>,
}

fn prepare(item: &Item, params: &ExtractParams) -> std::result::Result<Vec<RgbImage>, String> {
    let img = load_rgb_with(&item.path, &params.decode).map_err(|e| match e {
        Error::Image { reason, .. } => reason,
        e => e.to_string(),
    })?;
    let mut out = Vec::with_capacity(params.scales.len());
    for &q in &params.scales {
        let (w, h) = scaled_size(img.width(), img.height(), q);
        if (w as u64) * (h as u64) > params.decode.max_pixels {
            return Err(format!(
                "{}x{} image rescaled to smallest side {q} would be {w}x{h}, over the pixel limit \
                 (extreme aspect ratio)",
                img.width(),
                img.height()
            ));
        }
        out.push(resize_smallest_side(&img, q));
    }
    Ok(out)
}

/// Starts the decode threads over `todo` (indices into `items`); results arrive on the receiver
/// in any order. The queue holds at most `params.queue` decoded images. Each thread stops when
/// `stop` is set or the receiver is dropped.
pub(super) fn spawn_decoders(
    items: Arc<Vec<Item>>,
    todo: Arc<Vec<usize>>,
    params: &ExtractParams,
    stop: Arc<AtomicBool>,
) -> (Receiver<Prepared>, Vec<std::thread::JoinHandle<()>>) {
    let (tx, rx) = sync_channel(params.queue);
    let next = Arc::new(AtomicUsize::new(0));
    let handles = (0..params.decode_threads)
        .map(|_| {
            let (tx, items, todo, next, stop) = (
                tx.clone(),
                items.clone(),
                todo.clone(),
                next.clone(),
                stop.clone(),
            );
            let params = params.clone();
            std::thread::spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let result = std::panic::catch_unwind(|| prepare(&items[i], &params))
                        .unwrap_or_else(|_| Err("decoder panicked".into()));
                    if tx.send(Prepared { item: i, result }).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    (rx, handles)
}
