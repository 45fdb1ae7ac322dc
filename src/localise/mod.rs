//! The paper's object localisation (Sect. 4 and Appendix A): boxes and their regression targets
//! ([`bbox`]), the box-regression head ([`head`]), a net's boxes on an image under the two test
//! protocols ([`predict`]), OverFeat's greedy merging of the boxes a net predicts densely
//! ([`merge`]), and ILSVRC's localisation error ([`metric`]).
//!
//! The box-regression nets are trained by [`crate::train`] (`--task localise`) and applied by
//! the [`job`] (`vggfeat localise`).

pub mod bbox;
pub mod head;
pub mod job;
pub mod merge;
pub mod metric;
pub mod predict;

pub use bbox::{BoxParams, Rect, Window};
pub use head::Regression;
pub use job::{
    LocProtocol, LocSource, LocalisationError, LocaliseParams, LocaliseReport, LocaliseValidParams,
    localise,
};
pub use merge::{Merged, ScoredBox, greedy_merge};
pub use metric::{Guess, HIT_IOU, Truth, gt_class_error, is_hit, localisation_error};
