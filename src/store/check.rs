//! Whether a store still describes its inputs: the run that wrote it finished, and the files it
//! was computed from are still there, unchanged, with no new ones beside them. `export` and `svm`
//! say what this finds, so stale or partial descriptors are never used without a word.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Store;
use super::chunk::Source;
use crate::dataset::{Dataset, Selection, SkipKind};

/// Whether a store still matches its inputs (files changed or gone since extraction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Why the store is not a complete extraction, if it is not.
    pub incomplete: Option<String>,
    /// Why the inputs could not be listed again (e.g. the folder is on another machine).
    pub not_checked: Option<String>,
    /// Ids whose file changed (size or times) since their record was written.
    pub changed: Vec<String>,
    /// Ids whose file no longer exists.
    pub deleted: Vec<String>,
    /// Inputs that exist but have no record.
    pub new: Vec<String>,
}

impl Freshness {
    /// The findings in words, one per problem; empty when the store is complete and fresh.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(why) = &self.incomplete {
            w.push(format!("the store is incomplete: {why}"));
        }
        let some = |v: &[String]| {
            let shown: Vec<&str> = v.iter().take(3).map(String::as_str).collect();
            format!(
                "{}{}",
                shown.join(", "),
                if v.len() > 3 { ", ..." } else { "" }
            )
        };
        let mut stale = Vec::new();
        if !self.changed.is_empty() {
            stale.push(format!(
                "{} changed ({})",
                self.changed.len(),
                some(&self.changed)
            ));
        }
        if !self.deleted.is_empty() {
            stale.push(format!(
                "{} deleted ({})",
                self.deleted.len(),
                some(&self.deleted)
            ));
        }
        if !self.new.is_empty() {
            stale.push(format!("{} new ({})", self.new.len(), some(&self.new)));
        }
        if !stale.is_empty() {
            w.push(format!(
                "the store is stale against its inputs: {} since extraction; re-run the same \
                 `extract` to bring it up to date",
                stale.join(", ")
            ));
        }
        w
    }
}

/// Lists the store's inputs again (with the selection its manifest records) and compares them
/// with its records.
pub fn check_inputs(store: &Store) -> Freshness {
    check_records(
        &store.manifest,
        store.incomplete(),
        store
            .records
            .iter()
            .map(|r| (r.id.as_str(), r.source.as_ref())),
    )
}

/// The store's inputs listed again with the selection its manifest records, or why they cannot
/// be (a root is not here, the listing failed).
pub(crate) fn list_inputs(manifest: &super::Manifest) -> Result<Dataset, String> {
    let input = &manifest.input;
    let roots: Vec<PathBuf> = std::iter::once(&input.root)
        .chain(&input.more)
        .map(PathBuf::from)
        .collect();
    if let Some(gone) = roots.iter().find(|r| !r.exists()) {
        return Err(format!("{} is not here", gone.display()));
    }
    let sel = Selection {
        voc_split: input
            .split
            .clone()
            .unwrap_or_else(|| Selection::default().voc_split),
        classes: input.classes.clone(),
        limit_per_class: input.limit_per_class,
        shard: input.shard,
        root: input.table_root.as_ref().map(PathBuf::from),
    };
    Dataset::open_inputs_selection(&roots, &sel).map_err(|e| e.to_string())
}

/// The items of `ids` among the store's inputs listed again ([`list_inputs`]), by id: where a
/// report or a results page finds the file (or tar member) behind a store id.
pub(crate) fn items_by_id(
    manifest: &super::Manifest,
    ids: &std::collections::HashSet<&str>,
) -> Result<std::collections::HashMap<String, crate::dataset::Item>, String> {
    Ok(list_inputs(manifest)?
        .items
        .into_iter()
        .filter(|i| ids.contains(i.id.as_str()))
        .map(|i| (i.id.clone(), i))
        .collect())
}

/// [`check_inputs`] for a store given by its manifest, its incompleteness note and its live
/// records' ids and sources (e.g. a [`super::StoreStream`]).
pub fn check_records<'a>(
    manifest: &super::Manifest,
    incomplete: Option<String>,
    records: impl Iterator<Item = (&'a str, Option<&'a Source>)>,
) -> Freshness {
    let mut f = Freshness {
        incomplete,
        ..Default::default()
    };
    let ds = match list_inputs(manifest) {
        Ok(ds) => ds,
        Err(why) => {
            f.not_checked = Some(why);
            return f;
        }
    };
    let mut listed: HashMap<String, Option<&Path>> = ds
        .items
        .iter()
        .map(|i| (i.id.clone(), Some(i.path.as_path())))
        .collect();
    for s in ds.skipped.iter().filter(|s| s.kind == SkipKind::Unusable) {
        listed.insert(s.id.clone(), None);
    }
    for (id, source) in records {
        match listed.remove(id) {
            None => f.deleted.push(id.to_string()),
            Some(Some(path)) => {
                // A record without a fingerprint (the file could not be examined) may be usable
                // now, which only a new extraction can tell.
                if let Some(s) = source {
                    let now = std::fs::metadata(path).map(|m| Source::of_metadata(&m));
                    if !now.is_ok_and(|n| s.same_stat(&n)) {
                        f.changed.push(id.to_string());
                    }
                }
            }
            Some(None) => {}
        }
    }
    f.new = listed.into_keys().collect();
    f.new.sort();
    f
}
