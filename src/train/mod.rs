//! Training VGG networks with the paper's recipe (Section 3.1): the optimiser ([`optim`]), the
//! learning-rate schedule ([`schedule`]) and the augmentation ([`augment`]).

pub mod augment;
pub mod optim;
pub mod schedule;
