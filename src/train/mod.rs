//! Training VGG networks with the paper's recipe (Section 3.1): the optimiser ([`optim`]), the
//! learning-rate schedule ([`schedule`]), the augmentation ([`augment`]), and the trainable
//! network with its initialisations ([`net`], convolutions in [`conv`]).

pub mod augment;
pub mod conv;
pub mod net;
pub mod optim;
pub mod schedule;
