//! The decode stage of extraction: threads that decode each input and resize it to every scale,
//! ahead of the network, through a bounded queue (memory stays flat on any folder size).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use image::RgbImage;
use sha2::{Digest, Sha256};

use super::ExtractParams;
use crate::dataset::Item;
use crate::error::Error;
use crate::image_io::{decode_rgb, read_image_bytes, read_member_bytes};
use crate::preprocess::{check_scaled_size, resize_smallest_side};
use crate::store::Source;

/// A decoded input, resized to every scale, or why it cannot be used; and the file it came from.
pub(super) struct Prepared {
    /// Index into the items.
    pub item: usize,
    /// One image per scale, or the reason.
    pub result: std::result::Result<Vec<RgbImage>, String>,
    /// The file's size, times and content hash (`None` when it could not be examined).
    pub source: Option<Source>,
}

/// The reason in an error about an image, without the path (the store names the id).
fn reason(e: Error) -> String {
    match e {
        Error::Image { reason, .. } => reason,
        e => e.to_string(),
    }
}

fn prepare(item: &Item, params: &ExtractParams) -> Prepared0 {
    let meta = match std::fs::metadata(&item.path) {
        Ok(m) => m,
        Err(e) => return (Err(format!("cannot read: {e}")), None),
    };
    let mut source = Source::of_metadata(&meta);
    let bytes = match item.member {
        Some(m) => read_member_bytes(&item.path, m.offset, m.size, &params.decode),
        None => read_image_bytes(&item.path, &params.decode),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return (Err(reason(e)), Some(source)),
    };
    source.sha256 = Some(Sha256::digest(&bytes).into());
    let scaled = (|| {
        let img = decode_rgb(&item.path, &bytes, &params.decode).map_err(reason)?;
        let mut out = Vec::with_capacity(params.scales.len());
        for &q in &params.scales {
            check_scaled_size(img.width(), img.height(), q, params.decode.max_pixels)?;
            out.push(resize_smallest_side(&img, q));
        }
        Ok(out)
    })();
    (scaled, Some(source))
}

type Prepared0 = (std::result::Result<Vec<RgbImage>, String>, Option<Source>);

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
                    let (result, source) = std::panic::catch_unwind(|| prepare(&items[i], &params))
                        .unwrap_or_else(|_| (Err("decoder panicked".into()), None));
                    if tx
                        .send(Prepared {
                            item: i,
                            result,
                            source,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
    (rx, handles)
}
