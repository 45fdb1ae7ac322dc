//! Resume bookkeeping: given what a store already holds and what the inputs are now, which
//! inputs still need the network, which records to add without it (entries the listing could not
//! use, records of inputs that are gone), and what to count.
//!
//! An input already in the store is skipped when its file's size and times are unchanged, and
//! extracted again when they changed (the content hash recorded with the descriptor tells a
//! rewritten file from a touched one only after reading it, so a changed stat is enough to
//! recompute). A failed input is tried again when its file changed, or always with
//! `retry_failed`. Records of inputs that no longer exist are removed. A record kept whose
//! labels are no longer the input's (a relabelled list, table or `.cls`) is rewritten with the
//! new labels and the same descriptors: labels are part of what a record was computed from.

use std::collections::{HashMap, HashSet};

use super::stats::ExtractSummary;
use crate::dataset::{Item, SkipKind, Skipped};
use crate::store::{Outcome, Record, RecordMeta, Source};

/// An entry the dataset listing could not use (an unreadable folder, a broken link, ...): it is
/// recorded as a failed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unusable {
    /// Its id (as an item's would be).
    pub id: String,
    /// Its labels, as far as the listing knows them (the class folder it is in).
    pub labels: Vec<String>,
    /// Why it could not be used.
    pub reason: String,
}

/// The [`SkipKind::Unusable`] entries of a listing, as failed inputs.
pub(super) fn unusable(skipped: &[Skipped]) -> Vec<Unusable> {
    skipped
        .iter()
        .filter(|s| s.kind == SkipKind::Unusable)
        .map(|s| Unusable {
            id: s.id.clone(),
            labels: s.labels.clone().unwrap_or_default(),
            reason: s.reason.clone(),
        })
        .collect()
}

/// What a run into an existing store has to do.
#[derive(Debug, Default)]
pub(super) struct ResumePlan {
    /// Positions of the items that need the network.
    pub todo: Vec<usize>,
    /// Records to write without the network: unusable entries (failures) and removals.
    pub records: Vec<Record>,
    /// Positions of the items whose record is kept but whose labels changed: their records are
    /// written again with the item's labels.
    pub relabel: Vec<usize>,
    /// The counts so far (already done, unverified, changed, retried, removed, and the
    /// failures of unusable entries).
    pub summary: ExtractSummary,
}

/// Plans a run over `items` and `unusable` into a store holding `existing` records.
pub(super) fn plan(
    items: &[Item],
    unusable: &[Unusable],
    existing: Vec<RecordMeta>,
    retry_failed: bool,
) -> ResumePlan {
    let mut p = ResumePlan::default();
    p.summary.total = items.len() + unusable.len();
    let existing: HashMap<String, RecordMeta> =
        existing.into_iter().map(|r| (r.id.clone(), r)).collect();
    let s = &mut p.summary;
    for (i, item) in items.iter().enumerate() {
        let unchanged = |src: &Option<Source>| {
            src.as_ref().is_some_and(|src| {
                std::fs::metadata(&item.path).is_ok_and(|m| src.same_stat(&Source::of_metadata(&m)))
            })
        };
        let relabelled = existing
            .get(&item.id)
            .is_some_and(|m| m.labels != item.labels);
        let mut kept = || {
            s.already_done += 1;
            if relabelled {
                s.relabelled += 1;
                p.relabel.push(i);
            }
        };
        match existing.get(&item.id).map(|m| (m.ok, &m.source)) {
            None | Some((None, _)) => p.todo.push(i),
            Some((Some(true), None)) => {
                kept();
                s.unverified += 1;
            }
            Some((Some(true), src)) if unchanged(src) => kept(),
            Some((Some(true), _)) => {
                s.changed += 1;
                p.todo.push(i);
            }
            Some((Some(false), src)) if !retry_failed && unchanged(src) => kept(),
            Some((Some(false), _)) => {
                s.retried += 1;
                p.todo.push(i);
            }
        }
    }
    // Entries the listing could not use, and records of inputs that are gone.
    let mut listed: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    for u in unusable {
        listed.insert(u.id.as_str());
        if existing
            .get(&u.id)
            .is_some_and(|m| m.ok == Some(false) && m.labels == u.labels)
            && !retry_failed
        {
            s.already_done += 1;
            continue;
        }
        s.failed.push((u.id.clone(), u.reason.clone()));
        p.records.push(Record {
            id: u.id.clone(),
            labels: u.labels.clone(),
            outcome: Outcome::Failed(u.reason.clone()),
            source: None,
        });
    }
    let mut gone: Vec<&String> = existing
        .keys()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    gone.sort();
    for id in gone {
        s.removed += 1;
        p.records.push(Record {
            id: id.clone(),
            labels: Vec::new(),
            outcome: Outcome::Removed,
            source: None,
        });
    }
    p
}
