//! ImageNet-1k class names (synset id and WordNet lemmas, in the standard class-index order),
//! embedded from timm's `imagenet_synsets.txt` / `imagenet_synset_to_lemma.txt` (Apache-2.0).

const CLASSES: &str = include_str!("data/imagenet_classes.txt");

/// Number of ImageNet-1k classes.
pub const NUM_CLASSES: usize = 1000;

/// The `(synset, name)` of ImageNet class `index` (0..1000): the first lemma is the short name.
pub fn class(index: usize) -> Option<(&'static str, &'static str)> {
    CLASSES.lines().nth(index).and_then(|l| l.split_once('\t'))
}

/// The short (first-lemma) name of ImageNet class `index`.
pub fn short_name(index: usize) -> Option<&'static str> {
    class(index).map(|(_, n)| n.split(',').next().unwrap_or(n).trim())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousand_classes() {
        assert_eq!(super::CLASSES.lines().count(), super::NUM_CLASSES);
        assert_eq!(super::short_name(0), Some("tench"));
        assert_eq!(super::class(999).map(|c| c.0), Some("n15075141"));
        assert!(super::class(1000).is_none());
    }
}
