//! The box-regression head of a localisation net (the paper's Sect. 4.1): its last layer predicts
//! one box shared by all classes (single-class regression, SCR: 4 outputs) or one box per class
//! (per-class regression, PCR: 4 x C outputs, class c's box in outputs 4c..4c+4). A checkpoint
//! written by `vggfeat train --task localise` names its head in the metadata
//! ([`crate::model::checkpoint::meta::BOX_HEAD`]).

use std::str::FromStr;

use crate::error::{Error, Param, Result};

/// Single-class or per-class box regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regression {
    /// One box for all classes: 4 outputs.
    Scr,
    /// One box per class: 4 x C outputs.
    Pcr,
}

impl Regression {
    /// The last layer's width for `classes` classes.
    pub fn outputs(self, classes: usize) -> usize {
        match self {
            Regression::Scr => 4,
            Regression::Pcr => 4 * classes,
        }
    }

    /// The first of class `class`'s 4 outputs.
    pub fn slot(self, class: usize) -> usize {
        match self {
            Regression::Scr => 0,
            Regression::Pcr => 4 * class,
        }
    }

    /// The head of a net with `width` outputs and `classes` classes, if the width fits it.
    pub fn check_width(self, width: usize, classes: usize) -> Result<()> {
        if width == self.outputs(classes) {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "a {self} head over {classes} classes has {} outputs, this net has {width}",
                self.outputs(classes)
            )))
        }
    }
}

impl FromStr for Regression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "scr" => Ok(Regression::Scr),
            "pcr" => Ok(Regression::Pcr),
            _ => Err(Error::param(
                Param::Regression,
                format!("`{s}`: expected scr (single-class) or pcr (per-class)"),
            )),
        }
    }
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Regression::Scr => "scr",
            Regression::Pcr => "pcr",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_place_their_boxes() {
        assert_eq!("PCR".parse::<Regression>().unwrap(), Regression::Pcr);
        assert!("box".parse::<Regression>().is_err());
        assert_eq!(Regression::Pcr.outputs(5), 20);
        assert_eq!(Regression::Pcr.slot(3), 12);
        assert_eq!(Regression::Scr.slot(3), 0);
        assert!(Regression::Scr.check_width(4, 9).is_ok());
        assert!(Regression::Pcr.check_width(8, 3).is_err());
    }
}
