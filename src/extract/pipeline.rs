//! The decode pipeline: threads that prepare inputs (read, decode, rescale to every scale) ahead
//! of the network, through a bounded queue (memory stays flat on any number of inputs), and the
//! grouping of what is ready into one network pass. Used alike by extraction into a store and by
//! in-memory description.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use super::input::Scaled;
use crate::error::{Error, Result};
use crate::store::Source;

/// One input prepared for the network.
pub(super) struct Prepared {
    /// Its position in the caller's list of inputs.
    pub index: usize,
    /// One image per scale, or why it cannot be used.
    pub scaled: Scaled,
    /// The file it came from, for dataset items.
    pub source: Option<Source>,
}

/// How the pipeline runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pipeline {
    /// Decoding threads (at least 1).
    pub threads: usize,
    /// Prepared inputs waiting for the network at most (at least 1).
    pub queue: usize,
    /// Inputs per group at most (at least 1).
    pub group: usize,
}

impl Pipeline {
    /// Prepares every input of `todo` (positions in the caller's list) on the decoding threads
    /// with `prepare`, and calls `consume` on the calling thread with groups of prepared inputs
    /// as they become ready: one input, then whatever else is ready, up to the group size. The
    /// order of inputs across groups is not fixed. An error of `consume` stops the pipeline and
    /// is returned; a decoding thread that dies is an [`Error::Worker`].
    pub fn run(
        &self,
        todo: &[usize],
        prepare: impl Fn(usize) -> (Scaled, Option<Source>) + Sync,
        mut consume: impl FnMut(Vec<Prepared>) -> Result<()>,
    ) -> Result<()> {
        let (tx, rx) = sync_channel::<Prepared>(self.queue.max(1));
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..self.threads.max(1) {
                let tx = tx.clone();
                let (next, stop, prepare) = (&next, &stop, &prepare);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = todo.get(k) else { break };
                        let (scaled, source) =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                prepare(index)
                            }))
                            .unwrap_or_else(|_| (Err("decoder panicked".into()), None));
                        let p = Prepared {
                            index,
                            scaled,
                            source,
                        };
                        if tx.send(p).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let result = (|| {
                let mut received = 0;
                while received < todo.len() {
                    let Ok(first) = rx.recv() else {
                        return Err(Error::Worker(format!(
                            "the decode threads stopped after {received} of {} inputs",
                            todo.len()
                        )));
                    };
                    let mut group = vec![first];
                    while group.len() < self.group.max(1) {
                        match rx.try_recv() {
                            Ok(p) => group.push(p),
                            Err(_) => break,
                        }
                    }
                    received += group.len();
                    consume(group)?;
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            drop(rx);
            result
        })
    }
}
