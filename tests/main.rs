//! The integration tests, built into one binary (`cargo test` runs it): the real binary on
//! fixture files, the library on `../shared`'s fixtures, weights and Caltech-101, and synthetic
//! data made in temporary folders. Regenerate golden files deliberately with
//! `UPDATE_GOLDEN=1 cargo test`.

mod checkpoint_errors;
mod cli;
mod cli_train;
mod cluster;
mod combining;
mod dataset;
mod export;
mod extract;
mod hostile_files;
mod image_io;
mod inputs;
mod keras;
mod localisation;
mod model;
mod neighbours;
mod protocols;
mod reliability;
mod report;
mod reproduce;
mod svm_cli;
mod train;
mod trust;
mod util;
